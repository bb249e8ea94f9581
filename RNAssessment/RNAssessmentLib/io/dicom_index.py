"""An index of a DICOM export: every file's header (no pixels), grouped by patient, study and series.

The folder layout does not matter (a DICOMDIR is not needed and is skipped): every file under the folder that
carries the DICOM preamble ("DICM" at byte 128), or ends in ``.dcm``, is read up to the pixel data, keeping only
the attributes the import needs (:data:`TAGS`). Unreadable files are listed, never fatal.
"""
from __future__ import annotations

import dataclasses
import os

from .images import is_dicom_file, slice_sort_key

#: The attributes read from each header; everything else is skipped by pydicom's ``specific_tags``.
TAGS = (
    "SOPClassUID", "SOPInstanceUID", "Modality", "PatientName", "PatientID", "PatientBirthDate",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "SeriesInstanceUID", "SeriesNumber",
    "SeriesDescription", "SeriesDate", "FrameOfReferenceUID", "ImageType", "ContrastBolusAgent",
    "ContrastBolusRoute", "ContrastBolusVolume", "ContrastBolusStartTime", "ContrastBolusIngredient",
    "MRAcquisitionType", "SliceThickness", "SpacingBetweenSlices", "PixelSpacing", "Rows", "Columns",
    "ScanningSequence", "SequenceVariant", "SequenceName", "EchoTime", "RepetitionTime", "InversionTime",
    "ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber", "NumberOfFrames",
    # RT
    "DoseSummationType", "DoseUnits", "DoseType", "ReferencedRTPlanSequence", "RTPlanLabel", "RTPlanName",
    "RTPlanDate", "ApprovalStatus", "StructureSetLabel", "StructureSetDate", "StructureSetROISequence",
    "FractionGroupSequence", "DoseReferenceSequence", "ReferencedStructureSetSequence",
    # Spatial Registration
    "RegistrationSequence", "ContentDate",
)

SOP_DICOMDIR = "1.2.840.10008.1.3.10"
SOP_MR = "1.2.840.10008.5.1.4.1.1.4"
SOP_ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SOP_REG = "1.2.840.10008.5.1.4.1.1.66.1"


@dataclasses.dataclass
class Instance:
    path: str
    ds: object           # the pydicom Dataset of the header (TAGS only)

    def get(self, key, default=""):
        v = self.ds.get(key, default)
        return default if v is None else v


@dataclasses.dataclass
class Series:
    uid: str
    modality: str
    instances: list = dataclasses.field(default_factory=list)

    @property
    def first(self) -> Instance:
        return self.instances[0]

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "")).strip()

    @property
    def number(self) -> str:
        return str(self.first.get("SeriesNumber", "")).strip()

    @property
    def frame_of_reference(self) -> str:
        return str(self.first.get("FrameOfReferenceUID", ""))

    @property
    def image_type(self) -> list[str]:
        v = self.first.get("ImageType", [])
        return [str(x).upper() for x in ([v] if isinstance(v, str) else v)]

    def label(self) -> str:
        """How a user recognises it: number, description, modality, files, UID."""
        return (f"series {self.number or '?'} '{self.description}' ({self.modality}, {len(self.instances)} "
                f"file(s), SeriesInstanceUID {self.uid})")

    def sorted_files(self) -> list[str]:
        """Image files in slice order (position along the slice normal, then instance number)."""
        return [i.path for i in sorted(self.instances, key=lambda inst: slice_sort_key(
            inst.get("ImagePositionPatient", None), inst.get("ImageOrientationPatient", None),
            inst.get("InstanceNumber", 0)))]


@dataclasses.dataclass
class Study:
    uid: str
    date: str
    description: str
    series: dict = dataclasses.field(default_factory=dict)   # uid -> Series


@dataclasses.dataclass
class Patient:
    id: str
    name: str
    studies: dict = dataclasses.field(default_factory=dict)  # uid -> Study

    def label(self) -> str:
        n = sum(len(s.series) for s in self.studies.values())
        return f"patient ID '{self.id}' name '{self.name}' ({len(self.studies)} study(ies), {n} series)"


@dataclasses.dataclass
class Index:
    root: str
    patients: dict = dataclasses.field(default_factory=dict)   # id -> Patient
    skipped: list = dataclasses.field(default_factory=list)    # (path, reason)
    files: int = 0

    def all_series(self):
        for p in self.patients.values():
            for st in p.studies.values():
                for se in st.series.values():
                    yield p, st, se


def _is_candidate(path: str) -> bool:
    return path.lower().endswith(".dcm") or is_dicom_file(path)


def read_header(path: str):
    """The header of one file (TAGS only, no pixel data), or raise."""
    import pydicom
    return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(TAGS))


def scan(root: str | os.PathLike) -> Index:
    """Index every DICOM file under ``root`` (headers only)."""
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise ValueError(f"DICOM folder '{root}': not a folder" if os.path.exists(root) else
                         f"DICOM folder '{root}': not found")
    idx = Index(root=root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name.upper() == "DICOMDIR" or not _is_candidate(path):
                continue
            try:
                ds = read_header(path)
            except Exception as exc:   # pydicom raises many types for damaged files
                idx.skipped.append((path, f"unreadable ({type(exc).__name__}: {str(exc)[:80]})"))
                continue
            sop = str(ds.get("SOPClassUID", ""))
            if sop == SOP_DICOMDIR or not ds.get("SeriesInstanceUID"):
                idx.skipped.append((path, "not a composite instance (no SeriesInstanceUID)"))
                continue
            idx.files += 1
            pid = str(ds.get("PatientID", "") or "")
            pat = idx.patients.setdefault(pid, Patient(id=pid, name=str(ds.get("PatientName", "") or "")))
            suid = str(ds.get("StudyInstanceUID", "") or "")
            st = pat.studies.setdefault(suid, Study(uid=suid, date=str(ds.get("StudyDate", "") or ""),
                                                     description=str(ds.get("StudyDescription", "") or "")))
            seuid = str(ds.SeriesInstanceUID)
            se = st.series.setdefault(seuid, Series(uid=seuid, modality=str(ds.get("Modality", "") or "")))
            se.instances.append(Instance(path=path, ds=ds))
    if not idx.files:
        raise ValueError(f"DICOM folder '{root}': no DICOM files found"
                         + (f" ({len(idx.skipped)} unreadable)" if idx.skipped else ""))
    return idx
