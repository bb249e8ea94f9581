"""RNAssessment core: radiation necrosis vs progression after SRS — boundaries, change in shape, dose.

Pure Python on numpy, SimpleITK, VTK and pydicom (all bundled with 3D Slicer). Images are ``SimpleITK.Image`` in
LPS; :mod:`.geometry` is the one place that converts to RAS. Only :mod:`.mrml_bridge` imports ``slicer``.
"""
__version__ = "0.1.0"

DISCLAIMER = ("Decision support only: this output reports measurements on the images and dose provided. "
              "It is not a diagnosis; the interpretation belongs to the treating physicians.")
