"""A teaching case as the DICOM export a PACS and a planning system would give: the import's test bed and demo.

Per MR date a study with a 3D post-contrast T1 (Contrast/Bolus module filled), a 3D pre-contrast T1 and a 2D FLAIR;
the SRS-time study also holds a localizer, a derived (reformatted) series, the RT structure set (GTV = the treated
lesion), the RT plan (prescription, fractions, date) and the RT dose in the SRS-time frame; each follow-up has its
own frame of reference, and one spatial registration (REG) relates the first follow-up to the SRS-time frame, the
others are left for the automatic registration. ``truth.json`` says what an import must pick.

Variants (:data:`VARIANTS`) make the exports an import must survive: two patients in one folder, no contrast
attributes (only the series descriptions say pre/post), a dose without its plan, beam doses instead of a plan sum,
a dose grid that misses the treated lesion, two equally good post-contrast T1 series in one study.
"""
from __future__ import annotations

import json
import os

import numpy as np
import SimpleITK as sitk

from ..io import dicom_write as dw
from ..io import geometry as geo
from ..io.case import load_manifest
from ..io.rtdose import write_rtdose

VARIANTS = ("standard", "no_contrast_attributes", "dose_without_plan", "beam_doses", "dose_misses_target",
            "two_patients", "two_t1c")

#: The ROI name of the treated lesion in the structure set.
TARGET = "GTV_met1"


def _uid():
    from pydicom.uid import generate_uid
    return generate_uid()


