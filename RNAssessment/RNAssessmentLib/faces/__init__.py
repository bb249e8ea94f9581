"""The faces: the ``rnassess`` command line (:mod:`.cli`), the browser review (:mod:`.review`,
:mod:`.review_app`) and the steps the Slicer module runs on a case (:mod:`.slicer_case`).

The public face of this stage: the names below, imported from their modules on first use (so importing
the stage stays cheap and no module is imported before it is needed)."""
from .. import lazy_api

#: public name -> the module of this stage that defines it
_WHERE = {
    "main": "cli",
    "load_review_case": "review",
    "find_assessments": "review",
    "assess_nodes": "slicer_case",
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_api(__name__, _WHERE)
