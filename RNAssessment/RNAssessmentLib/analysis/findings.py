"""Typed results: findings and the assessment they belong to, serialised to ``findings.json``.

``findings.json`` (a contract, extend but do not rename)::

    {"case": id, "findings": [{"kind", "timepoint"?, "from"?, "to"?, "boundary"?, "centroid_ras", "volume_mm3",
                               "gap_mm"?, "geodesic_mm"?, "boundary_enhancing"?, "dose": {"mean_gy", "max_gy"},
                               "evidence": {...}, "favours": "RN"|"PD"|"neutral", "segment"?, "grew_mm3"?,
                               "regressed_mm3"?, "portions"?, "description", "lesions"?: ["L1", ...],
                               "timepoints"?: ["t1", "t2"], "at"?: {"t1": {...}, ...}}],
     "lesions"?: [{"id", "role", "first_seen", "events", "findings": ["F1", ...],
                   "timepoints": [{"timepoint", "volume_mm3", "longest_diameter_mm", "perpendicular_diameter_mm",
                                   "axial_slices", "parts", "measurable", "centroid_ras", "dose"?}]}],
     "summary": {...}}

Coordinates in findings are **RAS** mm (what a Slicer user reads in the slice views); see geometry.py.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import os

from .. import DISCLAIMER, __version__


class FindingKind(str, enum.Enum):
    """What a finding is (its ``kind`` in findings.json: the value). A str, so a kind compares equal to its name."""
    NONCONTIGUOUS_ACROSS_BOUNDARY = "noncontiguous_across_boundary"
    NONCONTIGUOUS_FOCUS = "noncontiguous_focus"
    CONTIGUOUS_EXTENSION = "contiguous_extension"
    BOUNDARY_ENHANCEMENT = "boundary_enhancement"
    OPEN_RING = "open_ring"
    MIXED_RESPONSE = "mixed_response"
    CONCENTRIC_GROWTH = "concentric_growth"
    ECCENTRIC_GROWTH = "eccentric_growth"
    REGRESSION = "regression"
    CHANGE_INDETERMINATE = "change_indeterminate"

    def __str__(self) -> str:
        return self.value

    @property
    def is_change(self) -> bool:
        """A lesion's change over an interval (``from``/``to``), not enhancement at a timepoint."""
        return self in CHANGE_KIND_SET


CHANGE_KIND_SET = frozenset({FindingKind.MIXED_RESPONSE, FindingKind.CONCENTRIC_GROWTH, FindingKind.ECCENTRIC_GROWTH,
                             FindingKind.REGRESSION, FindingKind.CHANGE_INDETERMINATE})
FINDING_KINDS = tuple(k.value for k in FindingKind)
#: The kinds that describe a lesion's change over an interval (``from``/``to``), not enhancement at a timepoint.
CHANGE_KINDS = tuple(k.value for k in FindingKind if k in CHANGE_KIND_SET)
#: Which way each kind points (mission.md): shown grouped in the report.
#: Contiguous enhancement is what both RN and PD look like, so it is reported without a direction.
FAVOURS = {"noncontiguous_across_boundary": "RN", "noncontiguous_focus": "neutral", "open_ring": "RN",
           "mixed_response": "RN",
           "boundary_enhancement": "PD", "contiguous_extension": "neutral", "concentric_growth": "PD",
           "eccentric_growth": "neutral", "regression": "neutral", "change_indeterminate": "neutral"}


