"""Change in shape: mixed response at the right intervals on every scenario (clean and with segmentation jitter),
grew/regressed regions vs truth, registration accuracy, RANO-BM."""
import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from RNAssessmentLib.analysis import change as C
from RNAssessmentLib.analysis.registration import register_followup, stable_region
from RNAssessmentLib.anatomy import brain as anat_brain
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.teaching import phantom as P
from RNAssessmentLib.teaching.scenarios import get_scenario, scenario_list

NAMES = [s.name for s in scenario_list()]


def jitter(mask, ref, seed=0):
    """Move a mask's boundary by up to ±1 voxel in random smooth patches (segmentation wobble)."""
    rng = np.random.default_rng(seed)
    noise = geo.image_from_array(rng.normal(size=mask.shape).astype(np.float32), ref)
    sm = geo.array_view(sitk.SmoothingRecursiveGaussian(noise, 2.0))
    sm = sm / sm.std() * 0.7
    return C._sdf(mask, ref) < np.clip(sm, -1.0, 1.0)


def _mixed(masks, ref, boundaries=None):
    f, maps = C.analyse_changes(masks, ref, boundaries=boundaries)
    labels = list(masks)
    consecutive = set(zip(labels[:-1], labels[1:]))
    return {(x.from_, x.to) for x in f if x.kind == "mixed_response" and (x.from_, x.to) in consecutive}, f, maps


def _truth_mixed(scn):
    labels = [t.label for t in scn.timepoints]
    consecutive = set(zip(labels[:-1], labels[1:]))
    return {(e["from"], e["to"]) for e in scn.expected if e["kind"] == "mixed_response"
            and (e["from"], e["to"]) in consecutive}


@pytest.mark.parametrize("name", NAMES)
def test_mixed_response_at_the_right_intervals(name, rendered):
    scn = get_scenario(name, misalign=False)
    r = rendered(name, misalign=False)
    ref = r["treated_lesion"]
    masks = {t.label: geo.array_view(t.lesion) > 0 for t in r["timepoints"]}
    got, findings, maps = _mixed(masks, ref)
    assert got == _truth_mixed(scn)
    # Grew / regressed regions vs truth: Dice >= 0.9 for truth portions of >= 100 mm3 that are real changes by the
    # documented definition (a core >= 20 mm3 lying >= 2.5 mm beyond the other surface; thinner shells are wobble).
    # Enhancing meninges in a PD twin's mask are boundary enhancement, one voxel thin: no part of the lesion's growth.
    meninges = np.any(np.stack([geo.array_view(m) > 0 for m in r["boundaries"].values()]), axis=0)
    for a, b in zip(list(masks)[:-1], list(masks)[1:]):
        truth = _truth_change(masks[a], masks[b])
        truth[meninges] = 0
        for value, other in ((1, masks[a]), (2, masks[b])):
            comps = C._components(truth == value, ref)
            depth = C._sdf(other, ref)
            for lab in range(1, int(comps.max()) + 1):
                part = comps == lab
                if part.sum() < 100 or (depth[part] >= C.MIN_DEPTH_MM).sum() < C.MIN_CORE_MM3:
                    continue
                ours = (maps[(a, b)] == value) & _near(part, ref) & ~meninges
                dice = 2 * (ours & part).sum() / (ours.sum() + part.sum())
                assert dice >= 0.9, (a, b, value, dice, int(part.sum()), int(ours.sum()), int((maps[(a, b)] == value).sum()), int((part & meninges).sum()))


def _truth_change(before, after):
    out = np.zeros(before.shape, np.uint8)
    out[after & ~before] = 1
    out[before & ~after] = 2
    return out


def _near(part, ref, mm=3.0):
    return C._sdf(part, ref) <= mm


@pytest.mark.parametrize("name", [n for n in NAMES if "cavity" not in n])
def test_mixed_response_survives_segmentation_jitter(name, rendered):
    """±1 voxel per mask (so up to 2 voxels between two timepoints). The resection-cavity cases are left out: their
    lesion is a 3 mm shell, and moving both of its surfaces by a voxel removes a third of it, which no method can
    tell from regression."""
    scn = get_scenario(name, misalign=False)
    r = rendered(name, misalign=False)
    ref = r["treated_lesion"]
    masks = {t.label: jitter(geo.array_view(t.lesion) > 0, ref, seed=i) for i, t in enumerate(r["timepoints"])}
    # As the pipeline does: the boundary structures tell meningeal enhancement that comes and goes from lesion.
    bnd = np.any(np.stack([geo.array_view(m) > 0 for m in r["boundaries"].values()]), axis=0)
    got, _, _ = _mixed(masks, ref, bnd)
    assert got == _truth_mixed(scn)


def test_wobble_alone_is_never_growth_or_regression(rendered):
    r = rendered("callosal_pd", misalign=False)
    ref = r["treated_lesion"]
    m = geo.array_view(r["timepoints"][1].lesion) > 0
    portions, _, below = C.interval_portions(jitter(m, ref, seed=1), jitter(m, ref, seed=2), ref)
    assert portions == [] and below == []


@pytest.mark.parametrize("pose", [(10.0, -6.0, 8.0, 20.0, -12.0, 8.0), (-8.0, 10.0, -6.0, -15.0, 14.0, -10.0)])
def test_registration_tre_below_1mm_at_the_lesion(pose):
    scn = get_scenario("temporal_mixed_rn")
    scn = dataclasses.replace(scn, timepoints=[scn.timepoints[0], dataclasses.replace(scn.timepoints[1], pose=pose)])
    r = P.render_scenario(scn)
    t0, t1 = r["timepoints"]
    brain = anat_brain.brain_mask(t0.t1c)
    reg = register_followup(t0.t1c, t1.t1c, stable_region(brain, [r["treated_lesion"]]), planning_brain=brain,
                            followup_brain=anat_brain.brain_mask(t1.t1c))
    c = tuple(geo.centroid_lps(r["treated_lesion"]))
    tre = np.linalg.norm(np.subtract(reg.transform.TransformPoint(c), t1.transform_to_planning.TransformPoint(c)))
    assert tre < 1.0
    assert reg.quality_ncc > 0.8


def test_registration_refuses_a_different_image(rendered):
    r = rendered("callosal_rn", misalign=False)
    t0 = r["timepoints"][0]
    brain = anat_brain.brain_mask(t0.t1c)
    noise = geo.image_from_array(np.random.default_rng(0).normal(500, 200, t0.t1c.GetSize()).astype(np.float32),
                                 t0.t1c)
    with pytest.raises(ValueError, match="registration of noise.*failed"):
        register_followup(t0.t1c, noise, stable_region(brain, [r["treated_lesion"]]), what="noise")


def test_rano_bm_categories():
    ref = sitk.Image([60, 60, 20], sitk.sitkUInt8)
    x, y = np.meshgrid(np.arange(60), np.arange(60), indexing="ij")

    def disc(r):
        m = np.zeros((60, 60, 20), bool)
        m[:, :, 8:12] = ((x - 30) ** 2 + (y - 30) ** 2 <= r * r)[:, :, None]
        return m
    rows = C.rano_table({"t0": disc(10), "t1": disc(6), "t2": disc(9), "t3": np.zeros((60, 60, 20), bool)}, ref,
                        {"t0": 0, "t1": 90, "t2": 180, "t3": 270})
    assert rows[0]["sum_longest_diameter_mm"] == pytest.approx(21.0, abs=1.0)
    assert [r["rano_bm"] for r in rows] == ["baseline", "PR", "PD", "CR"]
