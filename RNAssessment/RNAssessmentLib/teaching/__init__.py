"""Teaching cases with ground truth: the anatomical phantom, the paper's scenarios and their PD twins, the demo.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
import importlib

#: public name -> the module of this stage that defines it
_WHERE = {
    "scenario_list": "scenarios",
    "get_scenario": "scenarios",
    "write_demo": "demo",
    "templates": "realmri",
    "write_real_cases": "realmri",
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