@dataclasses.dataclass
class Finding:
    kind: str
    centroid_ras: tuple
    volume_mm3: float
    dose: dict
    evidence: dict = dataclasses.field(default_factory=dict)
    timepoint: str | None = None
    from_: str | None = None
    to: str | None = None
    boundary: str | None = None
    gap_mm: float | None = None
    geodesic_mm: float | None = None
    boundary_enhancing: bool | None = None
    grew_mm3: float | None = None
    regressed_mm3: float | None = None
    portions: list | None = None
    #: Name of this finding's segment in ``findings.seg.nrrd`` (the voxels it describes), when it has one.
    segment: str | None = None
    #: The finding in plain language with its evidence (see :func:`describe`).
    description: str | None = None
    #: The ids of the lesions it concerns (lesions.py: L1 the treated lesion, L2 ... foci that appeared later).
    lesions: list | None = None
    #: A focus's finding: every timepoint it holds at, in time order (:func:`one_per_observation`); ``timepoint``
    #: is the last of them, the one the finding's numbers describe.
    timepoints: list | None = None
    #: ... and its measurements at each of them: {label: {volume_mm3, gap_mm, geodesic_mm, boundary_enhancing,
    #: segment, centroid_ras, dose}}.
    at: dict | None = None

    def __post_init__(self):
        try:
            self.kind = FindingKind(self.kind).value
        except ValueError:
            raise ValueError(f"unknown finding kind '{self.kind}'") from None

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        for k, v in dataclasses.asdict(self).items():
            if k == "kind" or v is None:
                continue
            d["from" if k == "from_" else k] = _clean(v)
        d["favours"] = FAVOURS[self.kind]
        return d

    def when(self) -> str:
        """When it holds, in a label: 't1, t2' (a focus seen at both), 't1' or 't0→t1' (a change)."""
        return when_label({"timepoints": self.timepoints, "timepoint": self.timepoint, "from": self.from_,
                           "to": self.to})

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        """The finding a findings.json entry describes (``favours`` follows from the kind; keys a later version
        added are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {("from_" if k == "from" else k): v for k, v in d.items() if ("from_" if k == "from" else k) in names}
        if isinstance(kw.get("centroid_ras"), list):
            kw["centroid_ras"] = tuple(kw["centroid_ras"])
        kw.setdefault("centroid_ras", ())
        kw.setdefault("volume_mm3", 0.0)
        kw.setdefault("dose", {})
        return cls(**kw)


#: The order findings are listed and numbered in (F1, F2, ...) everywhere: those that favour RN, then those that
#: raise concern for PD, then the rest; within a group, in the order the analysis found them (timepoint order).
DISPLAY_GROUPS = ("RN", "PD", "neutral")


def when_label(d: dict) -> str:
    """A findings.json entry's :meth:`Finding.when`: 't1, t2', 't1' or 't0→t1'."""
    if d.get("timepoints"):
        return ", ".join(d["timepoints"])
    return d.get("timepoint") or f"{d.get('from')}→{d.get('to')}"


#: The kinds that describe one focus apart from the treated lesion, observed at a timepoint.
FOCUS_KINDS = ("noncontiguous_across_boundary", "noncontiguous_focus")


def _at_record(f: Finding) -> dict:
    d = f.dose or {}
    return {"volume_mm3": f.volume_mm3, "gap_mm": f.gap_mm, "geodesic_mm": f.geodesic_mm,
            "boundary_enhancing": f.boundary_enhancing, "segment": f.segment, "centroid_ras": list(f.centroid_ras),
            "dose": {k: d[k] for k in ("mean_gy", "max_gy", "highest_enclosing_isodose_gy") if k in d}}


def one_per_observation(findings: list, order: list) -> list:
    """One finding per observation: a focus (one lesion id, not the treated lesion) found the same way (kind and
    boundary) at several timepoints is one finding, not one per timepoint. It keeps the numbers of the last
    timepoint it holds at (its present state), lists ``timepoints`` and each one's measurements in ``at``, and
    takes the place of its first occurrence (a focus seen once is left as it is). ``order``: the timepoint labels
    in time order. Findings that name no lesion, or several, are left as they are (nothing says they are one
    observation)."""
    def key(f):
        return ((f.kind, f.boundary, f.lesions[0]) if f.kind in FOCUS_KINDS and f.timepoint and f.lesions
                and len(f.lesions) == 1 and f.lesions[0] != "L1" else None)
    groups: dict = {}                   # observation -> its findings, in the input's order
    for f in findings:
        if key(f) is not None:
            groups.setdefault(key(f), []).append(f)

    def merged(seen: list) -> Finding:
        seen = sorted(seen, key=lambda x: order.index(x.timepoint) if x.timepoint in order else len(order))
        if len(seen) == 1:
            return seen[0]
        last = dataclasses.replace(seen[-1])
        last.timepoints = [x.timepoint for x in seen]
        last.at = {x.timepoint: _at_record(x) for x in seen}
        return last
    # Each observation where its first finding stood; the findings of one observation after it are dropped.
    return [f if key(f) is None else merged(groups[key(f)]) for f in findings
            if key(f) is None or groups[key(f)][0] is f]


def in_display_order(findings: list) -> list:
    return sorted(findings, key=lambda f: DISPLAY_GROUPS.index(FAVOURS[f.kind]))


