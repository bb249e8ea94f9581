"""rnassess import: DICOM exports of a teaching case (and the real DICOM RT plan in Testing/Data) become cases.

The exports are written by teaching/dicom_export.py with their ground truth (which series, plan, dose, target and
registration an import must pick); the nasty variants must stop with the candidates and the option that chooses,
or say what is missing, and never change the export.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import refdata
from RNAssessmentLib.faces import cli
from RNAssessmentLib.io import dicom_write as dw
from RNAssessmentLib.io.case import load_manifest
from RNAssessmentLib.io.dicom_import import AmbiguousImport, ImportOptions, import_dicom
from RNAssessmentLib.output.dicom_out import TREATED_ROI
from RNAssessmentLib.teaching.dicom_export import TARGET, write_dicom_export

pytestmark = pytest.mark.xdist_group("dicom_import")
CASE = "falx_cingulate_rn"


@pytest.fixture(scope="session")
def demo_case(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo"))
    assert cli.main(["demo", "--out", out, "--no-assess", "--scenario", CASE]) == 0
    return os.path.join(out, CASE, "case.json")


@pytest.fixture(scope="session")
def exports(demo_case, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    made = {}

    def get(variant):
        if variant not in made:
            path = str(root / variant)
            made[variant] = (path, write_dicom_export(demo_case, path, variant))
        return made[variant]
    return get


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ORTHANC_LOG = []


def _die_with_parent():
    """In the child before exec: SIGTERM when the test process dies (Linux prctl PR_SET_PDEATHSIG; `timeout` passes
    it on to Orthanc)."""
    import ctypes
    import signal
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)


def _orthanc_log_tail():
    return "".join(p.read_text()[-3000:] for p in _ORTHANC_LOG if p.exists()) or "(no Orthanc log)"


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A real PACS: Debian's Orthanc on a free port, accepting only our AE title from 127.0.0.1 (Orthanc 1.10 has
    no bind address for DICOM, so its modality table and host check keep other hosts out; HTTP is off). It lives
    as long as the test process: the kernel stops it when that process dies (PR_SET_PDEATHSIG), and `timeout`
    bounds it to CI's 90 minutes. (A 20-minute `timeout` could stop it while the session still needed it: a
    session-scoped fixture outlives its module when xdist interleaves groups.)"""
    exe = shutil.which("Orthanc")
    if exe is None:
        if os.environ.get("RNASSESS_REQUIRE_ORTHANC"):
            pytest.fail("Orthanc (Debian's orthanc) is required here and not installed")
        yield None
        return
    root = tmp_path_factory.mktemp("orthanc")
    port = _free_port()
    config = {"Name": "rnassess-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
              "HttpServerEnabled": False, "DicomServerEnabled": True, "DicomAet": "ORTHANC", "DicomPort": port,
              "DicomCheckCalledAet": True, "RemoteAccessAllowed": False, "DicomCheckModalityHost": True,
              "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False, "DicomAlwaysAllowFind": False,
              "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False, "UnknownSopClassAccepted": True,
              "Plugins": [], "StorageCompression": False,
              "DicomModalities": {"rnassess": {"AET": "RNASSESS", "Host": "127.0.0.1", "Port": 104,
                                               "AllowEcho": True, "AllowFind": True, "AllowGet": True,
                                               "AllowStore": True, "AllowMove": False}}}
    (root / "orthanc.json").write_text(json.dumps(config))
    log = open(root / "orthanc.log", "w")
    # TCP_NODELAY=1: DCMTK (Orthanc's DICOM layer) then turns Nagle's algorithm off on its sockets, as pacs.py does
    # on ours; otherwise every instance waits for delayed ACKs (7 ms per C-STORE instead of 90 ms, see pacs._no_delay).
    proc = subprocess.Popen(["timeout", "5400", exe, str(root / "orthanc.json")], stdout=log, stderr=log,
                            env=dict(os.environ, TCP_NODELAY="1"), preexec_fn=_die_with_parent)
    _ORTHANC_LOG.append(root / "orthanc.log")
    try:
        deadline = time.time() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("Orthanc did not start: " + (root / "orthanc.log").read_text()[-2000:])
            time.sleep(0.2)
        yield f"ORTHANC@127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def dicom_assessed(exports, orthanc, tmp_path_factory):
    """`rnassess assess` on the standard export with --dicom-out (and --send to the test PACS when it runs)."""
    export, truth = exports("standard")
    root = tmp_path_factory.mktemp("assessed")
    out, dcm = str(root / "assessment"), str(root / "dicom")
    args = ["assess", export, "--out", out, "--dicom-out", dcm] + (["--send", orthanc] if orthanc else [])
    before = _digest(export)
    assert cli.main(args) == 0
    return {"out": out, "dicom": dcm, "export": export, "truth": truth, "export_digest_before": before,
            "export_digest_after": _digest(export)}


def _digest(folder):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(p.encode())
            h.update(open(p, "rb").read())
    return h.hexdigest()


def _spec(case_dir):
    return json.load(open(os.path.join(case_dir, "case.json")))


def _series_of(case_dir, ref):
    return pydicom.dcmread(os.path.join(case_dir, ref["files"][0]), stop_before_pixels=True).SeriesInstanceUID


