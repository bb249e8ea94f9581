"""The module's glue on real MRML (slicer-core): a phantom case loaded as nodes, assessed, outputs as nodes."""
import numpy as np
import pytest
import SimpleITK as sitk
from RNAssessmentLib.output import palette

slicer = pytest.importorskip("slicer", reason="the test extra installs slicer-core")
from RNAssessmentLib.io import geometry as geo  # noqa: E402
from RNAssessmentLib.mrml import bridge as mb  # noqa: E402
from RNAssessmentLib.faces.slicer_case import (  # noqa: E402
    assess_nodes,
    case_from_nodes,
    load_phantom_into_scene,
    write_report_for,
)


#: The module's tests share one scene and its assessment (``assessed``): on one worker they are made once.
pytestmark = pytest.mark.xdist_group("slicer_case")


@pytest.fixture(scope="session")
def loaded():
    scene = slicer.vtkMRMLScene()
    nodes = load_phantom_into_scene(scene, "tentorium_rn")
    return scene, nodes


@pytest.fixture(scope="session")
def assessed(loaded):
    scene, nodes = loaded
    before = {n.GetID(): n.GetMTime() for n in nodes["timepoints"] + [nodes["dose"]]}
    n_before = scene.GetNumberOfNodes()
    res = assess_nodes(scene, nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1, "20,15,10",
                       boundaries=nodes["boundaries"])
    return res, before, n_before


def test_case_from_nodes_keeps_geometry_and_dates(loaded):
    scene, nodes = loaded
    case = case_from_nodes(scene, nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1,
                           nodes["boundaries"])
    r = nodes["rendered"]
    assert [t.date for t in case.timepoints] == [t.date for t in r["timepoints"]]
    assert geo.same_grid(case.planning.t1c, r["timepoints"][0].t1c, tol_mm=1e-4)
    assert np.array_equal(geo.array_view(case.treated_lesion), geo.array_view(r["treated_lesion"]))
    assert set(case.boundaries) == {"falx", "tentorium", "ventricles", "csf"}
    assert np.allclose(sitk.GetArrayViewFromImage(case.dose.image), sitk.GetArrayViewFromImage(r["dose"]))


def test_assessment_adds_outputs_in_one_folder_and_leaves_inputs_alone(loaded, assessed):
    scene, nodes = loaded
    res, before, n_before = assessed
    models = [n for n in res["nodes"] if n.IsA("vtkMRMLModelNode")]
    assert [m.GetName() for m in models] == ["Isodose 20 Gy", "Isodose 15 Gy", "Isodose 10 Gy"]
    assert all(m.GetDisplayNode().GetVisibility2D() for m in models)
    # Each line in its level's colour: no dose scalars left on the surface to colour it through a table instead.
    assert all(m.GetPolyData().GetPointData().GetScalars() is None and not m.GetDisplayNode().GetScalarVisibility()
               for m in models)
    assert len({tuple(round(c, 3) for c in m.GetDisplayNode().GetColor()) for m in models}) == 3
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for n in res["nodes"]:
        assert sh.GetItemParent(mb.sh_item(scene, n)) == res["folder"]
    table = next(n for n in res["nodes"] if n.GetName().endswith("timepoints"))
    assert table.GetNumberOfRows() == 3
    assert scene.GetFirstNodeByClass("vtkMRMLPlotChartNode") is not None
    assert scene.GetNumberOfNodes() > n_before
    # Boundary and change findings as nodes: table, markers, findings segmentation (tentorium case: across tentorium).
    findings = next(n for n in res["nodes"] if n.GetName().endswith(" findings") and n.IsA("vtkMRMLTableNode"))
    kinds = [findings.GetCellText(r, 1) for r in range(findings.GetNumberOfRows())]
    assert "noncontiguous_across_boundary" in kinds
    seg = next(n for n in res["nodes"] if n.IsA("vtkMRMLSegmentationNode"))
    names = [seg.GetSegmentation().GetNthSegment(i).GetName()
             for i in range(seg.GetSegmentation().GetNumberOfSegments())]
    assert "tentorium_rn t2 across tentorium" in names
    markers = next(n for n in res["nodes"] if n.IsA("vtkMRMLMarkupsFiducialNode"))
    labels = [markers.GetNthControlPointLabel(i) for i in range(markers.GetNumberOfControlPoints())]
    assert sorted(x.strip() for lab in labels for x in lab.split(",")) == \
        sorted(f"F{r + 1}" for r in range(findings.GetNumberOfRows()))
    assert {n.GetID(): n.GetMTime() for n in nodes["timepoints"] + [nodes["dose"]]} == before


def test_no_timepoint_is_a_clear_error(loaded):
    scene, nodes = loaded
    with pytest.raises(ValueError, match="at least one timepoint"):
        assess_nodes(scene, [], None, None, 20.0, 1, "")