def finding_segments(maps: Maps) -> dict:
    """Every finding's voxels on the planning grid by segment name: the boundary findings' masks and, for each
    interval a→b, 'a-b grew' and 'a-b regressed' (the findings segmentation, in files, scenes and reports)."""
    masks = dict(maps.finding_masks)
    for (a, b), lab in maps.change_maps.items():
        for value, kind in ((1, "grew"), (2, "regressed")):
            if (lab == value).any():
                masks[f"{a}-{b} {kind}"] = lab == value
    return masks


def segment_timepoint(name: str) -> str:
    """The timepoint whose scan shows a findings segment (:func:`finding_segments`' names): a boundary finding's
    own ("t1 across falx" → t1); a grown portion the later timepoint's ("t0-t1 grew" → t1), a regressed portion
    the earlier one's ("t0-t1 regressed" → t0)."""
    first = name.split(" ", 1)[0]
    if "-" in first and name.endswith((" grew", " regressed")):
        before, after = first.split("-", 1)
        return after if name.endswith(" grew") else before
    return first


#: Each kind in words (titles in the report, the review, the Slicer panel and the cohort page).
KIND_TITLES = {"noncontiguous_across_boundary": "Non-contiguous enhancement across a boundary",
               "noncontiguous_focus": "Non-contiguous enhancement", "open_ring": "Open ring",
               "boundary_enhancement": "Boundary (meningeal/ependymal) enhancement",
               "contiguous_extension": "Contiguous enhancement", "mixed_response": "Mixed response",
               "concentric_growth": "Growth as a whole", "eccentric_growth": "Growth at part of the margin",
               "regression": "Regression",
               "change_indeterminate": "Change indeterminate at this resolution"}


BOUNDARY_NAMES = {"falx": "falx", "tentorium": "tentorium", "ventricles": "ventricular wall", "csf": "sulcus (CSF)"}
#: What lines each boundary and would enhance if tumour spread along it.
LINING = {"falx": "meninges (falx)", "tentorium": "meninges (tentorium)", "ventricles": "ependyma",
          "csf": "leptomeninges of the sulcus"}


def _when(label, days: dict) -> str:
    d = days.get(label)
    return f"{label} (day {d})" if d is not None else f"{label}"


def _dose_phrase(dose: dict) -> str:
    if not dose:
        return "no dose available"
    mean, mx = dose.get("mean_gy"), dose.get("max_gy")
    lv = dose.get("highest_enclosing_isodose_gy")
    stats = f"mean {mean:.1f} Gy, max {mx:.1f} Gy" if mean is not None and mx is not None else ""
    if lv is not None:
        return f"inside the {lv:g} Gy isodose ({stats})"
    frac = dose.get("fraction_inside_isodose") or {}
    inside = [(float(k), v) for k, v in frac.items() if v and v > 0]
    if inside:
        k, v = max(inside)
        return f"{100 * v:.0f} % inside the {k:g} Gy isodose ({stats})"
    return f"outside the isodose lines shown ({stats})" if stats else "outside the isodose lines shown"


def _ring_offsets(ev: dict) -> str:
    """Where the spared layer and the enhancement lie relative to the treated lesion (open ring evidence, mm)."""
    ecc, shift = ev.get("eccentricity_mm"), ev.get("centroid_shift_mm")
    if ecc is None or shift is None:
        return ""
    return (f", the spared layer centred {ecc:.1f} mm from where the treated lesion meets the wall and the "
            f"enhancement's centre {shift:.1f} mm from the treated lesion's")


@dataclasses.dataclass
class _Words:
    """What every sentence of :func:`describe` draws on."""
    days: dict
    cc: str          # the finding's volume in cm³
    where: str       # ", right hemisphere" or ""
    b: str           # the boundary in words
    ev: dict
    #: the focus this finding is about, when lesions were followed: (id, first seen, its volume then and at the
    #: finding's timepoint, mm³: the lesion table's)
    focus: tuple | None = None
    #: for a change, the lesions it concerns: ((id, volume at "from" mm³, volume at "to" mm³), ...)
    lesions: tuple = ()


