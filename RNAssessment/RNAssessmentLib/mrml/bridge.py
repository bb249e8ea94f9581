"""MRML bridge: MRML nodes ↔ core objects. The mrml/ package is the only part of the core that imports ``slicer``
(never ``qt``); this module gathers its public functions, split by what they do:

* :mod:`.volumes` — volume ↔ image, transforms, acquisition dates, dose volumes;
* :mod:`.autofill` — what the panel's auto-fill proposes;
* :mod:`.segments` — segmentations ↔ masks, segment display;
* :mod:`.hierarchy` — subject hierarchy folders, parents, patient identity;
* :mod:`.layout` — compare layout, jumping to a finding;
* :mod:`.rendering` — models, visibility, offscreen pictures;
* :mod:`.scene` — loading, saving, tables, markups, plots, colour tables.

Works in the Slicer application and outside it on the ``slicer-core`` wheel (Slicer's MRML and module logics
without Qt): every function takes the scene explicitly, and :func:`segmentations_logic` creates the logic and
registers the segmentation converter rules when there is no ``slicer.modules``.

Frames: MRML stores IJK→**RAS**; core images are **LPS**. The conversion goes through :mod:`geometry` only.
"""
from __future__ import annotations

from .volumes import (  # noqa: F401
    DOSE_VOLUME_ATTRIBUTE,
    DOSE_UNIT_NAME,
    DOSE_UNIT_VALUE,
    image_from_volume,
    set_volume_from_image,
    add_volume,
    planning_to_node_transform,
    add_linear_transform,
    acquisition_date,
    is_dose_volume,
    dose_volumes,
    mark_dose_volume,
)
from .segments import (  # noqa: F401
    segmentations_logic,
    segment_ids,
    segment_names,
    mask_from_segment,
    masks_from_segmentation,
    add_segmentation,
    set_segment_display,
    fill_by_view,
    filled_by_view,
    remove_view_displays,
)
from .hierarchy import (  # noqa: F401
    folder,
    remove_folder,
    sh_item,
    set_parent,
    patient_identity,
)
from .layout import (  # noqa: F401
    COMPARE_LAYOUT_ID,
    compare_layout_xml,
    compare_layout,
    jump_slices,
    slice_fov_mm,
    slice_offsets,
    slice_centre_ras,
    zoom_slices,
    focus_slices,
)
from .rendering import (  # noqa: F401
    add_model,
    bounds_ras,
    surface_from_model,
    set_shown,
    is_shown,
    render_scene,
)
from .scene import (  # noqa: F401
    ISODOSE_COLOUR_TABLE_NAME,
    ensure_node_classes,
    load_scene,
    save_scene,
    add_table,
    add_markups,
    add_plot,
    add_colour_table,
)
from .autofill import (  # noqa: F401
    auto_fill,
)

__all__ = [
    "folder",
    "remove_folder",
    "sh_item",
    "set_parent",
    "patient_identity",
    "segmentations_logic",
    "segment_ids",
    "segment_names",
    "mask_from_segment",
    "masks_from_segmentation",
    "add_segmentation",
    "set_segment_display",
    "fill_by_view",
    "filled_by_view",
    "remove_view_displays",
    "DOSE_VOLUME_ATTRIBUTE",
    "DOSE_UNIT_NAME",
    "DOSE_UNIT_VALUE",
    "image_from_volume",
    "set_volume_from_image",
    "add_volume",
    "planning_to_node_transform",
    "add_linear_transform",
    "acquisition_date",
    "is_dose_volume",
    "dose_volumes",
    "mark_dose_volume",
    "auto_fill",
    "ISODOSE_COLOUR_TABLE_NAME",
    "ensure_node_classes",
    "load_scene",
    "save_scene",
    "add_table",
    "add_markups",
    "add_plot",
    "add_colour_table",
    "COMPARE_LAYOUT_ID",
    "compare_layout_xml",
    "compare_layout",
    "jump_slices",
    "slice_fov_mm",
    "slice_offsets",
    "slice_centre_ras",
    "zoom_slices",
    "focus_slices",
    "add_model",
    "bounds_ras",
    "surface_from_model",
    "set_shown",
    "is_shown",
    "render_scene",
]
