"""The measurements: dose statistics and isodose, registration, boundary findings, change in shape, typed findings.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
import importlib

#: public name -> the module of this stage that defines it
_WHERE = {
    "Assessment": "findings",
    "Finding": "findings",
    "FindingKind": "findings",
    "Maps": "findings",
    "FAVOURS": "findings",
    "describe": "findings",
    "isodose_set": "dose",
    "IsodoseLevel": "dose",
    "mask_stats": "dose",
    "parse_levels": "dose",
    "default_levels": "dose",
    "analyse_followup": "boundaries",
    "analyse_changes": "change",
    "rano_table": "change",
    "register_followup": "registration",
    "register_sequence": "registration",
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