def _focus_opening(f: "Finding", w: _Words) -> str:
    """'New 0.12 cm³ enhancing focus L2 at t1' where the focus first appears; later 'Enhancing focus L2, first
    seen at t1 (0.12 cm³), 0.69 cm³ at t2': a focus is new once."""
    if w.focus is None:
        return f"New {w.cc} enhancing focus at {_when(f.timepoint, w.days)}"
    lid, first, first_mm3, now_mm3 = w.focus
    if first != f.timepoint:
        return (f"Enhancing focus {lid}, first seen at {_when(first, w.days)} ({first_mm3 / 1000.0:.2f} cm³), "
                f"{now_mm3 / 1000.0:.2f} cm³ at {_when(f.timepoint, w.days)}")
    return f"New {now_mm3 / 1000.0:.2f} cm³ enhancing focus {lid} at {_when(f.timepoint, w.days)}"


def _across_sentence(f: "Finding", w: _Words) -> str:
    path = (f"geodesic path around it {f.geodesic_mm:.0f} mm" if f.geodesic_mm is not None
            else "no path around it within the analysed region")
    lining = LINING.get(f.boundary or "", "boundary")
    enh = ("enhancement of the intervening " + lining if f.boundary_enhancing
           else "no enhancement of the intervening " + lining)
    before = w.ev.get("separated_as_before")
    seen = (f", measured on the part that was the focus at {_when(before['timepoint'], w.days)} "
            f"({100 * before['segment_crossing_fraction'][f.boundary]:.0f} % of its segments to the lesion cross "
            f"it, {100 * w.ev['segment_crossing_fraction'].get(f.boundary, 0.0):.0f} % of the whole focus's)"
            if before else "")
    return (f"{_focus_opening(f, w)}{w.where}, {f.gap_mm:.1f} mm from the treated "
            f"lesion across the {w.b}{seen}{_parts(f, w)}{_earlier(f, w)}; {path}; {enh}; {_dose_phrase(f.dose)}.")


def _parts(f: "Finding", w: _Words) -> str:
    """', in 2 parts at t2 (day 360) (the further part: 124 mm³, 17.8 mm from the lesion, 25 % of its segments to
    it crossing the sulcus (CSF))': the parts of the same lesion folded into this focus
    (boundaries.fold_parts_of_one_focus)."""
    parts = w.ev.get("parts") or []
    if not parts:
        return ""
    each = [f"{p['volume_mm3']:.0f} mm³, {p['euclidean_gap_mm']:.1f} mm from the lesion, "
            f"{100 * (p.get('segment_crossing_fraction') or {}).get(f.boundary, 0.0):.0f} % of its segments to it "
            f"crossing the {w.b}" for p in parts]
    return (f", in {len(parts) + 1} parts at {_when(f.timepoint, w.days)} (the further "
            f"{'part' if len(parts) == 1 else 'parts'}: " + "; ".join(each) + ")")


def _earlier(f: "Finding", w: _Words, how: str = "across it too") -> str:
    """', across it too at t1 (day 200), 4.8 mm away': the other timepoints this focus's finding holds at, with
    their gaps."""
    before = [t for t in (f.timepoints or []) if t != f.timepoint]
    if not before:
        return ""
    parts = [f"{_when(t, w.days)}, {(f.at or {}).get(t, {}).get('gap_mm') or 0.0:.1f} mm away" for t in before]
    return f", {how} at " + " and at ".join(parts)


def _focus_sentence(f: "Finding", w: _Words) -> str:
    if f.boundary:
        return (f"{_focus_opening(f, w)}{w.where}, {f.gap_mm:.1f} mm from the "
                f"treated lesion across the {w.b}{_earlier(f, w)}, but the {LINING.get(f.boundary, w.b)} is not "
                f"spared ({w.ev.get('boundary_not_spared', 'it enhances')}), so the focus is not counted as a sign of RN; "
                f"{_dose_phrase(f.dose)}.")
    return (f"{_focus_opening(f, w)}{w.where}, {f.gap_mm:.1f} mm from the treated "
            f"lesion{_earlier(f, w, 'apart from it too')}, with no boundary structure between them; "
            f"{_dose_phrase(f.dose)}.")


