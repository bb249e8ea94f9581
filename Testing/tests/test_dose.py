"""Dose statistics and isodose validated on real plans: Eclipse, CERR and SlicerRT (prostate) and the TPS DVHs
embedded in the dicompyler example RTDOSE."""
import csv

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from conftest import refdata
from RNAssessmentLib.analysis import dose as D
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.io.images import read_image
from RNAssessmentLib.io.rtdose import embedded_dvhs, read_rtdose
from RNAssessmentLib.io.structures import Structure, read_rtstruct, read_seg_vtm


@pytest.fixture(scope="session")
def prostate():
    dose = read_image(refdata("slicerrt-eclipse-prostate", "EclipseProstate_Dose.nrrd"))
    segs = read_seg_vtm(refdata("slicerrt-eclipse-prostate", "EclipseProstate_Structures.seg.vtm"))
    return dose, {s.name: D.structure_stats(dose, s) for s in segs}


def _read_table(path):
    """Columns of a reference DVH table → {structure key: (dose Gy, volume %), header volume cc}."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f)]
    header, data = rows[0], rows[1:]
    out = {}
    for c in range(0, len(header) - 1, 2):
        if not header[c].strip():
            continue
        key = header[c].split("_DvhArray")[0].split(" Dose")[0].replace(" ", "").lower()
        total = float(header[c + 1].split("of ")[1].split(" cc")[0])
        vals = np.array([[float(r[c]), float(r[c + 1])] for r in data if len(r) > c + 1 and r[c].strip()])
        out[key] = (vals[:, 0], vals[:, 1], total)
    return out


def _mean_from_cumulative(dose_gy, vol_pct):
    return float(np.trapezoid(vol_pct, dose_gy) / 100.0)


ECLIPSE = None


def test_prostate_volumes_means_and_max_agree_with_eclipse(prostate):
    _, stats = prostate
    table = _read_table(refdata("slicerrt-eclipse-prostate", "EclipseProstate_DvhTable_Eclipse.csv"))
    cerr = _read_table(refdata("slicerrt-eclipse-prostate", "EclipseProstate_DvhTable_CERR.csv"))
    with open(refdata("slicerrt-eclipse-prostate", "EclipseProstate_DvhMetrics_SlicerRT.csv"), newline="", encoding="utf-8") as f:
        srt = {r["Structure"]: float(r["Max dose (GY)"]) for r in csv.DictReader(f)}
    for name, st in stats.items():
        key = name.replace(" ", "").lower()
        d, v, total = table[key]
        mean_ecl = _mean_from_cumulative(d, v)
        max_ecl = float(d[v > 0].max())
        # Issue 3: structures > 10 cc within 1 % or 0.1 Gy. All prostate structures are > 10 cc.
        assert abs(st.volume_cc / total - 1) < 0.01, (name, st.volume_cc, total)
        assert abs(st.mean_gy - mean_ecl) <= max(0.1, 0.01 * mean_ecl), (name, st.mean_gy, mean_ecl)
        # Max is one point on the boundary. Where the three reference systems agree (spread < 2 %), ours must be
        # within 1 % (+ one 0.046 Gy Eclipse bin). The femoral heads sit in a steep gradient where Eclipse, CERR
        # and SlicerRT themselves spread by 3.6 % (35.56 / 34.3 / 34.33 Gy): there we require the same ±2.5 %.
        refs = [max_ecl, float(cerr[key][0][cerr[key][1] > 0].max()), srt[name]]
        spread = (max(refs) - min(refs)) / max(refs)
        tol = 0.025 if spread > 0.02 else 0.01
        assert abs(st.max_gy - max_ecl) <= tol * max_ecl + 0.046, (name, st.max_gy, max_ecl, refs)


def test_prostate_agrees_with_slicerrt_metrics(prostate):
    _, stats = prostate
    with open(refdata("slicerrt-eclipse-prostate", "EclipseProstate_DvhMetrics_SlicerRT.csv"), newline="", encoding="utf-8") as f:
        ref = {r["Structure"]: r for r in csv.DictReader(f)}
    for name, st in stats.items():
        r = ref[name]
        assert st.mean_gy == pytest.approx(float(r["Mean dose (GY)"]), abs=0.1), name
        assert st.volume_cc == pytest.approx(float(r["Volume (cc)"]), rel=0.011), name
        assert st.vx_pct[20.0] == pytest.approx(float(r["V20 (%)"]), abs=1.0), name
    # README: forgetting RAS→LPS moves Femoral Head Lt mean from 25.0 to 27.2 Gy.
    assert stats["Femoral Head Lt"].mean_gy == pytest.approx(25.03, abs=0.05)
    assert stats["PTV"].mean_gy == pytest.approx(45.88, abs=0.02)


def test_five_gy_isodose_matches_slicerrt_baseline(prostate):
    dose, _ = prostate
    r = vtk.vtkPolyDataReader()
    r.SetFileName(refdata("slicerrt-eclipse-prostate", "EclipseProstate_Isodose_Baseline.vtk"))
    r.Update()
    baseline = D.surface_volume_cc(r.GetOutput())
    assert baseline == pytest.approx(6329, abs=1)
    # SlicerRT does not close surfaces at the grid border (the dose is ≥ 5 Gy on two faces): compare like with like.
    open_surface = D.isodose_surface(dose, 5.0, close_at_border=False)
    assert D.surface_volume_cc(open_surface) == pytest.approx(baseline, rel=0.01)
    # Our default closes the surface, and then it agrees with counting sub-voxel samples ≥ 5 Gy.
    closed = D.isodose_set(dose, [5.0])[0]
    assert closed.volume_cc == pytest.approx(D.volume_above(dose, 5.0), rel=0.005)
    assert closed.volume_cc > D.surface_volume_cc(open_surface)


def test_isodose_lines_on_a_plane_lie_on_the_level(prostate):
    dose, _ = prostate
    surf = D.isodose_surface(dose, 20.0)
    lines = D.cut_surface(surf, (0.0, 0.0, -60.0), (0, 0, 1))
    assert lines
    pts = np.concatenate(lines)
    assert np.allclose(pts[:, 2], -60.0, atol=1e-6)
    values = [D.dose_on_grid(dose, _point_grid(p)).GetPixel(0, 0, 0) for p in pts[::25]]
    # Smoothing moves the surface by a fraction of a voxel; the gradient near 20 Gy is ~2-3 Gy/mm here.
    assert np.median(np.abs(np.array(values) - 20.0)) < 1.0


def _point_grid(p):
    g = sitk.Image([1, 1, 1], sitk.sitkFloat32)
    g.SetOrigin(tuple(float(v) for v in p))
    return g


def test_contour_lines_on_slice_in_pixel_units(prostate):
    dose, _ = prostate
    sl = sitk.Image([120, 100, 1], sitk.sitkFloat32)
    sl.SetSpacing((2.0, 2.0, 1.0))
    sl.SetOrigin((-120.0, -100.0, -60.0))
    lines = D.contour_lines_on_slice(dose, 20.0, sl)
    assert lines and all(l.shape[1] == 2 for l in lines)
    p = lines[0][0]
    lps = geo.index_to_lps(sl, [[p[0], p[1], 0]])[0]
    assert D.dose_on_grid(dose, _point_grid(lps)).GetPixel(0, 0, 0) == pytest.approx(20.0, abs=0.3)


@pytest.fixture(scope="session")
def breast():
    dose, _ = read_rtdose(refdata("dicompyler-example", "rtdose.dcm"))
    rois = read_rtstruct(refdata("dicompyler-example", "rtss.dcm"))
    return dose, {r.number: r for r in rois}, embedded_dvhs(refdata("dicompyler-example", "rtdose.dcm"))


def test_dicompyler_plan_against_the_tps_dvh(breast):
    dose, rois, tps = breast
    tb = D.structure_stats(dose, rois[9])
    ref = tps[9]
    tps_mean = np.trapezoid(ref["volume_cc"], ref["dose_gy"]) / ref["volume_total_cc"]
    # dicompyler-core (README): Tumor Bed 13.069 cc, mean 14.292 Gy. We must be at least as close to the TPS.
    assert abs(tb.volume_cc - ref["volume_total_cc"]) <= abs(13.069 - ref["volume_total_cc"])
    assert abs(tb.mean_gy - tps_mean) <= abs(14.292 - tps_mean) + 0.002
    assert tb.dx_gy[95.0] == pytest.approx(14.13, abs=0.05)
    breast_st = D.structure_stats(dose, rois[4])
    assert breast_st.volume_cc == pytest.approx(tps[4]["volume_total_cc"], rel=0.01)
    assert breast_st.mean_gy == pytest.approx(5.582, abs=0.05)      # dicompyler 5.582 Gy, TPS 5.609 Gy


def test_dvh_is_monotonic_and_consistent(breast):
    dose, rois, _ = breast
    st = D.structure_stats(dose, rois[10])
    assert np.all(np.diff(st.dvh_volume_cc) <= 1e-9)
    assert st.dvh_volume_cc[0] == pytest.approx(st.volume_cc)
    assert st.d_cc(st.volume_cc) == pytest.approx(st.min_gy, abs=0.02)
    assert st.min_gy <= st.dx_gy[98.0] <= st.dx_gy[95.0] <= st.dx_gy[50.0] <= st.dx_gy[2.0] <= st.max_gy


def test_bad_dose_inputs_fail_clearly():
    good = sitk.Image([10, 10, 10], sitk.sitkFloat32) + 5.0
    s = Structure(name="box", contours_lps=[np.array([[2, 2, z], [7, 2, z], [7, 7, z], [2, 7, z]], float)
                                             for z in (3.0, 4.0, 5.0)])
    nan = sitk.Image(good)
    nan.SetPixel(1, 1, 1, float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        D.structure_stats(nan, s)
    neg = sitk.Image(good)
    neg.SetPixel(1, 1, 1, -3.0)
    with pytest.raises(ValueError, match="negative"):
        D.structure_stats(neg, s)
    with pytest.raises(ValueError, match="empty"):
        D.structure_stats(good, Structure(name="nothing"))
    far = Structure(name="far", contours_lps=[c + [500.0, 0, 0] for c in s.contours_lps])
    with pytest.raises(ValueError, match="outside the grid|does not overlap"):
        D.structure_stats(good, far)
    half = Structure(name="half", contours_lps=[c + [6.0, 0, 0] for c in s.contours_lps])
    st = D.structure_stats(good, half)
    assert st.warnings and "outside the dose grid" in st.warnings[0]


def test_levels_parsing_and_defaults():
    assert D.parse_levels("20,15,12,10") == [20.0, 15.0, 12.0, 10.0]
    assert D.parse_levels("100%,50%", 24.0) == [24.0, 12.0]
    with pytest.raises(ValueError, match="relative"):
        D.parse_levels("50%")
    assert D.default_levels(20.0) == [20.0, 15.0, 12.0, 10.0, 5.0]
    assert D.default_levels(24.0)[0] == 24.0
