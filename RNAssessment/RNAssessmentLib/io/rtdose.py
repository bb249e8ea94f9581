"""DICOM RT Dose → SimpleITK image in Gy (LPS), read with pydicom.

SimpleITK/GDCM read RTDOSE pixels but ignore DoseGridScaling and mishandle big-endian and single-frame files, so
the grid is built here from the DICOM attributes directly:

* voxel value (Gy) = stored value × DoseGridScaling (3004,000E), required;
* frame positions from GridFrameOffsetVector (3004,000C): relative to ImagePositionPatient when its first value
  is 0, absolute (along the slice normal) otherwise;
* DoseUnits RELATIVE: scaled values are fractions of a reference dose, so a prescription (Gy) is required.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pydicom
import SimpleITK as sitk


@dataclasses.dataclass(frozen=True)
class RTDoseInfo:
    """What the RTDOSE file said about itself, besides the grid."""
    path: str
    dose_units: str
    dose_type: str
    summation_type: str
    frame_of_reference_uid: str
    scaling: float
    max_gy: float
    patient: dict
    warnings: tuple = ()


def _fail(path, problem):
    raise ValueError(f"RTDOSE '{path}': {problem}")


def read_rtdose(path: str | os.PathLike, prescription_gy: float | None = None) -> tuple[sitk.Image, RTDoseInfo]:
    """Read an RTDOSE file. Returns (dose image in Gy, float32, LPS; info).

    ``prescription_gy`` is required when DoseUnits is RELATIVE (1.0 relative = prescription).
    """
    path = os.fspath(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises several types for non-DICOM files
        from .validate import dicom_read_problem
        _fail(path, dicom_read_problem(path, exc))
    if ds.get("Modality", "") != "RTDOSE":
        _fail(path, f"modality is '{ds.get('Modality', '?')}', expected RTDOSE")
    if "DoseGridScaling" not in ds:
        _fail(path, "no DoseGridScaling (3004,000E); stored values cannot be converted to Gy")
    if "PixelData" not in ds:
        _fail(path, "no pixel data (a DVH-only RTDOSE has no dose grid)")
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if tag not in ds:
            _fail(path, f"missing {tag}")

    scaling = float(ds.DoseGridScaling)
    from .validate import check_dicom_pixels
    check_dicom_pixels(ds, path, "RTDOSE")
    try:
        pixels = ds.pixel_array  # pydicom handles byte order, RLE and single-frame files
    except Exception as exc:
        _fail(path, f"pixel data could not be decoded ({exc})")
    pixels = np.asarray(pixels)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    if pixels.shape[0] != n_frames:
        _fail(path, f"NumberOfFrames is {n_frames} but the pixel data holds {pixels.shape[0]} frames")

    row_dir = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
    col_dir = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
    normal = np.cross(row_dir, col_dir)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])

    offsets = [float(v) for v in ds.get("GridFrameOffsetVector", [0.0])] or [0.0]
    if len(offsets) < n_frames:
        _fail(path, f"GridFrameOffsetVector has {len(offsets)} values for {n_frames} frames")
    # Relative vectors start at 0; absolute ones start at the first frame's position along the normal. Either
    # way the first frame lies at ImagePositionPatient, so positions relative to it are offsets - offsets[0].
    offsets = np.array(offsets[:n_frames]) - offsets[0]
    warnings: list[str] = []
    if n_frames > 1:
        steps = np.diff(offsets)
        if np.any(steps == 0) or np.any(np.sign(steps) != np.sign(steps[0])):
            _fail(path, "GridFrameOffsetVector is not monotonic")
        if not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-3):
            _fail(path, f"non-uniform frame spacing ({steps.min():g} to {steps.max():g} mm) is not supported")
        dz = float(steps[0])
    else:
        dz = 1.0  # one plane: thickness unknown; 1 mm keeps the grid valid and the plane where it belongs

    if dz < 0:
        # Keep spacing positive: the third axis then points against the normal.
        normal, dz = -normal, -dz
    dose = pixels.astype(np.float64) * scaling

    units = str(ds.get("DoseUnits", "")).upper()
    if units == "RELATIVE":
        if prescription_gy is None or prescription_gy <= 0:
            _fail(path, "DoseUnits is RELATIVE: give the prescription dose in Gy to convert it to absolute dose")
        dose = dose * float(prescription_gy)
        warnings.append(f"relative dose converted with prescription {prescription_gy:g} Gy (1.0 = prescription)")
    elif units not in ("GY", "GRAY"):
        _fail(path, f"unsupported DoseUnits '{units}' (expected GY or RELATIVE)")
    if not np.all(np.isfinite(dose)):
        _fail(path, "dose contains NaN or infinite values")
    if dose.min() < -1e-6:
        _fail(path, f"negative dose values (min {dose.min():g} Gy)")

    img = sitk.GetImageFromArray(dose.astype(np.float32))  # (frames, rows, cols) = (k, j, i)
    img.SetSpacing((float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0]), dz))
    # DICOM PixelSpacing is (row spacing, column spacing): i runs along a row (column index) → PixelSpacing[1].
    img.SetDirection(tuple(np.column_stack([row_dir, col_dir, normal]).ravel()))
    img.SetOrigin(tuple(ipp))

    patient = {k: str(ds.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate")}
    info = RTDoseInfo(path=path, dose_units=units, dose_type=str(ds.get("DoseType", "")),
                      summation_type=str(ds.get("DoseSummationType", "")),
                      frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")), scaling=scaling,
                      max_gy=float(dose.max()), patient=patient, warnings=tuple(warnings))
    return img, info


def embedded_dvhs(path: str | os.PathLike) -> dict[int, dict]:
    """The TPS's own cumulative DVHs stored in an RTDOSE's DVH Sequence, keyed by referenced ROI number.

    Each value: {"dose_gy": bin upper edges (Gy), "volume_cc": cumulative volume at each edge, "volume_total_cc"}.
    Bin widths are taken as Gy (DVHDoseScaling applied); the DVHMeanDose attribute is not used because some
    TPSs write it in % of prescription.
    """
    ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True)
    out = {}
    for item in ds.get("DVHSequence", []):
        if str(item.get("DVHType", "")).upper() != "CUMULATIVE":
            continue
        data = np.array([float(v) for v in item.DVHData]).reshape(-1, 2)
        widths = data[:, 0] * float(item.get("DVHDoseScaling", 1.0))
        volumes = data[:, 1]
        # volumes[n] is the volume receiving at least the dose at the lower edge of bin n.
        edges = np.concatenate([[0.0], np.cumsum(widths)])
        cum = np.concatenate([volumes, [0.0]])
        roi = int(item.DVHReferencedROISequence[0].ReferencedROINumber)
        out[roi] = {"dose_gy": edges, "volume_cc": cum, "volume_total_cc": float(volumes[0]),
                    "units": str(item.get("DVHVolumeUnits", ""))}
    return out


def write_rtdose(dose_gy: sitk.Image, path: str | os.PathLike, *, patient_name: str = "ANONYMOUS",
                 patient_id: str = "", birth_date: str = "", study_date: str = "",
                 frame_of_reference_uid: str | None = None, description: str = "") -> None:
    """Write a dose image (Gy, LPS) as a multi-frame DICOM RTDOSE (uint32, DoseGridScaling, relative offsets).

    The grid's third axis must be the slice normal (row × column), as DICOM requires.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    arr = sitk.GetArrayFromImage(dose_gy).astype(np.float64)      # (k, j, i)
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError("dose to write must be finite and non-negative")
    direction = np.array(dose_gy.GetDirection()).reshape(3, 3)
    row, col, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    if not np.allclose(np.cross(row, col), normal, atol=1e-6):
        raise ValueError("dose grid's third axis is not the slice normal; cannot be written as RTDOSE")
    scaling = max(float(arr.max()), 1e-6) / float(2 ** 32 - 2)
    stored = np.round(arr / scaling).astype(np.uint32)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTDOSE"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.StudyDate = study_date
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.OperatorsName = ""
    ds.SeriesDescription = description
    ds.ImagePositionPatient = [f"{v:.6f}" for v in dose_gy.GetOrigin()]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([row, col])]
    sp = dose_gy.GetSpacing()
    ds.PixelSpacing = [f"{sp[1]:.6f}", f"{sp[0]:.6f}"]
    ds.SliceThickness = f"{sp[2]:.6f}"
    ds.GridFrameOffsetVector = [f"{k * sp[2]:.6f}" for k in range(arr.shape[0])]
    ds.FrameIncrementPointer = 0x3004000C
    ds.NumberOfFrames = arr.shape[0]
    ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseGridScaling = f"{scaling:.10e}"
    ds.PixelData = stored.tobytes()
    ds.save_as(os.fspath(path), enforce_file_format=True)
