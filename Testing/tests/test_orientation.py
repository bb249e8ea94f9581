"""A result does not depend on how an image's array is stored.

The same anatomy (same voxels, same physical geometry) stored in another of the 48 axis orders and flips, as a 3D
sagittal acquisition is exported (A-S-L) or a NIfTI flips R-A-S, must give the same findings and numbers. The case
puts every image in one canonical layout (geometry.reorient, no resampling), so the analysis sees the same arrays.
"""
import itertools
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import refdata
from RNAssessmentLib.pipeline.assess import assess_case
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.io.case import Case, Timepoint, load_manifest
from RNAssessmentLib.teaching import realmri as R

#: Every axis order and flip ITK names (48 = 3! orders x 2³ flips).
CODES = sorted({"".join(x[i] for i in perm) for x in itertools.product("LR", "PA", "IS")
                for perm in itertools.permutations(range(3))})


def test_every_storage_order_reads_into_the_same_canonical_arrays():
    """All 48 storage orders of a small oblique image (a random rotation of a few degrees, anisotropic voxels):
    physically the same image, and once in a case, the same arrays on the same grid."""
    rng = np.random.default_rng(1)
    arr = rng.normal(size=(20, 16, 12)).astype(np.float32)
    img = geo.image_from_array(arr, None)
    img.SetSpacing((0.9, 1.1, 5.5))
    c, s = np.cos(0.08), np.sin(0.08)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    img.SetOrigin((-10.0, 20.0, 5.0))
    assert len(CODES) == 48
    reference = Case(id="x", timepoints=[Timepoint("t0", None, img)]).timepoints[0].t1c
    for code in CODES:
        stored = sitk.DICOMOrient(img, code)
        probe = stored.TransformIndexToPhysicalPoint((1, 2, 3))
        assert np.allclose(sitk.Resample(stored, img, sitk.Transform(), sitk.sitkNearestNeighbor).GetPixel(
            img.TransformPhysicalPointToIndex(probe)), stored.GetPixel((1, 2, 3)))
        case = Case(id="x", timepoints=[Timepoint("t0", None, stored)])
        canon = case.timepoints[0].t1c
        assert geo.same_grid(canon, reference, 1e-6), code
        assert np.array_equal(geo.array_view(canon), geo.array_view(reference)), code
        assert case.timepoints[0].orientation == code


def _restore(folder: str, out: str, code: str) -> str:
    """A copy of a written case whose every image is stored in the array order ``code`` (same geometry)."""
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("truth"))
    for root, _dirs, files in os.walk(out):
        for f in files:
            if f.endswith((".nii.gz", ".nrrd")):
                p = os.path.join(root, f)
                sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(p), code), p, True)
    return os.path.join(out, "case.json")


def _numbers(assessment) -> list:
    """Every finding's kind, timepoints, boundary and numbers (mm, mm³, Gy) as findings.json gives them."""
    out = []
    for f in assessment.findings:
        d = f.to_dict()
        out.append({k: d.get(k) for k in ("kind", "timepoint", "from", "to", "boundary", "centroid_ras",
                                          "volume_mm3", "gap_mm", "geodesic_mm", "grew_mm3", "regressed_mm3")})
    return out


@pytest.mark.parametrize("base,name,code", [
    pytest.param("brats", "falx_cingulate_rn", "ASL", marks=pytest.mark.xdist_group("orientation-brats")),
    pytest.param("tcga", "abut_falx_normal_pd", "RAI", marks=pytest.mark.xdist_group("orientation-tcga"))])
def test_a_real_mri_case_stored_in_another_axis_order_gives_the_same_findings(base, name, code, tmp_path):
    """A real-MRI implant as written (the BraTS NIfTI's R-A-S flip; the clinical exam's oblique axial slices) and
    the same case with every image stored in another order (a sagittal A-S-L export; flipped through the slices):
    the same findings, their boundaries (falx, not CSF: issue 36) and their numbers. The analysis runs on the same
    arrays either way and its registrations are deterministic, so the numbers agree exactly; the issue's bound
    (0.1 mm, 1 %) is what is asserted."""
    images = R.load_base(R.BASES[base], refdata("real-mri"))
    tpl = next(t for t in R.templates() + R.validation_templates() if t.name == name)
    written = R.write_case(tpl, R.BASES[base], images, str(tmp_path / "written"), seed=R.seed_of(tpl))
    # As the real image stores its array (the case itself wrote the canonical layout), and in another order.
    native = geo.orientation_code(sitk.ReadImage(refdata("real-mri", R.BASES[base].folder, R.BASES[base].t1c)))
    assert native != code
    manifest = _restore(os.path.dirname(written), str(tmp_path / native), native)
    other = _restore(os.path.dirname(written), str(tmp_path / code), code)
    assert geo.orientation_code(sitk.ReadImage(os.path.join(os.path.dirname(other), "t0_t1c.nii.gz"))) == code
    first = assess_case(load_manifest(manifest), log_callback=lambda m: None)
    second = assess_case(load_manifest(other), log_callback=lambda m: None)
    a, b = _numbers(first), _numbers(second)
    assert [(x["kind"], x["timepoint"], x["from"], x["to"], x["boundary"]) for x in a] == \
        [(x["kind"], x["timepoint"], x["from"], x["to"], x["boundary"]) for x in b]
    for x, y in zip(a, b):
        assert np.allclose(x["centroid_ras"], y["centroid_ras"], atol=0.1), (x, y)
        for key in ("volume_mm3", "gap_mm", "geodesic_mm", "grew_mm3", "regressed_mm3"):
            if x[key] is not None:
                assert y[key] == pytest.approx(x[key], rel=0.01, abs=0.1), (key, x, y)
    # The mid-sagittal plane within 1 degree and 0.5 mm at the lesion (issue 36: 1.5 mm apart). Not to the bit: a
    # NIfTI stores its axes as a float32 quaternion, so the reordered files' directions differ by ~1e-7 and the
    # plane's search lands a fraction of a degree away (measured 0.5 degrees on the clinical exam's oblique grid).
    pa, pb = (first.summary["midsagittal_plane_lps"], second.summary["midsagittal_plane_lps"])
    na, nb = np.array(pa["normal"]), np.array(pb["normal"])
    assert np.degrees(np.arccos(min(abs(float(na @ nb)), 1.0))) <= 1.0
    at = geo.lps_from_ras([first.findings[0].centroid_ras])[0]
    sa = float((at - np.array(pa["point"])) @ na)
    sb = float((at - np.array(pb["point"])) @ (nb if na @ nb > 0 else -nb))
    assert abs(sa - sb) <= 0.5, (sa, sb)
    for x, y in zip(first.summary["time_course"], second.summary["time_course"]):
        assert y["volume_mm3"] == pytest.approx(x["volume_mm3"], rel=0.01)
        assert (x["rano_bm"], x["measurable_lesions"]) == (y["rano_bm"], y["measurable_lesions"])
