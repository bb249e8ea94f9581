"""Lesions over time, and RANO-BM as published (Lin et al., Lancet Oncol 2015;16:e270-78).

A neuroradiologist reads a follow-up lesion by lesion. Every enhancing component at every timepoint (on the SRS
grid, after registration) is assigned to a lesion: the treated lesion(s) at the SRS timepoint (L1, L2 ... by
volume) and each focus that appears later (the next id, first seen at its timepoint). Parts of the SRS
timepoint's lesion within change.GROUP_MM of each other are one treated lesion. A later component continues a
lesion when it overlaps that lesion at an earlier timepoint. Otherwise a part of the lesion extent belongs to the
nearest treated lesion (the boundary analysis found it contiguous), and a non-contiguous focus (boundaries.py)
continues an earlier focus within the interval's uncertainty of its latest extent (half the coarser voxel of the two timepoints
plus the registrations' uncertainty) or is a new lesion: a focus never continues the treated lesion by distance
alone, since lying apart from it is what makes it a focus. Two components of one lesion at a timepoint are a
split; one component reaching two lesions is a merge (it continues the lower id); both are recorded.

Each lesion at each timepoint: volume (partial voxels shared out among the lesions, so they add up to the
segmentation), the longest axial diameter and the one perpendicular to it (RANO-BM's measurement; a lesion in
parts measured across its parts, as one extent), the axial slices it spans, whether it is measurable, its dose, and
how it enhances (solid, ring, linear, faint).

Coordinates: arrays are in the case's canonical layout (geometry.CANONICAL_ORIENTATION, LPS: axis 2 runs to the
patient's head, so an array's [:, :, k] is an axial slice); centroids are reported in RAS like every finding.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..anatomy.atlas import EXTRACEREBRAL_CSF, INFRATENTORIAL, VENTRICLES
from ..io import geometry as geo
from .change import lesion_groups
from .findings import Lesion, LesionAt  # noqa: F401  (the typed results live in findings.py)

#: RANO-BM: up to five target lesions, chosen by size at baseline.
MAX_TARGETS = 5
#: RANO-BM: PR is a ≥ 30 % decrease of the sum of target diameters from baseline; PD a ≥ 20 % increase from the
#: nadir with at least one lesion ≥ 5 mm larger (absolute).
PR_DECREASE = 0.30
PD_INCREASE = 0.20
PD_ABSOLUTE_MM = 5.0
#: Enhancement pattern (:func:`pattern`): the wall of a ring is the lesion's outer RING_WALL_MM; a ring has a core
#: beyond it of at least RING_MIN_CORE_MM3 that enhances less than half, inside a wall that enhances at least half.
#: Linear: the perpendicular axial diameter at most LINEAR_RATIO of the longest.
RING_WALL_MM = 2.0
RING_MIN_CORE_MM3 = 8.0
LINEAR_RATIO = 0.3
#: Faint: less than this share of the lesion's voxels enhance (a drawn remnant that barely enhances).
FAINT_MAX = 0.3
#: The share of a lesion's voxels whose dose an isodose level must enclose to be the lesion's "enclosing" level
#: (D98: the 2 % coldest voxels of a blurred edge left aside).
ENCLOSED_FRACTION = 0.98


def _parts(mask: np.ndarray, ref: sitk.Image) -> list[np.ndarray]:
    """The connected components (26-connected) of ``mask``, largest first."""
    if mask is None or not mask.any():
        return []
    lab = geo.array_view(sitk.ConnectedComponent(geo.image_from_array(mask.astype(np.uint8), ref), True))
    parts = [lab == i for i in range(1, int(lab.max()) + 1)]
    return sorted(parts, key=lambda m: -int(m.sum()))


def axial_diameters(mask: np.ndarray, ref: sitk.Image) -> tuple[float, float]:
    """Longest diameter on any axial slice (mm, edge to edge) and the extent perpendicular to it on that slice."""
    sp = np.array(ref.GetSpacing())
    best = (0.0, 0.0)
    for k in np.nonzero(mask.any(axis=(0, 1)))[0]:
        sl = mask[:, :, k]
        pts = np.argwhere(sl)
        if len(pts) > 400:
            # Boundary pixels carry the extremes.
            inner = sl[1:-1, 1:-1] & sl[:-2, 1:-1] & sl[2:, 1:-1] & sl[1:-1, :-2] & sl[1:-1, 2:]
            edge = sl.copy()
            edge[1:-1, 1:-1] &= ~inner
            pts = np.argwhere(edge)
        xy = pts * sp[:2]
        d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(np.argmax(d2), d2.shape)
        longest = float(np.sqrt(d2[i, j])) + float(sp[0])     # centre-to-centre + one pixel: edge to edge
        if longest > best[0]:
            u = (xy[j] - xy[i]) / max(np.linalg.norm(xy[j] - xy[i]), 1e-9)
            perp = np.array([-u[1], u[0]])
            proj = xy @ perp
            best = (longest, float(proj.max() - proj.min()) + float(sp[0]))
    return best


def _territories(masks: list, fraction: np.ndarray, ref: sitk.Image) -> list:
    """Each voxel the segmentation covers in part (``fraction`` > 0) given to the lesion whose extent it touches
    (lesion extents grown voxel by voxel into the partly covered voxels, three steps: a partial voxel lies next to
    the extent that holds the voxels covered at least half): the lesions' volumes then add up to the
    segmentation's."""
    lab = np.zeros(fraction.shape, np.uint16)
    for n, m in enumerate(masks, 1):
        lab[m & (lab == 0)] = n
    box = geo.crop_box((fraction > 0) | (lab > 0), 3)
    if box is None:
        return [np.zeros(fraction.shape, bool) for _ in masks]
    sub_lab, partial = lab[box], fraction[box] > 0
    for _ in range(3):
        grown = geo.array_view(sitk.GrayscaleDilate(geo.image_from_array(sub_lab), [1, 1, 1]))
        take = partial & (sub_lab == 0) & (grown > 0)
        if not take.any():
            break
        sub_lab = np.where(take, grown, sub_lab)
    out = []
    for n in range(1, len(masks) + 1):
        t = np.zeros(fraction.shape, bool)
        t[box] = sub_lab == n
        out.append(t)
    return out


