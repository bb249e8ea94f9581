"""The MRML bridge on the real MRML of the slicer-core wheel (no Slicer application, no Qt)."""
import os

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="the test extra installs slicer-core")  # noqa: F811
from RNAssessmentLib.analysis.dose import isodose_surface, surface_volume_cc  # noqa: E402
from RNAssessmentLib.io import geometry as geo  # noqa: E402
from RNAssessmentLib.mrml import bridge as mb  # noqa: E402


def oblique(size=(24, 20, 16), spacing=(0.9, 1.2, 2.0)):
    img = sitk.Image(list(size), sitk.sitkInt16)
    c, s = np.cos(np.radians(25)), np.sin(np.radians(25))
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    img.SetDirection(tuple(rot.ravel()))
    img.SetSpacing(spacing)
    img.SetOrigin((12.0, -30.0, 7.5))
    arr = np.random.default_rng(0).integers(0, 1000, size=size[::-1]).astype(np.int16)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def test_oblique_volume_round_trip_keeps_geometry_and_values():
    scene = slicer.vtkMRMLScene()
    img = oblique()
    node = mb.add_volume(scene, img, "oblique")
    # MRML holds RAS: its IJKToRAS is our IJK→LPS with x and y negated.
    import vtk
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    assert np.allclose(ras, geo.ijk_to_ras(img))
    assert np.allclose(ras[:3, 3], [-12.0, 30.0, 7.5])
    back = mb.image_from_volume(node)
    assert geo.same_grid(back, img, tol_mm=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))
    # A voxel's RAS position from MRML equals our LPS position flipped.
    ijk = (5, 7, 3)
    assert np.allclose((ras @ [*ijk, 1])[:3], geo.ras_from_lps(img.TransformIndexToPhysicalPoint(ijk)))


def test_segmentation_round_trip_on_an_oblique_grid():
    scene = slicer.vtkMRMLScene()
    ref = oblique()
    a = np.zeros(ref.GetSize(), np.uint8)
    a[4:12, 5:11, 3:9] = 1
    b = np.zeros_like(a)
    b[10:18, 8:15, 6:12] = 1               # overlaps a
    masks = {"falx": geo.image_from_array(a, ref), "ventricles": geo.image_from_array(b, ref)}
    seg = mb.add_segmentation(scene, masks, ref, "boundaries", colours={"falx": (1, 0.8, 0)})
    ref_node = mb.add_volume(scene, ref, "ref")
    back = mb.masks_from_segmentation(scene, seg, ref_node)
    assert set(back) == {"falx", "ventricles"}
    for name in masks:
        assert geo.same_grid(back[name], ref, tol_mm=1e-4)
        assert np.array_equal(geo.array_view(back[name]), geo.array_view(masks[name])), name
    seg_obj = seg.GetSegmentation()
    falx = seg_obj.GetSegment(seg_obj.GetSegmentIdBySegmentName("falx"))
    assert np.allclose(falx.GetColor(), (1, 0.8, 0))


def test_closed_surface_conversion_and_model_in_ras():
    scene = slicer.vtkMRMLScene()
    ref = sitk.Image([40, 40, 40], sitk.sitkUInt8)
    ref.SetOrigin((-20.0, -20.0, -20.0))
    x, y, z = np.meshgrid(*[np.arange(40) - 19.5] * 3, indexing="ij")
    ball = geo.image_from_array(((x - 5) ** 2 + y ** 2 + z ** 2 <= 64).astype(np.uint8), ref)
    seg = mb.add_segmentation(scene, {"ball": ball}, ref, "s", closed_surface=True)
    import vtk
    pd = vtk.vtkPolyData()
    assert seg.GetClosedSurfaceRepresentation(seg.GetSegmentation().GetSegmentIdBySegmentName("ball"), pd)
    b = pd.GetBounds()
    # LPS x centre +5 mm is RAS x -5 mm.
    assert (b[0] + b[1]) / 2 == pytest.approx(-5.0, abs=0.6)
    dose = sitk.Cast(ball, sitk.sitkFloat32) * 20.0
    surf = isodose_surface(dose, 10.0)
    model = mb.add_model(scene, surf, "iso 10", colour=(1, 0, 0))
    mb_b = model.GetPolyData().GetBounds()
    assert (mb_b[0] + mb_b[1]) / 2 == pytest.approx(-5.0, abs=0.6)
    assert model.GetDisplayNode().GetVisibility2D()
    assert surface_volume_cc(mb.surface_from_model(model)) == pytest.approx(surface_volume_cc(surf), rel=1e-9)


def test_dose_volume_attributes_interoperate_with_slicerrt():
    scene = slicer.vtkMRMLScene()
    d = mb.add_volume(scene, sitk.Image([5, 5, 5], sitk.sitkFloat32), "dose")
    mb.add_volume(scene, sitk.Image([5, 5, 5], sitk.sitkFloat32), "mri")
    assert mb.dose_volumes(scene) == []
    mb.mark_dose_volume(scene, d)
    assert [n.GetName() for n in mb.dose_volumes(scene)] == ["dose"]
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert sh.GetItemAttribute(sh.GetItemByDataNode(d), mb.DOSE_UNIT_NAME) == "Gy"


