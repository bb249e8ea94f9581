"""Input and geometry: LPS/RAS conversion, image/RTDOSE/structure readers and writers, the case manifest, DICOM
import, de-identification of an input case.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

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
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
