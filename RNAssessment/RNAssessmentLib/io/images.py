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


def read_dicom_series(folder: str, *, allow_uneven: bool = False, notes: list | None = None) -> sitk.Image:
    """The (single) DICOM series in ``folder``; more than one series is an error naming their UIDs. Read as
    :func:`read_dicom_files` reads one (slice positions and pixel data checked)."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if not ids:
        raise ValueError(f"image '{folder}': no DICOM image series in this folder")
    if len(ids) > 1:
        raise ValueError(f"image '{folder}': {len(ids)} DICOM series found ({', '.join(ids)}); "
                         "give the folder of one series")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, ids[0]))
    return read_dicom_files(files, what=f"image '{folder}' (DICOM series {ids[0]})", allow_uneven=allow_uneven,
                            notes=notes)


#: Slices of one series lie evenly along its normal: a gap this much wider than the usual spacing (or a slice this
#: much closer) means a slice is missing (or extra), and stacking them anyway would stretch the anatomy.
SLICE_GAP_TOLERANCE = 0.2


def check_slice_positions(positions, what: str, *, allow_uneven: bool = False, notes: list | None = None) -> None:
    """Evenly spaced slice positions (mm along the normal, sorted), else an error naming the series and where the
    gap lies; with ``allow_uneven``, a note in ``notes`` instead (the run's warnings)."""
    positions = np.asarray(positions, float)
    if len(positions) < 3:
        return
    steps = np.diff(positions)
    usual = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - usual) > SLICE_GAP_TOLERANCE * usual)
    if not len(bad):
        return
    i = int(bad[0])
    gaps = "1 such gap" if len(bad) == 1 else f"{len(bad)} such gaps"
    problem = (f"slice positions are uneven: {steps[i]:.2f} mm between {positions[i]:.2f} and {positions[i + 1]:.2f} "
               f"mm along the normal where the series' slices are {usual:.2f} mm apart ({gaps}: a slice missing or "
               "repeated)")
    if allow_uneven:
        if notes is not None:
            notes.append(f"{what}: {problem}; stacked as acquired (--allow-uneven-slices)")
        return
    raise ValueError(f"{what}: {problem}; export the complete series again, or pass --allow-uneven-slices to use "
                     "it as it is (said in the findings and the report)")


def slice_sort_key(ipp, iop, instance_number) -> tuple[float, int]:
    """Where a slice goes in its series: its position along the slice normal (row x column direction of
    ImageOrientationPatient, dotted with ImagePositionPatient; 0 when either is missing), then InstanceNumber.
    The one ordering of the importer and the loader (a manifest's file order is not trusted)."""
    n = int(instance_number or 0)
    if ipp is None or iop is None or len(iop) != 6 or len(ipp) != 3:
        return (0.0, n)
    iop = np.asarray(iop, float)
    return (float(np.dot(np.cross(iop[:3], iop[3:]), np.asarray(ipp, float))), n)


def read_dicom_files(files: list[str], what: str = "image", *, allow_uneven: bool = False,
                     notes: list | None = None) -> sitk.Image:
    """One DICOM image series from its files (any folders, any order): checked to be one series with one
    orientation, its slices evenly spaced (:func:`check_slice_positions`) and its pixel data complete, sorted along
    the slice normal, read with its geometry (LPS) and rescale applied."""
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
        at = positions[int(np.argmin(np.diff(positions)))]
        raise ValueError(f"{what}: two slices at the same position ({at:.2f} mm along the normal): a series with "
                         "repeated slices is not one volume")
    check_slice_positions(positions, what, allow_uneven=allow_uneven, notes=notes)
    from .validate import check_dicom_pixels
    for k in keyed:
        try:
            ds = pydicom.dcmread(k[2])
        except Exception as exc:
            raise ValueError(f"{what}: slice '{k[2]}' is not a readable DICOM file ({exc})") from None
        check_dicom_pixels(ds, k[2], f"{what}: slice")
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
        if os.path.islink(path):
            raise ValueError(f"{what} '{path}': a symbolic link that loops or points to nothing (to "
                             f"'{os.readlink(path)}'): give the image file itself")
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
            msg = itk_message(exc)
            if "spacing" in msg.lower() or "zero" in msg.lower() and "direction" in msg.lower():
                raise ValueError(f"{what} '{path}': its header gives a zero voxel size (spacing) or a degenerate "
                                 "axis; fix the header (voxel sizes in mm, e.g. in 3D Slicer's Volumes module) or "
                                 "export the image again") from None
            raise ValueError(f"{what} '{path}': unreadable ({msg})") from None
    return check_image(img, f"{what} '{path}'", mask=mask)