def test_import_picks_what_the_ground_truth_says(exports, tmp_path):
    export, truth = exports("standard")
    before = _digest(export)
    out = str(tmp_path / "case")
    assert cli.main(["import", export, "--out", out]) == 0
    spec = _spec(out)
    # One timepoint per MR date, each the 3D post-contrast T1 (not the localizer, the MPR or the pre-contrast T1).
    assert [t["date"] for t in spec["timepoints"]] == [t["date"] for t in truth["timepoints"]]
    assert [_series_of(out, t["t1c"]) for t in spec["timepoints"]] == [t["t1c_series"] for t in truth["timepoints"]]
    assert all(set(t["extra"]) == {"flair"} for t in spec["timepoints"])
    # The plan's prescription and fractions, the plan-sum dose, the GTV.
    assert spec["dose"]["prescription_gy"] == truth["prescription_gy"] and spec["dose"]["fractions"] == truth["fractions"]
    assert len(spec["dose"]["path"]) == truth["dose_files"] == 1
    assert spec["dose"]["date"] == truth["timepoints"][0]["date"]
    assert spec["treated_lesion"]["roi"] == TARGET
    # The REG gives the first follow-up's transform exactly; the second is left to the registration.
    tf = sitk.ReadTransform(os.path.join(out, spec["timepoints"][1]["transform"])).Downcast()
    m = np.eye(4)
    m[:3, :3] = np.array(tf.GetMatrix()).reshape(3, 3)
    m[:3, 3] = tf.GetTranslation()
    assert np.allclose(m, truth["timepoints"][1]["transform_from_reg"], atol=1e-6)
    assert "transform" not in spec["timepoints"][2] and spec["registered"] is False
    log = open(os.path.join(out, "import_log.txt"), encoding="utf-8").read()
    assert "a localizer" in log and "derived images" in log and "ContrastBolusAgent" in log
    choices = json.load(open(os.path.join(out, "import_log.json")))["choices"]
    assert {c["what"] for c in choices} >= {"patient", "RT plan", "RT dose", "SRS timepoint", "treated lesion"}
    assert _digest(export) == before                      # the export is read only


def _dciodvfy():
    tool = shutil.which("dciodvfy")
    if tool is None:
        if os.environ.get("RNASSESS_REQUIRE_DCIODVFY"):
            pytest.fail("dciodvfy (Debian's dicom3tools) is required here and not installed")
        pytest.skip("dciodvfy (Debian's dicom3tools) is not installed")
    return tool


def _validator_errors(tool, path):
    out = subprocess.run([tool, path], capture_output=True, text=True)
    return [line for line in (out.stderr + out.stdout).splitlines() if line.startswith("Error")]


def test_every_object_of_the_export_passes_the_dicom_validator(exports):
    """dciodvfy (dicom3tools) on one image of every MR series and on every RT and REG object: no errors."""
    tool = _dciodvfy()
    export, _ = exports("standard")
    files = []
    for root, _, names in os.walk(export):
        names = sorted(n for n in names if n.endswith(".dcm"))
        files += [os.path.join(root, n) for n in (names if "rt" in root or "reg.dcm" in names else names[:1])]
    assert len(files) >= 3 * 3 + 2 + 3 + 1     # 3 studies x 3 series, localizer + MPR, plan/dose/struct, REG
    for f in files:
        assert not _validator_errors(tool, f), f


def test_imported_case_loads_with_the_mask_and_geometry_of_the_nrrd_case(exports, demo_case, tmp_path):
    export, _ = exports("standard")
    out = str(tmp_path / "case")
    import_dicom(export, out)
    case = load_manifest(os.path.join(out, "case.json"))
    ref = load_manifest(demo_case)
    img, ref_img = case.planning.t1c, ref.planning.t1c
    assert img.GetSize() == ref_img.GetSize()
    assert np.allclose(img.GetOrigin(), ref_img.GetOrigin(), atol=1e-4)
    assert np.allclose(img.GetDirection(), ref_img.GetDirection(), atol=1e-6)
    a, b = sitk.GetArrayViewFromImage(img), sitk.GetArrayViewFromImage(ref_img)
    # uint16 with rescale over the image's range: at most half a step of (max - min) / 65000 off.
    assert np.abs(a - b).max() <= 0.5 * (b.max() - b.min()) / 65000 * 1.01
    # The GTV contours give the treated lesion mask back (traced half way between voxel centres).
    m, r = sitk.GetArrayViewFromImage(case.treated_lesion) > 0, sitk.GetArrayViewFromImage(ref.treated_lesion) > 0
    assert 2 * (m & r).sum() / (m.sum() + r.sum()) > 0.995
    assert np.abs(sitk.GetArrayViewFromImage(case.dose.image) - sitk.GetArrayViewFromImage(ref.dose.image)).max() \
        < 1e-6 * float(sitk.GetArrayViewFromImage(ref.dose.image).max()) + 1e-6


