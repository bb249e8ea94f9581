"""Teaching cases with ground truth: the anatomical phantom, the paper's scenarios and their PD twins, the demo.

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

#: public name -> the module of this stage that defines it
_WHERE = {
    "scenario_list": "scenarios",
    "get_scenario": "scenarios",
    "write_demo": "demo",
    "templates": "realmri",
    "write_real_cases": "realmri",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
