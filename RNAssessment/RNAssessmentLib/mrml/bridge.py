"""MRML bridge: MRML nodes ↔ core objects. The only core module that imports ``slicer`` (never ``qt``).

Works in the Slicer application and outside it on the ``slicer-core`` wheel (Slicer's MRML and module logics
without Qt): every function takes the scene explicitly, and :func:`segmentations_logic` creates the logic and
registers the segmentation converter rules when there is no ``slicer.modules``.

Frames: MRML stores IJK→**RAS**; core images are **LPS**. The conversion goes through :mod:`geometry` only.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from ..io import geometry as geo

DOSE_VOLUME_ATTRIBUTE = "DicomRtImport.DoseVolume"      # SlicerRT marks dose volumes with this (value "1")
DOSE_UNIT_NAME = "DicomRtImport.DoseUnitName"           # on the study subject-hierarchy item
DOSE_UNIT_VALUE = "DicomRtImport.DoseUnitValue"
ISODOSE_COLOUR_TABLE_NAME = "RNAssessment isodose colours"

_logic_cache: dict = {}


def ensure_node_classes(scene) -> None:
    """Register node classes that module logics register inside the application (markups JSON storage) so
    scenes written and read outside it keep their markups."""
    for cls in ("vtkMRMLMarkupsJsonStorageNode",):
        if not scene.IsNodeClassRegistered(cls) and hasattr(slicer, cls):
            scene.RegisterNodeClass(getattr(slicer, cls)())


def load_scene(path: str):
    """Read a scene file (+ its data) into a new scene."""
    scene = slicer.vtkMRMLScene()
    ensure_node_classes(scene)
    scene.SetURL(path)
    if not scene.Import():
        raise ValueError(f"could not read scene '{path}'")
    return scene


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


# ----------------------------------------------------------------------------------------------------------------
# Volumes
# ----------------------------------------------------------------------------------------------------------------

def image_from_volume(node) -> sitk.Image:
    """Scalar or label-map volume node → SimpleITK image (LPS), geometry from IJKToRAS; parent transforms are
    not applied (harden them first). Raises ValueError for a node without image data."""
    if node is None or node.GetImageData() is None:
        raise ValueError(f"volume '{node.GetName() if node else None}' has no image data")
    image_data = node.GetImageData()
    dims = image_data.GetDimensions()
    scalars = image_data.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise ValueError(f"volume '{node.GetName()}' has {scalars.GetNumberOfComponents()} components; "
                         "a scalar volume is needed")
    arr = numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0])   # (k, j, i)
    img = sitk.GetImageFromArray(np.array(arr))
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    geo.set_geometry_from_ijk_to_lps(img, geo.lps_from_ras_matrix(geo.from_vtk_matrix(ijk_to_ras)))
    return img


def set_volume_from_image(node, image: sitk.Image) -> None:
    """Fill a volume node (its image data and IJKToRAS) from a SimpleITK image (LPS)."""
    arr = sitk.GetArrayFromImage(image)                                              # (k, j, i)
    vimg = vtk.vtkImageData()
    vimg.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    vtk_arr = numpy_support.numpy_to_vtk(np.ascontiguousarray(arr).ravel(), deep=True)
    vimg.GetPointData().SetScalars(vtk_arr)
    node.SetIJKToRASMatrix(geo.to_vtk_matrix(geo.ijk_to_ras(image)))
    node.SetAndObserveImageData(vimg)


def add_volume(scene, image: sitk.Image, name: str, *, labelmap: bool = False, parent_item: int | None = None):
    """New scalar (or label-map) volume node holding ``image``, with default display nodes."""
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name)
    set_volume_from_image(node, image)
    node.CreateDefaultDisplayNodes()
    if parent_item is not None:
        set_parent(scene, node, parent_item)
    return node


def planning_to_node_transform(planning_node, node) -> sitk.Transform | None:
    """The transform from the planning node's space to ``node``'s own space (LPS, ITK resampling convention), from
    the nodes' parent transforms; None when neither is transformed. Non-linear transforms are refused."""
    tp, tn = planning_node.GetParentTransformNode(), node.GetParentTransformNode()
    if tp is None and tn is None:
        return None
    for t in (tp, tn):
        if t is not None and not t.IsTransformToWorldLinear():
            raise ValueError(f"transform '{t.GetName()}' is not linear: harden it or use a linear registration")
    # planning local → world (P), node local → world (T): planning local x ↦ node local T⁻¹ P x (RAS).
    m = vtk.vtkMatrix4x4()
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(tp, tn, m)
    lps = geo.lps_transform_from_ras(geo.from_vtk_matrix(m))
    tf = sitk.AffineTransform(3)
    tf.SetMatrix(tuple(lps[:3, :3].ravel()))
    tf.SetTranslation(tuple(lps[:3, 3]))
    return tf


