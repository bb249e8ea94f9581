"""Segmentations: the segmentations logic, segments ↔ masks (LPS images), segment display.

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import SimpleITK as sitk
import slicer
import vtk

from ..io import geometry as geo
from .hierarchy import set_parent
from .volumes import image_from_volume, set_volume_from_image


_logic_cache: dict = {}


def segmentations_logic(scene) -> "slicer.vtkSlicerSegmentationsModuleLogic":
    """The Segmentations module logic for ``scene`` (the application's, or one created on slicer-core)."""
    modules = getattr(slicer, "modules", None)
    if modules is not None and hasattr(modules, "segmentations") and scene is getattr(slicer, "mrmlScene", None):
        return modules.segmentations.logic()
    key = id(scene)
    if key not in _logic_cache:
        factory = slicer.vtkSegmentationConverterFactory.GetInstance()
        if not factory.GetConverterRules():
            for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                         slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
                         slicer.vtkClosedSurfaceToFractionalLabelmapConversionRule,
                         slicer.vtkFractionalLabelmapToClosedSurfaceConversionRule):
                factory.RegisterConverterRule(rule())
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        logic.SetMRMLScene(scene)
        _logic_cache[key] = logic
    return _logic_cache[key]


def segment_ids(seg_node) -> list[str]:
    ids = vtk.vtkStringArray()
    seg_node.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def segment_names(seg_node) -> list[str]:
    seg = seg_node.GetSegmentation()
    return [seg.GetSegment(sid).GetName() for sid in segment_ids(seg_node)]


def mask_from_segment(scene, seg_node, segment_id: str, reference_volume) -> sitk.Image:
    """One segment as a binary mask (uint8, LPS) on ``reference_volume``'s grid."""
    logic = segmentations_logic(scene)
    # The export adds a display node and a colour table besides the label map: every node it adds is removed,
    # so reading a segmentation leaves the scene as it was.
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__rnassess_tmp")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not logic.ExportSegmentsToLabelmapNode(seg_node, ids, lm, reference_volume):
            raise ValueError(f"segment '{segment_id}' of '{seg_node.GetName()}' could not be exported")
        img = image_from_volume(lm) if lm.GetImageData() is not None else None
    finally:
        added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        for node in [n for n in added if n.GetID() not in before]:
            scene.RemoveNode(node)
    if img is None:
        raise ValueError(f"segment '{segment_id}' of '{seg_node.GetName()}' is empty")
    return sitk.Cast(img > 0, sitk.sitkUInt8)


def masks_from_segmentation(scene, seg_node, reference_volume) -> dict[str, sitk.Image]:
    """All segments of a segmentation node by segment *name*, each on ``reference_volume``'s grid."""
    seg = seg_node.GetSegmentation()
    return {seg.GetSegment(sid).GetName(): mask_from_segment(scene, seg_node, sid, reference_volume)
            for sid in segment_ids(seg_node)}


def add_segmentation(scene, masks: dict, reference: sitk.Image, name: str, *, colours: dict | None = None,
                     parent_item: int | None = None, closed_surface: bool = False):
    """New segmentation node with one segment per named mask (all on ``reference``'s grid)."""
    logic = segmentations_logic(scene)
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    seg_node.CreateDefaultDisplayNodes()
    ref_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "__rnassess_ref")
    geometry_only = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    geometry_only.CopyInformation(reference)
    set_volume_from_image(ref_node, geometry_only)
    seg_node.SetReferenceImageGeometryParameterFromVolumeNode(ref_node)
    scene.RemoveNode(ref_node)
    for seg_name, mask in masks.items():
        if not geo.same_grid(mask, reference, tol_mm=1e-2):
            raise ValueError(f"segment '{seg_name}' is not on the reference grid")
        lm = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__rnassess_tmp")
        set_volume_from_image(lm, sitk.Cast(mask > 0, sitk.sitkUInt8))
        before = set(segment_ids(seg_node))
        ok = logic.ImportLabelmapToSegmentationNode(lm, seg_node)
        scene.RemoveNode(lm)
        if not ok:
            raise ValueError(f"segment '{seg_name}' could not be imported")
        new = [s for s in segment_ids(seg_node) if s not in before]
        if not new:          # an empty mask adds no segment: add an empty one so every finding has its segment
            seg_node.GetSegmentation().AddEmptySegment(seg_name, seg_name)
            new = [seg_name]
        segment = seg_node.GetSegmentation().GetSegment(new[0])
        segment.SetName(seg_name)
        if colours and seg_name in colours:
            segment.SetColor(*colours[seg_name][:3])
    if closed_surface:
        seg_node.CreateClosedSurfaceRepresentation()
    if parent_item is not None:
        set_parent(scene, seg_node, parent_item)
    return seg_node


