"""Views: the compare layout (one slice view per timepoint), jumping to a finding, slice offsets.

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import slicer



COMPARE_LAYOUT_ID = 8731          # a custom layout id unlikely to collide with Slicer's built-in ones (< 1000)


def compare_layout_xml(n: int, orientation: str = "Axial", prefix: str = "RNA") -> str:
    """Layout description: ``n`` slice views side by side (one per timepoint)."""
    colours = ("#F34A33", "#6EB04B", "#EDD54C", "#4C8FED", "#B34CED", "#4CEDC9", "#ED4CA9", "#A0A0A0")
    items = "".join(
        f'<item><view class="vtkMRMLSliceNode" singletontag="{prefix}{i + 1}">'
        f'<property name="orientation" action="default">{orientation}</property>'
        f'<property name="viewlabel" action="default">{i + 1}</property>'
        f'<property name="viewcolor" action="default">{colours[i % len(colours)]}</property></view></item>'
        for i in range(n))
    return f'<layout type="horizontal">{items}</layout>'


def compare_layout(scene, volumes: list, foreground=None, orientation: str = "Axial", prefix: str = "RNA") -> list:
    """Register and select a layout showing ``volumes`` side by side with linked slices (``foreground``, e.g. the
    dose, over each at 30 %). Creates the slice and composite nodes the layout names, so it works before the
    application's layout manager builds the views. Returns the slice nodes."""
    if not volumes:
        raise ValueError("no volumes to compare")
    layout = scene.GetFirstNodeByClass("vtkMRMLLayoutNode")      # the application's singleton, if any
    if layout is None:
        layout = slicer.vtkMRMLLayoutNode()
        layout.SetSingletonTag("vtkMRMLLayoutNode")
        layout = scene.AddNode(layout)
    xml = compare_layout_xml(len(volumes), orientation, prefix)
    if layout.IsLayoutDescription(COMPARE_LAYOUT_ID):
        layout.SetLayoutDescription(COMPARE_LAYOUT_ID, xml)
    else:
        layout.AddLayoutDescription(COMPARE_LAYOUT_ID, xml)
    slices = []
    for i, vol in enumerate(volumes):
        tag = f"{prefix}{i + 1}"
        sn = scene.GetSingletonNode(tag, "vtkMRMLSliceNode")
        if sn is None:
            sn = slicer.vtkMRMLSliceNode()
            sn.SetSingletonTag(tag)
            sn.SetName(tag)
            sn.SetLayoutName(tag)
            sn = scene.AddNode(sn)
        sn.SetOrientation(orientation)
        comp = None
        comps = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        for k in range(comps.GetNumberOfItems()):
            c = comps.GetItemAsObject(k)
            if c.GetLayoutName() == tag:
                comp = c
        if comp is None:
            comp = slicer.vtkMRMLSliceCompositeNode()
            comp.SetLayoutName(tag)
            comp.SetSingletonTag(tag)
            comp = scene.AddNode(comp)
        comp.SetBackgroundVolumeID(vol.GetID())
        comp.SetForegroundVolumeID(foreground.GetID() if foreground is not None else None)
        comp.SetForegroundOpacity(0.3 if foreground is not None else 0.0)
        comp.SetLinkedControl(True)
        comp.SetHotLinkedControl(True)
        slices.append(sn)
    layout.SetViewArrangement(COMPARE_LAYOUT_ID)
    return slices


def jump_slices(scene, ras, centred: bool = True) -> None:
    """Move every slice view of the scene to the RAS point (what clicking a finding does)."""
    mode = slicer.vtkMRMLSliceNode.CenteredJumpSlice if centred else slicer.vtkMRMLSliceNode.OffsetJumpSlice
    slicer.vtkMRMLSliceNode.JumpAllSlices(scene, float(ras[0]), float(ras[1]), float(ras[2]), mode)


def zoom_slices(scene, fov_mm: float) -> None:
    """Every slice view shows ``fov_mm`` across its shorter side (its aspect ratio and thickness kept)."""
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        sn = scene.GetNthNodeByClass(i, "vtkMRMLSliceNode")
        fov = sn.GetFieldOfView()
        short = min(fov[0], fov[1])
        if short > 0:
            k = float(fov_mm) / short
            sn.SetFieldOfView(fov[0] * k, fov[1] * k, fov[2])


def focus_slices(scene, ras, fov_mm: float) -> None:
    """Every slice view zoomed to ``fov_mm`` and centred on the RAS point (a click on a finding or a lesion)."""
    zoom_slices(scene, fov_mm)
    jump_slices(scene, ras)


def slice_fov_mm(scene, tag: str) -> float:
    """The shorter side of a slice view's field of view (mm)."""
    fov = scene.GetSingletonNode(tag, "vtkMRMLSliceNode").GetFieldOfView()
    return float(min(fov[0], fov[1]))


def slice_offsets(scene, tags) -> dict:
    """{layout name: slice offset (mm along the slice normal)} of the named slice views."""
    out = {}
    for tag in tags:
        sn = scene.GetSingletonNode(tag, "vtkMRMLSliceNode")
        if sn is not None:
            out[tag] = float(sn.GetSliceOffset())
    return out


def slice_centre_ras(scene, tag: str):
    """The RAS point at the centre of a slice view (its SliceToRAS origin)."""
    sn = scene.GetSingletonNode(tag, "vtkMRMLSliceNode")
    m = sn.GetSliceToRAS()
    return [m.GetElement(i, 3) for i in range(3)]