def _boundary_sentence(f: "Finding", w: _Words) -> str:
    ev, b = w.ev, w.b
    t_near, t_far = ev.get("fold_thickness_near_mm"), ev.get("fold_thickness_far_mm")
    near, far = ev.get("fold_enhancing_fraction_near"), ev.get("fold_enhancing_fraction_far")
    if t_near is not None and t_far is not None:
        sheet = (f", the enhancing layer across the {b} {t_near:.1f} mm thick next to the lesion against "
                 f"{t_far:.1f} mm 15-40 mm away")
    elif ev.get("fold_dark_away_from_lesion"):
        sheet = f", where the {b} shows no enhancement 15-40 mm away"
    elif near is not None and far is not None:
        sheet = (f", {100 * near:.0f} % of the {b}'s sheet enhancing next to the lesion against {100 * far:.0f} % "
                 f"15-40 mm away")
    else:
        sheet = ""
    reach = ev.get("extent_beyond_edge_mm")
    beyond = f", reaching {reach:.1f} mm beyond the lesion's edge" if reach is not None else ""
    return (f"Enhancement of the {LINING.get(f.boundary or '', b)} next to the lesion at "
            f"{_when(f.timepoint, w.days)}: {w.cc} of boundary voxels{beyond}{sheet}.")


def _ring_sentence(f: "Finding", w: _Words) -> str:
    ev = w.ev
    return (f"Open ring at {_when(f.timepoint, w.days)}{w.where}: {100 * ev.get('open_fraction', 0):.0f} % of the "
            f"lesion's rim facing the {w.b} does not enhance ({ev.get('open_layer_voxels', 0)} non-enhancing "
            f"voxels under the rim, {ev.get('enhancement_touching_voxels', 0)} enhancing voxels touching it)"
            f"{_ring_offsets(ev)}; {_dose_phrase(f.dose)}.")


def _extension_sentence(f: "Finding", w: _Words) -> str:
    return (f"Enhancement at {_when(f.timepoint, w.days)} contiguous with the treated lesion extends {w.cc} beyond "
            f"its margin at SRS; {_dose_phrase(f.dose)}.")


def _indeterminate_reason(ev: dict) -> str:
    low = ev.get("sub_resolution_portions") or []
    near = ev.get("foci_within_resolution") or []
    why = [_below_phrase([p for p in low if p.get("kind") == k], k, ev.get("min_core_mm3", 20.0))
           for k in ("grew", "regressed")]
    why = [w for w in why if w]
    if near:
        x = min(near, key=lambda n: n.get("gap_mm", 0.0))
        why.append(f"a new focus lies {x.get('gap_mm', 0.0):.1f} mm from the earlier lesion "
                   f"({x.get('direction') or 'no single direction'}), within the "
                   f"{x.get('uncertainty_mm', 0.0):.1f} mm that the voxels along that gap and the registration "
                   f"leave uncertain, so it cannot be told from a lobe that grew")
    return "; ".join(why) or "no portion reaches beyond what the resolution allows"


def _change_sentence(f: "Finding", w: _Words) -> str:
    ev, where = w.ev, w.where
    span = f"between {_when(f.from_, w.days)} and {_when(f.to, w.days)}"
    pct = ev.get("total_change_pct")
    total = f"total volume {pct:+.0f} %" if pct is not None else "total volume new"
    if w.lesions:
        # Each lesion's own change first: a regression of L1 is a regression even when a focus L2 that appeared
        # meanwhile makes the enhancing total grow.
        each = "; ".join(f"{lid} {a / 1000:.2f} → {b / 1000:.2f} cm³" + (f" ({100 * (b - a) / a:+.0f} %)" if a > 0
                                                                          else " (new)")
                         for lid, a, b in w.lesions)
        total = f"{each}; enhancing total " + (f"{pct:+.0f} %" if pct is not None else "new")
    if ev.get("new_foci_not_counted_mm3"):
        # The total holds the new foci too (a regression can read +108 % when a focus appeared meanwhile).
        total += f", new foci included ({ev['new_foci_not_counted_mm3'] / 1000:.2f} cm³, not counted as growth)"
    portions = f.portions or []
    if f.kind == "mixed_response":
        return (f"Mixed response {span}{where}: {_portions_phrase(portions, 'grew', f.grew_mm3)} while "
                f"{_portions_phrase(portions, 'regressed', f.regressed_mm3)}; {total}.")
    if f.kind == "change_indeterminate":
        return (f"Change {span}{where}{',' if where else ''} is indeterminate at this resolution: "
                f"{_indeterminate_reason(ev)}; {total}.")
    moved = ev.get("surface_moved_out_fraction")
    moved = f"{100 * moved:.0f} %" if moved is not None else "none"
    if f.kind == "concentric_growth":
        return (f"Growth as a whole {span}{where}: {_portions_phrase(portions, 'grew', f.grew_mm3)}, the surface "
                f"moved out over {moved} of the earlier lesion's measurable surface, with no portion regressing "
                f"beyond the resolution; {total}.")
    if f.kind == "eccentric_growth":
        return (f"Growth at part of the margin {span}{where}: {_portions_phrase(portions, 'grew', f.grew_mm3)}, "
                f"the surface moved out over {moved} of the earlier lesion's measurable surface (growth as a "
                f"whole: {100 * ev.get('concentric_surface_fraction', 0):.0f} % or more), with no portion regressing "
                f"beyond the resolution; growth at one margin is seen both in recurrence and in RN, so it is not "
                f"weighed either way; {total}.")
    return (f"Regression {span}{where}: {_portions_phrase(portions, 'regressed', f.regressed_mm3)}, with no "
            f"portion growing beyond the resolution; {total}.")


