"""What users read: findings.json and the other files (writers), report.html/.pdf (headless Chromium), DICOM
outputs (SEG, RT structure set, Encapsulated PDF, key images) with their de-identification, the palette.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

#: public name -> the module of this stage that defines it
_WHERE = {
    "write_outputs": "writers",
    "write_dvh_csv": "writers",
    "write_dvh_curves": "writers",
    "OUTPUT_NAMES": "writers",
    "write_report": "report",
    "build_report": "report",
    "write_dicom_outputs": "dicom_out",
    "isodose_colours": "palette",
    "segment_colour": "palette",
    "OutputFolder": "atomic",
    "write_file_atomically": "atomic",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
