"""The faces: the ``rnassess`` command line (:mod:`.cli`), the browser review (:mod:`.review`,
:mod:`.review_app`) and the steps the Slicer module runs on a case (:mod:`.slicer_case`).

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
import importlib

#: public name -> the module of this stage that defines it
_WHERE = {
    "main": "cli",
    "load_review_case": "review",
    "find_assessments": "review",
    "assess_nodes": "slicer_case",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
