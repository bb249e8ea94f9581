"""Expected answers from the design: what a teaching case was built to show, derived from what was built.

A generator (phantom scenarios, real-MRI implants) knows its lesion parts exactly: per timepoint, each part's
extent and enhancing voxels on a fine design grid, its own axes, which parts are new foci across a boundary, and
how each timepoint was acquired (voxel size and slice orientation in the planning frame, whether it is registered).
This module turns those designed quantities into the findings a reader should expect, with the method's documented
criteria (README, "What assess does") applied to the design by arithmetic of its own. It never calls the analysis
it is there to check, so an error in the analysis's definition of change cannot hide behind its own truth.

Frame: every array is on the design grid (``sitk.Image``, LPS, isotropic); directions are LPS unit vectors of the
planning frame. ``to_planning`` rotates design-grid directions into it when the two frames differ (a tilted head).

Change (per interval, per lesion):

* each part present at both timepoints moves its extent along each of its six axis directions by a designed
  displacement (mm; + outwards), over the volume that direction gains or loses (grown voxels are those beyond the
  earlier lesion, regressed ones beyond the later lesion, assigned to the axis direction they lie along);
* a part that appears joined to the lesion grows by its reach beyond the earlier lesion; one that vanishes
  regresses by its depth beyond the later lesion; a designed new focus across a boundary is that focus, no growth;
* a displacement counts when it reaches beyond the depth the resolution requires along its direction
  (:func:`required_depth_mm`): max(2.5 mm, the coarser timepoint's voxel extent along it + the registrations in
  quadrature); a regressed one must also have lost enhancement (at least 20 mm³ that enhanced and no longer does);
* portions of at least 50 mm³; growth as a whole when the earlier lesion's measurable surface (where both voxels
  reach at most 2 mm along its normal) moved out by 0.75 mm over at least 40 % of it, counted over all of it or
  over its free surface (away from where the design held it back: both are right where they disagree);
* parts whose surfaces come within 10 mm of each other, at any timepoint, are one lesion.

Where a designed quantity lies within the grid's tolerance of a threshold (:func:`sampling_margin_mm`, half the
volume threshold, 10 % of the surface fraction) both answers are right: the entry lists every acceptable set of
kinds. A PD twin whose design admits a mixed response is a design error (raised).
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo

# The method's documented criteria (README, "What assess does"), restated here as a radiologist would apply them to
# the design. test_design_truth checks that they are the analysis's own values.
MIN_DEPTH_MM = 2.5              # below this a displacement is a segmentation's wobble
MIN_PORTION_MM3 = 50.0          # a grown or regressed portion
MIN_LOST_ENHANCEMENT_MM3 = 20.0  # a regressed portion lost at least this much enhancement
REGISTRATION_MM = 0.5           # a follow-up registered to the planning image
GROUP_MM = 10.0                 # parts whose surfaces come this close are one lesion
MOVED_OUT_MM = 0.75             # a surface point that moved out
MEASURABLE_SURFACE_MM = 2.0     # a surface point both voxels resolve along its normal
CONCENTRIC_FRACTION = 0.4       # growth as a whole: share of the measurable surface that moved out
MIN_EXTENSION_MM3 = 20.0        # contiguous enhancement beyond the SRS lesion (the smallest component counted)

#: Tolerances of a call on a voxel grid: a displacement within :func:`sampling_margin_mm` of the depth required,
#: a volume within half the threshold of it, a surface fraction within this of 40 %.
FRACTION_MARGIN = 0.1
#: Below this a part's growth or loss in one direction is not a portion at all (half of MIN_PORTION_MM3) ...
NONE_BELOW_MM3 = 0.5 * MIN_PORTION_MM3
#: ... and from this it surely is one (a portion of twice the minimum: its deepest part holds well over 20 mm³).
SURE_FROM_MM3 = 2.0 * MIN_PORTION_MM3


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """How one timepoint was acquired, in the planning frame: voxel spacing (mm) along the grid axes (rows, LPS
    unit vectors) and whether it is registered to the planning image (its registration adds uncertainty)."""
    spacing_mm: tuple
    axes_lps: tuple
    registered: bool = False

    def along_mm(self, direction) -> float:
        return float(_along_many(self, np.asarray(direction, float)[None])[0])

    @property
    def slice_mm(self) -> float:
        s = np.asarray(self.spacing_mm, float)
        return float(s.max()) if s.max() > 1.25 * s.min() else 0.0

    @property
    def slice_normal(self) -> np.ndarray | None:
        if not self.slice_mm:
            return None
        return np.asarray(self.axes_lps[int(np.argmax(self.spacing_mm))], float)


@dataclasses.dataclass
class Part:
    """One designed lesion part at one timepoint, on the design grid."""
    extent: np.ndarray              # bool: the part's extent (enhancement and what it encloses)
    enhancing: np.ndarray           # bool: its enhancing voxels
    axes: np.ndarray                # (3, 3) rows: the part's own axes in the design grid's frame


def required_depth_mm(direction, a: Acquisition, b: Acquisition) -> float:
    """The depth a displacement along ``direction`` must reach to be seen between acquisitions ``a`` and ``b``."""
    return float(required_depths_mm(np.asarray(direction, float)[None], a, b)[0])


def sampling_margin_mm(direction, a: Acquisition, b: Acquisition, half_extent_mm: float) -> float:
    """How far a designed depth must clear a threshold before no grid can tip the call (mm), for a region whose
    volume beyond the threshold is judged (each call needs at least 20 mm³ there: tens of voxels, over which the
    voxels' own rounding, up to half a voxel either way, averages out). What does not average out is systematic:
    the rendered edge (blur σ 0.8 mm, thresholded at half) sits within 0.25 mm of the designed surface where that
    curves with a radius of 5 mm or more, and on thick slices the slice nearest the point where a surface moves
    along ``direction`` may lie half a slice T from it, where a surface whose half-extent through the slices is R
    is tilted by about (T/2)/R, so the depth required along its normal grows by T²/2R (1.0 mm for T = 5.5 mm,
    R = 15 mm); along the slice normal the slices sample a displacement in whole slices: half a slice."""
    return float(sampling_margins_mm(np.asarray(direction, float)[None], a, b, half_extent_mm)[0])


def _along_many(acq: Acquisition, directions: np.ndarray) -> np.ndarray:
    """:meth:`Acquisition.along_mm` of each row of ``directions`` (N, 3): stacked matrix-vector products, which sum in
    the order one direction's product does (a matrix-matrix product does not, by 1e-15 mm, and a design quantity
    that sits on a threshold must not move with how many directions were computed at once)."""
    axes, spacing = np.asarray(acq.axes_lps, float), np.asarray(acq.spacing_mm, float)
    extent = np.abs(np.matmul(axes[None], directions[:, :, None])[..., 0])
    return np.matmul(extent[:, None, :], spacing)[:, 0]


def required_depths_mm(directions: np.ndarray, a: Acquisition, b: Acquisition) -> np.ndarray:
    """:func:`required_depth_mm` of each row of ``directions`` (N, 3), at once (a portion has thousands)."""
    reg = float(np.hypot(REGISTRATION_MM if a.registered else 0.0, REGISTRATION_MM if b.registered else 0.0))
    return np.maximum(MIN_DEPTH_MM, np.maximum(_along_many(a, directions), _along_many(b, directions)) + reg)


def sampling_margins_mm(directions: np.ndarray, a: Acquisition, b: Acquisition, half_extent_mm: float) -> np.ndarray:
    """:func:`sampling_margin_mm` of each row of ``directions`` (N, 3), at once."""
    margin = np.full(len(directions), 0.25)
    for acq in (a, b):
        n = acq.slice_normal
        if n is None:
            continue
        t = acq.slice_mm
        across = np.abs(directions @ n) > np.cos(np.radians(45.0))
        margin = np.maximum(margin, np.where(across, 0.5 * t, t * t / (2.0 * max(half_extent_mm, t))))
    return margin


def _distance(mask: np.ndarray, grid: sitk.Image) -> np.ndarray:
    """Signed distance (mm, negative inside) to ``mask``'s surface; +1e3 everywhere for an empty mask."""
    if not mask.any():
        return np.full(mask.shape, 1e3, np.float32)
    d = sitk.SignedMaurerDistanceMap(geo.image_from_array(mask.astype(np.uint8), grid), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    return geo.array_view(d)


def _normal(sdf: np.ndarray, grid: sitk.Image, ijk) -> np.ndarray | None:
    """Unit gradient of a signed distance at one voxel (design grid: isotropic), in the grid's frame."""
    i, j, k = (int(v) for v in ijk)
    g = []
    for d, c in enumerate((i, j, k)):
        lo, hi = [i, j, k], [i, j, k]
        lo[d] = max(c - 1, 0)
        hi[d] = min(c + 1, sdf.shape[d] - 1)
        g.append((float(sdf[tuple(hi)]) - float(sdf[tuple(lo)])) / max(hi[d] - lo[d], 1))
    g = np.asarray(g) @ np.asarray(grid.GetDirection(), float).reshape(3, 3).T
    n = float(np.linalg.norm(g))
    return g / n if n > 1e-6 else None


@dataclasses.dataclass
class Candidate:
    """One connected region a designed part gains (grew) or loses (regressed) between two timepoints, with its
    designed depth beyond the other timepoint's lesion per voxel and the depth required along each voxel's
    direction; what the method can make of it (:meth:`states`)."""
    part: str
    kind: str                       # grew | regressed
    direction: tuple                # LPS unit vector (planning frame) where it reaches deepest
    displacement_mm: float          # its deepest designed displacement
    volume_mm3: float
    required_mm: float              # the depth required where it reaches deepest
    margin_mm: float
    sure_mm3: float                 # volume designed beyond the depth required + the margin
    maybe_mm3: float                # ... beyond the depth required - the margin
    floor_sure_mm3: float           # ... beyond the 2.5 mm floor + the margin
    floor_maybe_mm3: float          # ... beyond the 2.5 mm floor - the margin
    lost_enhancement_mm3: float | None = None

    def states(self) -> set:
        """What the analysis may find of it: 'counts' (a portion beyond the resolution), 'sub' (beyond the 2.5 mm
        floor but not the resolution), 'none' (a wobble, too small, or no enhancement lost); several where the
        design sits within the grid's tolerance of a threshold."""
        if self.volume_mm3 <= NONE_BELOW_MM3 or self.floor_maybe_mm3 < 0.5 * MIN_LOST_ENHANCEMENT_MM3:
            return {"none"}
        lost = self.lost_enhancement_mm3
        if lost is not None and lost <= 0.5 * MIN_LOST_ENHANCEMENT_MM3:
            return {"none"}
        sure_big = self.volume_mm3 >= SURE_FROM_MM3 and (lost is None or lost >= 2.0 * MIN_LOST_ENHANCEMENT_MM3)
        core = MIN_LOST_ENHANCEMENT_MM3            # the 20 mm³ core a portion needs beyond a depth
        out = set()
        if self.maybe_mm3 >= 0.5 * core:
            out.add("counts")
        if not (sure_big and self.sure_mm3 >= 2.0 * core):
            if self.floor_maybe_mm3 >= 0.5 * core:
                out.add("sub")
            if not (sure_big and self.floor_sure_mm3 >= 2.0 * core):
                out.add("none")
        return out or {"none"}

    def to_dict(self) -> dict:
        return {"part": self.part, "kind": self.kind, "direction_lps": [round(v, 3) for v in self.direction],
                "displacement_mm": round(self.displacement_mm, 2), "volume_mm3": round(self.volume_mm3, 1),
                "required_depth_mm": round(self.required_mm, 2), "margin_mm": round(self.margin_mm, 2),
                "beyond_required_mm3": [round(self.sure_mm3, 1), round(self.maybe_mm3, 1)],
                **({"lost_enhancement_mm3": round(self.lost_enhancement_mm3, 1)}
                   if self.lost_enhancement_mm3 is not None else {}),
                "may_be": sorted(self.states())}


def _normals(sdf: np.ndarray, grid: sitk.Image, where: np.ndarray) -> np.ndarray:
    """Unit gradients (design grid frame) of a signed distance at the voxels ``where`` (N, 3); NaN where flat."""
    g = np.stack([np.gradient(sdf, axis=d)[where] / grid.GetSpacing()[d] for d in range(3)], axis=1)
    g = g @ np.asarray(grid.GetDirection(), float).reshape(3, 3).T
    n = np.linalg.norm(g, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0.2, g / n, np.nan)


def _candidates(name: str, before: Part | None, after: Part | None, lesion_a: np.ndarray, lesion_b: np.ndarray,
                enh_b: np.ndarray, sdf_a: np.ndarray, sdf_b: np.ndarray, grid: sitk.Image,
                acq_a: Acquisition, acq_b: Acquisition, to_planning: np.ndarray) -> list[Candidate]:
    """The regions part ``name`` gains beyond the earlier lesion and loses beyond the later one (26-connected),
    each with its designed depth per voxel (distance beyond the other lesion, along that lesion's normal) and the
    depth the resolution requires along it."""
    vox = geo.voxel_volume_mm3(grid)
    out = []
    normal = next((acq.slice_normal for acq in (acq_a, acq_b) if acq.slice_normal is not None), None)
    for kind, region_all, other_sdf, part in (("grew", (after.extent & ~lesion_a) if after else None, sdf_a, after),
                                              ("regressed", (before.extent & ~lesion_b) if before else None, sdf_b,
                                               before)):
        if region_all is None or not region_all.any():
            continue
        labels = geo.array_view(sitk.ConnectedComponent(geo.image_from_array(region_all.astype(np.uint8), grid),
                                                        True))
        # The part's half-extent through the slices: how tilted its surface is a slice from its equator.
        half = 15.0
        if normal is not None:
            u = geo.index_to_lps(grid, np.argwhere(part.extent)) @ (to_planning.T @ normal)
            half = max(float(u.max() - u.min()) / 2.0, 1.0)
        for lab in range(1, int(labels.max()) + 1):
            region = labels == lab
            depth = np.clip(other_sdf[region], 0.0, 1e3).astype(float)
            n = _normals(other_sdf, grid, region) @ to_planning.T
            ok = np.isfinite(n).all(axis=1)
            n[~ok] = np.nan
            finite = np.where(ok[:, None], n, 0.0)
            req = np.where(ok, required_depths_mm(finite, acq_a, acq_b), MIN_DEPTH_MM)
            margin = np.where(ok, sampling_margins_mm(finite, acq_a, acq_b, half), 1.0)
            i = int(np.argmax(depth - req))
            direction = n[i] if ok[i] else np.array([np.nan] * 3)
            lost = None
            if kind == "regressed":
                lost = float((before.enhancing[region] & ~enh_b[region]).sum() * vox)
            out.append(Candidate(
                part=name, kind=kind, direction=tuple(float(v) for v in direction),
                displacement_mm=float(depth.max()), volume_mm3=float(region.sum() * vox), required_mm=float(req[i]),
                margin_mm=float(margin[i]), sure_mm3=float((depth >= req + margin).sum() * vox),
                maybe_mm3=float((depth >= req - margin).sum() * vox),
                floor_sure_mm3=float((depth >= MIN_DEPTH_MM + margin).sum() * vox),
                floor_maybe_mm3=float((depth >= MIN_DEPTH_MM - margin).sum() * vox), lost_enhancement_mm3=lost))
    return out


def _moved_out_fraction(lesion_a: np.ndarray, lesion_b: np.ndarray, sdf_a: np.ndarray, sdf_b: np.ndarray,
                        grid: sitk.Image, acq_a: Acquisition, acq_b: Acquisition, to_planning: np.ndarray,
                        blocked: np.ndarray | None = None) -> tuple[float | None, float | None]:
    """(share of the earlier lesion's measurable surface (design grid) lying at least MOVED_OUT_MM inside the later
    lesion, the same share of its *free* surface: away (1.5 mm) from where the design held it back, ``blocked``:
    CSF, a fold). A lesion growing as a whole against a sulcus keeps its face there: the first share reads it as
    growth at part of the margin, the second as growth as a whole; the method, which smooths the displacement over
    2 mm, can read either."""
    er = geo.array_view(sitk.BinaryErode(geo.image_from_array(lesion_a.astype(np.uint8), grid), [1, 1, 1])) > 0
    surface = lesion_a & ~er
    free = np.ones(surface.shape, bool)
    if blocked is not None and blocked.any():
        free = np.clip(_distance(blocked, grid), 0, None) > 1.5
    idx = np.argwhere(surface)
    counts = {"all": [0, 0], "free": [0, 0]}
    for ijk in idx[:: max(1, len(idx) // 4000)]:
        n = _normal(sdf_a, grid, ijk)
        if n is None:
            continue
        n = to_planning @ n
        if max(acq_a.along_mm(n), acq_b.along_mm(n)) > MEASURABLE_SURFACE_MM:
            continue
        moved = bool(sdf_b[tuple(ijk)] <= -MOVED_OUT_MM)
        for key in ("all",) + (("free",) if free[tuple(ijk)] else ()):
            counts[key][0] += 1
            counts[key][1] += moved
    return tuple(c[1] / c[0] if c[0] else None for c in (counts["all"], counts["free"]))


def _groups(timepoints: dict, grid: sitk.Image) -> list[set]:
    """Parts whose surfaces come within GROUP_MM of each other at any timepoint, transitively."""
    names = list(dict.fromkeys(n for parts in timepoints.values() for n in parts))
    link = {n: {n} for n in names}
    for parts in timepoints.values():
        for a, b in itertools.combinations(parts, 2):
            gap = float(np.clip(_distance(parts[a].extent, grid), 0, None)[parts[b].extent].min())
            if gap <= GROUP_MM:
                merged = link[a] | link[b]
                for n in merged:
                    link[n] = merged
    out = []
    for n in names:
        if link[n] not in out:
            out.append(link[n])
    return out


def change_truth(grid: sitk.Image, timepoints: dict, acquisitions: dict, new_foci: dict, *,
                 counterpart: str | None = None, vs_first: bool = True, to_planning: np.ndarray | None = None,
                 blocked: np.ndarray | None = None) -> tuple[list[dict], list[dict]]:
    """Expected change findings of a design: (entries for truth.json, per-interval design evidence).

    ``timepoints``: ordered {label: {part name: :class:`Part`}}; ``acquisitions``: {label: :class:`Acquisition`};
    ``new_foci``: {label: part names that are new foci across a boundary at that timepoint}; ``blocked``: where the
    design keeps lesions out (CSF, a fold's margin), so that growth as a whole is also judged on the free surface
    (:func:`_moved_out_fraction`). An entry is
    ``{"kind", "from", "to"}`` when the design allows one answer, ``{"kind": None, "from", "to", "acceptable":
    [[kinds], ...]}`` when it sits on a threshold."""
    to_planning = np.eye(3) if to_planning is None else np.asarray(to_planning, float)
    labels = list(timepoints)
    intervals = list(zip(labels[:-1], labels[1:]))
    if vs_first and len(labels) > 2:
        intervals.append((labels[0], labels[-1]))
    groups = _groups(timepoints, grid)
    entries, evidence = [], []
    for a, b in intervals:
        pa, pb = timepoints[a], timepoints[b]
        acq_a, acq_b = acquisitions[a], acquisitions[b]
        answers: set = set()
        ev = {"from": a, "to": b, "lesions": []}
        for group in groups:
            ga = {n: p for n, p in pa.items() if n in group}
            gb = {n: p for n, p in pb.items() if n in group}
            if not ga and not gb:
                continue
            # A new focus (absent at the earlier timepoint) is that focus, never growth of this lesion.
            new_here = {n for n in gb if n not in ga and n in new_foci.get(b, set())}
            zero = np.zeros(grid.GetSize(), bool)
            lesion_a = np.any([p.extent for p in ga.values()], axis=0) if ga else zero
            lesion_b = np.any([p.extent for p in gb.values()], axis=0) if gb else zero
            enh_b = np.any([p.enhancing for p in gb.values()], axis=0) if gb else zero
            sdf_a, sdf_b = _distance(lesion_a, grid), _distance(lesion_b, grid)
            cands = []
            for name in dict.fromkeys(list(ga) + list(gb)):
                if name in new_here:
                    continue
                cands += _candidates(name, ga.get(name), gb.get(name), lesion_a, lesion_b, enh_b, sdf_a, sdf_b, grid,
                                     acq_a, acq_b, to_planning)
            # New foci within the resolution of the earlier lesion: a new focus or a lobe that grew.
            near_states = []
            for name in sorted(new_here):
                if not lesion_a.any():
                    continue
                m = gb[name].extent
                gap = float(np.clip(sdf_a, 0, None)[m].min())
                ijk = np.argwhere(m & (sdf_a <= gap + 1e-3))[0]
                n = _normal(sdf_a, grid, ijk)
                n = to_planning @ n if n is not None else np.array([0.0, 0.0, 1.0])
                reg = float(np.hypot(REGISTRATION_MM if acq_a.registered else 0.0,
                                     REGISTRATION_MM if acq_b.registered else 0.0))
                voxel = max(acq_a.along_mm(n), acq_b.along_mm(n))
                unc = voxel + reg
                # Measured between voxel centres the gap reads up to a voxel wider than the designed one: within
                # for sure when even then it is within, surely not when the designed gap alone is beyond it.
                state = {True} if gap + voxel <= unc else {False} if gap > unc else {True, False}
                near_states.append(state)
                ev.setdefault("new_foci", []).append({"part": name, "gap_mm": round(gap, 2),
                                                      "uncertainty_mm": round(unc, 2), "within": sorted(state)})
            kinds, fractions = _kinds(cands, near_states, lambda: _moved_out_fraction(
                lesion_a, lesion_b, sdf_a, sdf_b, grid, acq_a, acq_b, to_planning, blocked))
            ev["lesions"].append({"parts": sorted(group), "candidates": [c.to_dict() for c in cands],
                                  **({"surface_moved_out_fraction": [None if f is None else round(f, 3)
                                                                     for f in fractions]}
                                     if fractions is not None else {}),
                                  "may_be": sorted(sorted(k) for k in kinds)})
            answers = {frozenset(x | y) for x in (answers or {frozenset()}) for y in kinds}
        if counterpart == "PD" and any("mixed_response" in x for x in answers):
            raise ValueError(f"PD twin with a mixed response {a}->{b} in its own design: the design is wrong")
        evidence.append(ev)
        options = sorted({tuple(sorted(x)) for x in answers})
        if len(options) == 1:
            entries += [{"kind": k, "from": a, "to": b} for k in options[0]]
        else:
            entries.append({"kind": None, "from": a, "to": b, "acceptable": [list(x) for x in options],
                            "note": "the design sits within the grid's tolerance of a threshold (see "
                                    "truth.json design_change)"})
    return entries, evidence


def _kinds(cands: list[Candidate], near_states: list[set], moved_out) -> tuple[set, tuple | None]:
    """Every set of change kinds one lesion may show, over the states its candidates may take; and the surface
    shares moved out (all, free), when growth was possible."""
    choices = [sorted(c.states()) for c in cands] + [sorted(s) for s in near_states]
    fractions = None
    out = set()
    for combo in itertools.product(*choices) if choices else [()]:
        states = combo[:len(cands)]
        near = any(combo[len(cands):])
        grew = any(s == "counts" and c.kind == "grew" for s, c in zip(states, cands))
        regressed = any(s == "counts" and c.kind == "regressed" for s, c in zip(states, cands))
        sub = any(s == "sub" for s in states)
        if grew and regressed:
            out.add(frozenset({"mixed_response"}))
        elif regressed:
            out.add(frozenset({"regression"}))
        elif grew:
            if fractions is None:
                fractions = moved_out()
            known = [f for f in fractions if f is not None] or [0.0]
            if max(known) >= CONCENTRIC_FRACTION - FRACTION_MARGIN:
                out.add(frozenset({"concentric_growth"}))
            if min(known) < CONCENTRIC_FRACTION + FRACTION_MARGIN:
                out.add(frozenset({"eccentric_growth"}))
        elif sub or near:
            out.add(frozenset({"change_indeterminate"}))
        else:
            out.add(frozenset())
    return out, fractions


def extension_truth(grid: sitk.Image, timepoints: dict, treated: np.ndarray, new_foci: dict,
                    planning_voxel_mm: tuple, planning_axes, extra_enhancing: dict | None = None) -> list[dict]:
    """Expected ``contiguous_extension`` per follow-up: enhancement joined to the treated lesion (every part but
    the designed new foci, and enhancing meninges/ependyma designed next to them: ``extra_enhancing`` per
    timepoint) reaching more than one planning voxel (``planning_voxel_mm`` along ``planning_axes``, LPS rows in the
    design grid's frame) beyond the lesion at SRS (``treated``: its extent on the design grid), over at least
    MIN_EXTENSION_MM3. Within half that volume of the threshold either answer is right."""
    labels = list(timepoints)
    vox = geo.voxel_volume_mm3(grid)
    # More than one planning voxel beyond the treated lesion: distances measured in planning voxels along each axis
    # of the design grid (the planning voxel's extent along that axis).
    planning = Acquisition(tuple(planning_voxel_mm), tuple(map(tuple, planning_axes)))
    axes = np.asarray(grid.GetDirection(), float).reshape(3, 3).T
    scaled = geo.image_from_array(treated.astype(np.uint8), grid)
    scaled.SetSpacing([s / planning.along_mm(a) for s, a in zip(grid.GetSpacing(), axes)])
    near = geo.array_view(sitk.SignedMaurerDistanceMap(scaled, insideIsPositive=False, squaredDistance=False,
                                                       useImageSpacing=True)) <= 1.0
    out = []
    for t in labels[1:]:
        enh = np.zeros(treated.shape, bool)
        for name, part in timepoints[t].items():
            if name not in new_foci.get(t, set()):
                enh |= part.enhancing
        if extra_enhancing and t in extra_enhancing:
            enh |= extra_enhancing[t]
        volume = float((enh & ~near).sum() * vox)
        if volume >= 1.5 * MIN_EXTENSION_MM3:
            out.append({"kind": "contiguous_extension", "timepoint": t, "design_volume_mm3": round(volume, 1)})
        elif volume > 0.5 * MIN_EXTENSION_MM3:
            out.append({"kind": None, "timepoint": t, "either_way": "contiguous_extension",
                        "design_volume_mm3": round(volume, 1)})
    return out


def crossing_fraction(comp: np.ndarray, treated: np.ndarray, boundary: np.ndarray, grid: sitk.Image,
                      max_lines: int = 300) -> float:
    """The share of straight segments from voxels of ``comp`` to their nearest voxel of ``treated`` that pass
    through ``boundary`` (design grid): whether a designed focus lies across a boundary on this image."""
    rng = np.random.default_rng(0)
    ci = np.argwhere(comp)
    if len(ci) > max_lines:
        ci = ci[rng.choice(len(ci), max_lines, replace=False)]
    ti = np.argwhere(treated)
    if len(ti) > 4000:
        ti = ti[rng.choice(len(ti), 4000, replace=False)]
    spacing = np.asarray(grid.GetSpacing(), float)
    hits = 0
    for a in ci:
        b = ti[np.argmin((((ti - a) * spacing) ** 2).sum(1))]
        steps = max(int(np.ceil(np.linalg.norm((b - a) * spacing) / (0.25 * spacing.min()))), 2)
        pts = np.round(a + np.linspace(0.0, 1.0, steps)[:, None] * (b - a)).astype(int)
        hits += bool(boundary[tuple(pts.T)].any())
    return hits / len(ci) if len(ci) else 0.0


def cropped(grid: sitk.Image, timepoints: dict, *others: np.ndarray, margin_mm: float = 25.0):
    """The design cropped to a box around every part (+ ``margin_mm``): (sub-grid, timepoints, others), the same
    geometry on fewer voxels (distance maps of a whole head cost seconds each)."""
    union = np.zeros(grid.GetSize(), bool)
    for parts in timepoints.values():
        for p in parts.values():
            union |= p.extent
    box = geo.crop_box(union, int(np.ceil(margin_mm / min(grid.GetSpacing()))))
    if box is None:
        return grid, timepoints, others
    sub = sitk.Image([sl.stop - sl.start for sl in box], sitk.sitkUInt8)
    sub.SetSpacing(grid.GetSpacing())
    sub.SetDirection(grid.GetDirection())
    sub.SetOrigin(grid.TransformIndexToPhysicalPoint([int(sl.start) for sl in box]))
    tps = {t: {n: Part(p.extent[box], p.enhancing[box], p.axes) for n, p in parts.items()}
           for t, parts in timepoints.items()}
    return sub, tps, tuple(o[box] if isinstance(o, np.ndarray) else
                           {k: v[box] for k, v in o.items()} if isinstance(o, dict) else o for o in others)