def test_assess_on_the_dicom_folder_gives_the_findings_of_the_nrrd_case(exports, demo_case, dicom_assessed,
                                                                        tmp_path):
    """The same pieces as NRRD (T1c, treated lesion, dose, the REG's transform; no follow-up masks, automatic
    boundaries, as in the export) give the same findings as `assess` on the DICOM folder."""
    base = os.path.dirname(demo_case)
    spec = json.load(open(demo_case))
    for t, label in zip(spec["timepoints"], ("srs", "fu1", "fu2")):
        t["label"] = label
        t.pop("lesion", None)
        t["t1c"] = os.path.join(base, t["t1c"])
    spec["timepoints"][1]["transform"] = os.path.join(base, "truth", "transform_t1.tfm")
    spec["treated_lesion"] = os.path.join(base, spec["treated_lesion"])
    spec["dose"]["path"] = os.path.join(base, spec["dose"]["path"])
    spec.pop("boundaries")
    spec["id"] = "RNA-01-RN"
    os.makedirs(tmp_path / "nrrd")
    with open(tmp_path / "nrrd" / "case.json", "w") as f:
        json.dump(spec, f)
    assert cli.main(["assess", str(tmp_path / "nrrd" / "case.json"), "--out", str(tmp_path / "a"), "--no-pdf"]) == 0
    b = dicom_assessed["out"]
    fa = json.load(open(tmp_path / "a" / "findings.json"))["findings"]
    fb = json.load(open(os.path.join(b, "findings.json")))["findings"]
    assert [(f["kind"], f.get("timepoint"), f.get("boundary")) for f in fb] == \
        [(f["kind"], f.get("timepoint"), f.get("boundary")) for f in fa]
    assert "noncontiguous_across_boundary" in {f["kind"] for f in fb}
    vox = 1.0   # mm3: the phantom's 1 mm voxels; intensities differ by < 1/130000 of the range, a voxel may flip
    for x, y in zip(fa, fb):
        assert abs((x.get("volume_mm3") or 0) - (y.get("volume_mm3") or 0)) <= 2 * vox
    assert os.path.isfile(os.path.join(b, "import_log.txt"))
    assert dicom_assessed["export_digest_after"] == dicom_assessed["export_digest_before"]   # read only


def test_review_reads_a_dicom_assessment_back_from_its_export(dicom_assessed):
    """findings.json of `assess DICOM_DIR` names the export and the import options; `rnassess review` re-imports it
    (into a scratch folder, the export untouched) and gets the assessed timepoints and the findings segments."""
    from RNAssessmentLib.faces.review import load_review_case
    out = dicom_assessed["out"]
    d = json.load(open(os.path.join(out, "findings.json")))
    assert d["inputs"]["dicom"] == os.path.abspath(dicom_assessed["export"])
    assert set(d["inputs"]["import_options"]) >= {"patient", "t1c", "plan", "target"}
    before = _digest(dicom_assessed["export"])
    rc = load_review_case(out, log=lambda *_: None)
    assert rc.labels == [t.label for t in rc.case.timepoints] == ["srs", "fu1", "fu2"]
    assert all(tp.dicom_files for tp in rc.case.timepoints) and rc.case.dose is not None
    assert any("across" in n for n in rc.finding_masks)
    assert _digest(dicom_assessed["export"]) == before


def test_missing_contrast_attributes_fall_back_to_the_description_and_say_so(exports, tmp_path):
    export, truth = exports("no_contrast_attributes")
    r = import_dicom(export, str(tmp_path / "c"))
    spec = _spec(str(tmp_path / "c"))
    assert [_series_of(str(tmp_path / "c"), t["t1c"]) for t in spec["timepoints"]] == \
        [t["t1c_series"] for t in truth["timepoints"]]
    assert any("no contrast attributes; description 'T1 MPRAGE post Gd'" in line for line in r["log"])