def test_plot_of_volume_and_diameters_over_time(loaded, assessed):
    scene, _ = loaded
    res, _, _ = assessed
    chart = next(n for n in res["nodes"] if n.IsA("vtkMRMLPlotChartNode"))
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    course = next(n for n in res["nodes"] if n.GetName().endswith("time course"))
    days = [float(course.GetCellText(r, 0)) for r in range(course.GetNumberOfRows())]
    assert days[0] == 0 and days == sorted(days) and len(days) == 3


def test_compare_layout_links_one_view_per_timepoint(loaded, assessed):
    scene, nodes = loaded
    res, _, _ = assessed
    views = mb.compare_layout(scene, res["timepoint_volumes"], foreground=nodes["dose"])
    assert [v.GetLayoutName() for v in views] == ["RNA1", "RNA2", "RNA3"]
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")
    assert layout.GetViewArrangement() == mb.COMPARE_LAYOUT_ID
    assert layout.GetLayoutDescription(mb.COMPARE_LAYOUT_ID).count("vtkMRMLSliceNode") == 3
    comps = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    by_layout = {comps.GetItemAsObject(i).GetLayoutName(): comps.GetItemAsObject(i)
                 for i in range(comps.GetNumberOfItems())}
    for view, vol in zip(views, res["timepoint_volumes"]):
        c = by_layout[view.GetLayoutName()]
        assert c.GetBackgroundVolumeID() == vol.GetID() and c.GetForegroundVolumeID() == nodes["dose"].GetID()
        assert c.GetLinkedControl()
    # Calling it again reuses the same views.
    assert [v.GetID() for v in mb.compare_layout(scene, res["timepoint_volumes"])] == [v.GetID() for v in views]


def test_clicking_a_finding_centres_the_views_on_it(loaded, assessed):
    scene, _ = loaded
    res, _, _ = assessed
    views = mb.compare_layout(scene, res["timepoint_volumes"])
    f = next(f for f in res["assessment"].findings if f.kind == "noncontiguous_across_boundary")
    mb.jump_slices(scene, f.centroid_ras)
    for v in views:
        m = v.GetSliceToRAS()
        assert np.allclose([m.GetElement(i, 3) for i in range(3)], f.centroid_ras, atol=1e-3)


def test_the_lesion_list_jumps_to_each_lesion(loaded, assessed):
    """The panel's lesion list (review.lesion_rows, as the browser review's): L1 the treated lesion, then the focus
    the design draws across the tentorium, named with its finding; a click centres the views on it where it was
    last seen, within a few mm of that finding's centroid (the same voxels at the last timepoint)."""
    from RNAssessmentLib.faces.review import lesion_rows
    scene, _ = loaded
    res, _, _ = assessed
    findings = res["assessment"].findings
    rows = lesion_rows([les.to_dict() for les in res["assessment"].lesions])
    assert rows[0]["id"] == "L1" and "treated lesion" in rows[0]["title"]
    n, across = next((n, f) for n, f in enumerate(findings, 1) if f.kind == "noncontiguous_across_boundary")
    focus = next(r for r in rows if f"F{n}" in r["findings"].split(", "))
    assert focus["id"] != "L1" and "new focus" in focus["title"] and focus["at"] == across.timepoint
    views = mb.compare_layout(scene, res["timepoint_volumes"])
    mb.jump_slices(scene, focus["centroid_ras"])
    for v in views:
        m = v.GetSliceToRAS()
        assert np.allclose([m.GetElement(i, 3) for i in range(3)], focus["centroid_ras"], atol=1e-3)
    assert np.linalg.norm(np.subtract(focus["centroid_ras"], across.centroid_ras)) < 5.0