def add_linear_transform(scene, planning_to_node_lps: np.ndarray, name: str, nodes=(), parent_item=None):
    """Linear transform node placing ``nodes`` (images in their own frame) in the planning frame, from the 4x4
    LPS matrix mapping a planning point to the node's point (ITK resampling convention, as registrations give it).
    The inverse of :func:`planning_to_node_transform` for a planning node that is not transformed."""
    to_parent_lps = np.linalg.inv(np.asarray(planning_to_node_lps, float))     # node point → planning point
    tnode = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    tnode.SetMatrixTransformToParent(geo.to_vtk_matrix(geo.lps_transform_from_ras(to_parent_lps)))
    for n in nodes:
        n.SetAndObserveTransformNodeID(tnode.GetID())
    if parent_item is not None:
        set_parent(scene, tnode, parent_item)
    return tnode


def acquisition_date(scene, node):
    """Date of a volume: attribute ``RNAssessment.Date`` (ISO), else the DICOM series/study date on its subject
    hierarchy items; None when unknown."""
    import datetime as _dt
    text = node.GetAttribute("RNAssessment.Date") if node else None
    if not text:
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        item = sh.GetItemByDataNode(node)
        while item and not text:
            for attr in ("DICOM.SeriesDate", "DICOM.AcquisitionDate", "DICOM.StudyDate"):
                text = sh.GetItemAttribute(item, attr) or text
            item = sh.GetItemParent(item) if item != sh.GetSceneItemID() else 0
    if not text:
        return None
    text = text.strip()
    try:
        return _dt.date.fromisoformat(text[:10]) if "-" in text else _dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"volume '{node.GetName()}': date '{text}' is not YYYY-MM-DD or YYYYMMDD") from None


