"""Case manifests: loading user data, and every bad input failing with a message that names the file."""
import json
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.io.case import boundary_kind, load_manifest, save_case
from RNAssessmentLib.io.images import read_image
from RNAssessmentLib.teaching.demo import write_scenario
from RNAssessmentLib.teaching.scenarios import get_scenario


@pytest.fixture(scope="session")
def demo_case(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return write_scenario(get_scenario("tentorium_rn"), str(out))


def test_demo_case_loads_with_rtdose_boundaries_and_truth(demo_case):
    case = load_manifest(demo_case)
    assert [t.label for t in case.timepoints] == ["t0", "t1", "t2"]
    assert set(case.boundaries) == {"falx", "tentorium", "ventricles", "csf"}
    assert case.dose.source.endswith("rtdose.dcm") and case.dose.prescription_gy == 20
    assert float(sitk.GetArrayViewFromImage(case.dose.image).max()) == pytest.approx(24.5, abs=0.6)
    assert case.days_since_srs(case.timepoints[2]) == 900
    truth = json.load(open(os.path.join(os.path.dirname(demo_case), "truth", "truth.json"), encoding="utf-8"))
    assert truth["expected"][0]["boundary"] == "tentorium"
    assert truth["timepoints"]["t2"]["components"]["cerebellar"]["volume_mm3"] > 50


def _copy_case(demo_case, tmp_path):
    dst = tmp_path / "case"
    shutil.copytree(os.path.dirname(demo_case), dst)
    return dst, json.load(open(dst / "case.json", encoding="utf-8"))


def _write(dst, spec):
    with open(dst / "case.json", "w", encoding="utf-8") as f:
        json.dump(spec, f)
    return str(dst / "case.json")


def test_missing_file_is_named(demo_case, tmp_path):
    dst, spec = _copy_case(demo_case, tmp_path)
    spec["timepoints"][1]["t1c"] = "nope.nrrd"
    with pytest.raises(ValueError, match=r"nope\.nrrd.*not found"):
        load_manifest(_write(dst, spec))


def test_lesion_mask_on_another_grid_is_refused(demo_case, tmp_path):
    dst, spec = _copy_case(demo_case, tmp_path)
    m = read_image(str(dst / "t1_lesion.nrrd"))
    small = sitk.RegionOfInterest(m, [50, 50, 50], [10, 10, 10])
    sitk.WriteImage(small, str(dst / "small.nrrd"))
    spec["timepoints"][1]["lesion"] = "small.nrrd"
    with pytest.raises(ValueError, match="lesion mask of timepoint 't1'.*different grid"):
        load_manifest(_write(dst, spec))


def test_dose_not_overlapping_the_mri_is_refused(demo_case, tmp_path):
    dst, spec = _copy_case(demo_case, tmp_path)
    d = read_image(str(dst / "rtdose.dcm"))
    d.SetOrigin(tuple(np.array(d.GetOrigin()) + [600.0, 0, 0]))
    sitk.WriteImage(d, str(dst / "far_dose.nrrd"))
    spec["dose"]["path"] = "far_dose.nrrd"
    with pytest.raises(ValueError, match="does not overlap"):
        load_manifest(_write(dst, spec))


def test_bad_json_date_and_prescription(demo_case, tmp_path):
    dst, spec = _copy_case(demo_case, tmp_path)
    (dst / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json.*not valid JSON"):
        load_manifest(str(dst / "broken.json"))
    spec2 = dict(spec, timepoints=[dict(spec["timepoints"][0], date="04/03/2024")] + spec["timepoints"][1:])
    with pytest.raises(ValueError, match="not an ISO date"):
        load_manifest(_write(dst, spec2))
    spec3 = json.loads(json.dumps(spec))
    del spec3["dose"]["prescription_gy"]
    with pytest.raises(ValueError, match="prescription"):
        load_manifest(_write(dst, spec3))


def test_save_case_never_overwrites_inputs(demo_case, tmp_path):
    dst, spec = _copy_case(demo_case, tmp_path)
    case = load_manifest(str(dst / "case.json"))
    before = (dst / "t0_t1c.nrrd").read_bytes()
    with pytest.raises(ValueError, match="refusing to overwrite"):
        save_case(case, str(dst))
    assert (dst / "t0_t1c.nrrd").read_bytes() == before
    out = save_case(case, str(tmp_path / "copy"), ext=".nii.gz")
    again = load_manifest(out)
    assert geo.same_grid(again.timepoints[1].t1c, case.timepoints[1].t1c)
    assert np.array_equal(geo.array_view(again.treated_lesion), geo.array_view(case.treated_lesion))


def test_boundary_synonyms():
    assert boundary_kind("Falx Cerebri") == "falx"
    assert boundary_kind("tentorium_cerebelli") == "tentorium"
    assert boundary_kind("Lateral ventricles") == "ventricles"
    assert boundary_kind("Sulci") == "csf"
    assert boundary_kind("PTV") is None


def test_dicom_mr_series_reads_with_its_geometry(tmp_path):
    img = sitk.Image([16, 12, 6], sitk.sitkInt16)
    img.SetSpacing((0.9, 0.9, 3.0))
    img.SetOrigin((-7.0, 11.0, 40.0))
    arr = (np.arange(6 * 12 * 16).reshape(6, 12, 16) % 1000).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.9, 0.9, 3.0))
    img.SetOrigin((-7.0, 11.0, 40.0))
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    series = "1.2.826.0.1.3680043.2.1125.1.1"
    for k in range(6):
        sl = img[:, :, k]
        for tag, v in {"0008|0060": "MR", "0020|000e": series, "0020|0013": str(k + 1),
                       "0020|0032": "\\".join(f"{c:g}" for c in img.TransformIndexToPhysicalPoint((0, 0, k))),
                       "0020|0037": "1\\0\\0\\0\\1\\0", "0028|0030": "0.9\\0.9", "0018|0050": "3"}.items():
            sl.SetMetaData(tag, v)
        w.SetFileName(str(tmp_path / f"{k:03d}.dcm"))
        w.Execute(sl)
    back = read_image(str(tmp_path))
    assert back.GetSize() == (16, 12, 6)
    assert np.allclose(back.GetOrigin(), (-7.0, 11.0, 40.0)) and np.allclose(back.GetSpacing(), (0.9, 0.9, 3.0))
    assert np.array_equal(sitk.GetArrayFromImage(back), arr)


