"""The pipeline: one case assessed end to end (:mod:`.assess`), a cohort of cases (:mod:`.cohort`).

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

#: public name -> the module of this stage that defines it
_WHERE = {
    "assess_case": "assess",
    "assess_to_folder": "assess",
    "run_cohort": "cohort",
    "discover": "cohort",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