def test_scene_outputs_render_offscreen_after_reload(loaded, assessed, tmp_path):
    """The README figure path: write the scene, reload it, render models and segmentations with VTK offscreen."""
    scene, nodes = loaded
    res, _, _ = assessed
    path = mb.save_scene(scene, str(tmp_path / "scene"))
    reloaded = mb.load_scene(path)
    # The run's outputs come back with the same counts and geometry.
    for node in res["nodes"]:
        again = reloaded.GetNodeByID(node.GetID())
        assert again is not None and again.GetClassName() == node.GetClassName(), node.GetName()
        if node.IsA("vtkMRMLModelNode"):
            b1, b2 = [0.0] * 6, [0.0] * 6
            node.GetRASBounds(b1)
            again.GetRASBounds(b2)
            assert np.allclose(b1, b2, atol=1e-3)
            assert again.GetPolyData().GetNumberOfPoints() == node.GetPolyData().GetNumberOfPoints()
        elif node.IsA("vtkMRMLSegmentationNode"):
            names = [again.GetSegmentation().GetNthSegment(i).GetName()
                     for i in range(again.GetSegmentation().GetNumberOfSegments())]
            assert names == [node.GetSegmentation().GetNthSegment(i).GetName()
                             for i in range(node.GetSegmentation().GetNumberOfSegments())]
        elif node.IsA("vtkMRMLTableNode"):
            assert again.GetNumberOfRows() == node.GetNumberOfRows()
        elif node.IsA("vtkMRMLPlotChartNode"):
            assert again.GetNumberOfPlotSeriesNodes() == node.GetNumberOfPlotSeriesNodes()
    vol = next(reloaded.GetNodesByName(v.GetName()).GetItemAsObject(0) for v in nodes["timepoints"][-1:])
    f = next(f for f in res["assessment"].findings if f.kind == "noncontiguous_across_boundary")
    png = mb.render_scene(reloaded, str(tmp_path / "outputs.png"), background_volume=vol, center_ras=f.centroid_ras,
                          size=(400, 300))
    img = sitk.GetArrayFromImage(sitk.ReadImage(png)).reshape(300, 400, -1)[..., :3].astype(int)

    def share(rgb, tol=60):
        return (np.abs(img - np.array(rgb)).sum(-1) < tol).mean()
    def rgb(c):
        return tuple(int(round(255 * v)) for v in c)
    iso = palette.isodose_colours([20.0, 15.0, 10.0], 20.0)          # the levels the fixture asked for
    # The across-boundary finding in its palette colour: violet (blue high, red above green), blended at 50 %
    # opacity over grey, so told by hue; no isodose colour (blue 0), the cyan treated lesion or a grey has it.
    r_, g_, b_ = (img[..., c] for c in range(3))
    violet = (b_ - g_ > 60) & (r_ - g_ > 20)
    assert palette.FINDING["noncontiguous_across_boundary"][2] > palette.FINDING["noncontiguous_across_boundary"][0]
    assert violet.mean() > 0.0005
    assert share(rgb(iso[20.0])) > 0.0005             # the 20 Gy line (the prescription: red)
    assert share(rgb(iso[10.0]), 80) > 0.0005         # the 10 Gy line (50 % of the prescription: lime)
    assert img.std() > 20                             # not a blank frame


def test_report_from_nodes_and_deidentified_run(loaded, assessed, tmp_path):
    scene, nodes = loaded
    res, _, _ = assessed
    paths = write_report_for(res, str(tmp_path / "report"), pdf=False)
    page = open(paths["report"], encoding="utf-8").read()
    assert "across the tentorium" in page
    # Identity from the DICOM subject hierarchy is in the plain report and nowhere in the de-identified one.
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Zyxwabc^Patient")
    sh.SetItemAttribute(patient, "DICOM.PatientName", "Zyxwabc^Patient")
    sh.SetItemAttribute(patient, "DICOM.PatientID", "PHI-55501234")
    for v in nodes["timepoints"] + [nodes["dose"]]:
        sh.SetItemParent(mb.sh_item(scene, v), patient)
    deid = assess_nodes(scene, nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1, "20,15,10",
                        boundaries=nodes["boundaries"], deidentify=True)
    assert deid["case"].patient == {} and [t.label for t in deid["case"].timepoints] == ["srs", "fu1", "fu2"]
    out = write_report_for(deid, str(tmp_path / "deid"), pdf=False)
    for p in (tmp_path / "deid").rglob("*"):
        if p.is_file():
            blob = p.read_bytes()
            assert b"Zyxwabc" not in blob and b"PHI-55501234" not in blob, p.name
    assert "across the tentorium" in open(out["report"], encoding="utf-8").read()


def test_transform_nodes_place_follow_ups_and_dose(loaded):
    """A follow-up under a linear transform node is placed by it (no registration); a dose under its own
    transform is put in the planning frame without resampling."""
    import vtk
    scene, nodes = loaded
    fu, dose = nodes["timepoints"][1], nodes["dose"]
    shift_r = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "fu shift")
    m = vtk.vtkMatrix4x4()
    m.SetElement(0, 3, 10.0)                            # the follow-up sits 10 mm to the right (RAS +x) in world
    shift_r.SetMatrixTransformToParent(m)
    shift_a = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "dose shift")
    m2 = vtk.vtkMatrix4x4()
    m2.SetElement(1, 3, 5.0)                            # the dose 5 mm anterior
    shift_a.SetMatrixTransformToParent(m2)
    origin = np.array(mb.image_from_volume(dose).GetOrigin())
    fu.SetAndObserveTransformNodeID(shift_r.GetID())
    dose.SetAndObserveTransformNodeID(shift_a.GetID())
    try:
        case = case_from_nodes(scene, nodes["timepoints"], nodes["treated_lesion"], dose, 20.0, 1)
        tf = case.timepoints[1].transform
        # Planning point (LPS) → follow-up local point: world R+10 is local R+0, i.e. LPS x + 10.
        assert np.allclose(tf.TransformPoint((1.0, 2.0, 3.0)), (11.0, 2.0, 3.0))
        assert case.timepoints[2].transform is None and case.registered
        assert np.allclose(case.dose.image.GetOrigin(), origin + (0.0, -5.0, 0.0))   # anterior = LPS −y
        with pytest.raises(ValueError, match="not linear"):
            grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
            fu.SetAndObserveTransformNodeID(grid.GetID())
            case_from_nodes(scene, nodes["timepoints"], None, None)
    finally:
        fu.SetAndObserveTransformNodeID(None)
        dose.SetAndObserveTransformNodeID(None)


