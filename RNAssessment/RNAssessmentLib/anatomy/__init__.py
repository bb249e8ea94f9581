"""Anatomy on the SRS-time image: brain mask, tissue intensities, mid-sagittal plane, atlas compartments and boundary structures.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
import importlib

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


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
