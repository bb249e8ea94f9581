"""Reading and writing images with their geometry (SimpleITK, LPS), and checks that inputs fit together.

Formats: NRRD, NIfTI (.nii, .nii.gz), MetaImage (.mha/.mhd), a folder holding one DICOM MR/CT series, and a DICOM
RTDOSE file (read with :mod:`rtdose` so that DoseGridScaling is applied). Every failure names the file.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from . import geometry as geo
from .rtdose import read_rtdose
from .validate import check_file, check_image


def itk_message(exc: Exception) -> str:
    """The informative last line of an ITK/SimpleITK exception."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else "unknown error"


def is_dicom_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


#: DICOM attributes that identify the patient or date the study (what ``--deidentify`` must remove).
PHI_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "StudyDate", "SeriesDate",
            "AcquisitionDate", "ContentDate", "AccessionNumber", "InstitutionName", "ReferringPhysicianName",
            "StudyID")


def dicom_identity(path: str) -> dict:
    """Identifying attributes (``PHI_TAGS``) of a DICOM file, or of the first DICOM file in a series folder.
    {} when ``path`` is not DICOM. Values are strings as stored (dates as YYYYMMDD)."""
    import pydicom
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path))
        path = next((f for f in files if os.path.isfile(f) and is_dicom_file(f)), "")
    if not path or not (is_dicom_file(path) or path.lower().endswith(".dcm")):
        return {}
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return {}
    return {k: str(ds.get(k)) for k in PHI_TAGS if ds.get(k) not in (None, "")}


def read_dicom_series(folder: str) -> sitk.Image:
    """The (single) DICOM series in ``folder``; more than one series is an error naming their UIDs."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not ids:
        raise ValueError(f"image '{folder}': no DICOM image series in this folder")
    if len(ids) > 1:
        raise ValueError(f"image '{folder}': {len(ids)} DICOM series found ({', '.join(ids)}); "
                         "give the folder of one series")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, ids[0])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOff()
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"image '{folder}': DICOM series unreadable ({itk_message(exc)})") from None
    return img


def slice_sort_key(ipp, iop, instance_number) -> tuple[float, int]:
    """Where a slice goes in its series: its position along the slice normal (row x column direction of
    ImageOrientationPatient, dotted with ImagePositionPatient; 0 when either is missing), then InstanceNumber.
    The one ordering of the importer and the loader (a manifest's file order is not trusted)."""
    n = int(instance_number or 0)
    if ipp is None or iop is None or len(iop) != 6 or len(ipp) != 3:
        return (0.0, n)
    iop = np.asarray(iop, float)
    return (float(np.dot(np.cross(iop[:3], iop[3:]), np.asarray(ipp, float))), n)


def read_dicom_files(files: list[str], what: str = "image") -> sitk.Image:
    """One DICOM image series from its files (any folders, any order): checked to be one series with one
    orientation, sorted along the slice normal, read with its geometry (LPS) and rescale applied."""
    import pydicom
    if not files:
        raise ValueError(f"{what}: no files listed")
    keyed, series = [], set()
    for f in files:
        if not os.path.isfile(f):
            raise ValueError(f"{what}: file '{f}' not found (was the DICOM export moved?)")
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=[
                "SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber"])
        except Exception as exc:
            raise ValueError(f"{what}: '{f}' is not a readable DICOM file ({exc})") from None
        series.add(str(ds.get("SeriesInstanceUID", "")))
        keyed.append((*slice_sort_key(ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"),
                                      ds.get("InstanceNumber")), f))
    if len(series) > 1:
        raise ValueError(f"{what}: the listed files belong to {len(series)} series ({', '.join(sorted(series))})")
    keyed.sort()
    positions = np.array([k[0] for k in keyed])
    if len(positions) > 1 and np.min(np.diff(positions)) < 1e-3:
        raise ValueError(f"{what}: two slices at the same position ({positions[int(np.argmin(np.diff(positions)))]:.2f} "
                         "mm along the normal): a series with repeated slices is not one volume")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([k[2] for k in keyed])
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"{what}: DICOM series unreadable ({itk_message(exc)})") from None
    return check_image(img, what)