def auto_fill(scene, lookup=None) -> dict:
    """What the panel's auto-fill proposes for a scene loaded by Slicer's DICOM module (with SlicerRT's plugins):
    {"timepoints": [volume nodes, by date], "dose": node or None, "treated_lesion": segmentation or None,
    "boundaries": segmentation or None, "notes": [what was chosen or left out, and why]}.

    Volumes under a DICOM study (subject hierarchy) are chosen per study as ``rnassess import`` chooses: the
    post-contrast T1 by its contrast attributes (``lookup(node, keyword)``: in Slicer, the DICOM database's value
    for the node's first instance; without it the node attributes ``DICOM.<keyword>``), else its description, 3D
    before 2D, then the thinnest slices; localizers and derived series left out. A study with two equally good
    candidates or none is left for the user (a note says which). Volumes outside any study (NRRD files) are all
    timepoints, by date. The dose is the volume SlicerRT marked as dose."""
    from ..io.case import boundary_kind
    from ..io.dicom_import import classify_attributes, rank_t1c
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    out = {"timepoints": [], "dose": None, "treated_lesion": None, "boundaries": None, "notes": []}
    doses = dose_volumes(scene)
    if doses:
        out["dose"] = doses[0]
        if len(doses) > 1:
            out["notes"].append(f"{len(doses)} dose volumes; took '{doses[0].GetName()}' (choose another in Dose)")
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    vols = [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]
    vols = [n for n in vols if n.GetClassName() == "vtkMRMLScalarVolumeNode" and not is_dose_volume(n)]

    def study_of(node):
        item = sh.GetItemByDataNode(node)
        parent = sh.GetItemParent(item) if item else 0
        if parent and parent != sh.GetSceneItemID() and sh.GetItemLevel(parent) == "Study":
            return parent
        return None

    def getter(node):
        def get(key, default=None):
            v = lookup(node, key) if lookup else None
            return v if v not in (None, "") else (node.GetAttribute(f"DICOM.{key}") or default)
        return get

    by_study, loose = {}, []
    for n in vols:
        st = study_of(n)
        (by_study.setdefault(st, []) if st else loose).append(n)
    chosen = [(acquisition_date(scene, n), n) for n in loose]
    for st, members in by_study.items():
        infos = []
        for n in members:
            get = getter(n)
            itype = str(get("ImageType", "") or "").upper()
            dims = n.GetImageData().GetDimensions() if n.GetImageData() else (0, 0, 0)
            if "LOCALIZER" in itype or "SCOUT" in itype or min(dims) < 5:
                out["notes"].append(f"'{n.GetName()}': left out (a localizer or fewer than 5 slices)")
                continue
            if itype.startswith("DERIVED"):
                out["notes"].append(f"'{n.GetName()}': left out (derived images, not an acquisition)")
                continue
            desc = get("SeriesDescription", "") or n.GetName()
            infos.append(classify_attributes(get, str(desc), series=n, label=f"'{n.GetName()}'"))
        cands, tied = rank_t1c(infos)
        date = acquisition_date(scene, members[0])
        when = f"study of {date}" if date else f"study '{sh.GetItemName(st)}'"
        if len(tied) > 1:
            out["notes"].append(f"{when}: {len(tied)} equally good post-contrast T1 ("
                                + ", ".join(m.label for m in tied) + "): add the right one to Timepoints")
            continue
        if not cands:
            out["notes"].append(f"{when}: no volume is marked post-contrast T1: add it to Timepoints")
            continue
        best = cands[0]
        out["notes"].append(f"{when}: {best.label}, post-contrast T1 ({best.contrast_why})")
        chosen.append((date, best.series))
    chosen.sort(key=lambda dn: (dn[0] is None, dn[0] or 0, dn[1].GetName()))
    out["timepoints"] = [n for _, n in chosen]
    segs = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    for i in range(segs.GetNumberOfItems()):
        seg = segs.GetItemAsObject(i)
        names = segment_names(seg)
        if any(boundary_kind(n) for n in names):
            out["boundaries"] = out["boundaries"] or seg
        elif out["treated_lesion"] is None:
            out["treated_lesion"] = seg
    return out


def is_dose_volume(node) -> bool:
    """True for volumes SlicerRT's DICOM-RT import marked as dose (attribute DicomRtImport.DoseVolume)."""
    return node is not None and node.GetAttribute(DOSE_VOLUME_ATTRIBUTE) is not None


def dose_volumes(scene) -> list:
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())
            if is_dose_volume(nodes.GetItemAsObject(i))]


def mark_dose_volume(scene, node, unit_name: str = "Gy", unit_value: float = 1.0) -> None:
    """Mark a volume as dose the way SlicerRT does, so SlicerRT's Dose modules accept it."""
    node.SetAttribute(DOSE_VOLUME_ATTRIBUTE, "1")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = sh_item(scene, node)
    study = sh.GetItemParent(item)
    target = study if study and study != sh.GetSceneItemID() else item
    sh.SetItemAttribute(target, DOSE_UNIT_NAME, unit_name)
    sh.SetItemAttribute(target, DOSE_UNIT_VALUE, f"{unit_value:g}")


# ----------------------------------------------------------------------------------------------------------------
# Segmentations
# ----------------------------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------------------------
# Models, tables, markups, plots, folders
# ----------------------------------------------------------------------------------------------------------------

def folder(scene, name: str, parent_item: int | None = None) -> int:
    """A new subject-hierarchy folder item (one per run keeps each run's outputs together)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    return sh.CreateFolderItem(parent_item if parent_item is not None else sh.GetSceneItemID(), name)


def remove_folder(scene, item: int) -> None:
    """Remove a subject-hierarchy folder with everything under it, data nodes included."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    sh.RemoveItem(item, True, True)


