"""The faces: the ``rnassess`` command line (:mod:`.cli`), the browser review (:mod:`.review`,
:mod:`.review_app`) and the steps the Slicer module runs on a case (:mod:`.slicer_case`)."""
