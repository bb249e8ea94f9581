"""A written case stored in another axis order, and the comparison of two assessments of the same case.

test_real_mri assesses a real-MRI implant as written and, for OTHER_STORAGE, once more stored in another order: the
second assessment is the only extra cost (test_orientation holds the storage orders' unit test)."""
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from RNAssessmentLib.io import geometry as geo


def restored(folder: str, out: str, code: str) -> str:
    """A copy of a written case whose every image is stored in the array order ``code`` (same geometry); its
    manifest's path."""
    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("truth"))
    for root, _dirs, files in os.walk(out):
        for f in files:
            if f.endswith((".nii.gz", ".nrrd")):
                p = os.path.join(root, f)
                sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(p), code), p, True)
    manifest = os.path.join(out, "case.json")
    assert geo.orientation_code(sitk.ReadImage(os.path.join(out, "t0_t1c.nii.gz"))) == code
    return manifest


def numbers(assessment) -> list:
    """Every finding's kind, timepoints, boundary and numbers (mm, mm³, Gy) as findings.json gives them."""
    out = []
    for f in assessment.findings:
        d = f.to_dict()
        out.append({k: d.get(k) for k in ("kind", "timepoint", "from", "to", "boundary", "centroid_ras",
                                          "volume_mm3", "gap_mm", "geodesic_mm", "grew_mm3", "regressed_mm3")})
    return out


def assert_same_assessment(first, second) -> None:
    """The same findings, boundaries and numbers (0.1 mm, 1 %), the same mid-sagittal plane (1 degree, 0.5 mm at the
    first finding) and the same time course and RANO-BM. Not to the bit: a NIfTI stores its axes as a float32
    quaternion, so reordered files' directions differ by ~1e-8; the case holds every grid to 5 decimals
    (geometry.held_grid), which makes them one grid unless the difference straddles a step (1-2 %)."""
    a, b = numbers(first), numbers(second)
    assert [(x["kind"], x["timepoint"], x["from"], x["to"], x["boundary"]) for x in a] == \
        [(x["kind"], x["timepoint"], x["from"], x["to"], x["boundary"]) for x in b]
    for x, y in zip(a, b):
        assert np.allclose(x["centroid_ras"], y["centroid_ras"], atol=0.1), (x, y)
        for key in ("volume_mm3", "gap_mm", "geodesic_mm", "grew_mm3", "regressed_mm3"):
            if x[key] is not None:
                assert y[key] == pytest.approx(x[key], rel=0.01, abs=0.1), (key, x, y)
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