def sh_item(scene, node) -> int:
    """The node's subject-hierarchy item, created when missing (outside the app nothing creates them)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = sh.GetItemByDataNode(node)
    if not item:
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    return item


def set_parent(scene, node, parent_item: int) -> None:
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    sh.SetItemParent(sh_item(scene, node), parent_item)


def save_scene(scene, directory: str, name: str = "scene.mrml") -> str:
    """Write every storable node with data (default format per node) and the scene file into ``directory``."""
    import os
    os.makedirs(directory, exist_ok=True)
    nodes = scene.GetNodesByClass("vtkMRMLStorableNode")
    used = set()
    for i in range(nodes.GetNumberOfItems()):
        n = nodes.GetItemAsObject(i)
        if not n.GetStorageNode():
            n.AddDefaultStorageNode()
        st = n.GetStorageNode()
        if st is None:
            raise ValueError(f"node '{n.GetName()}' ({n.GetClassName()}) has no storage node class in this scene")
        ext = st.GetDefaultWriteFileExtension()
        base = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in n.GetName()) or n.GetID()
        fname = base
        k = 1
        while fname in used:
            k += 1
            fname = f"{base}_{k}"
        used.add(fname)
        st.SetFileName(os.path.join(directory, f"{fname}.{ext}"))
        if not st.WriteData(n):
            raise ValueError(f"could not write node '{n.GetName()}' ({n.GetClassName()})")
    path = os.path.join(directory, name)
    scene.SetURL(path)
    scene.SetRootDirectory(directory)
    if not scene.Commit():
        raise ValueError(f"could not write scene '{path}'")
    return path


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


def add_colour_table(scene, levels_gy, colours, name: str = ISODOSE_COLOUR_TABLE_NAME):
    """Colour table with one named entry per isodose level (usable by SlicerRT's Isodose module)."""
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    node.SetTypeToUser()
    node.SetNumberOfColors(len(levels_gy))
    for i, (lv, c) in enumerate(zip(levels_gy, colours)):
        node.SetColor(i, f"{lv:g} Gy", c[0], c[1], c[2], 1.0)
    return node


def add_table(scene, rows: list[dict], name: str, parent_item: int | None = None):
    """Table node from a list of row dicts (columns in first-row order; numbers stay numeric)."""
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    cols = list(rows[0].keys()) if rows else []
    for c in cols:
        numeric = all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                      for r in rows if r.get(c) is not None)
        arr = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        arr.SetName(c)
        for r in rows:
            v = r.get(c)
            if numeric:
                arr.InsertNextValue(float("nan") if v is None else float(v))
            else:
                arr.InsertNextValue("" if v is None else str(v))
        table.AddColumn(arr)
    node.Modified()
    if parent_item is not None:
        set_parent(scene, node, parent_item)
    return node


def add_markups(scene, points_lps, labels: list[str], name: str, parent_item: int | None = None):
    """Point list (RAS in MRML) at LPS points, one labelled control point each."""
    ensure_node_classes(scene)
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    node.CreateDefaultDisplayNodes()
    for p, label in zip(geo.ras_from_lps(np.atleast_2d(points_lps)), labels):
        idx = node.AddControlPoint(vtk.vtkVector3d(*p), label)
        node.SetNthControlPointLocked(idx, True)
    if parent_item is not None:
        set_parent(scene, node, parent_item)
    return node


def add_plot(scene, table_node, x_column: str, y_columns: list[str], name: str, *, x_title: str = "",
             y_title: str = "", parent_item: int | None = None):
    """Plot chart with one line series per y column of ``table_node``."""
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(name)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    for col in y_columns:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name}: {col}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(x_column)
        series.SetYColumnName(col)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        if parent_item is not None:
            set_parent(scene, series, parent_item)
    if parent_item is not None:
        set_parent(scene, chart, parent_item)
    return chart


# ----------------------------------------------------------------------------------------------------------------
# Views: compare layout, jumping to a finding, patient identity
# ----------------------------------------------------------------------------------------------------------------

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


def patient_identity(scene, node) -> dict:
    """Identity the DICOM module put on the node's patient/study subject-hierarchy items (DICOM keywords)."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = sh.GetItemByDataNode(node)
    out: dict = {}
    attrs = {"DICOM.PatientName": "PatientName", "DICOM.PatientID": "PatientID",
             "DICOM.PatientBirthDate": "PatientBirthDate", "DICOM.StudyDate": "StudyDate"}
    while item and item != sh.GetSceneItemID():
        for a, k in attrs.items():
            v = sh.GetItemAttribute(item, a)
            if v and k not in out:
                out[k] = v
        item = sh.GetItemParent(item)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Offscreen rendering of a scene's outputs (README figure, checks)
# ----------------------------------------------------------------------------------------------------------------

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
