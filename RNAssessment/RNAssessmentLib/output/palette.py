"""One palette for every view of a case: report images and charts, MRML segments, models and colour tables, and any
later output (DICOM, browser). Colours are RGB tuples in 0..1; :func:`hex_colour` gives ``#rrggbb``.

* **Isodose lines** take SlicerRT's default isodose colour table (Isodose module: 5 Gy green, 10 Gy lime, 15 Gy
  yellow, 20 Gy orange, 25 Gy red-orange, 30 Gy red) on a fixed scale, so a level has the same colour in every
  case and output: with a prescription, by its percentage of it (the prescription always red, 25 % and below
  green, the table spread evenly between; above the prescription darker reds); without one, at SlicerRT's own
  levels in Gy. Nested lines run green → red as SlicerRT users read them.
* **Structures and findings** take a separate set in the cyan-blue-purple-magenta hues and greys, which no isodose
  colour comes near (CIE76 ΔE ≥ :data:`MIN_DELTA_E` from every isodose colour, asserted by the tests), built from
  Paul Tol's colour-blind-safe 'vibrant' and 'light' schemes (a grey for the boundaries). A finding's colour depends on its kind only, so F1
  is the same colour in its key images, the DVH chart, the findings table and its MRML segment.
"""
from __future__ import annotations

import numpy as np

#: SlicerRT's default isodose colour table (vtkSlicerIsodoseModuleLogic), lowest level first.
SLICERRT_ISODOSE = ((0.0, 1.0, 0.0), (0.5, 1.0, 0.0), (1.0, 1.0, 0.0), (1.0, 0.66, 0.0), (1.0, 0.33, 0.0),
                    (1.0, 0.0, 0.0))

TREATED = (0.2, 0.733, 0.933)         # cyan (Tol vibrant cyan #33BBEE): the treated lesion at SRS, dashed
BOUNDARY = (0.6, 0.6, 0.6)            # grey: falx, tentorium, ventricles, CSF spaces
#: Lines of the lesions over time: the treated lesion(s) in TREATED's cyan and darker blues, the foci that
#: appeared later in the violets and pinks of the findings they carry, the enhancing total in near-black.
TREATED_LINES = (TREATED, (0.0, 0.467, 0.733), (0.0, 0.6, 0.533))          # cyan, Tol blue #0077BB, teal #009988
FOCUS_LINES = ((0.667, 0.4, 1.0), (1.0, 0.533, 0.867), (0.533, 0.133, 0.333), (0.8, 0.667, 1.0))
TOTAL_LINE = (0.133, 0.133, 0.133)


def lesion_colours(lesions) -> dict:
    """Lesion id → colour, the same in every output: ``lesions`` as (id, treated?) in id order; the treated
    lesions take TREATED_LINES in turn, the foci FOCUS_LINES."""
    out, n_treated, n_foci = {}, 0, 0
    for lid, treated in lesions:
        if treated:
            out[lid] = TREATED_LINES[n_treated % len(TREATED_LINES)]
            n_treated += 1
        else:
            out[lid] = FOCUS_LINES[n_foci % len(FOCUS_LINES)]
            n_foci += 1
    return out

#: Finding kinds (and the portions of a change in shape) → colour.
FINDING = {
    "grew": (0.933, 0.2, 0.467),                             # magenta (Tol vibrant #EE3377)
    "regressed": (0.267, 0.533, 1.0),                        # blue #4488FF
    "noncontiguous_across_boundary": (0.667, 0.4, 1.0),      # violet #AA66FF
    "noncontiguous_focus": (0.2, 0.133, 0.533),              # indigo (Tol muted #332288)
    "open_ring": (0.667, 0.267, 0.6),                        # purple (Tol muted #AA4499)
    "boundary_enhancement": (0.067, 0.467, 0.2),             # green (Tol muted #117733): seen on bright dura
    "contiguous_extension": (0.6, 0.6, 0.2),                 # olive (Tol muted #999933)
}
#: Every finding colour stands out from white, the report page and the bright enhancing dura or ependyma it is
#: drawn on, by at least this WCAG contrast ratio (the 3:1 asked of graphics; asserted by the tests).
MIN_CONTRAST_ON_WHITE = 3.0
#: Change findings are drawn as their grown and regressed portions; their own colour is that of the portions
#: that decide them.
FINDING["mixed_response"] = FINDING["grew"]
FINDING["concentric_growth"] = FINDING["eccentric_growth"] = FINDING["grew"]
FINDING["regression"] = FINDING["regressed"]
FINDING["change_indeterminate"] = FINDING["contiguous_extension"]

