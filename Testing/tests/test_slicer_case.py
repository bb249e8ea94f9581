"""The module's glue on real MRML (slicer-core): a phantom case loaded as nodes, assessed, outputs as nodes."""
import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="the test extra installs slicer-core")
from RNAssessmentLib import geometry as geo  # noqa: E402
from RNAssessmentLib import mrml_bridge as mb  # noqa: E402
from RNAssessmentLib.slicer_case import assess_nodes, case_from_nodes, load_phantom_into_scene  # noqa: E402


@pytest.fixture(scope="module")
def loaded():
    scene = slicer.vtkMRMLScene()
    nodes = load_phantom_into_scene(scene, "tentorium_rn")
    return scene, nodes


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


def test_assessment_adds_outputs_in_one_folder_and_leaves_inputs_alone(loaded):
    scene, nodes = loaded
    before = {n.GetID(): n.GetMTime() for n in nodes["timepoints"] + [nodes["dose"]]}
    n_before = scene.GetNumberOfNodes()
    res = assess_nodes(scene, nodes["timepoints"], nodes["treated_lesion"], nodes["dose"], 20.0, 1, "20,15,10",
                       boundaries=nodes["boundaries"])
    models = [n for n in res["nodes"] if n.IsA("vtkMRMLModelNode")]
    assert [m.GetName() for m in models] == ["Isodose 20 Gy", "Isodose 15 Gy", "Isodose 10 Gy"]
    assert all(m.GetDisplayNode().GetVisibility2D() for m in models)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for n in res["nodes"]:
        assert sh.GetItemParent(mb.sh_item(scene, n)) == res["folder"]
    table = next(n for n in res["nodes"] if n.GetName().endswith("timepoints"))
    assert table.GetNumberOfRows() == 3
    assert scene.GetFirstNodeByClass("vtkMRMLPlotChartNode") is not None
    assert scene.GetNumberOfNodes() > n_before
    assert {n.GetID(): n.GetMTime() for n in nodes["timepoints"] + [nodes["dose"]]} == before


def test_no_timepoint_is_a_clear_error(loaded):
    scene, nodes = loaded
    with pytest.raises(ValueError, match="at least one timepoint"):
        assess_nodes(scene, [], None, None, 20.0, 1, "")