def pattern(mask: np.ndarray, enhancing: np.ndarray, ref: sitk.Image, longest_mm: float,
            perpendicular_mm: float) -> tuple[str, float]:
    """How a lesion enhances: "faint" (less than FAINT_MAX of its voxels enhance), "linear" (perpendicular ≤
    LINEAR_RATIO × longest axial diameter), "ring" (a core deeper than RING_WALL_MM, of at least RING_MIN_CORE_MM3,
    enhancing less than half, in a wall enhancing at least half), else "solid"; and the share of its voxels that
    enhance."""
    enh = enhancing & mask
    fraction = float(enh.sum() / max(int(mask.sum()), 1))
    if fraction < FAINT_MAX:
        return "faint", fraction
    if longest_mm > 0 and perpendicular_mm <= LINEAR_RATIO * longest_mm:
        return "linear", fraction
    box = geo.crop_box(mask, 1)
    spacing = tuple(float(v) for v in ref.GetSpacing())
    sub = geo.image_from_array(mask[box].astype(np.uint8))
    sub.SetSpacing(spacing)
    # A cavity the lesion encloses (a resection cavity drawn as its rim, a necrotic core left out) is inside it.
    filled = sitk.BinaryFillhole(sub)
    outside = sitk.Cast(filled == 0, sitk.sitkUInt8)
    # Depth below the lesion's edge: to the nearest voxel outside it, less the half voxel between its centre and
    # the edge.
    depth = geo.array_view(sitk.SignedMaurerDistanceMap(outside, insideIsPositive=False, squaredDistance=False,
                                                        useImageSpacing=True)) - 0.5 * min(spacing)
    inside = geo.array_view(filled) > 0
    core = inside & (depth > RING_WALL_MM)
    wall = inside & ~core
    if core.sum() * geo.voxel_volume_mm3(ref) >= RING_MIN_CORE_MM3 and wall.any():
        if enh[box][core].mean() < 0.5 <= enh[box][wall].mean():
            return "ring", fraction
    return "solid", fraction


