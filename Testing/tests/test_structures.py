"""Structure readers and sub-voxel rasterisation, with geometry checked in physical (LPS) coordinates."""
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import refdata
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.io.images import read_image
from RNAssessmentLib.io.structures import (
    Structure,
    fraction_on_grid,
    mask_on_grid,
    rasterize,
    read_rtstruct,
    read_seg_nrrd,
    read_seg_vtm,
    read_structures,
    write_seg_nrrd,
)


def test_rtstruct_rois_of_the_dicompyler_plan():
    rois = read_rtstruct(refdata("dicompyler-example", "rtss.dcm"))
    names = [r.name for r in rois]
    assert names == ["BODY", "Areola", "Borders", "Breast", "Heart", "Lt Lung", "Nodes", "Scar", "Tumor Bed",
                     "Tumor Bed Block"]
    assert next(r for r in rois if r.name == "Areola").is_empty
    tb = next(r for r in rois if r.name == "Tumor Bed")
    assert len(tb.contours_lps) == 18 and tb.number == 9


def test_seg_vtm_is_converted_from_ras_to_lps():
    segs = {s.name: s for s in read_seg_vtm(refdata("slicerrt-eclipse-prostate", "EclipseProstate_Structures.seg.vtm"))}
    assert set(segs) == {"BODY", "Bladder", "Femoral Head Lt", "Femoral Head RT", "PTV", "Rectum"}
    # The raw .vtp holds RAS; the patient's left femoral head is at RAS x < 0 ... i.e. LPS x > 0.
    lt = np.concatenate(segs["Femoral Head Lt"].contours_lps).mean(0)
    rt = np.concatenate(segs["Femoral Head RT"].contours_lps).mean(0)
    assert lt[0] > 50 and rt[0] < -50


def test_ptv_centroid_is_the_same_lps_point_from_contours_and_from_the_rasterised_mask():
    dose = read_image(refdata("slicerrt-eclipse-prostate", "EclipseProstate_Dose.nrrd"))
    ptv = next(s for s in read_seg_vtm(refdata("slicerrt-eclipse-prostate", "EclipseProstate_Structures.seg.vtm"))
               if s.name == "PTV")
    frac = fraction_on_grid(ptv, dose, oversample=4)
    arr = geo.array_view(frac)
    idx = np.argwhere(arr > 0)
    centroid_mask = (geo.index_to_lps(dose, idx) * arr[arr > 0][:, None]).sum(0) / arr.sum()
    # Area-weighted centroid of the planar contours (slab per plane).
    areas, cents = [], []
    for c in ptv.contours_lps:
        x, y = c[:, 0], c[:, 1]
        a = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
        cx = np.sum((x + np.roll(x, -1)) * (x * np.roll(y, -1) - np.roll(x, -1) * y)) / (6 * a)
        cy = np.sum((y + np.roll(y, -1)) * (x * np.roll(y, -1) - np.roll(x, -1) * y)) / (6 * a)
        areas.append(abs(a))
        cents.append([cx, cy, c[0, 2]])
    centroid_contours = (np.array(cents) * np.array(areas)[:, None]).sum(0) / sum(areas)
    # Within a quarter voxel (2.5 mm grid): the end-cap convention moves z by a fraction of a plane at most.
    assert np.allclose(centroid_mask, centroid_contours, atol=0.6)
    # And it is on the patient's midline-ish, in LPS (not mirrored): same sign as the contours' own x.
    assert np.sign(centroid_mask[0]) == np.sign(centroid_contours[0])


def _sphere_contours(centre, radius, dz, n=180):
    cs = []
    zs = np.arange(centre[2] - radius + dz / 2, centre[2] + radius, dz)
    for z in zs:
        r = np.sqrt(max(radius ** 2 - (z - centre[2]) ** 2, 0))
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        cs.append(np.column_stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t), np.full(n, z)]))
    return cs


def test_small_srs_target_is_sized_correctly_only_with_sub_voxel_sampling():
    grid = sitk.Image([20, 20, 20], sitk.sitkFloat32)
    grid.SetSpacing((2.5, 2.5, 2.5))
    radius = 4.33                                  # 0.34 cm³, the README's example of a small structure
    true_cc = 4 / 3 * np.pi * radius ** 3 / 1000
    s = Structure(name="met", contours_lps=_sphere_contours((23.3, 24.1, 24.0), radius, 0.5), end_cap=0.5)
    vox = geo.voxel_volume_mm3(grid) / 1000
    centre_only = rasterize(s, grid).sum() * vox
    fine = geo.array_view(fraction_on_grid(s, grid, oversample=8)).sum() * vox
    assert abs(fine - true_cc) / true_cc < 0.03      # sub-voxel: within 3 %
    assert abs(centre_only - true_cc) / true_cc > abs(fine - true_cc) / true_cc


