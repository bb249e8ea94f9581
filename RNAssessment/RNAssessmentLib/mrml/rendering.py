"""Rendering: models, visibility, and offscreen pictures of the scene (VTK).

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..io import geometry as geo
from .hierarchy import set_parent
from .segments import segmentations_logic
from .volumes import image_from_volume


def add_model(scene, surface_lps: vtk.vtkPolyData, name: str, colour=(1.0, 1.0, 0.0), *, visible_2d: bool = True,
              opacity: float = 0.5, parent_item: int | None = None):
    """Model node (RAS, as MRML expects) of an LPS surface, shown as slice intersections when ``visible_2d``."""
    pd = vtk.vtkPolyData()
    pd.DeepCopy(surface_lps)
    # A surface contoured from the dose carries its scalars; mapped through a colour table every level would get
    # the same colour (and an empty range warns): the level's own colour is the point.
    point_data = pd.GetPointData()
    normals = point_data.GetNormals()
    for i in reversed(range(point_data.GetNumberOfArrays())):       # by index: the contour's scalars have no name
        if point_data.GetArray(i) is not normals:
            point_data.RemoveArray(i)
    if pd.GetNumberOfPoints():
        pts = numpy_support.vtk_to_numpy(pd.GetPoints().GetData()).astype(float)
        pd.GetPoints().SetData(numpy_support.numpy_to_vtk(geo.ras_from_lps(pts), deep=True))
        if pd.GetPointData().GetNormals() is not None:
            n = numpy_support.vtk_to_numpy(pd.GetPointData().GetNormals()).astype(float)
            arr = numpy_support.numpy_to_vtk(geo.ras_from_lps(n), deep=True)
            arr.SetName("Normals")
            pd.GetPointData().SetNormals(arr)
    node = scene.AddNewNodeByClass("vtkMRMLModelNode", name)
    node.SetAndObservePolyData(pd)
    node.CreateDefaultDisplayNodes()
    disp = node.GetDisplayNode()
    disp.SetColor(*colour[:3])
    disp.SetScalarVisibility(False)
    disp.SetOpacity(opacity)
    disp.SetVisibility2D(visible_2d)
    disp.SetSliceIntersectionThickness(2)
    if parent_item is not None:
        set_parent(scene, node, parent_item)
    return node


def bounds_ras(nodes) -> list | None:
    """[xmin, xmax, ymin, ymax, zmin, zmax] (RAS) around the given models' surfaces, None when all are empty."""
    box = None
    for n in nodes:
        pd = n.GetPolyData() if n is not None else None
        if pd is None or not pd.GetNumberOfPoints():
            continue
        b = pd.GetBounds()
        box = list(b) if box is None else [min(box[i], b[i]) if i % 2 == 0 else max(box[i], b[i]) for i in range(6)]
    return box


def surface_from_model(node) -> vtk.vtkPolyData:
    """Model node (RAS) → surface in LPS."""
    pd = vtk.vtkPolyData()
    pd.DeepCopy(node.GetPolyData())
    if pd.GetNumberOfPoints():
        pts = numpy_support.vtk_to_numpy(pd.GetPoints().GetData()).astype(float)
        pd.GetPoints().SetData(numpy_support.numpy_to_vtk(geo.lps_from_ras(pts), deep=True))
    return pd


def set_shown(node, visible: bool, *, view_2d: bool = True, view_3d: bool = True) -> None:
    """Show or hide a displayable node (model, segmentation, markups) in slice and 3D views."""
    for i in range(node.GetNumberOfDisplayNodes()):
        d = node.GetNthDisplayNode(i)
        if d is None:
            continue
        d.SetVisibility(bool(visible))
        if hasattr(d, "SetVisibility2D"):
            d.SetVisibility2D(bool(visible) and view_2d)
        if hasattr(d, "SetVisibility3D"):
            d.SetVisibility3D(bool(visible) and view_3d)


def is_shown(node) -> bool:
    d = node.GetDisplayNode()
    return bool(d is not None and d.GetVisibility())


def _slice_actor(volume_node, center_ras, orientation: str = "coronal", fov_mm: float = 90.0,
                 pixel_mm: float = 0.5):
    """A textured plane of ``volume_node`` through ``center_ras`` (placed in RAS)."""
    img = image_from_volume(volume_node)
    centre_lps = geo.lps_from_ras(np.asarray(center_ras, float)[None])[0]
    grid = geo.slice_grid(centre_lps, orientation, fov_mm, pixel_mm)
    plane = geo.sample_plane(img, grid)
    lo, hi = np.percentile(plane[plane > 0], (1, 99.5)) if (plane > 0).any() else (0.0, 1.0)
    grey = np.clip((plane - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    n = grey.shape[0]
    tex_img = vtk.vtkImageData()
    tex_img.SetDimensions(n, n, 1)
    tex_img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(grey.T).ravel(), deep=True,
                                                                 array_type=vtk.VTK_UNSIGNED_CHAR))
    m = geo.ijk_to_lps(grid)
    corners = [m @ np.array([i, j, 0, 1.0]) for i, j in ((-0.5, -0.5), (n - 0.5, -0.5), (-0.5, n - 0.5))]
    o, p1, p2 = geo.ras_from_lps(np.array([c[:3] for c in corners]))
    src = vtk.vtkPlaneSource()
    src.SetOrigin(*o)
    src.SetPoint1(*p1)
    src.SetPoint2(*p2)
    tex = vtk.vtkTexture()
    tex.SetInputData(tex_img)
    tex.InterpolateOn()
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(src.GetOutputPort())
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    actor.SetTexture(tex)
    actor.GetProperty().LightingOff()
    return actor


