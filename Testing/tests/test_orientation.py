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


def test_header_noise_between_two_storages_gives_one_grid():
    """What a NIfTI's float32 header does to the same image stored in another order (measured on the clinical
    exam: directions 8e-9, origins 3e-6 mm apart) is held away: both storages give one grid, bit for bit, within a
    few µm of the given one over a 200 mm field; a grid already held (a phantom's axis-aligned
    1 mm grid at -69.5 mm) is the same object."""
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(24, 20, 10)).astype(np.float32)
    img = geo.image_from_array(arr, None)
    img.SetSpacing((0.9375, 0.9375, 5.5))
    a, b = 0.061, 0.013                                   # an oblique acquisition: two small tilts
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    img.SetDirection(tuple((ry @ rx).ravel()))
    img.SetOrigin((-113.65644073486328, -125.17047882080078, -31.82505226135254))
    noisy = sitk.DICOMOrient(img, "RAI")
    noisy.SetDirection(tuple(np.asarray(noisy.GetDirection()) + 8e-9 * np.array([1, -1, 1, 0, 1, -1, 1, 0, -1])))
    noisy.SetOrigin(tuple(np.asarray(noisy.GetOrigin()) + np.array([3e-6, -2e-6, 1e-6])))
    first, second = geo.canonical(img), geo.canonical(noisy)
    assert first.GetDirection() == second.GetDirection() and first.GetOrigin() == second.GetOrigin()
    assert first.GetSpacing() == second.GetSpacing()
    assert np.array_equal(geo.array_view(first), geo.array_view(second))
    # Near the image as given, at the corners of a 200 mm field: the origin held to 0.5 µm per axis (0.87 µm), each
    # direction cosine to 5e-6 (a matrix change of at most 3 x 5e-6 in norm, at most doubled by making it
    # orthonormal again), so a point r mm from the origin moves at most 0.87 µm + r x 3e-5 (7 µm at 250 mm).
    corners = geo.box_corners((-100.0, -100.0, -100.0), (100.0, 100.0, 100.0))
    for p in corners:
        idx = img.TransformPhysicalPointToContinuousIndex(tuple(p))
        q = np.array(first.TransformContinuousIndexToPhysicalPoint(idx))
        r = np.linalg.norm(p - np.asarray(img.GetOrigin()))
        assert np.linalg.norm(q - p) <= 0.87e-3 + r * 3e-5, (np.linalg.norm(q - p), r)
    held = np.asarray(first.GetDirection()).reshape(3, 3)
    assert np.allclose(held @ held.T, np.eye(3), atol=1e-12)          # still a rotation
    phantom = geo.image_from_array(arr, None)
    phantom.SetOrigin((-69.5, -84.5, -67.5))
    assert geo.canonical(phantom) is phantom