def _write_plan(path, study: dw.StudyInfo, frame_uid: str, struct_uid: str, *, label: str, rx_gy: float,
                fractions: int, date: str) -> str:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    ds = dw._base(dw.RT_PLAN_STORAGE, study, "RTPLAN", _uid(), 800, "SRS plan")
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.RTPlanLabel = label
    ds.RTPlanName = label
    ds.RTPlanDate = date
    ds.RTPlanTime = "120000"
    ds.RTPlanGeometry = "PATIENT"
    ds.ApprovalStatus = "APPROVED"
    ds.ReviewDate, ds.ReviewTime, ds.ReviewerName = date, "120000", "PHYSICIST^DEMO"
    ref = Dataset()
    ref.ReferencedSOPClassUID = dw.RT_STRUCTURE_SET_STORAGE
    ref.ReferencedSOPInstanceUID = struct_uid
    ds.ReferencedStructureSetSequence = Sequence([ref])
    dr = Dataset()
    dr.DoseReferenceNumber = 1
    dr.DoseReferenceUID = _uid()
    dr.DoseReferenceStructureType = "SITE"
    dr.DoseReferenceDescription = TARGET
    dr.DoseReferenceType = "TARGET"
    dr.TargetPrescriptionDose = f"{rx_gy:g}"
    ds.DoseReferenceSequence = Sequence([dr])
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = fractions
    fg.NumberOfBeams = 0
    fg.NumberOfBrachyApplicationSetups = 0
    ds.FractionGroupSequence = Sequence([fg])
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def _write_reg(path, study: dw.StudyInfo, fixed_frame: str, moving_frame: str, moving_to_fixed: np.ndarray,
               referenced: dict) -> str:
    """A Spatial Registration whose own frame is ``fixed_frame``: its second item maps ``moving_frame`` points
    (LPS) into the fixed frame (PS3.3 C.20.2). ``referenced``: {frame: (series uid, [(sop class, sop uid)])}."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    ds = dw._base(dw.SPATIAL_REGISTRATION_STORAGE, study, "REG", _uid(), 700, "Follow-up to SRS registration")
    ds.FrameOfReferenceUID = fixed_frame
    ds.BodyPartExamined = "BRAIN"
    ds.ContentLabel = "REGISTRATION"
    ds.ContentDescription = "rigid follow-up to SRS"
    ds.ContentCreatorName = ""
    ds.PositionReferenceIndicator = ""
    items = Sequence()
    for frame, matrix in ((fixed_frame, np.eye(4)), (moving_frame, moving_to_fixed)):
        item = Dataset()
        item.FrameOfReferenceUID = frame
        ms = Dataset()
        ms.FrameOfReferenceTransformationMatrixType = "RIGID"
        ms.FrameOfReferenceTransformationMatrix = [f"{v:.10g}" for v in np.asarray(matrix, float).ravel()]
        mr = Dataset()
        mr.MatrixSequence = Sequence([ms])
        rt = Dataset()
        rt.CodeValue, rt.CodingSchemeDesignator, rt.CodeMeaning = "125024", "DCM", "Image Content-based Alignment"
        mr.RegistrationTypeCodeSequence = Sequence([rt])
        item.MatrixRegistrationSequence = Sequence([mr])
        imgs = Sequence()
        for cls, uid in referenced.get(frame, ("", []))[1]:
            r = Dataset()
            r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = cls, uid
            imgs.append(r)
        if len(imgs):
            item.ReferencedImageSequence = imgs
        items.append(item)
    ds.RegistrationSequence = items
    series = Sequence()
    for frame, (series_uid, instances) in referenced.items():
        rs = Dataset()
        rs.SeriesInstanceUID = series_uid
        inst = Sequence()
        for cls, uid in instances:
            r = Dataset()
            r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = cls, uid
            inst.append(r)
        rs.ReferencedInstanceSequence = inst
        series.append(rs)
    ds.ReferencedSeriesSequence = series
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def write_dicom_export(manifest: str, out_dir: str, variant: str = "standard") -> dict:
    """Write the case of a teaching ``manifest`` (its truth/ folder beside it) as a DICOM export in ``out_dir``.
    Returns what an import must pick (also written beside the export, as ``out_dir + '.truth.json'``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown DICOM export variant '{variant}' (known: {', '.join(VARIANTS)})")
    case = load_manifest(manifest)
    truth_dir = os.path.join(os.path.dirname(manifest), "truth")
    os.makedirs(out_dir, exist_ok=True)
    pid = str(case.metadata.get("patient_id") or case.id)
    pname = str(case.metadata.get("patient_name") or f"DEMO^{case.id.upper()}")
    truth = {"case": case.id, "variant": variant, "patient_id": pid, "timepoints": [], "target": TARGET}
    frames = {}
    srs = case.planning
    srs_date = srs.date.strftime("%Y%m%d")
    rx, fx = case.dose.prescription_gy, case.dose.fractions
    plan_uid = None
    srs_t1c_files = []
    for n, tp in enumerate(case.timepoints):
        study = dw.StudyInfo(patient_name=pname, patient_id=pid, date=tp.date.strftime("%Y%m%d"),
                             description="MR BRAIN W/WO CONTRAST", birth_date="19600101")
        folder = os.path.join(out_dir, f"study{n + 1}")
        frame = _uid()
        frames[tp.label] = frame
        nocontrast = variant == "no_contrast_attributes"
        post = dw.write_mr_series(tp.t1c, os.path.join(folder, "s3"), study, description="T1 MPRAGE post Gd",
                                  series_number=3, frame_of_reference_uid=frame,
                                  contrast_agent="" if nocontrast else "Gadobutrol 1 mmol/ml")
        # The pre-contrast T1: the same anatomy without the enhancement's excess (a darker copy is enough here).
        pre_img = sitk.Cast(sitk.Clamp(tp.t1c, upperBound=float(np.percentile(sitk.GetArrayViewFromImage(tp.t1c),
                                                                               90))), sitk.sitkFloat32)
        dw.write_mr_series(pre_img, os.path.join(folder, "s2"), study,
                           description="T1 MPRAGE pre" if nocontrast else "T1 MPRAGE", series_number=2,
                           frame_of_reference_uid=frame)
        # A 2D FLAIR with 5 mm slices, as clinical protocols acquire it (its content does not matter to the import).
        sp = tp.t1c.GetSpacing()
        flair = sitk.Resample(tp.t1c, [tp.t1c.GetSize()[0], tp.t1c.GetSize()[1],
                                       int(tp.t1c.GetSize()[2] * sp[2] / 5.0)], sitk.Transform(), sitk.sitkLinear,
                              tp.t1c.GetOrigin(), (sp[0], sp[1], 5.0), tp.t1c.GetDirection(), 0.0, sitk.sitkFloat32)
        dw.write_mr_series(flair, os.path.join(folder, "s4"), study, description="AX FLAIR", series_number=4,
                           frame_of_reference_uid=frame, acquisition="2D",
                           contrast_agent="" if nocontrast else "Gadobutrol 1 mmol/ml",
                           timing={"RepetitionTime": 9000.0, "EchoTime": 120.0, "InversionTime": 2500.0})
        if variant == "two_t1c" and n == 1:
            dw.write_mr_series(tp.t1c, os.path.join(folder, "s5"), study, description="T1 3D post Gd repeat",
                               series_number=5, frame_of_reference_uid=frame, contrast_agent="Gadobutrol 1 mmol/ml")
        if n == 0:
            srs_t1c_files = post
            size = tp.t1c.GetSize()
            loc = sitk.Extract(tp.t1c, [size[0], size[1], 3], [0, 0, size[2] // 2 - 1])
            dw.write_mr_series(loc, os.path.join(folder, "s1"), study, description="3-plane localizer",
                               series_number=1, frame_of_reference_uid=frame,
                               image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
            mpr = sitk.Extract(tp.t1c, [size[0], size[1], 20], [0, 0, size[2] // 2 - 10])
            dw.write_mr_series(mpr, os.path.join(folder, "s103"), study, description="T1 MPRAGE post Gd MPR",
                               series_number=103, frame_of_reference_uid=frame,
                               contrast_agent="" if nocontrast else "Gadobutrol 1 mmol/ml",
                               image_type=("DERIVED", "SECONDARY", "MPR"))
            rt = os.path.join(folder, "rt")
            os.makedirs(rt, exist_ok=True)
            struct_path = dw.write_rtstruct({TARGET: case.treated_lesion}, post, os.path.join(rt, "RS.dcm"), study,
                                            label="SRS", colors={TARGET: (1.0, 0.0, 0.0)})
            import pydicom
            struct_uid = str(pydicom.dcmread(struct_path, stop_before_pixels=True).SOPInstanceUID)
            plan_date = (case.srs_date or tp.date).strftime("%Y%m%d")
            if variant != "dose_without_plan":
                plan_uid = _write_plan(os.path.join(rt, "RP.dcm"), study, frame, struct_uid, label="SRS met1",
                                       rx_gy=rx, fractions=fx, date=plan_date)
            dose_img = case.dose.image
            if variant == "dose_misses_target":
                # A grid that ends 20 mm short of the lesion (a dose exported for another target).
                c = geo.centroid_lps(case.treated_lesion)
                idx = dose_img.TransformPhysicalPointToIndex(tuple(c + np.array([0, 0, 25.0])))
                z0 = max(0, min(dose_img.GetSize()[2] - 2, idx[2]))
                dose_img = sitk.Extract(dose_img, [dose_img.GetSize()[0], dose_img.GetSize()[1],
                                                   dose_img.GetSize()[2] - z0], [0, 0, z0])
            parts = [dose_img] if variant != "beam_doses" else [dose_img * 0.25, dose_img * 0.35, dose_img * 0.4]
            for b, part in enumerate(parts):
                p = os.path.join(rt, f"RD{b + 1}.dcm")
                write_rtdose(part, p, patient_name=pname, patient_id=pid, birth_date="19600101", study_date=study.date,
                             frame_of_reference_uid=frame, description="SRS dose")
                ds = pydicom.dcmread(p)
                ds.StudyInstanceUID = study.study_uid
                ds.DoseSummationType = "PLAN" if len(parts) == 1 else "BEAM"
                if plan_uid:
                    from pydicom.dataset import Dataset
                    from pydicom.sequence import Sequence
                    r = Dataset()
                    r.ReferencedSOPClassUID = dw.RT_PLAN_STORAGE
                    r.ReferencedSOPInstanceUID = plan_uid
                    ds.ReferencedRTPlanSequence = Sequence([r])
                ds.save_as(p, enforce_file_format=True)
            truth["dose_files"] = len(parts)
            truth["plan"] = plan_uid
            truth["prescription_gy"], truth["fractions"] = rx, fx
        entry = {"label": tp.label, "date": tp.date.isoformat(), "t1c_series": _series_uid(post)}
        if n == 1:
            # One REG: the first follow-up's frame into the SRS frame (the inverse of planning -> follow-up).
            tf_path = os.path.join(truth_dir, f"transform_{tp.label}.tfm")
            t = geo.linear_matrix(sitk.ReadTransform(tf_path))
            _write_reg(os.path.join(folder, "reg.dcm"), study, frames[srs.label], frame, np.linalg.inv(t),
                       {frames[srs.label]: _instances(srs_t1c_files), frame: _instances(post)})
            entry["transform_from_reg"] = t.tolist()
        truth["timepoints"].append(entry)
    if variant == "two_patients":
        other = dw.StudyInfo(patient_name="OTHER^PATIENT", patient_id="OTHER-01", date=srs_date, description="MR")
        dw.write_mr_series(srs.t1c, os.path.join(out_dir, "other", "s1"), other, description="T1 MPRAGE post Gd",
                           series_number=1, frame_of_reference_uid=_uid(), contrast_agent="Gadobutrol")
    with open(out_dir.rstrip(os.sep) + ".truth.json", "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=2)
    return truth


def _instances(files: list[str]) -> tuple[str, list]:
    """(SeriesInstanceUID, [(SOPClassUID, SOPInstanceUID)]) of a series' files, for a REG's references."""
    import pydicom
    hdr = [pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID", "SOPClassUID",
                                                                       "SOPInstanceUID"]) for f in files]
    return str(hdr[0].SeriesInstanceUID), [(str(h.SOPClassUID), str(h.SOPInstanceUID)) for h in hdr]


def _series_uid(files: list[str]) -> str:
    import pydicom
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
