"""Lesions followed over time and RANO-BM as published (Lin et al., Lancet Oncol 2015;16:e270-78), on masks built
here: every expected category and reason is worked by hand from the discs' designed diameters, never from the code.

The grid: 0.5 mm pixels in plane, 2 mm slices; a disc of radius r voxels spans 2 r + 1 pixels, so its longest
axial diameter is (2 r + 1) x 0.5 mm edge to edge (axial_diameters measures edge to edge), within one pixel
(0.5 mm) for the discretised circle. Discs span four slices (two or more, as RANO-BM asks of measurable disease)."""
import re

import numpy as np
import pytest
import SimpleITK as sitk
from RNAssessmentLib.analysis import lesions as L

SHAPE = (200, 200, 20)


def grid():
    ref = sitk.Image(list(SHAPE), sitk.sitkUInt8)
    ref.SetSpacing((0.5, 0.5, 2.0))
    return ref


def disc(cx, cy, diameter_mm):
    """A disc whose longest axial diameter is ``diameter_mm`` (edge to edge, 0.5 mm pixels), on four slices."""
    r = (diameter_mm / 0.5 - 1) / 2.0
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    m = np.zeros(SHAPE, bool)
    m[:, :, 8:12] = (((x - cx) ** 2 + (y - cy) ** 2) <= r * r)[:, :, None]
    return m


def empty():
    return np.zeros(SHAPE, bool)


def mm_after(text, words):
    """The number (mm) right after ``words`` in a reason."""
    m = re.search(re.escape(words) + r" ?([0-9.]+) mm", text)
    assert m, (words, text)
    return float(m.group(1))


def table(masks, foci=None):
    ref = grid()
    lesions = L.track(masks, ref, foci=foci, reach_mm={k: 3.0 for k in masks})
    return lesions, L.rano_bm(lesions, list(masks))


def test_a_disc_has_its_designed_diameters():
    for d in (6.0, 12.0, 20.0, 30.0):
        longest, perpendicular = L.axial_diameters(disc(100, 100, d), grid())
        assert longest == pytest.approx(d, abs=0.5) and perpendicular == pytest.approx(d, abs=0.5)


def test_partial_response_then_growth_from_the_nadir_then_complete_response():
    # Baseline 20 mm (target). 13 mm: -35 % from baseline (>= 30 %): PR. 19 mm: +46 % from the nadir 13 mm and
    # +6 mm (>= 20 % and >= 5 mm): PD. Nothing left: CR.
    lesions, rows = table({"t0": disc(100, 100, 20), "t1": disc(100, 100, 13), "t2": disc(100, 100, 19),
                           "t3": empty()})
    assert [les.id for les in lesions] == ["L1"]
    assert [r["rano_bm"] for r in rows] == ["baseline", "PR", "PD", "CR"]
    assert rows[0]["target_lesions"] == ["L1"]
    assert rows[1]["change_from_baseline_pct"] == pytest.approx(-35.0, abs=4.0)
    assert mm_after(rows[2]["rano_bm_reason"], "from the nadir") == pytest.approx(13.0, abs=0.5)
    assert rows[3]["rano_bm_reason"] == "every lesion gone, no new lesion"


def test_twenty_percent_without_five_mm_is_stable():
    # Two targets of 12 mm each (sum 24): both 14.5 mm (sum 29, +21 %), but each only +2.5 mm: not PD (RANO-BM
    # asks one lesion >= 5 mm larger as well). Neither is it a 30 % decrease: SD.
    lesions, rows = table({"t0": disc(50, 100, 12) | disc(150, 100, 12),
                           "t1": disc(50, 100, 14.5) | disc(150, 100, 14.5)})
    assert [les.id for les in lesions] == ["L1", "L2"] and all(les.treated for les in lesions)
    assert rows[1]["sum_longest_diameter_mm"] == pytest.approx(29.0, abs=1.0)
    assert rows[1]["rano_bm"] == "SD"


def test_a_new_measurable_lesion_is_progression_whatever_the_targets_do():
    # The target shrinks 20 -> 12 mm (-40 %, a PR on its own), but a 14 mm focus appears apart from it: PD.
    new = disc(170, 100, 14)
    lesions, rows = table({"t0": disc(60, 100, 20), "t1": disc(60, 100, 12) | new}, foci={"t1": new})
    assert [(les.id, les.treated, les.first_seen) for les in lesions] == [("L1", True, "t0"), ("L2", False, "t1")]
    assert rows[1]["rano_bm"] == "PD" and rows[1]["new_lesions"] == ["L2"]
    assert rows[1]["rano_bm_reason"].startswith("new lesion L2, 14")