def test_a_dose_without_its_plan_needs_the_prescription(exports, tmp_path):
    export, truth = exports("dose_without_plan")
    with pytest.raises(ValueError, match="--prescription"):
        import_dicom(export, str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x" / "case.json")
    r = import_dicom(export, str(tmp_path / "c"), ImportOptions(prescription_gy=20))
    spec = _spec(str(tmp_path / "c"))
    assert spec["dose"]["prescription_gy"] == 20 and spec["dose"]["fractions"] == 1
    assert any("assumed single-fraction" in line for line in r["log"])
    # No plan date: the dose study's date places the treatment.
    assert spec["timepoints"][0]["date"] == truth["timepoints"][0]["date"]


def test_beam_doses_are_summed_into_the_plan_dose(exports, demo_case, tmp_path):
    export, _ = exports("beam_doses")
    r = import_dicom(export, str(tmp_path / "c"))
    spec = _spec(str(tmp_path / "c"))
    assert len(spec["dose"]["path"]) == 3
    assert any("sum of 3 beam dose(s)" in line for line in r["log"])
    dose = load_manifest(os.path.join(str(tmp_path / "c"), "case.json")).dose.image
    ref = load_manifest(demo_case).dose.image
    a, b = sitk.GetArrayViewFromImage(dose), sitk.GetArrayViewFromImage(ref)
    # Each part is stored in uint32 with its own scaling: the sum is exact to ~1e-9 of the maximum.
    assert np.abs(a - b).max() < 1e-6 * b.max()


def test_a_dose_grid_that_misses_the_treated_lesion_is_an_error(exports, tmp_path):
    export, _ = exports("dose_misses_target")
    import_dicom(export, str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"covers only \d+ % of the treated lesion"):
        load_manifest(os.path.join(str(tmp_path / "c"), "case.json"))
    assert cli.main(["assess", export, "--out", str(tmp_path / "a")]) == 2
    assert not os.path.exists(tmp_path / "a" / "findings.json")


def test_two_patients_stop_with_both_listed_and_patient_chooses(exports, tmp_path, capsys):
    export, truth = exports("two_patients")
    assert cli.main(["import", export, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "2 patients" in err and "'RNA-01-RN'" in err and "'OTHER-01'" in err and "--patient" in err
    assert not os.path.exists(tmp_path / "x" / "case.json")
    assert cli.main(["import", export, "--out", str(tmp_path / "c"), "--patient", "RNA-01-RN"]) == 0
    assert _series_of(str(tmp_path / "c"), _spec(str(tmp_path / "c"))["timepoints"][0]["t1c"]) == \
        truth["timepoints"][0]["t1c_series"]


def test_two_equal_post_contrast_series_stop_and_t1c_chooses(exports, tmp_path):
    export, truth = exports("two_t1c")
    with pytest.raises(AmbiguousImport, match="2 post-contrast T1 series are equally good") as exc:
        import_dicom(export, str(tmp_path / "x"))
    assert "T1 3D post Gd repeat" in str(exc.value) and "--t1c" in str(exc.value)
    chosen = truth["timepoints"][1]["t1c_series"]
    import_dicom(export, str(tmp_path / "c"), ImportOptions(t1c=(chosen,)))
    assert _series_of(str(tmp_path / "c"), _spec(str(tmp_path / "c"))["timepoints"][1]["t1c"]) == chosen


def test_several_plans_stop_and_plan_chooses(exports, tmp_path):
    """A second plan (a replan) in the export: the import lists both and --plan chooses; the dose follows the plan."""
    export, truth = exports("standard")
    copy = tmp_path / "export"
    for root, _, names in os.walk(export):
        for n in names:
            dst = copy / os.path.relpath(root, export) / n
            os.makedirs(dst.parent, exist_ok=True)
            os.symlink(os.path.join(root, n), dst)
    rp = pydicom.dcmread(os.path.join(export, "study1", "rt", "RP.dcm"))
    rp.SOPInstanceUID = rp.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    rp.RTPlanLabel = rp.RTPlanName = "SRS replan"
    rp.save_as(str(copy / "study1" / "rt" / "RP2.dcm"), enforce_file_format=True)
    with pytest.raises(AmbiguousImport, match="2 RT plans") as exc:
        import_dicom(str(copy), str(tmp_path / "x"))
    assert "SRS met1" in str(exc.value) and "SRS replan" in str(exc.value) and "--plan" in str(exc.value)
    r = import_dicom(str(copy), str(tmp_path / "c"), ImportOptions(plan="SRS met1"))
    assert _spec(str(tmp_path / "c"))["dose"]["prescription_gy"] == truth["prescription_gy"]
    assert any("chosen with --plan" in line for line in r["log"])
    # The replan has no dose of its own: choosing it is an error that lists the dose files.
    with pytest.raises(ValueError, match="no RTDOSE references"):
        import_dicom(str(copy), str(tmp_path / "y"), ImportOptions(plan="SRS replan"))


def test_the_real_eclipse_plan_dose_and_structures(tmp_path):
    """The real DICOM RT files of Testing/Data (an Eclipse plan: 14 Gy in 7 fractions, a plan-sum dose, ten ROIs
    with 'Tumor Bed' and 'Tumor Bed Block'), beside an MR series in their frame of reference."""
    src = refdata("dicompyler-example")
    export = tmp_path / "export"
    os.makedirs(export / "rt")
    for f in ("rtplan.dcm", "rtdose.dcm", "rtss.dcm"):
        os.symlink(os.path.join(src, f), export / "rt" / f)
    rd = pydicom.dcmread(os.path.join(src, "rtdose.dcm"), stop_before_pixels=True)
    # An MR volume over the dose grid (2.5 mm, the dose's own grid), in the plan's frame and patient.
    size = (int(rd.Columns), int(rd.Rows), len(rd.GridFrameOffsetVector))
    ramp = np.arange(size[0] * size[1] * size[2], dtype=np.float32).reshape(size[::-1]) % 997
    img = sitk.GetImageFromArray(ramp)
    img.SetSpacing((float(rd.PixelSpacing[1]), float(rd.PixelSpacing[0]), 3.0))
    img.SetOrigin([float(v) for v in rd.ImagePositionPatient])
    study = dw.StudyInfo(patient_name=str(rd.PatientName), patient_id=str(rd.PatientID), date="19010101")
    dw.write_mr_series(img, str(export / "mr"), study, description="T1 3D post Gd", series_number=5,
                       frame_of_reference_uid=str(rd.FrameOfReferenceUID), contrast_agent="Gadoterate")
    with pytest.raises(AmbiguousImport, match="'Tumor Bed', 'Tumor Bed Block'"):
        import_dicom(str(export), str(tmp_path / "x"))
    r = import_dicom(str(export), str(tmp_path / "c"), ImportOptions(target="Tumor Bed"))
    spec = _spec(str(tmp_path / "c"))
    assert spec["dose"]["prescription_gy"] == 14.0 and spec["dose"]["fractions"] == 7
    assert spec["treated_lesion"]["roi"] == "Tumor Bed"
    assert any("the plan-sum dose" in line for line in r["log"])
    case = load_manifest(os.path.join(str(tmp_path / "c"), "case.json"))
    vol_cc = float((sitk.GetArrayViewFromImage(case.treated_lesion) > 0).sum()) * 2.5 * 2.5 * 3.0 / 1000
    # dicompyler-core: 13.07 cc, the TPS: 12.81 cc; a mask on a 2.5 x 2.5 x 3 mm grid is within ~10 % of them.
    assert 11.5 < vol_cc < 14.5
    assert float(sitk.GetArrayViewFromImage(case.dose.image).max()) == pytest.approx(14.68, abs=0.01)


def test_import_errors_are_clear(tmp_path, exports):
    assert cli.main(["import", str(tmp_path / "nothing"), "--out", str(tmp_path / "c")]) == 2
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="no DICOM files"):
        import_dicom(str(tmp_path / "empty"), str(tmp_path / "c"))
    export, _ = exports("standard")
    with pytest.raises(ValueError, match="inside the DICOM export"):
        import_dicom(export, os.path.join(export, "case"))
    with pytest.raises(ValueError, match="no MR series"):
        import_dicom(refdata("dicompyler-example"), str(tmp_path / "c"), ImportOptions(target="Tumor Bed"))


# ------------------------------------------------------------------------------------------------------------------
# DICOM out (assess --dicom-out) and a real PACS (Orthanc on loopback)
# ------------------------------------------------------------------------------------------------------------------

def _lps_points(image, ijk):
    from RNAssessmentLib.io import geometry as geo
    return geo.index_to_lps(image, ijk)


def test_dicom_outputs_pass_the_validator_and_read_back(dicom_assessed, exports):
    import highdicom as hd
    from RNAssessmentLib.io import geometry as geo
    from RNAssessmentLib.io.structures import mask_on_grid, read_rtstruct, read_seg_nrrd
    from RNAssessmentLib.output.palette import isodose_colours
    tool = _dciodvfy()
    out, dcm = dicom_assessed["out"], dicom_assessed["dicom"]
    doc = json.load(open(os.path.join(out, "findings.json")))
    files = sorted(os.listdir(dcm))
    for f in files:
        assert not _validator_errors(tool, os.path.join(dcm, f)), f
    case = load_manifest(_imported_manifest(dicom_assessed))
    tps = {t.label: t for t in case.timepoints}
    planning_segments = {s.name: s.mask for s in read_seg_nrrd(os.path.join(out, "findings.seg.nrrd"))}
    # Segmentations: on each follow-up's own series, segment by segment where the registration puts them.
    for label in ("fu1", "fu2"):
        seg = hd.seg.segread(os.path.join(dcm, f"SEG_{label}.dcm"))
        fu = tps[label]
        src = {t.label: t for t in case.timepoints}[label].dicom_files
        series_uid = pydicom.dcmread(src[0], stop_before_pixels=True).SeriesInstanceUID
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
        uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in src]
        m = np.array(doc["summary"]["registration"][label]["planning_to_followup_lps"])
        for d in seg.SegmentSequence:
            name = d.SegmentLabel
            assert name.split(" ", 1)[0].split("-")[-1] == label
            arr = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[d.SegmentNumber],
                                                    combine_segments=False)[..., 0]        # (k, j, i)
            ijk = np.argwhere(arr.transpose(2, 1, 0) > 0)
            got = _lps_points(fu.t1c, ijk).mean(0)
            planning = planning_segments[name]
            pts = _lps_points(planning, np.argwhere(geo.array_view(planning) > 0))
            want = (np.c_[pts, np.ones(len(pts))] @ m.T)[:, :3].mean(0)
            # Nearest-neighbour resampling moves a boundary voxel by at most half a voxel: centroids within 1 mm.
            assert np.linalg.norm(got - want) < 1.0, (label, name, got, want)
            assert len(ijk) == pytest.approx(len(pts), rel=0.15)
    # Isodose structure set: on the SRS-time series, each level's region as the dose gives it, in the palette.
    rois = read_rtstruct(os.path.join(dcm, "RTSTRUCT_isodose.dcm"))
    levels = [i["level_gy"] for i in doc["summary"]["isodose"]]
    assert sorted(r.name for r in rois) == sorted([f"Isodose {lv:g} Gy" for lv in levels] + [TREATED_ROI])
    # GetArrayFromImage (a copy), not a view: a view of the temporary image would read freed memory.
    gtv = sitk.GetArrayFromImage(mask_on_grid(next(r for r in rois if r.name == TREATED_ROI), case.planning.t1c)) > 0
    ref = sitk.GetArrayViewFromImage(case.treated_lesion) > 0
    assert 2 * (gtv & ref).sum() / (gtv.sum() + ref.sum()) > 0.99
    dose = sitk.Resample(case.dose.image, case.planning.t1c, sitk.Transform(), sitk.sitkLinear, 0.0)
    colours = isodose_colours(levels, doc["summary"]["dose"]["prescription_gy"])
    for r, lv in ((next(r for r in rois if r.name == f"Isodose {lv:g} Gy"), lv) for lv in levels):
        got = sitk.GetArrayFromImage(mask_on_grid(r, case.planning.t1c)) > 0
        want = sitk.GetArrayViewFromImage(dose) >= lv
        assert 2 * (got & want).sum() / (got.sum() + want.sum()) > 0.97, lv
        assert np.allclose(r.color, [round(255 * c) / 255 for c in colours[lv]], atol=1 / 255)
    # The report as Encapsulated PDF, byte for byte; one key image per finding.
    if os.path.isfile(os.path.join(out, "report.pdf")):
        ds = pydicom.dcmread(os.path.join(dcm, "report_pdf.dcm"))
        pdf = open(os.path.join(out, "report.pdf"), "rb").read()
        assert ds.EncapsulatedDocument[:len(pdf)] == pdf and ds.EncapsulatedDocumentLength == len(pdf)
        assert ds.StudyInstanceUID == pydicom.dcmread(case.timepoints[-1].dicom_files[0],
                                                      stop_before_pixels=True).StudyInstanceUID
    elif os.environ.get("RNASSESS_REQUIRE_BROWSER"):
        pytest.fail("report.pdf was not printed")
    sc = [f for f in files if f.startswith("SC_")]
    if sc or os.environ.get("RNASSESS_REQUIRE_BROWSER"):
        assert len(sc) == len(doc["findings"])
        img = pydicom.dcmread(os.path.join(dcm, sc[0])).pixel_array
        assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 10       # a picture, not a blank


