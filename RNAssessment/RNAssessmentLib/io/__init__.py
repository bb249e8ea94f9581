"""Input and geometry: LPS/RAS conversion, image/RTDOSE/structure readers and writers, the case manifest, DICOM
import, de-identification of an input case.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
import importlib

#: public name -> the module of this stage that defines it
_WHERE = {
    "Case": "case",
    "Timepoint": "case",
    "Dose": "case",
    "load_manifest": "case",
    "save_case": "case",
    "BOUNDARY_KINDS": "case",
    "read_image": "images",
    "binary_mask": "images",
    "read_structures": "structures",
    "read_seg_nrrd": "structures",
    "write_seg_nrrd": "structures",
    "read_mask": "structures",
    "read_rtdose": "rtdose",
    "ImportOptions": "dicom_import",
    "import_dicom": "dicom_import",
    "deidentify_case": "deid",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
