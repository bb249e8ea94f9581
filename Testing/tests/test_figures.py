"""What a radiologist reads at a glance: one palette, labels that collide with nothing, findings numbered in the
order shown, dose levels that follow the fractionation, complete help."""
import argparse
import itertools
import re

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
    iso = list(P.SLICERRT_ISODOSE) + list(P.isodose_colours([60, 48, 36, 24, 12, 7, 3]).values()) + \
        list(P.isodose_colours([36, 30, 27, 24, 6], 24.0).values())          # above the prescription too
    named = dict(P.FINDING, treated=P.TREATED, boundary=P.BOUNDARY)
    for name, c in named.items():
        assert min(P.delta_e(c, i) for i in iso) >= P.MIN_DELTA_E, name
    # Colours shown together in one figure stay apart: every distinct colour pair.
    distinct = {P.hex_colour(c): c for c in named.values()}
    for a, b in itertools.combinations(distinct.values(), 2):
        assert P.delta_e(a, b) >= 30.0, (a, b)


def test_every_finding_colour_shows_on_white_and_on_enhancing_dura():
    """Boundary enhancement was white: invisible on the enhancing falx it describes and, in the DVH, white on the
    white page. Every finding colour now has WCAG's 3:1 for graphics against white (the page, bright dura)."""
    assert P.contrast_ratio((1, 1, 1), (0, 0, 0)) == pytest.approx(21.0)
    for kind, c in P.FINDING.items():
        assert P.contrast_ratio(c, (1.0, 1.0, 1.0)) >= P.MIN_CONTRAST_ON_WHITE, (kind, P.hex_colour(c))


def test_a_dose_level_has_one_colour_in_every_case():
    """A fixed scale, not colour by rank: the prescription is red in every plan (20 Gy x 1, 24 Gy x 3, or alone),
    25 % of it green, a level keeps its colour whatever other levels a case draws, and levels above the
    prescription are darker reds (never the prescription's own red)."""
    red, green = P.SLICERRT_ISODOSE[-1], P.SLICERRT_ISODOSE[0]
    srs, frac = P.isodose_colours([20, 15, 12, 10, 5], 20.0), P.isodose_colours([24, 20, 14.4, 9.6, 4.8], 24.0)
    assert srs[20.0] == frac[24.0] == P.isodose_colours([24.0], 24.0)[24.0] == red
    assert srs[5.0] == frac[4.8] == green                                   # 25 % and 20 % of the prescription
    assert P.isodose_colours([15, 5], 20.0)[15.0] == srs[15.0]             # other levels do not move it
    assert srs[10.0] == P.isodose_colours([12.0], 24.0)[12.0]               # 50 % is 50 % in every plan
    greens = [srs[v][1] for v in sorted(srs)]      # G falls (and R rises) from the lowest level to the highest
    reds = [srs[v][0] for v in sorted(srs)]
    assert greens == sorted(greens, reverse=True) and reds == sorted(reds)
    assert len({P.hex_colour(c) for c in srs.values()}) == 5
    above = P.isodose_colours([22.0, 30.0], 20.0)
    assert above[30.0] == P.ISODOSE_ABOVE and above[22.0] != red and above[22.0][0] < 1.0
    # Without a prescription a level sits on SlicerRT's own table: 5 Gy green, 15 Gy yellow, 30 Gy red.
    assert P.isodose_colours([5.0, 15.0, 30.0]) == {5.0: green, 15.0: P.SLICERRT_ISODOSE[2], 30.0: red}


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
    # % of Rx + the V20 level; 19.2 Gy (80 %) lies within 5 % of Rx (1.2 Gy) of 20 Gy: one band, left out
    assert D.default_levels(24.0, 3) == [24.0, 20.0, 14.4, 9.6, 4.8]
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


def test_a_label_stands_outside_its_line_at_the_top_in_either_y_direction():
    """A circle of radius 10 around (50, 50): the label goes at its top point, outside it, on the outer side; the
    same in a y-up view (VTK's display) as in a y-down one (SVG), mirrored."""
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    down = np.c_[50 + 10 * np.sin(t), 50 - 10 * np.cos(t)]          # y down: the top point is (50, 40)
    box, at = geo.place_label(down, (20, 8), lambda b: True, gap=(2, 1))
    assert at == (50.0, 40.0) and box == (52.0, 31.0, 20, 8)           # above the line, right of the point
    up = np.c_[down[:, 0], 100 - down[:, 1]]                          # y up: the top point is (50, 60)
    box, at = geo.place_label(up, (20, 8), lambda b: True, gap=(2, 1), y_up=True)
    assert at == (50.0, 60.0) and box == (52.0, 61.0, 20, 8)
    # Nowhere free: None (the level is named in the legend only).
    assert geo.place_label(down, (20, 8), lambda b: False) is None