def _imported_manifest(dicom_assessed):
    """The case as the assess run imported it (imported again into a scratch folder: assess does not keep one)."""
    import tempfile
    out = tempfile.mkdtemp()
    return import_dicom(dicom_assessed["export"], out)["manifest"]


def test_dicom_out_refuses_what_it_cannot_do(demo_case, exports, tmp_path, capsys):
    assert cli.main(["assess", demo_case, "--out", str(tmp_path / "a"), "--dicom-out", str(tmp_path / "d")]) == 2
    assert "needs a case whose images are DICOM series" in capsys.readouterr().err
    export, _ = exports("standard")
    assert cli.main(["assess", export, "--out", str(tmp_path / "a"), "--dicom-out", str(tmp_path / "a" / "d")]) == 2
    assert "must not be inside --out" in capsys.readouterr().err
    assert cli.main(["assess", export, "--out", str(tmp_path / "a"), "--send", "X@127.0.0.1:1"]) == 2
    assert "give --dicom-out" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "a" / "findings.json") and not os.path.exists(tmp_path / "d")


#: Identifying values an independent writer (pydicom, here) adds to every object of an export, as scanners, planning
#: systems and PACS do: each must be absent from every byte of a de-identified output.
SCANNER_IDENTITY = {"IssuerOfPatientID": "ISSUER-ZEBRA-77", "PatientAge": "047Y", "PatientWeight": "73.2519",
                    "PatientSize": "1.8317", "InstitutionName": "St Elsewhere Hospital Oncology",
                    "InstitutionAddress": "12 Quayside Road, Elsewhere", "OperatorsName": "OPERATOR^OSCAR",
                    "PerformingPhysicianName": "PERFORMER^PAULA", "ReferringPhysicianName": "REFERRER^RUPERT",
                    "AccessionNumber": "ACC98765Q", "StationName": "MRSTATION7", "OtherPatientIDs": "OTHERID-4242",
                    "PatientAddress": "7 Hidden Lane", "DeviceSerialNumber": "SERIAL-ABCDE-9"}