def test_unreadable_image_names_the_file(tmp_path):
    p = tmp_path / "junk.nrrd"
    p.write_text("NRRD0004\nnonsense")
    with pytest.raises(ValueError, match="junk.nrrd.*(unreadable|header)"):
        read_image(str(p))


def test_given_transforms_replace_registration(tmp_path):
    """This demo case's follow-ups are misaligned; with the true transforms named in the manifest the assessment
    uses them (no registration) and finds the focus across the falx at both follow-ups."""
    from RNAssessmentLib.pipeline.assess import assess_case
    dst, spec = _copy_case(write_scenario(get_scenario("falx_cingulate_rn"), str(tmp_path / "src")), tmp_path)
    for tp in spec["timepoints"][1:]:
        tp["transform"] = f"truth/transform_{tp['label']}.tfm"
    spec["registered"] = False
    case = load_manifest(_write(dst, spec))
    truth = sitk.ReadTransform(str(dst / "truth" / "transform_t2.tfm"))
    p = (10.0, -40.0, 20.0)
    assert np.allclose(case.timepoints[2].transform.TransformPoint(p), truth.TransformPoint(p))
    assert np.linalg.norm(np.subtract(truth.TransformPoint(p), p)) > 2.0      # really misaligned
    assessment = assess_case(case)
    reg = assessment.summary["registration"]
    assert set(reg) == {"t1", "t2"} and all(r["method"].startswith("given transform") for r in reg.values())
    across = [f for f in assessment.findings if f.kind == "noncontiguous_across_boundary" and f.boundary == "falx"]
    # the focus across the falx at t1 and t2 is one observation: one finding holding at both
    assert len(across) == 1 and across[0].timepoints == ["t1", "t2"] and across[0].timepoint == "t2"


def test_bad_transform_files_are_named(demo_case, tmp_path):
    dst, spec = _copy_case(demo_case, tmp_path)
    spec["timepoints"][1]["transform"] = "missing.tfm"
    with pytest.raises(ValueError, match=r"transform of timepoint 't1'.*missing\.tfm.*not found"):
        load_manifest(_write(dst, spec))
    (dst / "garbage.tfm").write_text("not a transform", encoding="utf-8")
    spec["timepoints"][1]["transform"] = "garbage.tfm"
    with pytest.raises(ValueError, match=r"garbage\.tfm.*unreadable"):
        load_manifest(_write(dst, spec))
    sitk.WriteTransform(sitk.BSplineTransform(3), str(dst / "bspline.tfm"))
    spec["timepoints"][1]["transform"] = "bspline.tfm"
    with pytest.raises(ValueError, match=r"bspline\.tfm.*only linear"):
        load_manifest(_write(dst, spec))
