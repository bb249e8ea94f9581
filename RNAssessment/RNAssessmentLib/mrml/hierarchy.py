"""Subject hierarchy: folders, parents, a node's item, the patient's identity.

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import slicer



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