def _scanner_like(export: str, folder: str) -> str:
    """A copy of an export whose every object carries SCANNER_IDENTITY and a private tag naming the patient."""
    shutil.copytree(export, folder)
    for root, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            ds = pydicom.dcmread(p)
            for k, v in SCANNER_IDENTITY.items():
                setattr(ds, k, v)
            block = ds.private_block(0x0011, "SCANNER PRIVATE", create=True)
            block.add_new(0x01, "LO", "PRIVATE-" + str(ds.PatientID))
            ds.save_as(p, enforce_file_format=True)
    return folder


def test_deidentified_outputs_carry_no_identity_of_the_input_and_reimport(exports, tmp_path):
    """--deidentify with --dicom-out on a scanner-like export (identity in the places scanners put it, written by
    pydicom, not by this project): de-identified copies of the referenced series beside the results, which
    reference them, and every file of both output folders (assessment, report, PDF, DICOM) read byte by byte:
    no name, ID, issuer, birth date, age, weight, size, institution, physician, operator, accession, station,
    device serial, real date (any form), source UID or path of the export. Every DICOM object says it was
    de-identified (PS3.15 E basic profile, 113100, with the longitudinal-dates option); its creation date is on the
    shifted calendar; the key images say whether text is burnt in. The copy re-imports as a case with the same
    intervals."""
    pytest.importorskip("highdicom")
    from RNAssessmentLib.io.deid import _date_forms
    export, truth = exports("standard")
    export = _scanner_like(export, str(tmp_path / "scanner_export"))
    dcm, out = str(tmp_path / "dicom"), str(tmp_path / "a")
    assert cli.main(["assess", export, "--out", out, "--dicom-out", dcm, "--deidentify"]) == 0
    phi = {"RNA-01-RN", "DEMO^FALX_CINGULATE_RN", "FALX_CINGULATE", "19600101", export,
           *SCANNER_IDENTITY.values(), "PRIVATE-RNA-01-RN"}
    for t in truth["timepoints"]:
        phi |= _date_forms(t["date"])
    uids = set()
    for root, _, names in os.walk(export):
        for n in names:
            ds = pydicom.dcmread(os.path.join(root, n), stop_before_pixels=True)
            uids |= {str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID)}
            if "FrameOfReferenceUID" in ds:
                uids.add(str(ds.FrameOfReferenceUID))
    phi |= uids
    phi = {v.encode() for v in phi if v}
    files = [os.path.join(r, n) for folder in (dcm, out) for r, _, ns in os.walk(folder) for n in ns]
    assert any(f.endswith("report.pdf") for f in files) and any(f.endswith("import_log_left_out.txt") for f in files)
    for f in files:
        data = open(f, "rb").read()
        leaked = [v for v in phi if v in data or v.lower() in data.lower()]
        assert not leaked, (f, leaked[:3])
    pseudonym = json.load(open(os.path.join(out, "findings.json")))["case"]
    today = time.strftime("%Y%m%d")
    for f in [x for x in files if x.endswith(".dcm")]:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES" and ds.PatientID == pseudonym, f
        assert {c.CodeValue for c in ds.DeidentificationMethodCodeSequence} >= {"113100", "113107"}, f
        assert ds.get("ContentDate", "") != today and ds.get("StudyDate", "") != today, f
        for key in ("IssuerOfPatientID", "PatientAge", "PatientWeight", "InstitutionName"):
            assert key not in ds, (f, key)
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7":          # Secondary Capture
            assert ds.BurnedInAnnotation == "NO"
        if ds.Modality == "DOC":
            assert pseudonym in ds.DocumentTitle
    seg = pydicom.dcmread(os.path.join(dcm, "SEG_fu2.dcm"), stop_before_pixels=True)
    fu2 = pydicom.dcmread(os.path.join(dcm, "images", "fu2", "IM0001.dcm"), stop_before_pixels=True)
    assert seg.StudyInstanceUID == fu2.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == fu2.SeriesInstanceUID
    tool = shutil.which("dciodvfy")
    if tool:
        for f in [os.path.join(dcm, n) for n in os.listdir(dcm) if n.endswith(".dcm")] + [fu2.filename]:
            assert not _validator_errors(tool, f), f
    import_dicom(dcm, str(tmp_path / "c"))
    spec = _spec(str(tmp_path / "c"))
    days = [(np.datetime64(t["date"]) - np.datetime64(truth["timepoints"][0]["date"])).astype(int)
            for t in truth["timepoints"]]
    assert [t["date"] for t in spec["timepoints"]] == \
        [str(np.datetime64("2000-01-01") + np.timedelta64(d, "D")) for d in days]
    assert spec["treated_lesion"]["roi"] == TREATED_ROI and spec["id"] == pseudonym