def set_segment_display(seg_node, *, fill_2d: float | None = None, outline_2d: bool | None = None,
                        opacity_3d: float | None = None) -> None:
    """Segmentation display: 2D fill opacity and outline, 3D opacity."""
    d = seg_node.GetDisplayNode()
    if fill_2d is not None:
        d.SetOpacity2DFill(float(fill_2d))
        d.SetVisibility2DFill(fill_2d > 0)
    if outline_2d is not None:
        d.SetVisibility2DOutline(bool(outline_2d))
    if opacity_3d is not None:
        d.SetOpacity3D(float(opacity_3d))


#: Marks the display nodes :func:`fill_by_view` adds (one per slice view), so a second call replaces them.
VIEW_DISPLAY_ATTRIBUTE = "RNAssessment.ViewDisplay"


def fill_by_view(scene, seg_node, slice_nodes: list, filled: list) -> list:
    """Show ``seg_node`` in each slice view with its own fills: in ``slice_nodes[i]`` the segments named in
    ``filled[i]`` are filled and outlined, every other segment outlined only (a finding that does not exist yet on
    that view's scan is never a fill there). One display node per view (restricted to it with its view node ID, a
    copy of the segmentation's own display settings); the segmentation's first display node keeps the 3D views and
    leaves 2D to these. Calling it again updates the display nodes of the last call in place (views no longer given
    lose theirs): removing a display node the segmentation displayable manager is drawing and adding another in the
    same update crashed it (a review switching orientation). Returns the display nodes, one per view."""
    main = seg_node.GetDisplayNode()
    seg = seg_node.GetSegmentation()
    ids = {seg.GetNthSegment(k).GetName(): seg.GetNthSegmentID(k) for k in range(seg.GetNumberOfSegments())}
    existing = {}
    for k in range(seg_node.GetNumberOfDisplayNodes()):
        d = seg_node.GetNthDisplayNode(k)
        if d is not None and d.GetAttribute(VIEW_DISPLAY_ATTRIBUTE):
            existing[d.GetAttribute(VIEW_DISPLAY_ATTRIBUTE)] = d
    shown = []
    for view, names in zip(slice_nodes, filled):
        d = existing.pop(view.GetID(), None)
        if d is None:
            d = slicer.vtkMRMLSegmentationDisplayNode()
            scene.AddNode(d)
            d.CopyContent(main)                          # (attributes too: the marks come after it)
            d.SetName(f"{seg_node.GetName()} in {view.GetName()}")
            d.SetAttribute(VIEW_DISPLAY_ATTRIBUTE, view.GetID())
            d.SetVisibility3D(False)
            d.SetVisibility2D(True)
            d.SetViewNodeIDs([view.GetID()])
            seg_node.AddAndObserveDisplayNodeID(d.GetID())
        was = d.StartModify()
        for name, sid in ids.items():
            d.SetSegmentVisibility2DFill(sid, name in names)
            d.SetSegmentVisibility2DOutline(sid, True)
        d.EndModify(was)
        shown.append(d)
    for d in existing.values():
        scene.RemoveNode(d)
    if shown:
        main.SetVisibility2D(False)
    return shown


def remove_view_displays(scene, seg_node) -> None:
    """Remove the per-view display nodes :func:`fill_by_view` added to ``seg_node`` (and give 2D back to its first
    display node)."""
    ours = [seg_node.GetNthDisplayNode(k) for k in range(seg_node.GetNumberOfDisplayNodes())]
    for d in ours:
        if d is not None and d.GetAttribute(VIEW_DISPLAY_ATTRIBUTE):
            scene.RemoveNode(d)             # the scene drops the segmentation's reference to it
    main = seg_node.GetDisplayNode()
    if main is not None:
        main.SetVisibility2D(True)


def filled_by_view(seg_node) -> dict:
    """{slice view's singleton tag: [segment names filled there]} of the display nodes :func:`fill_by_view` added."""
    out: dict = {}
    if seg_node is None or seg_node.GetScene() is None:
        return out
    seg = seg_node.GetSegmentation()
    names = {seg.GetNthSegmentID(k): seg.GetNthSegment(k).GetName() for k in range(seg.GetNumberOfSegments())}
    for k in range(seg_node.GetNumberOfDisplayNodes()):
        d = seg_node.GetNthDisplayNode(k)
        view_id = d.GetAttribute(VIEW_DISPLAY_ATTRIBUTE) if d is not None else None
        view = seg_node.GetScene().GetNodeByID(view_id) if view_id else None
        if view is not None:
            out[view.GetSingletonTag()] = sorted(n for sid, n in names.items() if d.GetSegmentVisibility2DFill(sid))
    return out