#: The sentence for each kind (the change kinds share one).
_SENTENCES = {"noncontiguous_across_boundary": _across_sentence, "noncontiguous_focus": _focus_sentence,
              "boundary_enhancement": _boundary_sentence, "open_ring": _ring_sentence,
              "contiguous_extension": _extension_sentence}


def describe(f: "Finding", days: dict | None = None, side: str | None = None, focus: tuple | None = None,
             lesions: tuple = ()) -> str:
    """One sentence a neuroradiologist can read aloud: what was measured, with mm, cm³ and Gy.

    ``days``: {timepoint label: days since SRS}; ``side``: 'right'/'left' hemisphere of the finding, if known;
    ``focus``: for a focus followed as a lesion, (its id, the timepoint it was first seen at, its volume then and
    at the finding's timepoint);
    ``lesions``: for a change, ((lesion id, volume at its start, volume at its end), ...)."""
    words = _Words(days=days or {}, cc=f"{f.volume_mm3 / 1000.0:.2f} cm³", where=f", {side} hemisphere" if side else "",
                   b=BOUNDARY_NAMES.get(f.boundary or "", f.boundary or ""), ev=f.evidence or {}, focus=focus,
                   lesions=tuple(lesions))
    return _SENTENCES.get(f.kind, _change_sentence)(f, words)


def plural(n: int, word: str) -> str:
    """'1 portion', '2 portions' (every sentence and page that counts something)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _decisive(portions: list) -> dict:
    """The portion that reaches farthest beyond the depth its direction requires (the one a reader checks)."""
    return max(portions, key=lambda p: (p.get("depth_mm") or 0.0) - (p.get("required_depth_mm") or 0.0))


def _portions_phrase(portions: list, kind: str, volume_mm3: float | None) -> str:
    """'2 portions grew (1.20 cm³; up to 5.0 mm beyond the earlier surface in the slice plane, where 2.5 mm is
    needed)': the numbers the decision used, at the portion that reaches farthest beyond what is needed."""
    mine = [p for p in portions if p.get("kind") == kind]
    verb, surface = ("grew", "earlier") if kind == "grew" else ("regressed", "later")
    if not mine:
        return f"no portion {verb}"
    p = _decisive(mine)
    return (f"{plural(len(mine), 'portion')} {verb} ({(volume_mm3 or 0.0) / 1000:.2f} cm³; up to "
            f"{p.get('depth_mm') or 0.0:.1f} mm beyond the {surface} surface "
            f"({p.get('direction') or 'no single direction'}), where {p.get('required_depth_mm') or 0.0:.1f} mm is "
            f"needed)")


def _below_phrase(low: list, kind: str, min_core_mm3: float) -> str:
    """Why portions of one kind did not count: how far they reach against the depth needed along their direction,
    or how little of them lies beyond it (at least ``min_core_mm3`` must)."""
    if not low:
        return ""
    p = _decisive(low)
    noun = "grown" if kind == "grew" else "regressed"
    surface = "earlier" if kind == "grew" else "later"
    where = p.get("direction") or "no single direction"
    if (p.get("depth_mm") or 0.0) >= (p.get("required_depth_mm") or 0.0):
        return (f"{noun} portions reach beyond the {p.get('required_depth_mm', 0.0):.1f} mm needed ({where}) over "
                f"only {p.get('beyond_resolution_mm3', 0.0):.0f} mm³ (at least {min_core_mm3:.0f} mm³ must)")
    return (f"{noun} portions reach at most {p.get('depth_mm', 0.0):.1f} mm beyond the {surface} surface ({where}), "
            f"less than the {p.get('required_depth_mm', 0.0):.1f} mm that the voxels along that direction and the "
            f"registration can produce")


