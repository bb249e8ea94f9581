"""An assessment back to PACS as DICOM, referencing the source series, patient and study.

Written from an ``assess`` output folder and the case it was computed from (a case imported from DICOM, so that
there are series to reference):

* ``SEG_<label>.dcm`` — per follow-up, a DICOM Segmentation (highdicom, binary) on that follow-up's post-contrast
  T1 series: the findings at that timepoint and the grown/regressed portions of the intervals ending there, taken
  from ``findings.seg.nrrd`` (planning frame) onto the follow-up's own grid with the registration the assessment
  used (``summary.registration[label].planning_to_followup_lps``). Segment labels and colours as in the report.
* ``RTSTRUCT_isodose.dcm`` — the isodose levels as ROIs of an RT Structure Set on the SRS-time series (closed planar
  contours, what planning systems and viewers read), in the palette's isodose colours, with the treated lesion.
* with ``deidentify``: ``images/<timepoint>/``, de-identified copies of the referenced series, which every object
  above references instead; every object de-identified after PS3.15 Annex E (:mod:`.dicom_deid`: the basic
  profile, dates shifted so that SRS is 2000-01-01, new UIDs).
* ``report_pdf.dcm`` — the report as Encapsulated PDF (when ``report.pdf`` was printed), in the latest study.
* ``SC_<n>.dcm`` — the report's key images as Secondary Capture (highdicom), in the latest study.

Patient coordinates are LPS throughout, as DICOM's.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..io import dicom_write as dw
from ..io import geometry as geo
from . import palette

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
#: The treated lesion's ROI in the isodose structure set (named so that `rnassess import` takes it as the target).
TREATED_ROI = "GTV treated lesion"


def _headers(files):
    import pydicom
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


def _lab(rgb):
    import highdicom as hd
    return hd.color.CIELabColor(*_rgb_to_lab(rgb))


def _rgb_to_lab(rgb):
    lab = palette._lab(rgb)
    return float(lab[0]), float(lab[1]), float(lab[2])


def _study_of(header) -> dw.StudyInfo:
    return dw.StudyInfo(patient_name=str(header.get("PatientName", "")), patient_id=str(header.get("PatientID", "")),
                        date=str(header.get("StudyDate", "")), study_uid=str(header.StudyInstanceUID),
                        description=str(header.get("StudyDescription", "")),
                        birth_date=str(header.get("PatientBirthDate", "")), sex=str(header.get("PatientSex", "")),
                        accession=str(header.get("AccessionNumber", "")), time=str(header.get("StudyTime", "")))


def _segmentation(headers, masks: dict, series_number: int, description: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    algo = hd.AlgorithmIdentificationSequence(name="RNAssessment", version=__version__,
                                              family=codes.cid7162.ArtificialIntelligence)
    names = list(masks)
    arr = np.stack([sitk.GetArrayFromImage(masks[n]).astype(np.uint8) for n in names], axis=-1)   # (k, j, i, s)
    descs = []
    for n, name in enumerate(names, start=1):
        kind = name
        descs.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=name[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo, tracking_uid=hd.UID(), tracking_id=name[:64],
            display_color=_lab(palette.segment_colour(kind))))
    return hd.seg.Segmentation(
        source_images=headers, pixel_array=arr, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="RNAssessment",
        manufacturer_model_name="RNAssessment", software_versions=__version__, device_serial_number="0",
        series_description=description[:64], content_label="FINDINGS", content_description=description[:64],
        omit_empty_frames=True)


def write_dicom_outputs(case, assessment, assessment_dir: str, out_dir: str, *, deidentify: bool = False,
                        log=print) -> list[str]:
    """Write the DICOM outputs of ``assessment`` (in memory: its summary and finding maps); returns the files
    written. ``case`` must come from DICOM (its timepoints' ``dicom_files``); ``assessment_dir`` holds the report
    it was written with (report.pdf and the key images of report.html go into the DICOM outputs).

    ``deidentify`` (the assessment was de-identified): de-identified copies of the referenced source series are
    written too (``images/<timepoint>/``) and every object references them, under the report's pseudonym."""
    import pydicom
    if not case.planning.dicom_files:
        raise ValueError("--dicom-out needs a case whose images are DICOM series (a DICOM export given to assess, or "
                         "a case.json written by 'rnassess import'): there is no source series to reference")
    summary = assessment.summary
    os.makedirs(out_dir, exist_ok=True)
    written = []
    # The assessment's own timepoint labels: de-identification renames them srs, fu1, ... keeping their order
    # (io.deid.deidentify_case), so the case's timepoints and the assessment's correspond one to one, in order.
    names = [t["label"] for t in summary["timepoints"]]
    if len(names) != len(case.timepoints):
        raise ValueError(f"the assessment has {len(names)} timepoints and the case {len(case.timepoints)}: "
                         "not the assessment of this case")
    labels = dict(zip((tp.label for tp in case.timepoints), names))
    series = {labels[tp.label]: list(tp.dicom_files) for tp in case.timepoints if tp.dicom_files}
    deid = None
    if deidentify:
        from ..io.deid import phi_values
        from .dicom_deid import Deidentifier
        deid = Deidentifier(str(assessment.case_id), case.srs_date, phi_values(case))
        for label in list(series):
            series[label] = deid.copy_series(series[label], os.path.join(out_dir, "images", label))
            written += series[label]
        log(f"[dicom] images/: de-identified copies of {len(series)} source series (pseudonym '{assessment.case_id}')")
    planning = case.planning.t1c
    regs = summary.get("registration") or {}
    segments = assessment.maps.segments()             # name -> bool array on the planning grid

    # Findings and change portions per follow-up, on that follow-up's series.
    for n, tp in enumerate(case.timepoints[1:], start=1):
        label = labels[tp.label]
        if label not in series:
            continue
        # "<label> <finding>" at this timepoint, "<from>-<label> grew/regressed" for intervals ending here.
        mine = [name for name in segments if name.startswith(label + " ") or f"-{label} " in name]
        if not mine:
            continue
        m = np.array(regs.get(label, {}).get("planning_to_followup_lps", np.eye(4)), float)
        back = sitk.AffineTransform(3)                      # follow-up point -> planning point, for resampling
        inv = np.linalg.inv(m)
        back.SetMatrix(inv[:3, :3].ravel().tolist())
        back.SetTranslation(inv[:3, 3].tolist())
        masks = {}
        for name in mine:
            mask = geo.image_from_array(segments[name].astype(np.uint8), planning)
            on_fu = sitk.Resample(mask, tp.t1c, back, sitk.sitkNearestNeighbor, 0,
                                  sitk.sitkUInt8)
            # Back to the series' own array layout (the case analyses a canonical one): frames follow its slices.
            on_fu = geo.reorient(on_fu, tp.orientation or geo.orientation_code(tp.t1c))
            if sitk.GetArrayViewFromImage(on_fu).any():
                masks[name] = on_fu
        if not masks:
            continue
        seg = _segmentation(_headers(series[label]), masks, 600 + n, f"RNAssessment findings {label}")
        if deid:
            deid.finish(seg)
        path = os.path.join(out_dir, f"SEG_{label}.dcm")
        seg.save_as(path)
        written.append(path)
        log(f"[dicom] {os.path.basename(path)}: {len(masks)} segment(s) on the {label} series")

    # Isodose levels on the SRS-time series.
    levels = [i["level_gy"] for i in summary.get("isodose") or []]
    if case.dose is not None and levels:
        # On the SRS series' own array layout: contours lie on its slices.
        srs_grid = geo.reorient(planning, case.planning.orientation or geo.orientation_code(planning))
        dose_p = sitk.Resample(case.dose.image, srs_grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        colours = palette.isodose_colours(levels, (summary.get("dose") or {}).get("prescription_gy"))
        masks = {}
        for lv in sorted(levels, reverse=True):
            mk = sitk.Cast(dose_p >= float(lv), sitk.sitkUInt8)
            if sitk.GetArrayViewFromImage(mk).any():
                masks[f"Isodose {lv:g} Gy"] = (mk, colours[lv])
        if masks:
            types = {k: "DOSE_REGION" for k in masks}      # a defined term of RTROIInterpretedType
            if case.treated_lesion is not None:
                # The treated lesion with the levels: a viewer shows them together, and the output re-imports.
                masks[TREATED_ROI] = (sitk.Resample(case.treated_lesion, srs_grid, sitk.Transform(),
                                                    sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8), palette.TREATED)
                types[TREATED_ROI] = "GTV"
            srs_label = labels[case.planning.label]
            first = _headers(series[srs_label][:1])[0]
            path = dw.write_rtstruct({k: v[0] for k, v in masks.items()}, series[srs_label],
                                     os.path.join(out_dir, "RTSTRUCT_isodose.dcm"), _study_of(first),
                                     label="ISODOSE", colors={k: v[1] for k, v in masks.items()},
                                     description="RNAssessment isodose levels", interpreted_types=types)
            if deid:
                _finish_file(path, deid)
            written.append(path)
            log(f"[dicom] RTSTRUCT_isodose.dcm: {len(masks) - (TREATED_ROI in masks)} isodose level(s) and the "
                "treated lesion on the SRS-time series")

    # The report (PDF) and the key images, in the latest study.
    last = labels[case.timepoints[-1].label]
    ref = pydicom.dcmread(series.get(last, series[labels[case.planning.label]])[0], stop_before_pixels=True)
    pdf = os.path.join(assessment_dir, "report.pdf")
    if os.path.isfile(pdf):
        path = os.path.join(out_dir, "report_pdf.dcm")
        _write_encapsulated_pdf(pdf, ref, path, title=f"RNAssessment report {assessment.case_id}")
        if deid:
            _finish_file(path, deid)
        written.append(path)
        log("[dicom] report_pdf.dcm: the report as Encapsulated PDF")
    pngs = _key_images(os.path.join(assessment_dir, "report.html"), log)
    if pngs:
        import highdicom as hd
        uid = hd.UID()
        for n, rgb in enumerate(pngs, start=1):
            sc = hd.sc.SCImage.from_ref_dataset(
                ref, rgb, photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
                series_instance_uid=uid, series_number=650, sop_instance_uid=hd.UID(), instance_number=n,
                manufacturer="RNAssessment", patient_orientation=("L", "P"),
                series_description="RNAssessment key images")
            sc.BodyPartExamined = "BRAIN"     # an unpaired part: Laterality is not required (dciodvfy checks)
            # The views carry text (timepoint labels and days, which a manifest may have named by date); once
            # de-identified the labels are srs, fu1, ... and the case its pseudonym.
            sc.BurnedInAnnotation = "NO" if deid else "YES"
            if deid:
                deid.finish(sc)
            path = os.path.join(out_dir, f"SC_{n:02d}.dcm")
            sc.save_as(path)
            written.append(path)
        log(f"[dicom] SC_*.dcm: {len(pngs)} key image(s) as Secondary Capture")
    return written


def _finish_file(path: str, deid) -> None:
    """An object written from de-identified references, finished on disk (see Deidentifier.finish)."""
    import pydicom
    ds = pydicom.dcmread(path)
    deid.finish(ds)
    ds.save_as(path, enforce_file_format=True)


def _key_images(report_html: str, log) -> list[np.ndarray]:
    """The report's key images (one per finding: its title, legend and views) as RGB arrays, rendered by headless
    Chromium as the reader sees them (outlines and isodose lines are SVG over the slice). [] (and a log line) when
    no browser is available."""
    import tempfile

    from .browser import BrowserError, Headless, find_chromium
    if not os.path.isfile(report_html) or not find_chromium():
        log("[dicom] no Chromium: the key images (Secondary Capture) are left out")
        return []
    out = []
    try:
        with Headless(width=1400, height=1000) as b:
            b.open(report_html)
            shots = b.element_screenshots("div.finding-images")   # one per finding: title, legend, views
    except BrowserError as exc:
        log(f"[dicom] key images left out: {exc}")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        for n, png in enumerate(shots):
            p = os.path.join(tmp, f"{n}.png")
            with open(p, "wb") as f:
                f.write(png)
            arr = sitk.GetArrayFromImage(sitk.ReadImage(p))
            out.append(np.ascontiguousarray(arr[..., :3].astype(np.uint8)))
    return out


def _write_encapsulated_pdf(pdf_path: str, ref, path: str, *, title: str) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid
    study = _study_of(ref)
    ds = dw._base(ENCAPSULATED_PDF_STORAGE, study, "DOC", generate_uid(), 660, "RNAssessment report")
    for key in ("PatientSex",):
        if key in ref:
            setattr(ds, key, ref.get(key))
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator = "18748-4", "LN"
    concept.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = Sequence([concept])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.AcquisitionDateTime = ""
    data = open(pdf_path, "rb").read()
    ds.EncapsulatedDocument = data + (b"\0" if len(data) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(data)
    ds.InstanceNumber = 1
    ds.save_as(path, enforce_file_format=True)
