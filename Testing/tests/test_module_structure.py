"""Checks on the Slicer module that need no Slicer application: the .ui, the parameter node, CMake lists."""
import ast
import glob
import os
import py_compile
import re
import xml.etree.ElementTree as ET

from conftest import ROOT

MODULE = os.path.join(ROOT, "RNAssessment")
UI = os.path.join(MODULE, "Resources", "UI", "RNAssessment.ui")
SOURCE = os.path.join(MODULE, "RNAssessment.py")


def _ui_widgets():
    tree = ET.parse(UI)
    widgets = {}
    for w in tree.iter("widget"):
        params = [p.find("string").text for p in w.findall("property")
                  if p.get("name") == "SlicerParameterName"]
        widgets[w.get("name")] = {"class": w.get("class"), "param": params[0] if params else None}
    return widgets


def _parameter_fields():
    tree = ast.parse(open(SOURCE, encoding="utf-8").read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RNAssessmentParameterNode")
    return {s.target.id for s in cls.body if isinstance(s, ast.AnnAssign)}


def test_module_file_compiles():
    py_compile.compile(SOURCE, doraise=True)


def test_every_widget_the_code_uses_exists_in_the_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", open(SOURCE, encoding="utf-8").read()))
    missing = used - set(_ui_widgets())
    assert not missing, f"widgets used in RNAssessment.py but absent from the .ui: {sorted(missing)}"


def test_every_slicer_parameter_name_matches_a_parameter_node_field():
    fields = _parameter_fields()
    params = {w["param"] for w in _ui_widgets().values() if w["param"]}
    assert params <= fields, f"SlicerParameterName without a parameter-node field: {sorted(params - fields)}"
    # And every field is editable in the panel.
    assert fields <= params, f"parameter-node fields without a widget: {sorted(fields - params)}"


def test_node_list_parameter_uses_a_checkable_combo_box():
    w = next(w for w in _ui_widgets().values() if w["param"] == "timepoints")
    assert w["class"] == "qMRMLCheckableNodeComboBox"


def test_every_python_file_is_listed_in_cmake():
    cmake = open(os.path.join(MODULE, "CMakeLists.txt"), encoding="utf-8").read()
    listed = set(re.findall(r"^\s+(\S+\.py)\s*$", cmake, re.M))
    listed = {p.replace("${MODULE_NAME}", "RNAssessment") for p in listed}
    present = {os.path.relpath(p, MODULE) for p in glob.glob(os.path.join(MODULE, "**", "*.py"), recursive=True)}
    assert present == listed, f"not listed: {sorted(present - listed)}; listed but absent: {sorted(listed - present)}"
    for res in re.findall(r"^\s+(Resources/\S+)\s*$", cmake, re.M):
        assert os.path.exists(os.path.join(MODULE, res.replace("${MODULE_NAME}", "RNAssessment"))), res
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake


def test_core_imports_only_bundled_packages():
    allowed = {"numpy", "SimpleITK", "vtk", "pydicom", "__future__"} | set(__import__("sys").stdlib_module_names)
    for path in glob.glob(os.path.join(MODULE, "RNAssessmentLib", "*.py")):
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module.split(".")[0]]
            for n in names:
                if n == "slicer":
                    assert os.path.basename(path) == "mrml_bridge.py", f"{path} imports slicer"
                    continue
                assert n in allowed, f"{os.path.basename(path)} imports {n}"
