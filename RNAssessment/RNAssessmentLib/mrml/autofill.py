"""What the panel's auto-fill proposes for a scene loaded by Slicer's DICOM module (timepoints, dose,
segmentations).

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import slicer

from .segments import segment_names
from .volumes import acquisition_date, dose_volumes, is_dose_volume


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