def _clean(v):
    """JSON-safe copy: tuples → lists, numpy scalars → floats, NaN → None, floats rounded to 0.01."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 3)
    return v


@dataclasses.dataclass
class Maps:
    """What an assessment measured besides its findings, in memory for the writers (files, report, DICOM, the
    Slicer scene); none of it is in findings.json. Images and arrays are on the planning grid (LPS)."""
    #: analysis.dose.StructureStats: the treated lesion, each timepoint's lesion (dvh.csv)
    dose_stats: list = dataclasses.field(default_factory=list)
    #: analysis.dose.StructureStats: the treated lesion and each finding with voxels, named "F<n> <segment>" in
    #: display order (the report's dose-volume histograms)
    finding_dose_stats: list = dataclasses.field(default_factory=list)
    #: analysis.dose.IsodoseLevel, highest first (surfaces in LPS); colours are the output's
    isodose: list = dataclasses.field(default_factory=list)
    #: anatomy.atlas.AtlasFit the automatic boundaries rest on (None when every boundary was given)
    atlas_fit: object | None = None
    #: boundary kind → mask image: every boundary used, given or automatic
    boundaries: dict = dataclasses.field(default_factory=dict)
    #: boundary kind → mask image: those estimated here (boundaries_auto.seg.nrrd)
    auto_boundaries: dict = dataclasses.field(default_factory=dict)
    #: the compartments (cerebral hemispheres, infratentorial) of the automatic anatomy, or None
    compartments: object | None = None
    #: timepoint label → its post-contrast T1 resampled onto the planning grid
    t1_planning: dict = dataclasses.field(default_factory=dict)
    #: timepoint label → enhancement left out as normal anatomy (vessels, choroid plexus, dura), with reasons
    left_out: dict = dataclasses.field(default_factory=dict)
    #: segment name → bool array: each boundary finding's voxels
    finding_masks: dict = dataclasses.field(default_factory=dict)
    #: (from, to) → uint8 array: 1 grew, 2 regressed
    change_maps: dict = dataclasses.field(default_factory=dict)
    #: timepoint label → bool array: the lesion at that timepoint
    lesion_masks: dict = dataclasses.field(default_factory=dict)
    #: the lesions followed over time (lesions.Lesion, their masks included)
    lesions: list = dataclasses.field(default_factory=list)

    def segments(self) -> dict:
        """Every finding's voxels by segment name (see :func:`finding_segments`)."""
        return finding_segments(self)


#: RANO-BM measurable disease: longest diameter ≥ 10 mm, perpendicular ≥ 5 mm, on two or more axial slices.
MEASURABLE_LONGEST_MM = 10.0
MEASURABLE_PERPENDICULAR_MM = 5.0
MEASURABLE_SLICES = 2


@dataclasses.dataclass
class LesionAt:
    """One lesion at one timepoint."""
    timepoint: str
    volume_mm3: float
    longest_mm: float
    perpendicular_mm: float
    axial_slices: int
    parts: int
    centroid_ras: tuple
    dose: dict | None = None
    #: solid, ring, linear or faint (lesions.pattern); None without an enhancement map
    pattern: str | None = None
    enhancing_fraction: float | None = None

    @property
    def present(self) -> bool:
        return self.volume_mm3 > 0

    @property
    def measurable(self) -> bool:
        return (self.longest_mm >= MEASURABLE_LONGEST_MM and self.perpendicular_mm >= MEASURABLE_PERPENDICULAR_MM
                and self.axial_slices >= MEASURABLE_SLICES)

    def to_dict(self) -> dict:
        d = {"timepoint": self.timepoint, "volume_mm3": round(self.volume_mm3, 3),
             "longest_diameter_mm": round(self.longest_mm, 2), "perpendicular_diameter_mm":
             round(self.perpendicular_mm, 2), "axial_slices": self.axial_slices, "parts": self.parts,
             "measurable": self.measurable, "centroid_ras": [round(float(v), 3) for v in self.centroid_ras]}
        if self.dose is not None:
            d["dose"] = self.dose
        if self.pattern is not None:
            d["pattern"] = self.pattern
            d["enhancing_fraction"] = round(float(self.enhancing_fraction), 3)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LesionAt":
        return cls(d["timepoint"], float(d.get("volume_mm3") or 0.0), float(d.get("longest_diameter_mm") or 0.0),
                   float(d.get("perpendicular_diameter_mm") or 0.0), int(d.get("axial_slices") or 0),
                   int(d.get("parts") or 0), tuple(d.get("centroid_ras") or ()), d.get("dose"), d.get("pattern"),
                   d.get("enhancing_fraction"))