def test_an_equivocal_new_lesion_confirmed_later_is_progression_from_then():
    # A 6 mm focus at t1 (not measurable: equivocal, the target stable: SD, no response with a new lesion), 14 mm
    # at t2: the same lesion (it overlaps its t1 extent), confirmed: PD, dated from t1. Never "new" twice.
    small, grown = disc(160, 100, 6), disc(162, 100, 14)
    lesions, rows = table({"t0": disc(60, 100, 20), "t1": disc(60, 100, 20) | small,
                           "t2": disc(60, 100, 20) | grown}, foci={"t1": small, "t2": grown})
    assert [(les.id, les.first_seen) for les in lesions] == [("L1", "t0"), ("L2", "t1")]
    assert rows[1]["rano_bm"] == "SD" and "equivocal" in rows[1]["rano_bm_reason"]
    assert mm_after(rows[1]["rano_bm_reason"], "new lesion L2 (") == pytest.approx(6.0, abs=0.5)
    assert rows[2]["rano_bm"] == "PD" and rows[2]["new_lesions"] == []
    assert "progression dates from t1" in rows[2]["rano_bm_reason"]


def test_a_non_measurable_baseline_that_becomes_measurable_is_progression():
    # 8 mm at baseline (non-measurable: no target), 9 mm (still non-measurable, +1 mm): non-CR/non-PD; 22 mm
    # (measurable, +14 mm from its smallest 8 mm): unequivocal progression of the non-target lesion, PD.
    lesions, rows = table({"t0": disc(100, 100, 8), "t1": disc(100, 100, 9), "t2": disc(100, 100, 22)})
    assert rows[0]["target_lesions"] == [] and "non-target" in rows[0]["rano_bm_reason"]
    assert [r["rano_bm"] for r in rows] == ["baseline", "non-CR/non-PD", "PD"]
    assert mm_after(rows[2]["rano_bm_reason"], "non-target L1") == pytest.approx(8.0, abs=0.5)


def test_a_lesion_still_there_is_measured_not_dropped():
    # A 20 mm target at 8 mm (257 mm³ still there): -60 %, PR, not "-100 %" or CR.
    lesions, rows = table({"t0": disc(100, 100, 20), "t1": disc(100, 100, 8)})
    assert rows[1]["sum_longest_diameter_mm"] == pytest.approx(8.0, abs=0.5)
    assert rows[1]["rano_bm"] == "PR"