def test_contour_inside_another_is_a_hole():
    grid = sitk.Image([40, 40, 3], sitk.sitkUInt8)
    sq = lambda h: np.array([[20 - h, 20 - h, 1], [20 + h, 20 - h, 1], [20 + h, 20 + h, 1], [20 - h, 20 + h, 1]], float)
    ring = Structure(name="ring", contours_lps=[sq(10), sq(5)])
    m = rasterize(ring, grid)
    assert m[20, 20, 1] == 0 and m[12, 20, 1] == 1
    # 21x21 outer minus 11x11 inner voxel centres (edges count half-open: 20 and 10 per side)
    assert m[:, :, 1].sum() == 20 * 20 - 10 * 10


def test_closed_surface_rasterisation_on_an_oblique_grid():
    import vtk
    src = vtk.vtkSphereSource()
    src.SetCenter(3.0, -2.0, 5.0)
    src.SetRadius(8.0)
    src.SetThetaResolution(96)
    src.SetPhiResolution(96)
    src.Update()
    s = Structure(name="ball", surface_lps=src.GetOutput())
    grid = sitk.Image([30, 30, 30], sitk.sitkUInt8)
    c, sn = np.cos(np.radians(30)), np.sin(np.radians(30))
    grid.SetDirection((c, -sn, 0, sn, c, 0, 0, 0, 1))
    rot = np.array([[c, -sn, 0], [sn, c, 0], [0, 0, 1]])
    grid.SetOrigin(tuple(np.array([3.0, -2.0, 5.0]) - rot @ np.full(3, 14.5)))
    frac = fraction_on_grid(s, grid, oversample=3)
    vol = geo.array_view(frac).sum() / 1000
    assert vol == pytest.approx(4 / 3 * np.pi * 8 ** 3 / 1000, rel=0.02)
    cen = geo.centroid_lps(sitk.Cast(frac > 0.5, sitk.sitkUInt8))
    assert np.allclose(cen, [3.0, -2.0, 5.0], atol=0.3)


def test_seg_nrrd_round_trip_keeps_names_and_overlaps(tmp_path):
    ref = sitk.Image([10, 12, 8], sitk.sitkUInt8)
    ref.SetSpacing((1.0, 1.0, 2.0))
    a = np.zeros((10, 12, 8), np.uint8)
    a[2:6, 2:6, 2:5] = 1
    b = np.zeros_like(a)
    b[4:8, 4:9, 3:6] = 1                          # overlaps a: must go on a second layer
    masks = {"Falx cerebri": geo.image_from_array(a, ref), "ventricles": geo.image_from_array(b, ref)}
    write_seg_nrrd(tmp_path / "b.seg.nrrd", masks)
    back = {s.name: s for s in read_seg_nrrd(tmp_path / "b.seg.nrrd")}
    assert set(back) == set(masks)
    for n, m in masks.items():
        assert np.array_equal(geo.array_view(back[n].mask), geo.array_view(m))
        assert geo.same_grid(back[n].mask, ref)
    assert {s.name for s in read_structures(tmp_path / "b.seg.nrrd")} == set(masks)


def test_mask_on_grid_of_a_label_structure_resamples_between_grids():
    src = sitk.Image([20, 20, 20], sitk.sitkUInt8)
    arr = np.zeros((20, 20, 20), np.uint8)
    arr[5:15, 5:15, 5:15] = 1
    s = Structure(name="cube", mask=geo.image_from_array(arr, src))
    coarse = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    coarse.SetSpacing((2.0, 2.0, 2.0))
    coarse.SetOrigin((1.0, 1.0, 1.0))
    # Cube edges fall on 0.5 mm sub-voxel boundaries, so the covered fraction is exact: 1000 mm³ = 125 voxels.
    assert geo.array_view(fraction_on_grid(s, coarse)).sum() * 8 == pytest.approx(1000.0)
    # Per axis, voxel 2 is 75 % inside, 3..6 fully, 7 only 25 %: the 5³ block, less corner (2,2,2) at 0.75³ = 42 %.
    assert geo.array_view(mask_on_grid(s, coarse)).sum() == 124
