import numpy as np
import SimpleITK as sitk
from RNAssessmentLib.io import geometry as geo


def oblique_image():
    img = sitk.Image([7, 5, 4], sitk.sitkFloat32)
    img.SetSpacing((0.8, 1.1, 2.5))
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    d = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    img.SetDirection(tuple(d.ravel()))
    img.SetOrigin((10.0, -20.0, 5.0))
    return img


def test_ras_lps_flip_is_an_involution_and_flips_x_y():
    p = np.array([[12.5, -3.0, 40.0]])
    assert np.allclose(geo.ras_from_lps(p), [[-12.5, 3.0, 40.0]])
    assert np.allclose(geo.lps_from_ras(geo.ras_from_lps(p)), p)


def test_ijk_matrices_match_simpleitk_for_an_oblique_grid():
    img = oblique_image()
    for ijk in [(0, 0, 0), (6, 4, 3), (2, 1, 3)]:
        expected = np.array(img.TransformIndexToPhysicalPoint(ijk))
        assert np.allclose(geo.index_to_lps(img, [ijk])[0], expected, atol=1e-9)
        ras = geo.ijk_to_ras(img) @ np.array([*ijk, 1.0])
        assert np.allclose(ras[:3], geo.ras_from_lps(expected))
    back = geo.lps_to_index(img, geo.index_to_lps(img, [[1.5, 2.25, 0.5]]))
    assert np.allclose(back, [[1.5, 2.25, 0.5]])


def test_array_view_is_ijk_ordered_and_round_trips_geometry():
    img = oblique_image()
    arr = np.arange(7 * 5 * 4, dtype=np.float32).reshape(7, 5, 4)
    im2 = geo.image_from_array(arr, img)
    assert im2.GetPixel(6, 4, 3) == arr[6, 4, 3]
    assert geo.same_grid(im2, img)
    m = geo.ijk_to_lps(img)
    im3 = geo.image_from_array(arr, ijk_to_lps_matrix=m)
    assert np.allclose(geo.ijk_to_lps(im3), m)


def test_refined_grid_subdivides_voxels_exactly():
    img = oblique_image()
    fine = geo.refined_grid(img, 3)
    assert fine.GetSize() == (21, 15, 12)
    # The mean of the 27 sub-voxel centres of voxel (0,0,0) is that voxel's centre.
    sub = geo.index_to_lps(fine, [[i, j, k] for i in range(3) for j in range(3) for k in range(3)]).mean(0)
    assert np.allclose(sub, img.GetOrigin(), atol=1e-9)
    assert np.isclose(geo.voxel_volume_mm3(fine) * 27, geo.voxel_volume_mm3(img))
    ones = np.ones(fine.GetSize(), np.uint8)
    assert np.allclose(geo.block_mean(ones, 3), 1.0)


def test_overlap_fraction():
    a = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    b = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    b.SetOrigin((5.0, 0.0, 0.0))
    assert np.isclose(geo.overlap_fraction(a, b), 0.5)
    b.SetOrigin((50.0, 0.0, 0.0))
    assert geo.overlap_fraction(a, b) == 0.0