def test_our_associations_send_without_nagle(orthanc):
    """pacs._no_delay reaches pynetdicom's socket (TCP_NODELAY set): without it every C-STORE waits for delayed ACKs
    (90 ms per instance instead of 7 to this PACS; the round trip below took 133 s instead of under 20)."""
    import socket

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    from RNAssessmentLib.io import pacs
    if orthanc is None:
        pytest.skip("Orthanc (Debian's orthanc) is not installed")
    ae = AE(ae_title=pacs.CALLING_AET)
    ae.add_requested_context(Verification)
    assoc = pacs._associate(ae, pacs.parse_address(orthanc))
    try:
        assert assoc.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def test_pacs_receives_the_outputs_and_gives_the_case_back(dicom_assessed, orthanc, tmp_path):
    from RNAssessmentLib.io import pacs
    if orthanc is None:
        pytest.skip("Orthanc (Debian's orthanc) is not installed")
    addr = pacs.parse_address(orthanc)
    truth = dicom_assessed["truth"]
    # The outputs were sent by `assess --send`: every one is in the PACS now.
    studies = pacs.find(addr, "STUDY", {"PatientID": truth["patient_id"], "StudyInstanceUID": ""})
    series = [s for st in studies for s in pacs.find(addr, "SERIES", {
        "StudyInstanceUID": st["StudyInstanceUID"], "SeriesInstanceUID": "", "Modality": "",
        "NumberOfSeriesRelatedInstances": ""})]
    modalities = sorted(s["Modality"] for s in series)
    assert modalities.count("SEG") == 2 and "RTSTRUCT" in modalities
    sent = len(os.listdir(dicom_assessed["dicom"]))
    assert sum(int(s["NumberOfSeriesRelatedInstances"] or 0) for s in series) == sent
    # The export into the PACS, then the case back from it: the same choices as from the folder.
    files = [os.path.join(r, f) for r, _, fs in os.walk(dicom_assessed["export"]) for f in fs]
    try:
        assert pacs.store(files, addr) == len(files)
    except ValueError as e:
        pytest.fail(f"{e}\nOrthanc's log:\n{_orthanc_log_tail()}")
    case_dir = str(tmp_path / "case")
    assert cli.main(["import", "--from-pacs", orthanc, "--patient", truth["patient_id"], "--out", case_dir]) == 0
    spec = _spec(case_dir)
    assert [_series_of(case_dir, t["t1c"]) for t in spec["timepoints"]] == [t["t1c_series"] for t in truth["timepoints"]]
    assert spec["treated_lesion"]["roi"] == TARGET and spec["dose"]["prescription_gy"] == truth["prescription_gy"]
    case = load_manifest(os.path.join(case_dir, "case.json"))
    assert case.planning.t1c.GetSize() == load_manifest(_imported_manifest(dicom_assessed)).planning.t1c.GetSize()
    # Only our AE title is served; a wrong called AE title is refused.
    with pytest.raises(ValueError, match="no association"):
        pacs.store(files[:1], pacs.Address("WRONG", addr.host, addr.port))
    with pytest.raises(ValueError, match="AET@HOST:PORT"):
        pacs.parse_address("127.0.0.1:4242")