def _measure(label: str, mask: np.ndarray, ref: sitk.Image, fraction: np.ndarray | None, territory: np.ndarray,
             dose: np.ndarray | None, levels_gy, enhancing: np.ndarray | None = None) -> LesionAt:
    """``fraction``: the partial voxels of the timepoint's segmentation, counted over the lesion's ``territory``
    (:func:`_territories`)."""
    vox = geo.voxel_volume_mm3(ref)
    if not mask.any():
        return LesionAt(label, 0.0, 0.0, 0.0, 0, 0, ())
    volume = float(mask.sum() * vox) if fraction is None else \
        float(fraction[territory].sum(dtype=np.float64) * vox)
    parts = _parts(mask, ref)
    longest, perpendicular = axial_diameters(mask, ref)
    dose_d = None
    if dose is not None:
        d = dose[mask].astype(np.float64)
        cold = float(np.quantile(d, 1.0 - ENCLOSED_FRACTION))
        enclosing = max([v for v in (levels_gy or ()) if v <= cold], default=None)
        dose_d = {"mean_gy": round(float(d.mean()), 2), "max_gy": round(float(d.max()), 2),
                  "enclosing_isodose_gy": enclosing}
    kind, enhancing_fraction = pattern(mask, enhancing, ref, longest, perpendicular) if enhancing is not None \
        else (None, None)
    return LesionAt(label, volume, longest, perpendicular, int(mask.any(axis=(0, 1)).sum()), len(parts),
                    tuple(geo.centroid_ras(mask, ref)), dose_d, kind, enhancing_fraction)


def track(masks: dict, ref: sitk.Image, *, foci: dict | None = None, reach_mm: dict | None = None,
          fractions: dict | None = None, dose: np.ndarray | None = None, levels_gy=(),
          enhancing: dict | None = None) -> list[Lesion]:
    """The lesions of a case. ``masks``: timepoint label → bool array on ``ref`` (the SRS grid), in time order, the
    SRS timepoint first (its components are the treated lesions); ``foci``: label → the non-contiguous foci found
    at that follow-up (their components are kept apart from the lesion extent they may touch); ``reach_mm``: label
    → how far (mm) a component may lie from a lesion's earlier extent and still continue it; ``fractions``: label →
    partial-voxel volumes (a segmentation drawn on another grid); ``dose``: Gy on ``ref``; ``enhancing``: label →
    the voxels that enhance at that timepoint (the lesions' patterns). The SRS timepoint's parts are grouped as the
    change in shape groups them (change.lesion_groups over every timepoint's extent, the foci apart)."""
    labels = list(masks)
    lesions: list[Lesion] = []
    apart = foci or {}
    groups = lesion_groups([m & ~apart[t] if apart.get(t) is not None else m for t, m in masks.items()], ref)
    for n, label in enumerate(labels):
        focus = (foci or {}).get(label)
        focus = focus if focus is not None else np.zeros(masks[label].shape, bool)
        mine: dict[str, list] = {}
        if n == 0:
            grouped: dict = {}
            for p in _parts(masks[label], ref):
                grouped.setdefault(int(np.bincount(groups[p].astype(np.int64)).argmax()), []).append(p)
            for group in grouped.values():
                les = Lesion(id=f"L{len(lesions) + 1}", treated=True, first_seen=label)
                lesions.append(les)
                mine[les.id] = group
        else:
            focus_owner = np.zeros(focus.shape, np.int32)      # lesion index + 1 of each focus voxel
            for part in _parts(focus, ref):
                owner = _owner(part, lesions, ref, label, is_focus=True, reach_mm=(reach_mm or {}).get(label, 0.0))
                if owner is None:
                    owner = Lesion(id=f"L{len(lesions) + 1}", treated=False, first_seen=label)
                    lesions.append(owner)
                mine.setdefault(owner.id, []).append(part)
                focus_owner[part] = lesions.index(owner) + 1
            for part in _parts(masks[label] & ~focus, ref):
                # A fringe of a focus (segmented voxels just outside the focus the analysis found) is that focus's,
                # unless it continues an earlier lesion.
                touching = focus_owner[_dilated(part)]
                touching = touching[touching > 0]
                owner = None
                if touching.size and not any((m & part).any() for les in lesions for m in les.masks.values()):
                    owner = lesions[int(np.bincount(touching).argmax()) - 1]
                owner = owner or _owner(part, lesions, ref, label, is_focus=False)
                if owner is None:                                # nothing at the SRS timepoint to continue
                    owner = Lesion(id=f"L{len(lesions) + 1}", treated=False, first_seen=label)
                    lesions.append(owner)
                mine.setdefault(owner.id, []).append(part)
        for les in lesions:
            got = mine.get(les.id, [])
            m = np.zeros(masks[label].shape, bool)
            for p in got:
                m |= p
            if len(got) > 1 and les.first_seen != label:
                les.events.append(f"in {len(got)} parts at {label}")
            les.masks[label] = m
    for label in labels:
        frac = (fractions or {}).get(label)
        present = [les for les in lesions if label in les.masks]
        terr = _territories([les.masks[label] for les in present], frac, ref) if frac is not None else \
            [les.masks[label] for les in present]
        for les, t in zip(present, terr):
            les.at[label] = _measure(label, les.masks[label], ref, frac, t, dose, levels_gy,
                                     (enhancing or {}).get(label))
    return lesions


