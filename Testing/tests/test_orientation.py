"""A result does not depend on how an image's array is stored.

The same anatomy (same voxels, same physical geometry) stored in another of the 48 axis orders and flips, as a 3D
sagittal acquisition is exported (A-S-L) or a NIfTI flips R-A-S, must give the same findings and numbers. The case
puts every image in one canonical layout (geometry.reorient, no resampling), so the analysis sees the same arrays.
"""
import itertools

import numpy as np
import SimpleITK as sitk
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.io.case import Case, Timepoint

#: Every axis order and flip ITK names (48 = 3! orders x 2³ flips).
CODES = sorted({"".join(x[i] for i in perm) for x in itertools.product("LR", "PA", "IS")
                for perm in itertools.permutations(range(3))})


def test_every_storage_order_reads_into_the_same_canonical_arrays():
    """All 48 storage orders of a small oblique image (a random rotation of a few degrees, anisotropic voxels):
    physically the same image, and once in a case, the same arrays on the same grid."""
    rng = np.random.default_rng(1)
    arr = rng.normal(size=(20, 16, 12)).astype(np.float32)
    img = geo.image_from_array(arr, None)
    img.SetSpacing((0.9, 1.1, 5.5))
    c, s = np.cos(0.08), np.sin(0.08)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    img.SetOrigin((-10.0, 20.0, 5.0))
    assert len(CODES) == 48
    reference = Case(id="x", timepoints=[Timepoint("t0", None, img)]).timepoints[0].t1c
    for code in CODES:
        stored = sitk.DICOMOrient(img, code)
        probe = stored.TransformIndexToPhysicalPoint((1, 2, 3))
        assert np.allclose(sitk.Resample(stored, img, sitk.Transform(), sitk.sitkNearestNeighbor).GetPixel(
            img.TransformPhysicalPointToIndex(probe)), stored.GetPixel((1, 2, 3)))
        case = Case(id="x", timepoints=[Timepoint("t0", None, stored)])
        canon = case.timepoints[0].t1c
        assert geo.same_grid(canon, reference, 1e-6), code
        assert np.array_equal(geo.array_view(canon), geo.array_view(reference)), code
        assert case.timepoints[0].orientation == code


#: The real-MRI implants stored in another order are checked in test_real_mri (OTHER_STORAGE), where each case is
#: assessed as written anyway: there the second storage is the only extra assessment.
