"""RNAssessment core: radiation necrosis vs progression after SRS — boundaries, change in shape, dose.

Pure Python on numpy, SimpleITK, VTK and pydicom (all bundled with 3D Slicer). Images are ``SimpleITK.Image`` in
LPS; :mod:`.io.geometry` is the one place that converts to RAS. Only :mod:`.mrml` imports ``slicer``.

The rooms, each importing only from the rooms below it (Testing/tests/test_module_structure.py):

- ``io``: reading and writing cases, images, DICOM (RT dose, structures, series), de-identifying input;
- ``anatomy`` (boundaries from an atlas refined on the image) and ``mrml`` (the Slicer scene);
- ``analysis``: dose, registration, enhancement, boundary findings, change in shape, typed findings;
- ``output`` (what users read: findings.json, report, DICOM SEG/SR, colours) and ``teaching`` (demo cases);
- ``pipeline``: ``assess`` (one case) and ``cohort`` (many);
- ``faces``: the ``rnassess`` command line, the review app and the Slicer case steps.
"""
__version__ = "0.1.0"

DISCLAIMER = ("Decision support only: this output reports measurements on the images and dose provided. "
              "It is not a diagnosis; the interpretation belongs to the treating physicians.")


def lazy_api(package: str, where: dict):
    """(``__getattr__``, ``__dir__``) for a stage's ``__init__``: the public names in ``where`` ({name: module of
    the stage}), each imported from its module on first use, so importing a stage stays cheap."""
    import importlib
    import sys

    def __getattr__(name):
        if name in where:
            value = getattr(importlib.import_module(f".{where[name]}", package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(where))
    return __getattr__, __dir__