def _dilated(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one voxel (its 26 neighbours)."""
    box = geo.crop_box(mask, 1)
    out = np.zeros(mask.shape, bool)
    out[box] = geo.array_view(sitk.BinaryDilate(geo.image_from_array(mask[box].astype(np.uint8)), [1, 1, 1],
                                                sitk.sitkBox)) > 0
    return out


def _gap_mm(part: np.ndarray, other: np.ndarray, ref: sitk.Image) -> float:
    """The shortest distance (mm) from ``part``'s surface to a voxel of ``other``."""
    both = geo.crop_box(part | other, 1)
    sub = geo.image_from_array(part[both].astype(np.uint8))
    sub.SetSpacing(tuple(float(v) for v in ref.GetSpacing()))
    dist = geo.array_view(sitk.SignedMaurerDistanceMap(sub, insideIsPositive=False, squaredDistance=False,
                                                       useImageSpacing=True))
    return float(dist[other[both]].min())


def _owner(part: np.ndarray, lesions: list, ref: sitk.Image, label: str, *, is_focus: bool,
           reach_mm: float = 0.0) -> Lesion | None:
    """The lesion a later component continues: the one it overlaps at an earlier timepoint (the lowest id when it
    reaches two: a merge, recorded); otherwise, for a part of the lesion extent, the nearest treated lesion (the
    boundary analysis found it contiguous: it is no new focus); for a focus, a later focus whose latest extent lies
    within ``reach_mm``, else None (a new lesion)."""
    earlier = [les for les in lesions if any((m & part).any() for m in les.masks.values())]
    if len(earlier) > 1:
        earlier[0].events.append(f"at {label} one part joins {', '.join(e.id for e in earlier)}")
    if earlier:
        return earlier[0]
    if not is_focus:
        treated = [les for les in lesions if les.treated and _latest(les) is not None] or \
            [les for les in lesions if _latest(les) is not None]
        return min(treated, key=lambda les: _gap_mm(part, _latest(les), ref)) if treated else \
            (lesions[0] if lesions else None)
    near = [les for les in lesions if not les.treated and _latest(les) is not None and
            _gap_mm(part, _latest(les), ref) <= reach_mm]
    return near[0] if near else None


def _latest(les: Lesion) -> np.ndarray | None:
    """The lesion's extent at the last timepoint it was present."""
    return next((m for m in reversed(list(les.masks.values())) if m.any()), None)


def locate(lesions: list[Lesion], codes: np.ndarray, names: dict) -> None:
    """Each lesion's location in words from the atlas compartments fitted to the SRS image (``codes`` on the SRS
    grid, ``names``: code → words, anatomy/atlas.json): the region holding most of the lesion when first seen
    (ventricles and CSF set aside when it also touches parenchyma), its side and compartment (infratentorial: the
    cerebellum, brainstem and fourth ventricle)."""
    for les in lesions:
        m = les.masks.get(les.first_seen)
        if m is None or not m.any():
            continue
        inside = codes[m]
        inside = inside[inside > 0]
        tissue = inside[~np.isin(inside, VENTRICLES + EXTRACEREBRAL_CSF)]
        pool = tissue if tissue.size else inside
        if not pool.size:
            continue
        code = int(np.bincount(pool.astype(np.int64)).argmax())
        words = str(names.get(str(code), names.get(code, f"region {code}")))
        les.location = words
        les.side = "left" if words.startswith("left") else "right" if words.startswith("right") else "midline"
        les.compartment = "infratentorial" if code in INFRATENTORIAL else "supratentorial"


def lesion_ids_at(lesions: list[Lesion], mask: np.ndarray | None, labels, ref: sitk.Image,
                  centroid_lps=None) -> list[str]:
    """The ids of the lesions a finding concerns: those whose extent at one of ``labels`` (the finding's timepoint,
    or its interval's two) overlaps the finding's voxels ``mask``; when none does (enhancing dura beside a lesion,
    a change without voxels), the lesion nearest ``centroid_lps`` at those timepoints."""
    ids = [les.id for les in lesions if mask is not None and
           any(lab in les.masks and (les.masks[lab] & mask).any() for lab in labels)]
    if ids or centroid_lps is None:
        return ids
    best, best_d = None, np.inf
    for les in lesions:
        for lab in labels:
            m = les.masks.get(lab)
            if m is None or not m.any():
                continue
            pts = geo.index_to_lps(ref, np.argwhere(m)[::max(1, int(m.sum()) // 5000)])
            d = float(np.min(np.linalg.norm(pts - np.asarray(centroid_lps, float), axis=1)))
            if d < best_d:
                best, best_d = les.id, d
    return [best] if best else []


# ------------------------------------------------------------------------------------------------------------------
# RANO-BM
# ------------------------------------------------------------------------------------------------------------------

def _mm(v: float) -> str:
    return f"{v:.1f} mm"


def rano_bm(lesions: list[Lesion], labels: list[str]) -> list[dict]:
    """RANO-BM per timepoint from the tracked lesions, imaging criteria only (steroid dose and clinical status are
    not in the images; a response is not confirmed at a later scan here, as the criteria ask for CR and PR).

    Baseline: the first timepoint; target lesions are its measurable lesions, up to five, largest first; its other
    lesions are non-target. At each later timepoint, in the order the criteria are read:

    - PD: the sum of the targets' longest diameters ≥ 20 % above the nadir (the smallest sum so far, baseline
      included) with one target ≥ 5 mm larger than its own smallest; or a new lesion that is unequivocal (measurable
      when first seen, or an equivocal one that has become measurable: PD then dates from its first scan, as the
      criteria say); or unequivocal progression of a non-target lesion, read here as one that has become measurable
      and grown by ≥ 5 mm from its own smallest (a non-measurable baseline lesion that grows to 22 mm).
    - CR: every lesion gone, no new lesion.
    - PR: the targets' sum ≥ 30 % below baseline, no new lesion, no non-target progression.
    - SD otherwise (with targets); without target lesions "non-CR/non-PD", as RECIST names non-target-only disease.

    Each row: ``rano_bm``, ``rano_bm_reason`` (the numbers the category rests on), the targets' sums, changes from
    baseline and nadir, ``target_lesions``, ``new_lesions`` (first seen at that timepoint)."""
    if not labels:
        return []
    base = labels[0]
    at_base = [les for les in lesions if base in les.at and les.at[base].measurable]
    targets = sorted(at_base, key=lambda les: -les.at[base].longest_mm)[:MAX_TARGETS]
    nontargets = [les for les in lesions if les.treated and les not in targets]
    smallest = {les.id: les.at[les.first_seen].longest_mm for les in lesions}
    rows, nadir = [], None
    for label in labels:
        def longest(les):
            return les.at[label].longest_mm if label in les.at else 0.0
        sld = float(sum(longest(t) for t in targets))
        perp = float(sum(t.at[label].perpendicular_mm if label in t.at else 0.0 for t in targets))
        base_sld = float(sum(t.at[base].longest_mm for t in targets))
        new = [les for les in lesions if les.first_seen == label and label != base]
        row = {"target_lesions": [t.id for t in targets], "new_lesions": [les.id for les in new],
               "sum_longest_diameter_mm": sld, "sum_perpendicular_mm": perp,
               "measurable_lesions": sum(1 for les in lesions if label in les.at and les.at[label].measurable),
               "change_from_baseline_pct": 100.0 * (sld - base_sld) / base_sld if base_sld > 0 else None,
               "change_from_nadir_pct": 100.0 * (sld - nadir) / nadir if nadir else None}
        if label == base:
            row["rano_bm"] = "baseline"
            row["rano_bm_reason"] = ("target lesions: " + ", ".join(f"{t.id} {_mm(t.at[base].longest_mm)}"
                                                                     for t in targets)) if targets else \
                "no measurable lesion (≥ 10 mm): non-target disease only"
        else:
            row.update(_category(label, lesions, targets, nontargets, new, sld, base_sld, nadir, smallest))
        rows.append(row)
        nadir = sld if nadir is None else min(nadir, sld)
        for les in lesions:
            if label in les.at and les.at[label].present:
                smallest[les.id] = min(smallest[les.id], les.at[label].longest_mm)
    return rows


def _category(label, lesions, targets, nontargets, new, sld, base_sld, nadir, smallest) -> dict:
    pd = []
    grown = [t for t in targets if label in t.at and t.at[label].longest_mm - smallest[t.id] >= PD_ABSOLUTE_MM]
    if targets and nadir and sld >= (1.0 + PD_INCREASE) * nadir and grown:
        pd.append(f"sum of target diameters {_mm(sld)}, {100.0 * (sld - nadir) / nadir:+.0f} % from the nadir "
                  f"{_mm(nadir)}; {grown[0].id} {_mm(smallest[grown[0].id])} → {_mm(grown[0].at[label].longest_mm)}")
    for les in new:
        if les.at[label].measurable:
            pd.append(f"new lesion {les.id}, {_mm(les.at[label].longest_mm)}")
    for les in lesions:
        if les.treated or les.first_seen == label or label not in les.at:
            continue
        now, first = les.at[label], les.at[les.first_seen]
        if now.measurable and not first.measurable:
            pd.append(f"new lesion {les.id} (first seen at {les.first_seen}, {_mm(first.longest_mm)}, equivocal then) "
                      f"confirmed, now {_mm(now.longest_mm)}: progression dates from {les.first_seen}")
    for les in nontargets:
        now = les.at.get(label)
        if now is not None and now.measurable and now.longest_mm - smallest[les.id] >= PD_ABSOLUTE_MM:
            pd.append(f"non-target {les.id} {_mm(smallest[les.id])} → {_mm(now.longest_mm)} (now measurable)")
    equivocal = [les for les in new if not les.at[label].measurable and les.at[label].present]
    note = "; ".join(f"new lesion {les.id} ({_mm(les.at[label].longest_mm)}) equivocal: follow-up will tell"
                     for les in equivocal)
    if pd:
        return {"rano_bm": "PD", "rano_bm_reason": "; ".join(pd + ([note] if note else []))}
    if not any(label in les.at and les.at[label].present for les in lesions):
        return {"rano_bm": "CR", "rano_bm_reason": "every lesion gone, no new lesion"}
    if targets and base_sld > 0 and sld <= (1.0 - PR_DECREASE) * base_sld and not new:
        return {"rano_bm": "PR", "rano_bm_reason": f"sum of target diameters {_mm(base_sld)} → {_mm(sld)} "
                                                   f"({100.0 * (sld - base_sld) / base_sld:+.0f} % from baseline)"}
    if targets:
        change = f"{100.0 * (sld - base_sld) / base_sld:+.0f} % from baseline" if base_sld > 0 else ""
        reason = f"sum of target diameters {_mm(sld)} ({change}): neither a 30 % decrease nor a 20 % increase"
        if new:
            reason += "; a new lesion rules out a response"
        return {"rano_bm": "SD", "rano_bm_reason": "; ".join([reason] + ([note] if note else []))}
    return {"rano_bm": "non-CR/non-PD", "rano_bm_reason": "; ".join(
        ["no target lesion; non-target lesions present, none progressing unequivocally"] + ([note] if note else []))}


def rano_table(masks: dict[str, np.ndarray], ref: sitk.Image, days: dict[str, int | None],
               fractions: dict | None = None, lesions: list | None = None) -> list[dict]:
    """The time course: per timepoint the enhancing volume (``fractions``: as for change.analyse_changes, the
    volumes' source where given, partial voxels counted) and RANO-BM from the lesions followed over time
    (:func:`rano_bm`; ``lesions``: those of :func:`track`, tracked here from ``masks`` alone when not given)."""
    if lesions is None:
        lesions = track(masks, ref, fractions=fractions)
    vox = geo.voxel_volume_mm3(ref)
    rows = []
    for row, (label, m) in zip(rano_bm(lesions, list(masks)), masks.items()):
        frac = (fractions or {}).get(label)
        volume = float(m.sum() * vox) if frac is None or not m.any() else float(frac.sum(dtype=np.float64) * vox)
        rows.append({"timepoint": label, "days_since_srs": days.get(label), "volume_mm3": volume, **row})
    return rows
