"""The rnassess command: its arguments and output files are contracts."""
import csv
import json

import pytest
from conftest import refdata
from RNAssessmentLib.faces.cli import main


def test_demo_writes_cases_truth_and_assessment(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--scenario", "callosal_rn"]) == 0
    case = tmp_path / "callosal_rn"
    assert (case / "case.json").exists() and (case / "truth" / "truth.json").exists()
    assert (case / "truth" / "change_t1_t2.nrrd").exists()
    findings = json.load(open(case / "assessment" / "findings.json", encoding="utf-8"))
    assert findings["case"] == "callosal_rn"
    assert {"findings", "summary", "disclaimer"} <= set(findings)
    tl = findings["summary"]["treated_lesion"]
    assert tl["dose"]["d95_gy"] > 20 and tl["v12_outside_target_cc"] > 0
    rows = list(csv.DictReader(open(case / "assessment" / "dvh.csv", encoding="utf-8")))
    assert rows[0]["structure"] == "treated lesion"
    assert json.load(open(tmp_path / "index.json", encoding="utf-8"))["cases"][0]["case"] == "callosal_rn"


def test_a_scenario_written_alone_is_the_case_of_the_full_demo(tmp_path):
    """`--scenario` picks cases out of the demo; it must not render different ones (noise seeded by position
    among the cases asked for made callosal_pd alone differ from callosal_pd beside callosal_rn)."""
    import SimpleITK as sitk
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    assert main(["demo", "--out", str(alone), "--no-assess", "--scenario", "callosal_pd"]) == 0
    assert main(["demo", "--out", str(pair), "--no-assess", "--scenario", "callosal_rn", "--scenario",
                 "callosal_pd"]) == 0
    for tp in ("t0", "t2"):
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(d / "callosal_pd" / f"{tp}_t1c.nii.gz")))
                for d in (alone, pair))
        assert (a == b).all(), tp
    # An RN case and its PD twin are two patients: one name and one id each (they shared an id).
    meta = {n: json.load(open(pair / n / "case.json", encoding="utf-8"))["metadata"] for n in ("callosal_rn",
                                                                                           "callosal_pd")}
    assert meta["callosal_rn"]["patient_id"] != meta["callosal_pd"]["patient_id"]
    assert meta["callosal_rn"]["patient_name"] != meta["callosal_pd"]["patient_name"]


def test_unknown_scenario_is_an_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--scenario", "nope"]) == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err


def test_demo_adds_the_real_mri_teaching_cases(tmp_path, capsys):
    """--real-mri writes the implanted real-MRI cases beside the phantoms, with their truth and outcome; a wrong
    folder or name is a clear error and writes nothing."""
    real = refdata("real-mri")
    assert main(["demo", "--out", str(tmp_path), "--real-mri", real, "--scenario", "brats_tentorium_pd",
                 "--no-assess"]) == 0
    case = tmp_path / "brats_tentorium_pd"
    truth = json.load(open(case / "truth" / "truth.json", encoding="utf-8"))
    assert truth["real_mri"] == "brats" and truth["counterpart"] == "PD" and truth["expected"]
    man = json.load(open(case / "case.json", encoding="utf-8"))
    assert len(man["timepoints"]) == 3 and man["dose"]["prescription_gy"] > 0
    rows = list(csv.DictReader(open(tmp_path / "outcomes.csv", encoding="utf-8")))
    assert [(r["case"], r["outcome"]) for r in rows] == [("brats_tentorium_pd", "PD")]
    bad = tmp_path / "bad"
    assert main(["demo", "--out", str(bad), "--real-mri", str(tmp_path / "nowhere"), "--no-assess"]) == 2
    assert "--real-mri" in capsys.readouterr().err and not bad.exists()
    assert main(["demo", "--out", str(bad), "--real-mri", str(tmp_path), "--scenario", "brats_tentorium_pd",
                 "--no-assess"]) == 2
    assert "not found" in capsys.readouterr().err and not (bad / "brats_tentorium_pd").exists()
    assert main(["demo", "--out", str(bad), "--real-mri", real, "--scenario", "tcga_tentorium_pd"]) == 2
    assert "with --real-mri also: brats_falx_cingulate_rn, brats_falx_cingulate_pd" in capsys.readouterr().err


def test_dvh_command_on_the_slicerrt_plan(tmp_path):
    out = tmp_path / "dvh.csv"
    assert main(["dvh", "--dose", refdata("slicerrt-eclipse-prostate", "EclipseProstate_Dose.nrrd"),
                 "--structures", refdata("slicerrt-eclipse-prostate", "EclipseProstate_Structures.seg.vtm"),
                 "--out", str(out)]) == 0
    rows = {r["structure"]: r for r in csv.DictReader(open(out, encoding="utf-8"))}
    header = open(out, encoding="utf-8").readline().strip().split(",")
    assert header[:9] == ["structure", "volume_cc", "min_gy", "mean_gy", "max_gy", "d95_gy", "d2_gy", "v10_cc",
                          "v12_cc"]
    assert float(rows["PTV"]["mean_gy"]) == pytest.approx(45.88, abs=0.02)
    assert (tmp_path / "dvh_curves.csv").exists()


def test_dvh_command_on_rtdose_and_rtstruct(tmp_path):
    out = tmp_path / "dvh.csv"
    assert main(["dvh", "--dose", refdata("dicompyler-example", "rtdose.dcm"), "--structures",
                 refdata("dicompyler-example", "rtss.dcm"), "--structure", "Tumor Bed", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert len(rows) == 1 and float(rows[0]["d95_gy"]) == pytest.approx(14.13, abs=0.05)


def test_dvh_refuses_a_structure_set_of_another_frame_of_reference(tmp_path, capsys):
    import pydicom
    ds = pydicom.dcmread(refdata("dicompyler-example", "rtss.dcm"))
    for item in ds.StructureSetROISequence:
        item.ReferencedFrameOfReferenceUID = "1.2.3.4"
    p = tmp_path / "other_for.dcm"
    ds.save_as(p)
    assert main(["dvh", "--dose", refdata("dicompyler-example", "rtdose.dcm"), "--structures", str(p),
                 "--out", str(tmp_path / "d.csv")]) == 2
    assert "frame of reference" in capsys.readouterr().err


def test_isodose_command(tmp_path):
    assert main(["isodose", "--dose", refdata("slicerrt-eclipse-prostate", "EclipseProstate_Dose.nrrd"),
                 "--levels", "100%,50%,5", "--prescription", "46", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "isodose_volumes.csv", encoding="utf-8")))
    assert [float(r["level_gy"]) for r in rows] == [46.0, 23.0, 5.0]
    vols = [float(r["volume_cc"]) for r in rows]
    assert vols[0] < vols[1] < vols[2]
    assert float(rows[2]["volume_cc"]) == pytest.approx(float(rows[2]["voxel_volume_cc"]), rel=0.005)
    assert all((tmp_path / r["file"]).exists() for r in rows)


def test_relative_levels_without_prescription_fail(tmp_path, capsys):
    assert main(["isodose", "--dose", refdata("slicerrt-eclipse-prostate", "EclipseProstate_Dose.nrrd"),
                 "--levels", "50%", "--out", str(tmp_path)]) == 2
    assert "prescription" in capsys.readouterr().err
