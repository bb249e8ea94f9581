"""Expected answers come from the design (teaching/design.py), never from the analysis they check.

Each test builds a design (parts on a fine grid, how each timepoint was acquired) and states, from the designed
displacement and the resolution along it worked out by hand here, what the design must expect."""
import ast
import os

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import ROOT
from RNAssessmentLib.analysis import boundaries as B
from RNAssessmentLib.analysis import change as C
from RNAssessmentLib.analysis import enhancement as E
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.teaching import design as D

TEACHING = os.path.join(ROOT, "RNAssessment", "RNAssessmentLib", "teaching")


def test_no_truth_generator_imports_the_analysis():
    """Generators of expected answers (everything under teaching/) import nothing from analysis/."""
    for name in sorted(os.listdir(TEACHING)):
        if not name.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(TEACHING, name), encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                assert "analysis" not in module, f"{name} imports {module}"
            elif isinstance(node, ast.Import):
                assert not any("analysis" in a.name for a in node.names), name


def test_the_designs_criteria_are_the_documented_methods():
    """design.py restates the method's thresholds as a reader applies them; they are the analysis's own values."""
    assert D.MIN_DEPTH_MM == C.MIN_DEPTH_MM and D.MIN_PORTION_MM3 == C.MIN_PORTION_MM3
    assert D.MIN_LOST_ENHANCEMENT_MM3 == C.MIN_CORE_MM3 and D.REGISTRATION_MM == C.REGISTRATION_UNCERTAINTY_MM
    assert D.GROUP_MM == C.GROUP_MM and D.MOVED_OUT_MM == C.DISPLACEMENT_MM
    assert D.CONCENTRIC_FRACTION == C.CONCENTRIC_SURFACE_FRACTION
    assert D.MEASURABLE_SURFACE_MM == C.MEASURABLE_SURFACE_MM and D.MIN_EXTENSION_MM3 == E.MIN_COMPONENT_MM3
    assert B.MIN_BEYOND_MM3 <= D.MIN_EXTENSION_MM3


AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _acq(slice_mm=1.0, registered=False, pixel=None):
    pixel = pixel or (0.9 if slice_mm > 2 else slice_mm)
    return D.Acquisition((pixel, pixel, slice_mm), AXIAL, registered)


def test_required_depth_along_a_direction_worked_by_hand():
    """5.5 mm slices, 0.9 mm pixels, both registered (0.5 mm each, 0.71 mm together): in the slice plane
    0.9 + 0.71 = 1.6 mm, so the 2.5 mm floor; through the slices 5.5 + 0.71 = 6.21 mm; at 45 degrees
    (0.9 + 5.5) / √2 + 0.71 = 5.24 mm. The planning image itself (not registered) with a registered follow-up:
    5.5 + 0.5."""
    a, b = _acq(5.5, True), _acq(5.5, True)
    assert D.required_depth_mm((1.0, 0.0, 0.0), a, b) == pytest.approx(2.5)
    assert D.required_depth_mm((0.0, 0.0, 1.0), a, b) == pytest.approx(5.5 + np.sqrt(0.5))
    assert D.required_depth_mm(np.array([1.0, 0.0, 1.0]) / np.sqrt(2), a, b) == \
        pytest.approx(6.4 / np.sqrt(2) + np.sqrt(0.5))
    assert D.required_depth_mm((0.0, 0.0, 1.0), _acq(5.5), b) == pytest.approx(6.0)


def _grid(half=30.0, spacing=0.5):
    n = int(2 * half / spacing)
    g = sitk.Image([n, n, n], sitk.sitkUInt8)
    g.SetSpacing((spacing,) * 3)
    g.SetOrigin((-half + spacing / 2,) * 3)
    return g


def _part(grid, centre, radii, ring=2.0):
    pts = geo.index_to_lps(grid, np.indices(grid.GetSize()).reshape(3, -1).T)
    q = np.sqrt((((pts - np.asarray(centre, float)) / np.asarray(radii, float)) ** 2).sum(1))
    extent = (q <= 1.0).reshape(grid.GetSize())
    inner = (q <= 1.0 - ring / min(radii)).reshape(grid.GetSize())
    return D.Part(extent, extent & ~inner, np.eye(3))


def _truth(grid, before, after, acq, counterpart=None, foci=None):
    entries, evidence = D.change_truth(grid, {"t0": before, "t1": after}, {"t0": acq[0], "t1": acq[1]},
                                       foci or {}, counterpart=counterpart)
    kinds = sorted(e["kind"] for e in entries if e["kind"])
    ambiguous = [sorted(map(tuple, e["acceptable"])) for e in entries if e["kind"] is None]
    return kinds, ambiguous, evidence


def test_growth_all_round_beyond_the_floor_is_growth_as_a_whole_and_a_wobble_is_nothing():
    """1 mm acquisitions: a 6 mm nodule growing 3.5 mm all round is beyond the 2.5 mm floor by a margin
    (0.25 mm) over far more than 20 mm³ and its whole surface moved out: growth as a whole. Growing 1 mm is below
    the floor minus the margin everywhere: nothing."""
    grid = _grid()
    acq = (_acq(1.0), _acq(1.0, True))
    kinds, ambiguous, ev = _truth(grid, {"L": _part(grid, (0, 0, 0), (6, 6, 6))},
                                  {"L": _part(grid, (0, 0, 0), (9.5, 9.5, 9.5))}, acq, "PD")
    assert kinds == ["concentric_growth"] and not ambiguous, ev
    # both the all-surface and the free-surface fraction: every surface point moved out
    assert ev[0]["lesions"][0]["surface_moved_out_fraction"] == pytest.approx([1.0, 1.0])
    kinds, ambiguous, _ = _truth(grid, {"L": _part(grid, (0, 0, 0), (6, 6, 6))},
                                 {"L": _part(grid, (0, 0, 0), (7, 7, 7))}, acq)
    assert kinds == [] and not ambiguous