#: Words in a findings-segment name → the kind whose colour it takes (segment names: "t1 across falx",
#: "t1 non-contiguous", "t1 open ring ventricles", "t2 csf enhancement", "t1 contiguous extension", "t0-t1 grew").
_SEGMENT_WORDS = (("grew", "grew"), ("regressed", "regressed"), ("across", "noncontiguous_across_boundary"),
                  ("non-contiguous", "noncontiguous_focus"), ("open ring", "open_ring"),
                  ("contiguous extension", "contiguous_extension"), ("enhancement", "boundary_enhancement"))

MIN_DELTA_E = 25.0


def hex_colour(rgb) -> str:
    return "#" + "".join(f"{int(round(255 * max(0.0, min(1.0, c)))):02x}" for c in rgb[:3])


def finding_colour(kind: str) -> tuple:
    return FINDING.get(kind, FINDING["contiguous_extension"])


def segment_colour(name: str) -> tuple:
    """Colour of a findings segment from its name (see ``_SEGMENT_WORDS``)."""
    return next((FINDING[k] for word, k in _SEGMENT_WORDS if word in name), FINDING["contiguous_extension"])


#: The percentage of the prescription drawn green (and below it); the prescription is red, the table between.
ISODOSE_GREEN_PCT = 25.0
#: SlicerRT's table levels in Gy (without a prescription a level is placed among them).
SLICERRT_ISODOSE_GY = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
#: Above the prescription the red darkens to this at :data:`ISODOSE_DARKEST_PCT`.
ISODOSE_ABOVE = (0.6, 0.0, 0.0)
ISODOSE_DARKEST_PCT = 150.0


def isodose_colour(level_gy: float, prescription_gy: float | None = None) -> tuple:
    """One level's colour on the fixed scale (see the module notes): the same level of the same prescription is
    the same colour in every case."""
    table = np.asarray(SLICERRT_ISODOSE, float)
    top = len(table) - 1.0
    if prescription_gy:
        pct = 100.0 * float(level_gy) / float(prescription_gy)
        if pct > 100.0 + 1e-9:
            t = min(1.0, (pct - 100.0) / (ISODOSE_DARKEST_PCT - 100.0))
            return tuple(float(x) for x in table[-1] + t * (np.asarray(ISODOSE_ABOVE) - table[-1]))
        pos = top * (pct - ISODOSE_GREEN_PCT) / (100.0 - ISODOSE_GREEN_PCT)
    else:
        pos = float(np.interp(float(level_gy), SLICERRT_ISODOSE_GY, np.arange(len(table), dtype=float)))
    pos = min(top, max(0.0, pos))
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(table) - 1)
    return tuple(float(x) for x in table[lo] + (pos - lo) * (table[hi] - table[lo]))


def isodose_colours(levels_gy, prescription_gy: float | None = None) -> dict:
    """{level: colour} for a case's isodose levels (:func:`isodose_colour`)."""
    return {float(v): isodose_colour(v, prescription_gy) for v in levels_gy}


def _lab(rgb) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour in 0..1."""
    c = np.asarray(rgb[:3], float)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def contrast_ratio(a, b) -> float:
    """WCAG 2 contrast ratio of two sRGB colours in 0..1 (1 to 21)."""
    def lum(c):
        c = np.asarray(c[:3], float)
        c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(c @ np.array([0.2126, 0.7152, 0.0722]))
    lo, hi = sorted((lum(a), lum(b)))
    return (hi + 0.05) / (lo + 0.05)


def delta_e(a, b) -> float:
    """CIE76 colour difference."""
    return float(np.linalg.norm(_lab(a) - _lab(b)))
