"""The measurements: dose statistics and isodose, registration, boundary findings, change in shape, typed findings.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

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
    "rano_table": "lesions",
    "register_followup": "registration",
    "register_sequence": "registration",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