def _unchanged(scene, nodes):
    return {n.GetID(): n.GetMTime() for n in nodes["timepoints"] + [nodes["dose"]]}, scene.GetNumberOfNodes()


def test_bad_nodes_are_clear_errors_and_change_nothing(loaded):
    """The panel's inputs get the core's checks: each bad node is a ValueError naming it and what to do (the
    panel shows it; no traceback), and the scene is left as it was."""
    scene, nodes = loaded
    tps, seg, dose, bnd = nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], nodes["boundaries"]
    before = _unchanged(scene, nodes)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "no data")
    flat = mb.add_volume(scene, sitk.Image([40, 40, 1], sitk.sitkFloat32) + 1.0, "one slice")
    t1_as_dose = mb.add_volume(scene, mb.image_from_volume(tps[0]), "T1 picked as dose")
    cgy = mb.add_volume(scene, mb.image_from_volume(dose) * 100.0, "dose in cGy")       # not marked as RT dose
    other = mb.add_segmentation(scene, {"oedema": nodes["rendered"]["treated_lesion"]},
                                nodes["rendered"]["treated_lesion"], "no boundary names")
    made = [empty, flat, t1_as_dose, cgy, other]
    try:
        n_nodes = scene.GetNumberOfNodes()
        cases = [
            (dict(timepoint_volumes=[empty] + tps[1:]), "'no data' has no image data"),
            (dict(timepoint_volumes=[flat] + tps[1:]), "single slice"),
            (dict(dose_volume=t1_as_dose), "not marked as RT dose"),
            (dict(dose_volume=cgy), r"in cGy\? divide by 100"),
            (dict(dose_volume=dose, prescription_gy=0.0), "no prescription"),
            (dict(dose_volume=dose, prescription_gy=200.0), "× the 200 Gy prescription"),
            (dict(treated_lesion_segment="GTV"), "has no segment named 'GTV'"),
            (dict(boundaries=other), "has no segment named as one"),
        ]
        for change, message in cases:
            args = dict(timepoint_volumes=tps, treated_lesion_segmentation=seg, dose_volume=None,
                        prescription_gy=20.0, fractions=1, isodose_levels="20,10", boundaries=bnd)
            args.update(change)
            with pytest.raises(ValueError, match=message):
                assess_nodes(scene, **args)
            assert scene.GetNumberOfNodes() == n_nodes, change
        # A named segment that exists is used alone; SlicerRT's mark makes the same cGy values an error that
        # names the prescription, not the missing mark.
        name = mb.segment_names(seg)[0]
        case = case_from_nodes(scene, tps, seg, dose, 20.0, 1, treated_lesion_segment=name)
        assert np.array_equal(geo.array_view(case.treated_lesion), geo.array_view(nodes["rendered"]["treated_lesion"]))
        mb.mark_dose_volume(scene, cgy)
        with pytest.raises(ValueError, match="prescription") as err:
            case_from_nodes(scene, tps, seg, cgy, 20.0, 1)
        assert "not marked" not in str(err.value)
    finally:
        for n in made:
            for i in range(n.GetNumberOfDisplayNodes()):
                scene.RemoveNode(n.GetNthDisplayNode(i))
            scene.RemoveNode(n)
    assert _unchanged(scene, nodes) == before


def test_findings_at_one_place_share_one_readable_marker():
    """Two findings 4 mm apart print one marker "F1, F2" at their middle (two numbers 4 mm apart overlap at the
    reading zoom: "21"); one 30 mm away keeps its own; a chain 8 + 8 mm is one place (single linkage)."""
    from RNAssessmentLib.faces.slicer_case import marker_groups
    groups = marker_groups([[0, 0, 0], [4, 0, 0], [0, 30, 0]])
    assert [label for _, label in groups] == ["F1, F2", "F3"]
    assert np.allclose(groups[0][0], [2, 0, 0]) and np.allclose(groups[1][0], [0, 30, 0])
    assert [label for _, label in marker_groups([[0, 0, 0], [16, 0, 0], [8, 0, 0]])] == ["F1, F2, F3"]
    assert [label for _, label in marker_groups([[0, 0, 0], [0, 0, 10.5]])] == ["F1", "F2"]