def test_at_most_five_targets_the_largest():
    # Six measurable lesions, centres 35 mm and 50 mm apart (more than GROUP_MM between their edges): the five
    # largest are the targets.
    sizes = (11, 12, 13, 14, 15, 16)
    m = empty()
    for n, d in enumerate(sizes):
        m |= disc(30 + 70 * (n % 3), 50 + 100 * (n // 3), d)
    lesions, rows = table({"t0": m, "t1": m})
    by_size = {les.id: les.at["t0"].longest_mm for les in lesions}
    assert len(lesions) == 6
    assert sorted(rows[0]["target_lesions"]) == sorted(sorted(by_size, key=by_size.get)[1:])


def test_parts_within_ten_mm_are_one_treated_lesion_and_a_focus_gone_stays_gone():
    # Two parts 6 mm apart at SRS: one lesion (GROUP_MM, as the change in shape groups them). A focus at t1 gone at
    # t2: present at t1 only, volume 0 at t2.
    a, b = disc(80, 100, 10), disc(112, 100, 10)       # centres 16 mm apart, edges 6 mm apart
    focus = disc(170, 100, 8)
    lesions, _ = table({"t0": a | b, "t1": a | b | focus, "t2": a | b}, foci={"t1": focus})
    assert [les.id for les in lesions] == ["L1", "L2"]
    assert lesions[0].at["t0"].parts == 2
    assert [t for t, x in lesions[1].at.items() if x.present] == ["t1"] and lesions[1].at["t2"].volume_mm3 == 0


def test_findings_json_lesions_round_trip():
    from RNAssessmentLib.analysis.findings import Assessment
    lesions, _ = table({"t0": disc(100, 100, 20), "t1": disc(100, 100, 13)})
    doc = Assessment(case_id="x", findings=[], summary={}, lesions=lesions).to_dict()
    back = Assessment.from_dict(doc)
    assert [x.to_dict() for x in back.lesions] == doc["lesions"]
    assert doc["lesions"][0]["timepoints"][0]["measurable"] is True


def test_partial_voxels_are_shared_out_so_the_lesions_add_up_to_the_segmentation():
    # A segmentation drawn on another grid covers the voxels of two discs in full and a one-voxel rim around each
    # at 0.3: every partial voxel goes to the lesion it touches, so L1 + L2 is the segmentation's volume.
    ref = grid()
    a, b = disc(60, 100, 20), disc(160, 100, 10)
    rim = np.zeros(SHAPE, bool)
    for m in (a, b):
        grown = m.copy()
        grown[1:] |= m[:-1]
        grown[:-1] |= m[1:]
        grown[:, 1:] |= m[:, :-1]
        grown[:, :-1] |= m[:, 1:]
        rim |= grown & ~m
    fraction = a.astype(np.float32) + b + 0.3 * rim
    lesions = L.track({"t0": a, "t1": a | b}, ref, foci={"t1": b}, fractions={"t0": fraction, "t1": fraction})
    vox = 0.5 * 0.5 * 2.0
    total = float(fraction.sum(dtype=np.float64)) * vox
    assert sum(les.at["t1"].volume_mm3 for les in lesions) == pytest.approx(total, rel=1e-9)
    b_rim = (rim & ~a) & (np.abs(np.arange(SHAPE[0])[:, None, None] - 160) < 20)
    assert lesions[1].at["t1"].volume_mm3 == pytest.approx((b.sum() + 0.3 * b_rim.sum()) * vox, rel=1e-9)


def test_a_fringe_of_a_focus_is_the_focus_not_the_treated_lesion():
    # The treated lesion gone at t2, the focus there drawn a voxel wider than the focus the analysis found: the
    # fringe touches the focus and no earlier lesion, so it is the focus's; the treated lesion stays gone.
    lesion, focus = disc(60, 100, 20), disc(160, 100, 12)
    drawn = disc(160, 100, 14)                           # the focus and a ring of two pixels around it
    lesions, _ = table({"t0": lesion, "t1": lesion | focus, "t2": drawn}, foci={"t1": focus, "t2": focus})
    assert [les.id for les in lesions] == ["L1", "L2"]
    assert [t for t, a in lesions[0].at.items() if a.present] == ["t0", "t1"]
    assert lesions[1].at["t2"].volume_mm3 == pytest.approx(drawn.sum() * 0.5, rel=1e-9)   # 0.5 mm³ voxels


def test_a_case_with_one_timepoint_says_no_change_can_be_assessed(rendered, tmp_path):
    """The SRS image alone: no finding, a warning that nothing could be compared, and a report that says so instead
    of "None found" under each heading."""
    from RNAssessmentLib.output.report import build_report
    from RNAssessmentLib.pipeline.assess import assess_case
    from RNAssessmentLib.teaching.demo import case_from_render
    from RNAssessmentLib.teaching.scenarios import get_scenario
    case = case_from_render(get_scenario("falx_cingulate_rn"), rendered("falx_cingulate_rn"))
    case.timepoints = case.timepoints[:1]
    a = assess_case(case, log_callback=lambda m: None)
    assert a.findings == [] and any(w.startswith("one timepoint only") for w in a.warnings)
    page = build_report(case, a)
    assert "None found" not in page and "no follow-up to compare" in page


def test_nothing_at_srs_then_a_lesion_is_a_new_lesion_not_an_error():
    lesions, rows = table({"t0": empty(), "t1": disc(100, 100, 14)})
    assert [(les.id, les.treated, les.first_seen) for les in lesions] == [("L1", False, "t1")]
    assert rows[1]["rano_bm"] == "PD" and rows[1]["new_lesions"] == ["L1"]


def test_enhancement_patterns_by_design():
    # Masks built here, enhancement designed: a ball of radius 10 mm enhancing only in its outer 2.5 mm (one
    # slice's depth and more) is a ring; enhancing throughout, solid; a 20 x 3 mm strip, linear; a ball with a fifth
    # of its voxels enhancing, faint.
    ref = grid()
    x, y, z = np.meshgrid(np.arange(SHAPE[0]) * 0.5, np.arange(SHAPE[1]) * 0.5, np.arange(SHAPE[2]) * 2.0,
                          indexing="ij")
    r = np.sqrt((x - 50) ** 2 + (y - 50) ** 2 + (z - 20) ** 2)
    ball = r <= 10.0
    shell = ball & (r > 7.5)
    ring_kind, ring_frac = L.pattern(ball, shell, ref, *L.axial_diameters(ball, ref))
    assert ring_kind == "ring" and 0.3 < ring_frac < 0.7
    assert L.pattern(ball, ball, ref, *L.axial_diameters(ball, ref)) == ("solid", 1.0)
    strip = empty()
    strip[60:100, 98:104, 8:12] = True
    assert L.pattern(strip, strip, ref, *L.axial_diameters(strip, ref))[0] == "linear"
    some = ball & (np.arange(SHAPE[0])[:, None, None] % 5 == 0)
    assert L.pattern(ball, some, ref, *L.axial_diameters(ball, ref))[0] == "faint"


def _focus_finding(kind, tp, lesion, boundary="falx", gap=5.0, volume=100.0):
    from RNAssessmentLib.analysis.findings import Finding
    return Finding(kind=kind, centroid_ras=(1.0, 2.0, 3.0), volume_mm3=volume, dose={"mean_gy": 9.0, "max_gy": 12.0},
                   timepoint=tp, boundary=boundary, gap_mm=gap, geodesic_mm=40.0, boundary_enhancing=False,
                   segment=f"{tp} across {boundary}", lesions=[lesion])


def test_a_focus_seen_at_two_timepoints_is_one_finding():
    """One observation, one finding: L2 across the falx at t1 and t2 is one finding holding at both, with t2's
    numbers (its present state) and t1's kept; a second focus, another boundary, the treated lesion, or the same
    focus once its lining enhances (another observation) stay findings of their own."""
    from RNAssessmentLib.analysis.findings import describe, one_per_observation, when_label
    across, focus = "noncontiguous_across_boundary", "noncontiguous_focus"
    fs = [_focus_finding(across, "t2", "L2", gap=5.5, volume=700.0), _focus_finding(across, "t1", "L2", gap=4.0),
          _focus_finding(across, "t2", "L3"), _focus_finding(across, "t1", "L4", boundary="tentorium"),
          _focus_finding(across, "t2", "L4", boundary="csf"), _focus_finding(across, "t1", "L5"),
          _focus_finding(focus, "t2", "L5"), _focus_finding(focus, "t1", "L1"), _focus_finding(focus, "t2", "L1")]
    out = one_per_observation(fs, ["t0", "t1", "t2"])
    assert len(out) == len(fs) - 1
    l2 = out[0]
    assert l2.timepoints == ["t1", "t2"] and l2.timepoint == "t2" and l2.volume_mm3 == 700.0 and l2.gap_mm == 5.5
    assert l2.at["t1"]["gap_mm"] == 4.0 and l2.at["t2"]["segment"] == "t2 across falx"
    assert when_label(l2.to_dict()) == "t1, t2" and l2.when() == "t1, t2"
    assert [f.timepoints for f in out[1:]] == [None] * (len(out) - 1)
    text = describe(l2, {"t1": 200, "t2": 290}, focus=("L2", "t1", 120.0, 700.0))
    assert text.startswith("Enhancing focus L2, first seen at t1 (day 200) (0.12 cm³), 0.70 cm³ at t2 (day 290)")
    assert "5.5 mm from the treated lesion across the falx, across it too at t1 (day 200), 4.0 mm away" in text
    assert fs[0].timepoints is None      # the findings given are left as they were


def test_a_focus_in_two_parts_is_one_finding_across_the_boundary():
    """boundaries.fold_parts_of_one_focus on findings built here. L2 at t2 is two discs: the near one found across
    the CSF, the far one a neutral focus no boundary separates. One finding results: its voxels the two discs',
    its gap the near disc's, its dose over both, the far part recorded. A neutral part whose boundary enhances
    (not spared: evidence against RN), a part of another lesion and a part of the treated lesion stay apart."""
    from RNAssessmentLib.analysis.boundaries import fold_parts_of_one_focus
    from RNAssessmentLib.analysis.findings import Finding, FindingKind, Lesion
    ref = grid()

    def finding(**kw):
        return Finding(**{"centroid_ras": [], "dose": {}, "volume_mm3": 10.0, **kw})
    near, far, other, own = disc(60, 100, 6.0), disc(60, 140, 5.0), disc(150, 60, 5.0), disc(150, 150, 5.0)
    masks = {"t2 across csf": near, "t2 non-contiguous": far, "t2 non-contiguous 3": other,
             "t2 non-contiguous 4": own, "t2 non-contiguous 5": disc(20, 20, 4.0)}
    dose = np.zeros(SHAPE, np.float32)
    dose[:100] = 20.0            # both L2 discs (x 60) at 20 Gy, the discs at x 150 at 0
    dose[:, 120:] += 4.0         # and the far disc (y 140) at 24 Gy
    across = finding(kind=FindingKind.NONCONTIGUOUS_ACROSS_BOUNDARY, timepoint="t2", boundary="csf",
                     segment="t2 across csf", volume_mm3=float(near.sum() * 0.5), gap_mm=12.0, geodesic_mm=13.0,
                     lesions=["L2"], evidence={"segment_crossing_fraction": {"csf": 0.41}})
    part = finding(kind=FindingKind.NONCONTIGUOUS_FOCUS, timepoint="t2", segment="t2 non-contiguous",
                   volume_mm3=float(far.sum() * 0.5), gap_mm=18.0, geodesic_mm=18.5, lesions=["L2"],
                   evidence={"segment_crossing_fraction": {"csf": 0.25}})
    not_spared = finding(kind=FindingKind.NONCONTIGUOUS_FOCUS, timepoint="t2", boundary="csf",
                         segment="t2 non-contiguous 5", gap_mm=20.0, lesions=["L2"],
                         evidence={"boundary_not_spared": "the csf enhances between the lesion and the focus"})
    elsewhere = finding(kind=FindingKind.NONCONTIGUOUS_FOCUS, timepoint="t2", segment="t2 non-contiguous 3",
                        gap_mm=30.0, lesions=["L3"])
    treated = finding(kind=FindingKind.NONCONTIGUOUS_FOCUS, timepoint="t2", segment="t2 non-contiguous 4",
                      gap_mm=9.0, lesions=["L1"])
    lesions = [Lesion(id="L1", treated=True, first_seen="t0"), Lesion(id="L2", treated=False, first_seen="t1"),
               Lesion(id="L3", treated=False, first_seen="t2")]
    out = fold_parts_of_one_focus([across, part, not_spared, elsewhere, treated], masks, lesions, ref, dose,
                                  (20.0, 12.0))
    assert out == [across, not_spared, elsewhere, treated]
    whole = near | far
    assert np.array_equal(masks["t2 across csf"], whole) and "t2 non-contiguous" not in masks
    # 0.5 x 0.5 x 2 mm voxels: 0.5 mm³ each.
    assert across.volume_mm3 == pytest.approx(whole.sum() * 0.5)
    assert across.gap_mm == 12.0 and across.geodesic_mm == 13.0            # the near part's, the nearer
    n_near, n_far = int(near.sum()), int(far.sum())
    assert across.dose["mean_gy"] == pytest.approx((20.0 * n_near + 24.0 * n_far) / (n_near + n_far))
    assert across.dose["min_gy"] == 20.0 and across.dose["highest_enclosing_isodose_gy"] == 20.0
    assert across.evidence["parts"] == [{"segment": "t2 non-contiguous", "volume_mm3": far.sum() * 0.5,
                                         "euclidean_gap_mm": 18.0, "geodesic_mm": 18.5, "centroid_ras": [],
                                         "segment_crossing_fraction": {"csf": 0.25}}]
    # The centroid lies between the discs' centres (y 100 and 140 pixels), weighted by their voxels.
    y_mm = -(n_near * 100 + n_far * 140) / (n_near + n_far) * 0.5          # LPS y -> RAS -y, origin 0
    assert across.centroid_ras[1] == pytest.approx(y_mm, abs=0.01)
    for f in (not_spared, elsewhere, treated):
        assert f.segment in masks and "parts" not in f.evidence
