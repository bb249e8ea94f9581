"""Volumes: MRML volume ↔ SimpleITK image (RAS ↔ LPS through geometry), transforms, acquisition dates,
SlicerRT dose volumes.

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util import numpy_support

from ..io import geometry as geo
from .hierarchy import set_parent, sh_item


DOSE_VOLUME_ATTRIBUTE = "DicomRtImport.DoseVolume"      # SlicerRT marks dose volumes with this (value "1")


DOSE_UNIT_NAME = "DicomRtImport.DoseUnitName"           # on the study subject-hierarchy item


DOSE_UNIT_VALUE = "DicomRtImport.DoseUnitValue"


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