@dataclasses.dataclass
class Lesion:
    """A lesion followed over the timepoints: ``treated`` at the SRS timepoint, otherwise a focus first seen
    later. ``at``: timepoint label → :class:`LesionAt` (every timepoint from the first seen on; a lesion gone at a
    timepoint has volume 0 there). ``events``: splits and merges in words. ``findings``: the F# that name it."""
    id: str
    treated: bool
    first_seen: str
    at: dict = dataclasses.field(default_factory=dict)
    events: list = dataclasses.field(default_factory=list)
    findings: list = dataclasses.field(default_factory=list)
    #: where it lies (lesions.locate): the atlas region holding most of it when first seen ("left frontal lobe"),
    #: its side (left, right, midline) and compartment (supratentorial, infratentorial)
    location: str | None = None
    side: str | None = None
    compartment: str | None = None
    #: timepoint label → bool array on the SRS grid (in memory only)
    masks: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def role(self) -> str:
        return "treated lesion" if self.treated else "new focus"

    def to_dict(self) -> dict:
        d = {"id": self.id, "role": self.role, "first_seen": self.first_seen}
        d.update({k: v for k, v in (("location", self.location), ("side", self.side),
                                    ("compartment", self.compartment)) if v is not None})
        return {**d, "timepoints": [a.to_dict() for a in self.at.values()], "events": list(self.events),
                "findings": list(self.findings)}

    @classmethod
    def from_dict(cls, d: dict) -> "Lesion":
        """The lesion a findings.json entry describes (without its masks)."""
        at = [LesionAt.from_dict(x) for x in d.get("timepoints") or []]
        return cls(id=d["id"], treated=d.get("role") == "treated lesion", first_seen=d.get("first_seen"),
                   at={a.timepoint: a for a in at}, events=list(d.get("events") or []),
                   findings=list(d.get("findings") or []), location=d.get("location"), side=d.get("side"),
                   compartment=d.get("compartment"))


@dataclasses.dataclass
class Assessment:
    """One case assessed: its findings (each with its evidence and dose), the summary of findings.json, warnings,
    and the maps the writers draw (:class:`Maps`, in memory only)."""
    case_id: str
    findings: list
    summary: dict
    warnings: list = dataclasses.field(default_factory=list)
    #: Where the assessed images are (``{"manifest": path}`` or ``{"dicom": folder, "import_options": {...}}``), so
    #: ``rnassess review`` can show them beside the outputs; empty for a de-identified output (paths may identify).
    inputs: dict = dataclasses.field(default_factory=dict)
    maps: Maps = dataclasses.field(default_factory=Maps, repr=False, compare=False)
    #: Each lesion followed over time (lesions.Lesion; read back from a findings.json: the same without masks).
    lesions: list = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        d = {"case": self.case_id, "findings": [f.to_dict() for f in self.findings],
             "summary": _clean(self.summary), "warnings": list(self.warnings),
             "disclaimer": DISCLAIMER, "software": f"RNAssessment {__version__}"}
        if self.lesions:
            d["lesions"] = [_clean(les.to_dict()) for les in self.lesions]
        if self.inputs:
            d["inputs"] = dict(self.inputs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Assessment":
        """The assessment a findings.json describes (its maps are not in the file: empty)."""
        if not isinstance(d, dict) or not isinstance(d.get("findings"), list) or not isinstance(d.get("summary"), dict):
            raise ValueError("not an RNAssessment findings.json: it needs 'findings' (a list) and 'summary'")
        return cls(case_id=str(d.get("case", "")), findings=[Finding.from_dict(f) for f in d["findings"]],
                   summary=d["summary"], warnings=list(d.get("warnings") or []), inputs=dict(d.get("inputs") or {}),
                   lesions=[Lesion.from_dict(x) for x in d.get("lesions") or []])

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Assessment":
        """:meth:`from_dict` of the findings.json at ``path``."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def write(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