def test_isodose_labels_avoid_each_other_the_finding_and_the_margin():
    """Concentric levels 1 Gy apart (their lines 3 pixels apart, the worst case for labels) around a finding: no
    label lies across another level's line (a reader takes a label for the line it sits on), so only the levels
    with room beside their own line are labelled (5 Gy outside the stack, 10 Gy between the 10 and 5 Gy lines 14
    pixels apart), the rest are named in the legend only."""
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=float) for n in (80, 80, 40)), indexing="ij")
    r = np.sqrt((ii - 40) ** 2 + (jj - 40) ** 2 + (kk - 20) ** 2)
    dose = np.clip(25.0 - r, 0, None)
    finding = r <= 6
    p, dose_img = _panel_with(dose, [finding])
    levels = [(lv, "#f00") for lv in (20, 19, 18, 17, 16, 15, 14, 12, 10, 5)]
    p.isodose(dose_img, levels)
    boxes = [b for _, b in p.labels]
    assert 1 <= len(boxes) < len(levels)          # some placed, the rest only in the legend
    plane = geo.sample_plane(dose_img, p.grid)
    for text, (x, y, w, h) in p.labels:
        level = float(text.split()[0])
        # The dose under the box (its pixels and one around): the box touches no other level's line, so the dose
        # there lies between its own level and the neighbouring levels, never across one.
        i0, i1 = int(x - R.MARGIN) - 1, int(x + w - R.MARGIN) + 2
        j0, j1 = int(y - R.MARGIN) - 1, int(y + h - R.MARGIN) + 2
        under = plane[max(i0, 0):i1, max(j0, 0):j1]
        others = [lv for lv, _ in levels if lv != level]
        crossed = [lv for lv in others if under.min() < lv < under.max()]
        assert not crossed, (text, crossed)
    for a, b in itertools.combinations(boxes, 2):
        assert not geo.boxes_overlap(a, b)
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


def test_every_dvh_curve_is_told_apart_and_named():
    """Two findings of one kind share its colour (F1/F2 violet): the second gets a dash of its own; every curve,
    however many, has its legend entry, and the legend stays inside the figure."""
    dose = sitk.Image(30, 30, 30, sitk.sitkFloat32)
    arr = np.zeros((30, 30, 30), np.float32)
    arr[:] = np.linspace(2.0, 24.0, 30)[None, None, :]
    dose = geo.image_from_array(arr, dose)
    stats, colours = [], {}
    for i in range(9):
        m = np.zeros((30, 30, 30), np.uint8)
        m[5:10, 5:10, 2 + 3 * i:5 + 3 * i] = 1
        name = f"F{i + 1} t{1 + i % 2} across falx" if i else "treated lesion"
        stats.append(D.mask_stats(dose, geo.image_from_array(m, dose), name=name))
        colours[name] = P.hex_colour(P.TREATED if not i else P.FINDING["noncontiguous_across_boundary"])
    svg = R._dose_section({}, stats, colours)
    lines = re.findall(r'<polyline points="[^"]+" fill="none" stroke="(#[0-9a-f]{6})" stroke-width="2.5"'
                       r'(?: stroke-dasharray="([^"]+)")?', svg)
    assert len(lines) == 9 and len(set(lines)) >= len(R.DVH_DASHES) + 1       # colour and dash: told apart
    assert lines[1] != lines[2]                                               # F1, F2: one colour, two dashes
    legend_texts = re.findall(r'<text x="([0-9.]+)" y="[0-9.]+">(F\d+ t\d across falx|treated lesion)</text>', svg)
    assert [t for _, t in legend_texts] == [s.name for s in stats]            # every curve named, none dropped
    width = float(re.search(r'<svg class="plot" viewBox="0 0 (\d+)', svg).group(1))
    assert all(float(x) + 8 * len(t) <= width for x, t in legend_texts)