def read_image(path: str | os.PathLike, *, prescription_gy: float | None = None, mask: bool = False,
               what: str = "image") -> sitk.Image:
    """Read a 3D scalar image, checked by :mod:`validate` (file integrity, then geometry and values; ``mask``:
    the rules for label images). RTDOSE files come back in Gy (see :func:`rtdose.read_rtdose`)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{what} '{path}': file not found")
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in os.listdir(path)):
        raise ValueError(f"{what} '{path}': a folder without files; give the image file (or a folder holding one "
                         "DICOM series)")
    if os.path.isdir(path):
        img = read_dicom_series(path)
    elif is_dicom_file(path) or path.lower().endswith(".dcm"):
        import pydicom
        try:
            modality = pydicom.dcmread(path, stop_before_pixels=True).get("Modality", "")
        except Exception as exc:
            raise ValueError(f"image '{path}': not a readable DICOM file ({exc})") from None
        if modality == "RTDOSE":
            return check_image(read_rtdose(path, prescription_gy)[0], f"{what} '{path}'")
        try:
            img = sitk.ReadImage(path)
        except RuntimeError as exc:
            raise ValueError(f"{what} '{path}': unreadable DICOM ({itk_message(exc)})") from None
    else:
        check_file(path, what)
        try:
            img = sitk.ReadImage(path)
        except RuntimeError as exc:
            raise ValueError(f"{what} '{path}': unreadable ({itk_message(exc)})") from None
    return check_image(img, f"{what} '{path}'", mask=mask)


def read_mask(path: str | os.PathLike, reference: sitk.Image, *, what: str = "mask") -> sitk.Image:
    """A binary mask (any non-zero label, or the union of a .seg.nrrd's segments) on ``reference``'s grid.

    A mask on another grid is an error: silently resampling a user's segmentation would hide a wrong file pairing.
    """
    path = os.fspath(path)
    if path.lower().endswith(".seg.nrrd"):
        from .structures import read_seg_nrrd
        segs = read_seg_nrrd(path)          # checks the file's integrity itself
        img = segs[0].mask
        for s in segs[1:]:
            img = sitk.Or(img, s.mask)
    else:
        img = read_image(path, mask=True, what=what)
    check_same_grid(img, reference, f"{what} '{path}'")
    out = sitk.Cast(img != 0, sitk.sitkUInt8)
    view = sitk.GetArrayViewFromImage(out)
    if view.size > 1000 and view.all():
        raise ValueError(f"{what} '{path}': every voxel is inside the mask; a mask marks a structure, not the "
                         "whole image: check that this is the segmentation you meant")
    return out


def check_same_grid(image: sitk.Image, reference: sitk.Image, what: str) -> None:
    if not geo.same_grid(image, reference, tol_mm=1e-2):
        raise ValueError(f"{what} is on a different grid than its image: {geo.describe_grid(image)} vs "
                         f"{geo.describe_grid(reference)}")


def check_overlap(dose: sitk.Image, image: sitk.Image, what: str, minimum: float = 0.01) -> float:
    """Fraction of ``image``'s box covered by ``dose``'s box; error when they barely overlap (wrong frame)."""
    frac = geo.overlap_fraction(image, dose)
    if frac < minimum:
        b0, b1 = geo.bounds_lps(dose)
        c0, c1 = geo.bounds_lps(image)
        raise ValueError(f"{what}: the dose grid does not overlap the image (dose LPS box "
                         f"{np.round(b0, 1).tolist()}–{np.round(b1, 1).tolist()} mm, image box "
                         f"{np.round(c0, 1).tolist()}–{np.round(c1, 1).tolist()} mm); "
                         "check the registration or the frame of reference")
    return frac


def read_transform(path: str | os.PathLike, what: str = "transform") -> sitk.Transform:
    """A user-supplied linear transform file (ITK .tfm/.txt/.h5/.mat, as Slicer saves them), planning point →
    follow-up point; clear errors for a missing, unreadable, non-3D or non-linear transform."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{what} '{path}': file not found")
    try:
        tf = sitk.ReadTransform(path)
    except RuntimeError as exc:
        raise ValueError(f"{what} '{path}': unreadable ({itk_message(exc)})") from None
    if tf.GetDimension() != 3:
        raise ValueError(f"{what} '{path}': expected a 3D transform, got {tf.GetDimension()}D")
    if not tf.IsLinear():
        raise ValueError(f"{what} '{path}': only linear (rigid or affine) transforms are supported")
    return tf
