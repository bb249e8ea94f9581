"""What a radiologist reads at a glance: one palette, labels that collide with nothing, findings numbered in the
order shown, dose levels that follow the fractionation, complete help."""
import argparse
import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from RNAssessmentLib.output import palette as P
from RNAssessmentLib.analysis import dose as D
from RNAssessmentLib.analysis.findings import FAVOURS, FINDING_KINDS, Finding, in_display_order
from RNAssessmentLib.faces.cli import build_parser
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.output import report as R


def test_no_structure_or_finding_colour_repeats_an_isodose_colour():
    iso = list(P.SLICERRT_ISODOSE) + list(P.isodose_colours([60, 48, 36, 24, 12, 7, 3]).values())
    named = dict(P.FINDING, treated=P.TREATED, boundary=P.BOUNDARY)
    for name, c in named.items():
        assert min(P.delta_e(c, i) for i in iso) >= P.MIN_DELTA_E, name
    # Colours shown together in one figure stay apart: every distinct colour pair.
    distinct = {P.hex_colour(c): c for c in named.values()}
    for a, b in itertools.combinations(distinct.values(), 2):
        assert P.delta_e(a, b) >= 30.0, (a, b)


def test_isodose_colours_run_green_to_red_by_rank():
    cols = P.isodose_colours([20, 15, 12, 10, 5])
    assert cols[5.0] == P.SLICERRT_ISODOSE[0] and cols[20.0] == P.SLICERRT_ISODOSE[-1]
    greens = [cols[v][1] for v in sorted(cols)]      # G falls (and R rises) from the lowest level to the highest
    reds = [cols[v][0] for v in sorted(cols)]
    assert greens == sorted(greens, reverse=True) and reds == sorted(reds)
    assert len({P.hex_colour(c) for c in cols.values()}) == 5
    assert P.isodose_colours([24.0])[24.0] == (1.0, 0.0, 0.0)


def test_a_finding_keeps_its_colour_everywhere():
    names = {"t1 across falx": "noncontiguous_across_boundary", "t1 non-contiguous": "noncontiguous_focus",
             "t2 open ring ventricles": "open_ring", "t2 csf enhancement": "boundary_enhancement",
             "t1 contiguous extension": "contiguous_extension", "t0-t1 grew": "grew", "t1-t2 regressed": "regressed",
             "t1 across tentorium 2": "noncontiguous_across_boundary"}
    for name, kind in names.items():
        assert P.segment_colour(name) == P.finding_colour(kind), name        # MRML / findings.seg.nrrd
        assert R.COLOURS[kind] == P.hex_colour(P.finding_colour(kind))      # report images, DVH chart
    assert set(FINDING_KINDS) <= set(P.FINDING)


def test_findings_are_numbered_in_the_order_shown():
    kinds = ["concentric_growth", "contiguous_extension", "open_ring", "boundary_enhancement",
             "noncontiguous_across_boundary", "regression"]
    fs = [Finding(kind=k, centroid_ras=(0, 0, 0), volume_mm3=1.0, dose={}) for k in kinds]
    shown = in_display_order(fs)
    assert [FAVOURS[f.kind] for f in shown] == ["RN", "RN", "PD", "PD", "neutral", "neutral"]
    assert [f.kind for f in shown][:2] == ["open_ring", "noncontiguous_across_boundary"]   # stable within a group
    page = R._finding_list(shown)
    order = [page.index(f'<b>F{n}</b>') for n in range(1, 7)]
    assert order == sorted(order)


def test_dose_levels_follow_the_fractionation():
    assert D.default_levels(20.0, 1) == [20.0, 15.0, 12.0, 10.0, 5.0]
    assert D.default_levels(24.0, 3) == [24.0, 20.0, 19.2, 14.4, 9.6, 4.8]       # % of Rx + the V20 level
    assert D.default_levels(30.0, 5) == [30.0, 24.0, 18.0, 12.0, 6.0]             # 80 % is the V24 level itself
    assert D.default_levels(60.0, 30) == [60.0, 48.0, 36.0, 24.0, 12.0]
    assert D.brain_constraint(1)["metric"] == "V12" and D.brain_constraint(3)["level_gy"] == 20.0
    assert D.brain_constraint(5)["level_gy"] == 24.0 and "HyTEC" in D.brain_constraint(5)["source"]
    assert D.brain_constraint(30) is None


def _panel_with(dose_arr, masks):
    img = sitk.Image(80, 80, 40, sitk.sitkFloat32)
    img.SetOrigin((-40.0, -40.0, -20.0))
    dose = geo.image_from_array(dose_arr.astype(np.float32), img)
    p = R.Panel(geo.slice_grid((0.0, 0.0, 0.0), "axial", fov_mm=60.0, pixel_mm=0.35))
    for m in masks:
        p.outline(geo.image_from_array(m.astype(np.float32), img), "#fff")
    return p, dose


def test_isodose_labels_avoid_each_other_the_finding_and_the_margin():
    """Concentric levels 1 Gy apart (their lines a few pixels apart, the worst case for labels) around a finding."""
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=float) for n in (80, 80, 40)), indexing="ij")
    r = np.sqrt((ii - 40) ** 2 + (jj - 40) ** 2 + (kk - 20) ** 2)
    dose = np.clip(25.0 - r, 0, None)
    finding = r <= 6
    p, dose_img = _panel_with(dose, [finding])
    levels = [(lv, "#f00") for lv in (20, 19, 18, 17, 16, 15, 14, 12, 10, 5)]
    p.isodose(dose_img, levels)
    boxes = [b for _, b in p.labels]
    assert 3 <= len(boxes) < len(levels)          # some placed, the rest only in the legend
    for a, b in itertools.combinations(boxes, 2):
        assert not R._overlaps(a, b)
    for x, y, w, h in boxes:
        assert x >= R.MARGIN and y >= R.MARGIN and x + w <= R.MARGIN + p.n and y + h <= R.MARGIN + p.n
        sub = p.occupied[int(x - R.MARGIN):int(x + w - R.MARGIN) + 1, int(y - R.MARGIN):int(y + h - R.MARGIN) + 1]
        assert not sub.any()
    assert p.occupied.sum() > 0


def test_every_command_and_option_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command_help = {a.dest: a.help for a in sub._choices_actions}
    for name, cmd in sub.choices.items():
        assert command_help.get(name, "").strip(), name
        for action in cmd._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help.strip(), (name, action.dest)
    demo_help = sub.choices["demo"].format_help()
    assert "falx_cingulate_rn" in demo_help and "temporal_mixed_pd" in demo_help


@pytest.mark.parametrize("kind", sorted(FINDING_KINDS))
def test_every_kind_has_a_title_and_a_colour(kind):
    assert kind in R.KIND_TITLES and kind in R.COLOURS