def test_a_lost_answer_is_asked_again_on_a_new_association_never_passed_over(orthanc, monkeypatch):
    """pynetdicom can lose a PACS's answer: its reactor thread may take the C-STORE response off the queue before
    the waiting request sees it ("Received unexpected C-STORE service message", then the DIMSE timeout; seen here
    storing the export to Orthanc under load; pynetdicom issue 875 for C-FIND). Answers are dropped here as
    pynetdicom drops them after its timeout (association aborted, empty status), the requests reaching the real
    PACS: the file or query is sent again on a new association, the PACS keeps each file once; an answer lost every
    time is a clear error, never a partial result."""
    from pydicom.dataset import Dataset
    from pynetdicom.association import Association
    from RNAssessmentLib.io import pacs
    if orthanc is None:
        pytest.skip("Orthanc (Debian's orthanc) is not installed")
    addr = pacs.parse_address(orthanc)
    files = [refdata("dicompyler-example", f) for f in ("rtss.dcm", "rtplan.dcm", "rtdose.dcm")]
    real_store, real_find = Association.send_c_store, Association.send_c_find
    sent = []

    def store_losing(lost):
        def send(self, ds, *a, **kw):
            status = real_store(self, ds, *a, **kw)
            sent.append(str(ds.SOPInstanceUID))
            if len(sent) in lost:
                self.abort()
                return Dataset()
            return status
        return send
    monkeypatch.setattr(Association, "send_c_store", store_losing({2}))
    assert pacs.store(files, addr) == 3
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    assert sent == [uids[0], uids[1], uids[1], uids[2]]            # the second file again, nothing else
    queries = []

    def find_losing(self, *a, **kw):
        queries.append(1)
        if len(queries) == 1:                                      # the first query's answers never arrive
            self.abort()
            yield Dataset(), None
            return
        yield from real_find(self, *a, **kw)
    monkeypatch.setattr(Association, "send_c_find", find_losing)
    studies = pacs.find(addr, "STUDY", {"PatientID": "123456", "StudyInstanceUID": ""})
    assert len(queries) == 2 and len(studies) == 1
    series = pacs.find(addr, "SERIES", {"StudyInstanceUID": studies[0]["StudyInstanceUID"], "SeriesInstanceUID": "",
                                        "NumberOfSeriesRelatedInstances": ""})
    assert sum(int(s["NumberOfSeriesRelatedInstances"]) for s in series) == 3     # each file once in the PACS
    monkeypatch.setattr(Association, "send_c_store", store_losing(set(range(1, 100))))
    with pytest.raises(ValueError, match=r"no answer while storing .*tried 2 times"):
        pacs.store(files[:1], addr)


def test_slicer_panel_writes_the_dicom_of_a_scene_loaded_from_dicom(exports, tmp_path):
    """The panel's path on the real MRML of slicer-core: volumes as Slicer's DICOM module loads them (with
    DICOM.instanceUIDs), assessed from the nodes, report written, then the DICOM outputs from the database's files."""
    slicer = pytest.importorskip("slicer", reason="the test extra installs slicer-core")
    from RNAssessmentLib.mrml import bridge as mb
    from RNAssessmentLib.faces.slicer_case import assess_nodes, write_dicom_for, write_report_for
    export, truth = exports("standard")
    case = load_manifest(import_dicom(export, str(tmp_path / "c"))["manifest"])
    scene = slicer.vtkMRMLScene()
    files_of, vols = {}, []
    for tp in case.timepoints:
        node = mb.add_volume(scene, tp.t1c, f"{tp.label} T1 post Gd")
        files = tp.dicom_files
        node.SetAttribute("DICOM.instanceUIDs", " ".join(
            str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files))
        node.SetAttribute("RNAssessment.Date", tp.date.isoformat())
        files_of[node.GetID()] = files
        vols.append(node)
    seg = mb.add_segmentation(scene, {"GTV": case.treated_lesion}, case.planning.t1c, "lesion")
    dose = mb.add_volume(scene, case.dose.image, "RTDOSE")
    mb.mark_dose_volume(scene, dose)
    result = assess_nodes(scene, vols, seg, dose, 20.0, 1, "20,15,12,10,5", register=True)
    rep = str(tmp_path / "report")
    write_report_for(result, rep, pdf=False)
    written = write_dicom_for(scene, result, rep, str(tmp_path / "dicom"), lambda n: files_of.get(n.GetID(), []))
    names = sorted(os.path.basename(f) for f in written)
    assert "RTSTRUCT_isodose.dcm" in names and any(n.startswith("SEG_") for n in names)
    for f in written:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.PatientID == truth["patient_id"]
        if ds.Modality == "SEG":
            label = os.path.basename(f)[4:-4]
            fu = pydicom.dcmread(files_of[vols[[tp.label for tp in result["case"].timepoints].index(label)].GetID()][0],
                                 stop_before_pixels=True)
            assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == fu.SeriesInstanceUID
    tool = shutil.which("dciodvfy")
    for f in written if tool else []:
        assert not _validator_errors(tool, f), f
    # A volume that was not loaded from DICOM: a clear error naming it, nothing written.
    with pytest.raises(ValueError, match="was not loaded from DICOM"):
        write_dicom_for(scene, result, rep, str(tmp_path / "d2"), lambda n: [])
    assert not os.path.exists(tmp_path / "d2")