#: A mask with more distinct values than this (and not a probability map within [0, 1]) is an image in a mask's place.
MAX_MASK_LABELS = 16
#: A lesion mask covering more than this share of its image's field of view is the size of a head, not a lesion.
MAX_LESION_FRACTION = 0.25
#: Probability maps (values within [0, 1]) are thresholded here, and the run says so.
PROBABILITY_THRESHOLD = 0.5


def binary_mask(img: sitk.Image, what: str, *, label: int | None = None,
                lesion: bool = False) -> tuple[sitk.Image, str | None]:
    """(binary uint8 mask, note) from a mask image as read: a binary label map (any two values; the higher one is
    inside, so 0/1 and 0/255 alike), the voxels of a named ``label`` of a label map, or a probability map (values
    within [0, 1]) thresholded at :data:`PROBABILITY_THRESHOLD`, which the ``note`` states. Refused, naming the
    file: negative values, a label map of several labels with none named, an image (more than
    :data:`MAX_MASK_LABELS` grey levels) and, for a ``lesion`` mask, one covering more than
    :data:`MAX_LESION_FRACTION` of the field of view."""
    view = sitk.GetArrayViewFromImage(img)
    note = None
    if view.dtype.kind == "f":
        lo, hi = float(view.min()), float(view.max())
        values = np.unique(view) if view.size <= 20_000_000 else np.unique(view[::7])
    else:
        values = np.unique(view)
        lo, hi = float(values[0]), float(values[-1])
    if lo < 0:
        raise ValueError(f"{what}: negative values (down to {lo:g}): not a mask (a mask holds 0 outside and a label "
                         "inside); re-export the segmentation as a label map")
    if label is not None:
        if label not in values:
            raise ValueError(f"{what}: no voxel has the label {label} (labels: "
                             f"{', '.join(f'{v:g}' for v in values[values > 0][:MAX_MASK_LABELS])})")
        out = sitk.Cast(img == label, sitk.sitkUInt8)
    elif len(values) <= 2:
        out = sitk.Cast(img > lo, sitk.sitkUInt8) if len(values) == 2 else sitk.Cast(img != 0, sitk.sitkUInt8)
    elif view.dtype.kind == "f" and hi <= 1.0:
        out = sitk.Cast(img >= PROBABILITY_THRESHOLD, sitk.sitkUInt8)
        vol = float(sitk.GetArrayViewFromImage(out).sum()) * geo.voxel_volume_mm3(img)
        note = (f"{what} holds values between 0 and 1 ({len(values)} levels: a probability map): thresholded at "
                f"{PROBABILITY_THRESHOLD:g}, {vol:.0f} mm³ inside; give a binary mask to decide otherwise")
    elif len(values) <= MAX_MASK_LABELS and np.allclose(values, np.round(values)):
        raise ValueError(f"{what}: a label map of {len(values) - 1} labels "
                         f"({', '.join(f'{v:g}' for v in values[values > 0])}); name the one meant in the "
                         'manifest: {"path": "<file>", "label": <value>}')
    else:
        raise ValueError(f"{what}: {len(values)} different values from {lo:g} to {hi:g}: an image, not a mask "
                         "(were the image and its mask swapped?)")
    inside = sitk.GetArrayViewFromImage(out)
    if inside.size > 1000 and inside.all():
        raise ValueError(f"{what}: every voxel is inside the mask; a mask marks a structure, not the whole image: "
                         "check that this is the segmentation you meant")
    if lesion and inside.mean() > MAX_LESION_FRACTION:
        raise ValueError(f"{what}: {100 * inside.mean():.0f} % of the image lies inside the mask "
                         f"({inside.sum() * geo.voxel_volume_mm3(img) / 1000:.0f} cm³), the size of a head, not a "
                         "lesion: check that this is the lesion's segmentation")
    return out, note


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
