"""Writing DICOM objects that carry our geometry: MR image series and RT structure sets (pydicom).

Patient coordinates are LPS, as SimpleITK's, so positions and orientations are written as the image holds them.
Used to build DICOM exports of the teaching cases (what a PACS or planning system would hold) and to write
structures as a planning system reads them.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os

import numpy as np
import SimpleITK as sitk

from . import geometry as geo

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
SPATIAL_REGISTRATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.1"


@dataclasses.dataclass
class StudyInfo:
    """Patient and study attributes shared by every object of one study."""
    patient_name: str
    patient_id: str
    date: str                      # YYYYMMDD
    study_uid: str = ""
    description: str = ""
    birth_date: str = ""
    sex: str = "O"
    accession: str = ""
    time: str = "090000"

    def __post_init__(self):
        from pydicom.uid import generate_uid
        self.study_uid = self.study_uid or generate_uid()


def _base(sop_class: str, study: StudyInfo, modality: str, series_uid: str, series_number: int,
          description: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = study.accession
    ds.Modality = modality
    ds.Manufacturer = "RNAssessment"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study.description
    ds.SeriesDescription = description
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    if modality.startswith("RT"):
        ds.OperatorsName = ""
    return ds


def write_mr_series(image: sitk.Image, folder: str, study: StudyInfo, *, description: str, series_number: int,
                    frame_of_reference_uid: str, contrast_agent: str = "", acquisition: str = "3D",
                    image_type=("ORIGINAL", "PRIMARY", "M", "ND"), timing: dict | None = None,
                    slice_thickness_mm: float | None = None, series_uid: str | None = None) -> list[str]:
    """Write a 3D image as an MR Image Storage series (one file per slice, uint16 with rescale).

    ``contrast_agent`` fills the Contrast/Bolus module (empty: no contrast attributes at all). Returns the files.
    """
    from pydicom.uid import generate_uid
    os.makedirs(folder, exist_ok=True)
    arr = sitk.GetArrayFromImage(image).astype(np.float64)          # (k, j, i)
    lo, hi = float(arr.min()), float(arr.max())
    slope = (hi - lo) / 65000.0 if hi > lo else 1.0
    stored = np.clip(np.round((arr - lo) / slope), 0, 65535).astype(np.uint16)
    d = np.array(image.GetDirection()).reshape(3, 3)
    row, col = d[:, 0], d[:, 1]
    sp = image.GetSpacing()
    series_uid = series_uid or generate_uid()
    timing = timing or {"RepetitionTime": 8.0, "EchoTime": 3.0, "FlipAngle": 12}
    files = []
    for k in range(arr.shape[0]):
        ds = _base(MR_IMAGE_STORAGE, study, "MR", series_uid, series_number, description)
        ds.ImageType = list(image_type)
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.BodyPartExamined = "BRAIN"
        ds.PatientPosition = "HFS"
        ds.ScanningSequence = ["SE", "IR"] if "InversionTime" in timing else "GR" if acquisition == "3D" else "SE"
        ds.SequenceVariant = "SP"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = acquisition
        for key, v in timing.items():
            setattr(ds, key, v)
        ds.EchoTrainLength = 1
        if contrast_agent:
            ds.ContrastBolusAgent = contrast_agent
            ds.ContrastBolusRoute = "IV"
        ds.SliceThickness = f"{slice_thickness_mm or sp[2]:.4f}"
        ds.SpacingBetweenSlices = f"{sp[2]:.4f}"
        pos = geo.index_to_lps(image, [[0, 0, k]])[0]
        ds.ImagePositionPatient = [f"{v:.5f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([row, col])]
        ds.SliceLocation = f"{float(np.dot(np.cross(row, col), pos)):.5f}"
        ds.PixelSpacing = [f"{sp[1]:.5f}", f"{sp[0]:.5f}"]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = f"{lo:.6g}"
        ds.RescaleSlope = f"{slope:.8g}"
        ds.RescaleType = "US"
        ds.PixelData = stored[k].tobytes()
        path = os.path.join(folder, f"IM{k + 1:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def mask_contours_lps(mask: sitk.Image) -> list[np.ndarray]:
    """Closed planar contours (LPS, one list per slice of the mask's third axis) of a binary mask, traced at half
    way between inside and outside voxel centres, so that rasterising them voxel-centre-in-polygon gives the mask
    back (up to diagonal-only contacts)."""
    import vtk
    from vtk.util import numpy_support as ns
    arr = geo.array_view(mask) > 0                     # (i, j, k)
    out = []
    for k in np.flatnonzero(arr.any(axis=(0, 1))):
        sl = np.pad(arr[:, :, k], 1).astype(np.uint8)
        img = vtk.vtkImageData()
        img.SetDimensions(sl.shape[0], sl.shape[1], 1)
        img.SetOrigin(-1, -1, 0)
        img.GetPointData().SetScalars(ns.numpy_to_vtk(sl.ravel(order="F"), deep=True))
        ms = vtk.vtkMarchingSquares()
        ms.SetInputData(img)
        ms.SetValue(0, 0.5)
        st = vtk.vtkStripper()
        st.SetInputConnection(ms.GetOutputPort())
        st.JoinContiguousSegmentsOn()
        st.Update()
        poly = st.GetOutput()
        pts = ns.vtk_to_numpy(poly.GetPoints().GetData()) if poly.GetNumberOfPoints() else np.zeros((0, 3))
        lines = poly.GetLines()
        lines.InitTraversal()
        ids = vtk.vtkIdList()
        while lines.GetNextCell(ids):
            idx = [ids.GetId(n) for n in range(ids.GetNumberOfIds())]
            if len(idx) > 1 and idx[0] == idx[-1]:
                idx = idx[:-1]
            if len(idx) < 3:
                continue
            ij = pts[idx, :2]
            ijk = np.column_stack([ij, np.full(len(ij), k)])
            out.append(geo.index_to_lps(mask, ijk))
    return out


def write_rtstruct(structures: dict, reference_files: list[str], path: str, study: StudyInfo, *,
                   label: str = "RNAssessment", colors: dict | None = None, series_number: int = 900,
                   description: str = "Structures", interpreted_types: dict | None = None) -> str:
    """Write binary masks {name: mask on the reference series' grid} as an RT Structure Set referencing the
    reference image series (its files, for the Contour Image and Referenced Frame of Reference sequences)."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid
    refs = [pydicom.dcmread(f, stop_before_pixels=True) for f in reference_files]
    first = refs[0]
    ds = _base(RT_STRUCTURE_SET_STORAGE, study, "RTSTRUCT", generate_uid(), series_number, description)
    # Content Date/Time belong to no module of the RT Structure Set IOD (its date is StructureSetDate).
    del ds.ContentDate
    del ds.ContentTime
    ds.StructureSetLabel = label[:16]
    ds.StructureSetName = label[:64]
    ds.StructureSetDate = study.date
    ds.StructureSetTime = study.time
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID
    ds.PositionReferenceIndicator = ""
    contour_images = Sequence()
    for r in refs:
        ci = Dataset()
        ci.ReferencedSOPClassUID = r.SOPClassUID
        ci.ReferencedSOPInstanceUID = r.SOPInstanceUID
        contour_images.append(ci)
    rser = Dataset()
    rser.SeriesInstanceUID = first.SeriesInstanceUID
    rser.ContourImageSequence = contour_images
    rstudy = Dataset()
    rstudy.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"     # Detached Study Management (as PS3.3 asks)
    rstudy.ReferencedSOPInstanceUID = first.StudyInstanceUID
    rstudy.RTReferencedSeriesSequence = Sequence([rser])
    rfor = Dataset()
    rfor.FrameOfReferenceUID = first.FrameOfReferenceUID
    rfor.RTReferencedStudySequence = Sequence([rstudy])
    ds.ReferencedFrameOfReferenceSequence = Sequence([rfor])
    roi_seq, contour_seq, obs_seq = Sequence(), Sequence(), Sequence()
    colors = colors or {}
    for n, (name, mask) in enumerate(structures.items(), start=1):
        roi = Dataset()
        roi.ROINumber = n
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "SEMIAUTOMATIC"
        roi_seq.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = n
        rc.ROIDisplayColor = [int(round(255 * c)) for c in colors.get(name, (1.0, 0.0, 0.0))]
        cs = Sequence()
        for poly in mask_contours_lps(mask):
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(poly)
            c.ContourData = [f"{v:.3f}" for v in poly.ravel()]
            cs.append(c)
        rc.ContourSequence = cs
        contour_seq.append(rc)
        ob = Dataset()
        ob.ObservationNumber = n
        ob.ReferencedROINumber = n
        ob.RTROIInterpretedType = (interpreted_types or {}).get(name) or ("GTV" if name.upper().startswith("GTV")
                                                                          else "ORGAN")
        ob.ROIInterpreter = ""
        obs_seq.append(ob)
    ds.StructureSetROISequence = roi_seq
    ds.ROIContourSequence = contour_seq
    ds.RTROIObservationsSequence = obs_seq
    ds.ApprovalStatus = "UNAPPROVED"
    ds.save_as(path, enforce_file_format=True)
    return path


def today() -> str:
    return _dt.date.today().strftime("%Y%m%d")
