"""Anatomy on the SRS-time image: brain mask, tissue intensities, mid-sagittal plane, atlas compartments and boundary structures.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

#: public name -> the module of this stage that defines it
_WHERE = {
    "fit_atlas": "atlas",
    "load_atlas": "atlas",
    "AtlasFit": "atlas",
    "kmeans_1d": "brain",
    "tissue_model": "brain",
    "TissueModel": "brain",
    "KMEANS_SAMPLE": "brain",
    "midsagittal_plane": "midline",
    "automatic_boundaries": "barriers",
    "Anatomy": "barriers",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