def test_a_one_sided_change_is_judged_by_the_resolution_along_it():
    """5.5 mm slices: a lesion whose extent along x moves out 6 mm on one side and in 5 mm on the other, in the
    slice plane (2.5 mm required, 1.7 mm margin for a surface 9 mm from its equator through the slices): a mixed
    response. Moving up 3 mm through the slices (6.0 mm required, margin half a slice): not beyond it even less the
    margin, so at most indeterminate, never a mixed response. The PD twin of a design that may read as a mixed
    response is refused as a wrong design."""
    grid = _grid(35.0)
    acq = (_acq(5.5), _acq(5.5, True))
    before = {"L": _part(grid, (0, 0, 0), (10, 11, 9), ring=2.5)}
    # x from [-10, 10] to [-5, 16]; z from [-9, 9] to [-6, 12].
    kinds, ambiguous, ev = _truth(grid, before, {"L": _part(grid, (5.5, 0, 0), (10.5, 11, 9), ring=2.5)}, acq)
    assert kinds == ["mixed_response"] and not ambiguous, ev
    kinds, ambiguous, ev = _truth(grid, before, {"L": _part(grid, (0, 0, 3), (10, 11, 9), ring=2.5)}, acq)
    assert "mixed_response" not in kinds and not any("mixed_response" in a for o in ambiguous for a in o), ev
    with pytest.raises(ValueError, match="PD twin"):
        _truth(grid, before, {"L": _part(grid, (5.5, 0, 0), (10.5, 11, 9), ring=2.5)}, acq, "PD")


def test_a_new_focus_is_that_focus_not_growth():
    """A focus appearing 6 mm from a stable lesion, designed as a focus across a boundary: no growth of the
    lesion; the same part not designed as a new focus would be growth (12 mm deep, 0.5 cm³)."""
    grid = _grid()
    acq = (_acq(1.0), _acq(1.0))
    lesion = _part(grid, (-10, 0, 0), (6, 6, 6))
    focus = _part(grid, (6, 0, 0), (5, 5, 5))
    kinds, ambiguous, _ = _truth(grid, {"L": lesion}, {"L": lesion, "F": focus}, acq, foci={"t1": {"F"}})
    assert kinds == [] and not ambiguous
    kinds, _, _ = _truth(grid, {"L": lesion}, {"L": lesion, "F": focus}, acq)
    assert kinds in (["concentric_growth"], ["eccentric_growth"])


def test_a_regression_must_lose_enhancement():
    """A ring lesion whose necrotic core (not its enhancing rim) is what the later lesion no longer holds loses no
    enhancement: no regression (the design's ``lost_enhancement_mm3``). Losing its rim on one side is regression."""
    grid = _grid()
    acq = (_acq(1.0), _acq(1.0))
    ring = _part(grid, (0, 0, 0), (10, 10, 10), ring=2.0)
    core_gone = D.Part(ring.extent & ~_part(grid, (0, 0, 0), (10, 10, 10), ring=4.0).extent |
                       ring.enhancing, ring.enhancing, np.eye(3))
    kinds, ambiguous, ev = _truth(grid, {"L": ring}, {"L": core_gone}, acq)
    assert kinds == [] and not ambiguous, ev
    shrunk = _part(grid, (-2.5, 0, 0), (7.5, 10, 10), ring=2.0)
    kinds, _, _ = _truth(grid, {"L": ring}, {"L": shrunk}, acq)
    assert kinds == ["regression"]


def test_contiguous_extension_from_the_design():
    """Enhancement beyond one planning voxel of the SRS lesion over 20 mm³ or more: a ring grown from 6 to 9 mm
    (its rim 2 mm, all beyond) is an extension; the same lesion unchanged is not."""
    grid = _grid()
    small, big = _part(grid, (0, 0, 0), (6, 6, 6)), _part(grid, (0, 0, 0), (9, 9, 9))
    tps = {"t0": {"L": small}, "t1": {"L": big}, "t2": {"L": small}}
    out = D.extension_truth(grid, tps, small.extent, {}, (1.0, 1.0, 1.0), np.eye(3))
    assert [(e["kind"], e["timepoint"]) for e in out] == [("contiguous_extension", "t1")]
    assert out[0]["design_volume_mm3"] == pytest.approx(big.enhancing.sum() * 0.125, rel=0.01)


def test_crossing_fraction_of_a_focus_across_a_plane():
    """Segments from a focus at x = +8 to a lesion at x = -8 all cross a sheet at x = 0; a focus beside the lesion
    on its own side crosses none."""
    grid = _grid()
    pts = geo.index_to_lps(grid, np.indices(grid.GetSize()).reshape(3, -1).T)
    x = pts[:, 0].reshape(grid.GetSize())
    lesion = _part(grid, (-8, 0, 0), (4, 4, 4)).extent
    sheet = np.abs(x) <= 0.75
    assert D.crossing_fraction(_part(grid, (8, 0, 0), (3, 3, 3)).extent, lesion, sheet, grid) == 1.0
    assert D.crossing_fraction(_part(grid, (-8, 10, 0), (3, 3, 3)).extent, lesion, sheet, grid) == 0.0