def _segment_opacity(seg_name: str, segment_name: str) -> float | None:
    """What :func:`render_scene` shows by default: boundary findings opaque, grown/regressed portions and the
    treated lesion half transparent; boundary structures (sheets and CSF spaces) would hide the rest and are
    left to the slice."""
    if "findings" in seg_name.lower():
        return 0.45 if ("grew" in segment_name or "regressed" in segment_name) else 1.0
    if "lesion" in seg_name.lower() or "lesion" in segment_name.lower():
        return 0.5
    return None


def render_scene(scene, path: str, *, background_volume=None, center_ras=None, size=(900, 700),
                 azimuth: float = -25.0, elevation: float = 20.0, zoom: float = 2.2,
                 segment_opacity=_segment_opacity) -> str:
    """Render the scene's outputs offscreen with VTK and write a PNG: segmentations as closed surfaces (which
    ones and how opaque: ``segment_opacity(segmentation name, segment name)``, None to skip), markups as small
    spheres, and visible models (isodose surfaces) as their intersection lines with a coronal slice of
    ``background_volume`` through ``center_ras`` (what Slicer's slice views show), drawn on that slice; seen from
    the front, slightly from the side and above."""
    ren = vtk.vtkRenderer()
    ren.SetBackground(0.08, 0.08, 0.1)
    count = 0
    if center_ras is None:
        raise ValueError("render_scene needs center_ras (e.g. a finding's centroid)")
    models = scene.GetNodesByClass("vtkMRMLModelNode")
    cut_plane = vtk.vtkPlane()
    cut_plane.SetOrigin(center_ras[0], center_ras[1] + 0.3, center_ras[2])   # just in front of the slice
    cut_plane.SetNormal(0, 1, 0)
    for i in range(models.GetNumberOfItems()):
        mn = models.GetItemAsObject(i)
        d = mn.GetDisplayNode()
        if d is None or not d.GetVisibility() or mn.GetPolyData() is None or not mn.GetPolyData().GetNumberOfPoints():
            continue
        cutter = vtk.vtkCutter()
        cutter.SetInputData(mn.GetPolyData())
        cutter.SetCutFunction(cut_plane)
        tube = vtk.vtkTubeFilter()
        tube.SetInputConnection(cutter.GetOutputPort())
        tube.SetRadius(0.35)
        tube.SetNumberOfSides(8)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(tube.GetOutputPort())
        mapper.ScalarVisibilityOff()
        a = vtk.vtkActor()
        a.SetMapper(mapper)
        a.GetProperty().SetColor(*d.GetColor())
        a.GetProperty().LightingOff()
        ren.AddActor(a)
        count += 1
    segs = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    closed = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    for i in range(segs.GetNumberOfItems()):
        sn = segs.GetItemAsObject(i)
        seg = sn.GetSegmentation()
        wanted = [(seg.GetNthSegmentID(k), segment_opacity(sn.GetName(), seg.GetNthSegment(k).GetName()))
                  for k in range(seg.GetNumberOfSegments())]
        wanted = [(sid, op) for sid, op in wanted if op]
        if not wanted:
            continue
        segmentations_logic(scene)                       # converter rules registered
        sn.CreateClosedSurfaceRepresentation()
        for sid, op in wanted:
            s = seg.GetSegment(sid)
            pd = s.GetRepresentation(closed)
            if pd is None or not pd.GetNumberOfPoints():
                continue
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputData(pd)
            mapper.ScalarVisibilityOff()
            a = vtk.vtkActor()
            a.SetMapper(mapper)
            a.GetProperty().SetColor(*s.GetColor())
            a.GetProperty().SetOpacity(op)
            ren.AddActor(a)
            count += 1
    marks = scene.GetNodesByClass("vtkMRMLMarkupsFiducialNode")
    for i in range(marks.GetNumberOfItems()):
        mk = marks.GetItemAsObject(i)
        for k in range(mk.GetNumberOfControlPoints()):
            p = [0.0, 0.0, 0.0]
            mk.GetNthControlPointPositionWorld(k, p)
            sph = vtk.vtkSphereSource()
            sph.SetCenter(*p)
            sph.SetRadius(1.2)
            mapper = vtk.vtkPolyDataMapper()
            mapper.SetInputConnection(sph.GetOutputPort())
            a = vtk.vtkActor()
            a.SetMapper(mapper)
            a.GetProperty().SetColor(1.0, 1.0, 1.0)
            ren.AddActor(a)
    if count == 0:
        raise ValueError("nothing visible to render: no model or segmentation with data")
    if background_volume is not None:
        ren.AddActor(_slice_actor(background_volume, center_ras))
    win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(*size)
    win.AddRenderer(ren)
    ren.ResetCamera()
    cam = ren.GetActiveCamera()
    cam.SetFocalPoint(*center_ras)
    cam.SetViewUp(0, 0, 1)
    cam.SetPosition(cam.GetFocalPoint()[0], cam.GetFocalPoint()[1] + 400, cam.GetFocalPoint()[2])  # from anterior
    cam.Azimuth(azimuth)
    cam.Elevation(elevation)
    cam.OrthogonalizeViewUp()
    ren.ResetCameraClippingRange()
    cam.Zoom(zoom)
    win.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(win)
    grab.ReadFrontBufferOff()
    grab.Update()
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(path)
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    win.Finalize()
    return path
