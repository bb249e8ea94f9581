"""The scene: node classes, loading and saving, tables, markups, plots, colour tables.

Part of the MRML bridge (:mod:`.bridge`); frames: MRML stores IJK→RAS, core images are LPS.
"""
from __future__ import annotations

import numpy as np
import slicer
import vtk

from ..io import geometry as geo
from .hierarchy import set_parent


ISODOSE_COLOUR_TABLE_NAME = "RNAssessment isodose colours"


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