def test_scene_with_outputs_writes_and_reloads(tmp_path):
    scene = slicer.vtkMRMLScene()
    ref = oblique()
    run = mb.folder(scene, "RNAssessment run 1")
    mb.add_volume(scene, ref, "t1c", parent_item=run)
    table = mb.add_table(scene, [{"timepoint": "t0", "days": 0, "volume_mm3": 812.0},
                                 {"timepoint": "t1", "days": 180, "volume_mm3": 150.5}], "volumes", parent_item=run)
    mb.add_plot(scene, table, "days", ["volume_mm3"], "Lesion volume", parent_item=run)
    mb.add_markups(scene, [[10.0, -20.0, 5.0]], ["finding 1"], "findings", parent_item=run)
    path = mb.save_scene(scene, str(tmp_path))
    assert os.path.exists(path)
    again = mb.load_scene(path)
    v2 = again.GetFirstNodeByName("t1c")
    assert geo.same_grid(mb.image_from_volume(v2), ref, tol_mm=1e-4)
    t2 = again.GetFirstNodeByName("volumes")
    assert t2.GetNumberOfRows() == 2 and float(t2.GetCellText(1, 2)) == pytest.approx(150.5)
    m2 = again.GetFirstNodeByName("findings")
    p = [0.0, 0.0, 0.0]
    m2.GetNthControlPointPosition(0, p)
    assert np.allclose(p, [-10.0, 20.0, 5.0])            # RAS in MRML
    assert again.GetFirstNodeByClass("vtkMRMLPlotChartNode") is not None
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(again)
    folder = sh.GetItemByName("RNAssessment run 1")
    assert folder and sh.GetItemParent(sh.GetItemByDataNode(v2)) == folder


def _study(scene, patient, date, volumes):
    """A DICOM study item (as Slicer's DICOM module makes them) holding named volumes with DICOM attributes."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(patient, f"MR {date}")
    sh.SetItemAttribute(study, "DICOM.StudyDate", date)
    nodes = {}
    for name, attrs, slices in volumes:
        img = sitk.GetImageFromArray(np.random.default_rng(0).random((slices, 12, 12)).astype(np.float32))
        n = mb.add_volume(scene, img, name)
        for k, v in attrs.items():
            n.SetAttribute(f"DICOM.{k}", v)
        sh.SetItemParent(mb.sh_item(scene, n), study)
        nodes[name] = n
    return nodes


def test_auto_fill_picks_per_study_what_the_import_picks():
    """Volumes as Slicer's DICOM module loads an exam: per study the post-contrast T1 by its contrast attributes (or
    description), not the localizer, MPR, pre-contrast T1 or FLAIR; studies in date order; the SlicerRT dose; a study
    with two equally good candidates left to the user with a note."""
    scene = slicer.vtkMRMLScene()
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "DEMO")
    t1 = {"MRAcquisitionType": "3D", "SliceThickness": "1"}
    later = _study(scene, patient, "20240920", [
        ("3: T1 MPRAGE", t1, 20), ("4: T1 MPRAGE", dict(t1, ContrastBolusAgent="Gadobutrol"), 20),
        ("5: AX FLAIR", {"MRAcquisitionType": "2D", "SliceThickness": "5"}, 8)])
    srs = _study(scene, patient, "20240304", [
        ("1: localizer", {"ImageType": "ORIGINAL\\PRIMARY\\LOCALIZER"}, 3),
        ("2: T1 post Gd 2D", dict(SliceThickness="5", MRAcquisitionType="2D"), 10),
        ("3: T1 MPRAGE post Gd", t1, 20), ("103: T1 MPRAGE post Gd MPR", {"ImageType": "DERIVED\\SECONDARY"}, 20)])
    _study(scene, patient, "20241219", [("3: T1 3D post Gd", dict(t1, ContrastBolusAgent="Gd"), 20),
                                        ("4: T1 3D post Gd repeat", dict(t1, ContrastBolusAgent="Gd"), 20)])
    dose = mb.add_volume(scene, sitk.Image([5, 5, 5], sitk.sitkFloat32) + 1.0, "RTDOSE")
    mb.mark_dose_volume(scene, dose)
    fill = mb.auto_fill(scene)
    assert fill["timepoints"] == [srs["3: T1 MPRAGE post Gd"], later["4: T1 MPRAGE"]]
    assert fill["dose"] is dose
    notes = "\n".join(fill["notes"])
    assert "'1: localizer': left out" in notes and "'103: T1 MPRAGE post Gd MPR': left out" in notes
    assert "ContrastBolusAgent 'Gadobutrol'" in notes
    assert "study of 2024-12-19: 2 equally good post-contrast T1" in notes
    # A lookup (Slicer's DICOM database) is asked first: here it says the first T1 of the later study had contrast.
    fill = mb.auto_fill(scene, lookup=lambda node, key: "Dotarem" if key == "ContrastBolusAgent"
                        and node is later["3: T1 MPRAGE"] else "")
    assert "study of 2024-09-20: 2 equally good post-contrast T1" in "\n".join(fill["notes"])
    assert fill["timepoints"] == [srs["3: T1 MPRAGE post Gd"]]


def test_auto_fill_keeps_volumes_outside_dicom_studies_as_timepoints():
    scene = slicer.vtkMRMLScene()
    a = mb.add_volume(scene, sitk.Image([8, 8, 8], sitk.sitkFloat32), "t1")
    b = mb.add_volume(scene, sitk.Image([8, 8, 8], sitk.sitkFloat32), "t0")
    a.SetAttribute("RNAssessment.Date", "2024-09-20")
    b.SetAttribute("RNAssessment.Date", "2024-03-04")
    assert mb.auto_fill(scene)["timepoints"] == [b, a]
