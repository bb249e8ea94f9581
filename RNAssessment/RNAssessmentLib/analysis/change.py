"""Change in shape between timepoints: portions of one lesion that grew and portions that regressed.

All masks are lesion extents (enhancement + what it encloses) on the **planning grid** (LPS), i.e. after
registration. Method:

* local surface displacement Δ = SDF_before − SDF_after (signed distances, mm, negative inside), smoothed with a
  Gaussian of σ = 2 mm: positive where the boundary moved outwards, negative where it moved inwards. Smoothing
  averages out a segmentation's 1–2 voxel wobble, which moves the boundary both ways within a few mm, while a real
  change moves a whole portion one way;
* grew = after ∖ before where Δ ≥ 0.75 mm; regressed = before ∖ after where Δ ≤ −0.75 mm; 26-connected portions
  smaller than ``min_portion_mm3`` (50 mm³), or whose part lying beyond the other surface by the interval's
  minimum depth is under 20 mm³, are dropped, so a 1–2 voxel wobble of the segmentation is never called growth or
  regression;
* the minimum depth knows the resolution: max(2.5 mm, u) with the uncertainty u = the coarser slice thickness of
  the two timepoints (each surface may be off by half a slice) + their registration uncertainties added in
  quadrature (0 in the planning frame, 0.5 mm for a registration). On a planning grid with thick slices the depth
  compared with it is counted to the other surface's nearest *slab face* through the slices (a voxel spans its
  slice): a part that lies one slice over is as deep as its in-plane offset, the least the change can be, not the
  slice spacing more. Portions that reach 2.5 mm (between voxel centres) but not that depth are *sub-resolution*: an
  interval with nothing else is reported as ``change_indeterminate`` (e.g. 3 mm of growth on 6.5 mm slices), never
  as a mixed response;
* a new non-contiguous focus (enhancement at the later timepoint that the boundary analysis reported as
  non-contiguous and that does not overlap the earlier lesion) is that focus, not a grown portion of the lesion, in
  every interval; a focus that already existed and grows is a grown portion; a new focus within the interval's
  uncertainty u of the earlier lesion may be either: an interval with nothing else is ``change_indeterminate``;
* one lesion = the timepoints' lesion voxels grouped when their surfaces lie within ``group_mm`` (10 mm) of each
  other (on thick slices a voxel reaches half a slice beyond its centre): foci across a barrier inside the dose
  region belong to the lesion they arose from;
* ``mixed_response`` when a lesion has, in the same interval, at least one portion that grew and one that regressed;
  ``regression`` when all its portions regressed;
* growth only: ``concentric_growth`` (growth as a whole) when the earlier lesion's surface moved out (Δ ≥ 0.75 mm)
  over at least ``CONCENTRIC_SURFACE_FRACTION`` (40 %) of it (on slices thicker than 2 mm, of its in-plane rim),
  else ``eccentric_growth`` (growth at part of the
  margin). The paper: a metastasis that is not responding grows as a whole, recurrence after response may grow at
  one margin, and RN enlarges eccentrically (its scenario 6), so growth at one margin points neither way. Measured
  on the teaching phantoms: the whole-nodule PD twins move 54-100 % of their surface out, one-sided RN growth
  0-23 % (the threshold sits between). On the real-MRI implants most PD twins move 55-100 %; growth on one side
  of two components or on 5.5 mm slices can fall below and is then reported without a direction, never as RN.

RANO-BM per timepoint: longest axial diameter and its perpendicular (planning image's axial planes), sum over
lesion components ≥ 10 mm, % change from baseline and from nadir, category (CR / PR ≥ 30 % decrease from baseline
/ PD ≥ 20 % and ≥ 5 mm increase from nadir / SD).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo
from .enhancement import enclosed_fraction
from .findings import Finding

MIN_PORTION_MM3 = 50.0
MIN_DEPTH_MM = 2.5        # a portion's core must reach this far beyond the other surface: more than a wobble
MIN_CORE_MM3 = 20.0       # ... over at least this volume
GROUP_MM = 10.0           # parts whose surfaces lie within this distance are one lesion
REGISTRATION_UNCERTAINTY_MM = 0.5   # a rigid registration (TRE 0.1-0.2 mm on the phantoms, < 1 mm on real MRI)


def min_depth_mm(slice_a_mm: float, slice_b_mm: float, registration_a_mm: float = 0.0,
                 registration_b_mm: float = 0.0) -> tuple[float, float]:
    """(uncertainty, minimum depth) in mm for an interval (see the module docstring)."""
    u = max(slice_a_mm, slice_b_mm) + float(np.hypot(registration_a_mm, registration_b_mm))
    return u, max(MIN_DEPTH_MM, u)
DISPLACEMENT_MM = 0.75
SMOOTH_SIGMA_MM = 2.0
CONCENTRIC_SURFACE_FRACTION = 0.4


def _sdf(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, 1e3, np.float32)
    d = sitk.SignedMaurerDistanceMap(geo.image_from_array(mask.astype(np.uint8), ref), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    return geo.array_view(d).astype(np.float32)


def _depth_beyond(mask: np.ndarray, ref: sitk.Image, sdf: np.ndarray) -> np.ndarray:
    """How far (mm) each voxel lies beyond ``mask``'s surface. On a grid with slices thicker than
    ``geo.THIN_SLICE_MM`` a voxel is a slab: the distance through the slices is counted from slab face to slab face
    (the mask is grown by one slice along each thick axis before the in-plane distance is taken), so a part that lies
    one slice over is as far as its in-plane offset, not the 5.5 mm between the slices' centres (which once made a
    remnant that landed in the next slice after registration a regression the truth did not have). ``sdf``: the
    mask's signed distances when the grid has no thick axis."""
    thin = geo.thin_axes(ref)
    if all(thin) or not mask.any():
        return sdf
    radius = [0 if t else 1 for t in thin]
    grown = geo.array_view(sitk.BinaryDilate(geo.image_from_array(mask.astype(np.uint8), ref), radius,
                                             sitk.sitkBox)) > 0
    return np.clip(_sdf(grown, ref), -20, 20)


def displacement_mm(before: np.ndarray, after: np.ndarray, ref: sitk.Image, sigma_mm: float = SMOOTH_SIGMA_MM):
    """Smoothed local boundary displacement (mm, + outward) between two masks on ``ref``'s grid."""
    a = np.clip(_sdf(before, ref), -20, 20)
    b = np.clip(_sdf(after, ref), -20, 20)
    diff = geo.image_from_array((a - b).astype(np.float32), ref)
    return geo.array_view(sitk.SmoothingRecursiveGaussian(diff, sigma_mm)), a, b


def _components(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    return geo.array_view(sitk.ConnectedComponent(geo.image_from_array(mask.astype(np.uint8), ref), True))


def lesion_groups(masks: list[np.ndarray], ref: sitk.Image, group_mm: float = GROUP_MM) -> np.ndarray:
    """Label map of lesions: all timepoints' voxels, grouped when their surfaces lie within ``group_mm`` of each
    other. On a grid whose slices are thicker than the pixels the union's surface is placed first (signed distances
    resampled, as :func:`resample_mask` does, onto an isotropic grid of the finest spacing) and grouped there: a voxel
    reaches half its spacing on either side, so two parts with one empty 5.5 mm slice between them are 5.5 mm apart,
    not the 11 mm between their voxel centres (which once split one lesion in two, or not, by where the slices fell).
    Isotropic grids are grouped on their own voxels."""
    union = np.zeros(masks[0].shape, bool)
    for m in masks:
        union |= m
    if not union.any():
        return np.zeros(union.shape, np.int32)
    spacing = np.array(ref.GetSpacing())
    if spacing.max() <= 1.25 * spacing.min():
        grown = _components(_sdf(union, ref) <= group_mm / 2.0, ref)
        return np.where(union, grown, 0).astype(np.int32)
    grid = geo.isotropic_grid(ref, float(spacing.min()))
    fine = geo.array_view(resample_mask(geo.image_from_array(union.astype(np.uint8), ref), grid)) > 0
    grown = sitk.Cast(geo.image_from_array(_components(_sdf(fine, grid) <= group_mm / 2.0, grid).astype(np.int32),
                                           grid), sitk.sitkInt32)
    # Every voxel centre of the union lies inside the placed surface, so inside a labelled (grown) region.
    back = geo.array_view(sitk.Resample(grown, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkInt32))
    return np.where(union, back, 0).astype(np.int32)


@dataclasses.dataclass
class Portion:
    kind: str                 # "grew" or "regressed"
    volume_mm3: float
    max_displacement_mm: float
    mean_displacement_mm: float
    centroid_ras: list
    mask: np.ndarray
    max_depth_mm: float = 0.0     # how far the portion reaches beyond the other timepoint's surface


#: A regressed candidate is *enclosed* by the later lesion when straight rays from its voxels meet that lesion
#: (:func:`.enhancement.enclosed_fraction`) in, on average, at least ENCLOSED_FRACTION of the 26 directions. The
#: necrotic core of a grown ring lesion is enclosed even where the ring's wall is faint or cut (hole filling needs a
#: closed wall): 0.63-0.83 measured on the real-MRI implants; a portion at the edge of a lesion that really regressed
#: sees the rest of the lesion in at most about half the directions (a half-space; 0.14-0.16 measured).
ENCLOSED_FRACTION = 0.6


def interval_portions(before: np.ndarray, after: np.ndarray, ref: sitk.Image,
                      min_portion_mm3: float = MIN_PORTION_MM3, *, min_depth: float = MIN_DEPTH_MM,
                      not_grown: np.ndarray | None = None,
                      boundaries: np.ndarray | None = None,
                      still_enhancing: np.ndarray | None = None,
                      was_enhancing: np.ndarray | None = None,
                      displacement: tuple | None = None) -> tuple[list[Portion], np.ndarray, list[Portion]]:
    """Grew/regressed portions between two masks, the label map (1 grew, 2 regressed, 3 stable) and the
    sub-resolution candidates (reaching ``MIN_DEPTH_MM`` but not ``min_depth``). ``not_grown``: voxels that are no
    grown portion whatever they look like (new non-contiguous foci); ``boundaries``: CSF spaces, folds and
    ventricles — a portion lying mostly in them is meningeal or ependymal enhancement coming and going (reported as
    boundary enhancement), not lesion. ``still_enhancing``: voxels above the enhancement threshold on the later
    image; a portion regressed only where its enhancement is gone (not where the later segmentation merely left
    enhancing voxels out, as a vessel or dura at the brain surface, or drew its edge tighter). A regressed
    portion enclosed by the later lesion (:func:`enclosed_fraction`) is its core, not regression.
    ``was_enhancing``: the same on the earlier image; a regressed portion must have lost enhancement over at least
    ``MIN_CORE_MM3`` (enhancing before, not after): a portion that is only the necrotic core or resection cavity
    the earlier extent enclosed, where the later image's thick slices blurred the rim below the threshold, lost
    no enhancement. ``displacement``: :func:`displacement_mm` of the same masks when already computed."""
    disp, sdf_a, sdf_b = displacement if displacement is not None else displacement_mm(before, after, ref)
    vox = geo.voxel_volume_mm3(ref)
    out: list[Portion] = []
    below: list[Portion] = []
    label = np.zeros(before.shape, np.uint8)
    label[before & after] = 3
    for kind, raw, sign in (("grew", after & ~before, 1.0), ("regressed", before & ~after, -1.0)):
        depth_map = None                # depth beyond the other surface, computed once a portion needs it
        cand = raw & (sign * disp >= DISPLACEMENT_MM)
        if kind == "grew" and not_grown is not None:
            cand &= ~not_grown
        if kind == "regressed" and still_enhancing is not None:
            cand &= ~still_enhancing
        enclosure = enclosed_fraction(after, ref, cand) if kind == "regressed" else None
        if not cand.any():
            continue
        comps = _components(cand, ref)
        counts = np.bincount(comps.ravel())
        for lab in np.nonzero(counts * vox >= min_portion_mm3)[0]:
            if lab == 0:
                continue
            m = comps == lab
            if boundaries is not None and boundaries[m].mean() >= 0.5:
                continue
            if enclosure is not None and enclosure[m].mean() >= ENCLOSED_FRACTION:
                continue                # inside the later lesion: the core of a grown ring, not regression
            if kind == "regressed" and was_enhancing is not None and \
                    (m & was_enhancing).sum() * vox < MIN_CORE_MM3:
                continue                # no enhancement was lost there
            # More than a wobble: measured between voxel centres. Beyond the resolution: measured from the other
            # surface's nearest slab face on thick slices (see _depth_beyond), the least the change can be.
            centre = sdf_a[m] if kind == "grew" else sdf_b[m]
            if (centre >= MIN_DEPTH_MM).sum() * vox < MIN_CORE_MM3:
                continue
            if depth_map is None:
                depth_map = _depth_beyond(before, ref, sdf_a) if kind == "grew" else \
                    _depth_beyond(after, ref, sdf_b)
            depth = depth_map[m]
            p = Portion(kind=kind, volume_mm3=float(m.sum() * vox),
                        max_displacement_mm=float(sign * np.max(sign * disp[m])),
                        mean_displacement_mm=float(disp[m].mean()),
                        centroid_ras=geo.centroid_ras(m, ref), mask=m,
                        max_depth_mm=float(depth.max()))
            if (depth >= min_depth).sum() * vox < MIN_CORE_MM3:
                below.append(p)
                continue
            out.append(p)
            label[m] = 1 if kind == "grew" else 2
    return out, label, below


def surface_moved_out(before: np.ndarray, disp: np.ndarray, ref: sitk.Image, where: np.ndarray) -> float | None:
    """Fraction of the earlier lesion's surface voxels within ``where`` whose boundary moved out by at least
    ``DISPLACEMENT_MM`` (None when the earlier lesion has no surface there). On slices thicker than
    ``geo.THIN_SLICE_MM`` the surface is the in-plane rim of every slice: through the top and bottom slices' faces
    a surface moves by whole slices, so 3 mm of growth on 5.5 mm slices left them unmoved and a lesion growing as a
    whole read as growth at part of its margin."""
    radius = [int(thin) for thin in geo.thin_axes(ref)]
    inner = geo.array_view(sitk.BinaryErode(geo.image_from_array(before.astype(np.uint8), ref), radius)) > 0
    surface = before & ~inner & where
    if not surface.any():
        return None
    return float(np.mean(disp[surface] >= DISPLACEMENT_MM))


# ----------------------------------------------------------------------------------------------------------------
# RANO-BM
# ----------------------------------------------------------------------------------------------------------------

def axial_diameters(mask: np.ndarray, ref: sitk.Image) -> tuple[float, float]:
    """Longest diameter on any axial slice (mm) and the longest extent perpendicular to it on that slice."""
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


#: How the lesion volumes of change findings and of the time course were measured (without, with fractions).
VOLUMES_FROM = ("voxels of the lesion masks on the SRS grid",
                "each timepoint's lesion on the SRS grid, partial voxels counted (a follow-up's segmentation as "
                "drawn, whatever its slice thickness)")


def rano_table(masks: dict[str, np.ndarray], ref: sitk.Image, days: dict[str, int | None],
               fractions: dict | None = None) -> list[dict]:
    """Per timepoint: volume, sum of longest axial diameters of measurable components, % changes, category.
    ``fractions``: as for :func:`analyse_changes`, the volumes' source where given."""
    rows = []
    vox = geo.voxel_volume_mm3(ref)
    for label, m in masks.items():
        frac = (fractions or {}).get(label)
        volume = float(m.sum() * vox) if frac is None or not m.any() else float(frac.sum(dtype=np.float64) * vox)
        comps = _components(m, ref)
        sld, perp_sum, n_meas = 0.0, 0.0, 0
        for lab in range(1, int(comps.max()) + 1):
            ld, pd = axial_diameters(comps == lab, ref)
            if ld >= 10.0:
                sld += ld
                perp_sum += pd
                n_meas += 1
        rows.append({"timepoint": label, "days_since_srs": days.get(label), "volume_mm3": volume,
                     "sum_longest_diameter_mm": sld, "sum_perpendicular_mm": perp_sum,
                     "measurable_lesions": n_meas})
    base = rows[0]["sum_longest_diameter_mm"] if rows else 0.0
    nadir = None
    for r in rows:
        s = r["sum_longest_diameter_mm"]
        r["change_from_baseline_pct"] = 100.0 * (s - base) / base if base > 0 else None
        r["change_from_nadir_pct"] = 100.0 * (s - nadir) / nadir if nadir not in (None, 0) else None
        if r is rows[0]:
            r["rano_bm"] = "baseline"
        elif not masks[r["timepoint"]].any():
            r["rano_bm"] = "CR"
        elif nadir is not None and nadir > 0 and s >= 1.2 * nadir and s - nadir >= 5.0:
            r["rano_bm"] = "PD"
        elif base > 0 and s <= 0.7 * base:
            r["rano_bm"] = "PR"
        else:
            r["rano_bm"] = "SD"
        nadir = s if nadir is None else min(nadir, s)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Findings
# ----------------------------------------------------------------------------------------------------------------

def new_foci(foci_after: np.ndarray | None, before: np.ndarray, ref: sitk.Image,
             after: np.ndarray | None = None) -> np.ndarray | None:
    """The new non-contiguous foci at the later timepoint, never grown portions: the components of
    ``foci_after`` ∪ ``after`` (the later lesion extent) that hold a focus and do not touch the earlier lesion.
    A focus is its whole lesion component: the extent fills a ring focus's necrotic core and keeps the blurred
    edge the enhancement threshold cut off (brats central_sulcus_rn: 165 of the focus's 272 voxels were
    enhancement, the other 107 were called a portion that grew, and with the lesion's regression a mixed
    response). A focus whose lesion component touches the earlier lesion (a drawing that joins them) keeps
    at least its own enhancement out, as the focus alone."""
    if foci_after is None or not foci_after.any():
        return None
    # Touching = within one voxel (26-neighbourhood), the contiguity tolerance, whatever the slice thickness.
    near = (geo.array_view(sitk.BinaryDilate(geo.image_from_array(before.astype(np.uint8), ref), [1, 1, 1])) > 0) \
        if before.any() else np.zeros(before.shape, bool)

    def untouched(mask):
        comps = _components(mask, ref)
        holding = np.unique(comps[foci_after & (comps > 0)])
        return np.isin(comps, np.setdiff1d(holding, np.unique(comps[near & (comps > 0)])))
    return untouched(foci_after) | (untouched(foci_after | after) if after is not None else False)


def foci_within_resolution(new: np.ndarray | None, sdf_before: np.ndarray, ref: sitk.Image,
                           uncertainty_mm: float) -> list[dict]:
    """New foci (:func:`new_foci`) lying within the interval's uncertainty of the earlier lesion without touching
    it: at this resolution a new focus cannot be told from a lobe of the lesion that grew (the clinical Sylvian
    focus, lobulated at t2 on 5.5 mm slices: one lobe over the t1 focus, the other 3.2 mm from it, its true growth
    2.5-3 mm). Each is still no grown portion; an interval with nothing else is ``change_indeterminate``.
    ``sdf_before``: the earlier lesion's signed distance (mm). Returns [{volume_mm3, gap_mm, centroid_ras, mask}]."""
    if new is None or not new.any():
        return []
    comps = _components(new, ref)
    vox = geo.voxel_volume_mm3(ref)
    out = []
    for lab in range(1, int(comps.max()) + 1):
        m = comps == lab
        gap = float(sdf_before[m].min())
        if gap <= uncertainty_mm and m.sum() * vox >= MIN_CORE_MM3:
            out.append({"volume_mm3": float(m.sum() * vox), "gap_mm": gap, "uncertainty_mm": uncertainty_mm,
                        "centroid_ras": geo.centroid_ras(m, ref), "mask": m})
    return out


def like_for_like(masks: dict[str, np.ndarray], drawn: set, extent) -> tuple[dict, dict]:
    """Masks to compare like for like: where some timepoints have a drawing and others only the extent of the
    automatic enhancement (closed, with what it encloses: a necrotic core, a resection cavity), each drawing gets
    ``extent`` (the same operator, a callable on a mask) added, else a cavity drawn as its rim would "grow" into
    the next extent (brats sylvian_cavity_rn: 1.06 cm³ of growth at one margin with no change implanted).
    Returns (masks, {label: the drawing as voxel fractions}) for the drawings that changed: their volumes stay as
    drawn (``fractions`` of :func:`analyse_changes`). All drawn or none: unchanged."""
    if not drawn or len(drawn) == len(masks):
        return masks, {}
    out, fractions = dict(masks), {}
    for label in sorted(drawn):
        m = masks[label]
        filled = extent(m) | m
        if (filled & ~m).any():
            fractions[label] = m.astype(np.float32)
            out[label] = filled
    return out, fractions


def analyse_changes(masks: dict[str, np.ndarray], ref: sitk.Image, dose_on_ref: np.ndarray | None = None,
                    min_portion_mm3: float = MIN_PORTION_MM3, group_mm: float = GROUP_MM, vs_first: bool = True, *,
                    slice_mm: dict | None = None, registration_mm: dict | None = None, foci: dict | None = None,
                    boundaries: np.ndarray | None = None, enhancing: dict | None = None,
                    fractions: dict | None = None):
    """Findings for every consecutive interval (and from the SRS image to the last timepoint).

    ``masks``: ordered {timepoint label: lesion extent on ``ref``}; ``slice_mm`` / ``registration_mm``: per
    timepoint, the coarsest spacing of its acquisition and its registration uncertainty (mm); ``foci``: per
    timepoint, the enhancement reported as non-contiguous with the treated lesion; ``enhancing``: per follow-up,
    every voxel above its enhancement threshold (see :func:`interval_portions`); ``fractions``: per timepoint, the
    fraction of each voxel its own segmentation covers (:func:`mask_fraction`), from which the lesion volumes are
    stated (the masks' voxel counts when not given: they read low where a thick-slice drawing was resampled).
    Returns (findings, {interval: label map})."""
    # Work in a box around every timepoint's lesion (+ 25 mm): distance maps of a whole head cost seconds each.
    union = np.zeros(next(iter(masks.values())).shape, bool)
    for m in masks.values():
        union |= m
    box = geo.crop_box(union, int(np.ceil(25.0 / min(ref.GetSpacing())))) if union.any() else None
    if box is not None and any((sl.stop - sl.start) < s for sl, s in zip(box, union.shape)):
        sub = sitk.RegionOfInterest(sitk.Image(ref.GetSize(), sitk.sitkUInt8), [sl.stop - sl.start for sl in box],
                                    [sl.start for sl in box])
        sub.SetOrigin(ref.TransformIndexToPhysicalPoint([sl.start for sl in box]))
        sub.SetSpacing(ref.GetSpacing())
        sub.SetDirection(ref.GetDirection())
        f, maps_c = analyse_changes({k: v[box] for k, v in masks.items()}, sub,
                                    dose_on_ref[box] if dose_on_ref is not None else None, min_portion_mm3,
                                    group_mm, vs_first, slice_mm=slice_mm, registration_mm=registration_mm,
                                    foci={k: v[box] for k, v in (foci or {}).items()},
                                    boundaries=boundaries[box] if boundaries is not None else None,
                                    enhancing={k: v[box] for k, v in (enhancing or {}).items()},
                                    fractions={k: v[box] for k, v in (fractions or {}).items()})
        maps = {}
        for key, lab in maps_c.items():
            full = np.zeros(union.shape, lab.dtype)
            full[box] = lab
            maps[key] = full
        return f, maps
    labels = list(masks)
    base = max(ref.GetSpacing())
    slice_mm = {k: (slice_mm or {}).get(k, base) for k in labels}
    registration_mm = {k: (registration_mm or {}).get(k, 0.0) for k in labels}
    groups = lesion_groups(list(masks.values()), ref, group_mm)
    # Volumes: each group owns the coverage fractions around it, as far as a resampled mask can fall short of its
    # drawing (its caps pulled in by up to half of the thickest slice) plus a voxel.
    owner = groups
    if groups.max() == 1:
        owner = np.ones(groups.shape, np.int32)
    elif groups.any() and fractions:
        reach = 0.5 * max(slice_mm.values()) + max(ref.GetSpacing())
        grown = geo.array_view(sitk.GrayscaleDilate(geo.image_from_array(groups.astype(np.int32), ref),
                                                    [int(np.ceil(reach / s)) for s in ref.GetSpacing()]))
        owner = np.where(groups > 0, groups, grown)
    coverage = {k: (fractions or {}).get(k, masks[k]) for k in labels}
    findings: list[Finding] = []
    maps: dict = {}
    intervals = list(zip(labels[:-1], labels[1:]))
    if len(labels) > 2 and vs_first:
        intervals.append((labels[0], labels[-1]))
    vox = geo.voxel_volume_mm3(ref)
    for a, b in intervals:
        unc, depth_min = min_depth_mm(slice_mm[a], slice_mm[b], registration_mm[a], registration_mm[b])
        excluded = new_foci((foci or {}).get(b), masks[a], ref, masks[b])
        displacement = displacement_mm(masks[a], masks[b], ref)
        portions, label_map, below = interval_portions(masks[a], masks[b], ref, min_portion_mm3,
                                                       min_depth=depth_min, not_grown=excluded,
                                                       boundaries=boundaries,
                                                       still_enhancing=(enhancing or {}).get(b),
                                                       was_enhancing=(enhancing or {}).get(a),
                                                       displacement=displacement)
        maps[(a, b)] = label_map
        near_foci = foci_within_resolution(excluded, displacement[1], ref, unc)
        resolution = {"slice_thickness_mm": {a: slice_mm[a], b: slice_mm[b]},
                      "registration_uncertainty_mm": {a: registration_mm[a], b: registration_mm[b]},
                      "uncertainty_mm": unc, "min_depth_mm": depth_min}
        for g in range(1, int(groups.max()) + 1):
            gm = groups == g
            mine = [p for p in portions if (p.mask & gm).any()]
            low = [p for p in below if (p.mask & gm).any()]
            near = [f for f in near_foci if (f["mask"] & gm).any()]
            if not (masks[a] & gm).any() and not (masks[b] & gm).any():
                continue                            # a lesion of other timepoints only (portions lie in a or b)
            mine_v = owner == g
            vol_a, vol_b = (float(coverage[t][mine_v].sum(dtype=np.float64) * vox) if (masks[t] & gm).any() else 0.0
                            for t in (a, b))
            centroid = geo.centroid_ras(gm & (masks[a] | masks[b]), ref)
            evidence = {"lesion_volume_before_mm3": vol_a, "lesion_volume_after_mm3": vol_b,
                        "total_change_pct": 100.0 * (vol_b - vol_a) / vol_a if vol_a > 0 else None,
                        "volumes_from": VOLUMES_FROM[bool(fractions)],
                        "min_portion_mm3": min_portion_mm3, "min_depth_mm": depth_min, "min_core_mm3": MIN_CORE_MM3,
                        "displacement_threshold_mm": DISPLACEMENT_MM, "smoothing_sigma_mm": SMOOTH_SIGMA_MM,
                        "resolution": resolution}
            if excluded is not None and (excluded & gm).any():
                evidence["new_foci_not_counted_mm3"] = float((excluded & gm).sum() * vox)
            if low:
                evidence["sub_resolution_portions"] = [
                    {"kind": p.kind, "volume_mm3": p.volume_mm3, "max_depth_mm": p.max_depth_mm,
                     "centroid_ras": p.centroid_ras} for p in low]
            if near:
                evidence["foci_within_resolution"] = [{k: v for k, v in f.items() if k != "mask"} for f in near]
            if not mine:
                if low or near:
                    findings.append(Finding(kind="change_indeterminate", from_=a, to=b, centroid_ras=centroid,
                                            volume_mm3=vol_b, dose={}, evidence=evidence))
                continue
            grew = [p for p in mine if p.kind == "grew"]
            reg = [p for p in mine if p.kind == "regressed"]
            if grew and not reg:
                moved = surface_moved_out(masks[a], displacement[0], ref, gm)
                evidence["surface_moved_out_fraction"] = moved
                evidence["concentric_surface_fraction"] = CONCENTRIC_SURFACE_FRACTION
                kind = "concentric_growth" if moved is not None and moved >= CONCENTRIC_SURFACE_FRACTION \
                    else "eccentric_growth"
            else:
                kind = "mixed_response" if grew else "regression"
            union = np.zeros(gm.shape, bool)
            for p in mine:
                union |= p.mask
            dose = {}
            if dose_on_ref is not None:
                dose = {"mean_gy": float(dose_on_ref[union].mean()), "max_gy": float(dose_on_ref[union].max())}
            findings.append(Finding(
                kind=kind, from_=a, to=b, centroid_ras=centroid, volume_mm3=vol_b, dose=dose,
                grew_mm3=float(sum(p.volume_mm3 for p in grew)),
                regressed_mm3=float(sum(p.volume_mm3 for p in reg)),
                portions=[{"kind": p.kind, "volume_mm3": p.volume_mm3,
                           "max_displacement_mm": p.max_displacement_mm, "max_depth_mm": p.max_depth_mm,
                           "mean_displacement_mm": p.mean_displacement_mm, "centroid_ras": p.centroid_ras,
                           **({"mean_gy": float(dose_on_ref[p.mask].mean())} if dose_on_ref is not None else {})}
                          for p in mine],
                evidence=evidence))
    return findings, maps


def resample_mask(mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None) -> sitk.Image:
    """A binary mask onto another grid through its signed distance map (linear), not its labels: a thick-slice
    mask comes back with a smooth surface instead of a staircase. ``transform``: reference point → mask point."""
    m = sitk.Cast(mask > 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(m).any():
        out = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
        out.CopyInformation(reference)
        return out
    # Distance to the mask minus distance to its outside: −(distance to the outside) inside, +(distance to the mask)
    # outside, so the zero level sits half-way between the last voxel in and the first voxel out (in mm, whatever
    # the slice thickness) where the part is wider than a slice is thick.
    def unsigned(x):
        return sitk.Abs(sitk.SignedMaurerDistanceMap(x, insideIsPositive=False, squaredDistance=False,
                                                     useImageSpacing=True)) * sitk.Cast(x == 0, sitk.sitkFloat32)
    sdf = unsigned(m) - unsigned(sitk.Cast(m == 0, sitk.sitkUInt8))
    transform = transform or sitk.Transform()
    out = geo.array_view(sitk.Resample(sdf, reference, transform, sitk.sitkLinear, 1e4, sitk.sitkFloat32)) < 0
    # A part one slice thick and a few voxels wide has an inside distance of one pixel (0.9 mm), not half a slice:
    # its zero level lies 0.8 mm either side of its slice and target slices 5.5 mm apart can miss it entirely (a
    # 26 mm³ lesion drawn on one follow-up slice came back as nothing, and its lesion read as gone). Each part
    # that comes back empty is kept where nearest-neighbour sampling puts it.
    parts = sitk.ConnectedComponent(m, True)
    near = geo.array_view(sitk.Resample(parts, reference, transform, sitk.sitkNearestNeighbor, 0, parts.GetPixelID()))
    found = np.unique(near[near > 0])
    kept = np.unique(near[out & (near > 0)])
    lost = np.setdiff1d(found, kept)
    if lost.size:
        out = out | np.isin(near, lost)
    return geo.image_from_array(out.astype(np.uint8), reference)


#: Sub-voxel size (mm) when a mask's coverage of a reference voxel is counted (:func:`mask_fraction`): each face
#: of the drawing is placed within half of it. At most MAX_SPLIT per axis and MAX_SUBVOXELS in all.
SUBVOXEL_MM = 0.25
MAX_SPLIT = 8
MAX_SUBVOXELS = 40_000_000


def mask_fraction(mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    """The fraction of each ``reference`` voxel that the mask covers as drawn, each of its voxels a box (a slab on
    thick slices): an (i, j, k) float32 array on ``reference`` whose sum times the voxel volume is the drawn
    volume, whatever the two grids' slice thicknesses and orientations. Each reference voxel is split into
    sub-voxels of :data:`SUBVOXEL_MM` (or half the mask's finest spacing; at most :data:`MAX_SPLIT` per axis) and
    the mask sampled at their centres (nearest neighbour: a box), so each face of the drawing lands within half a
    sub-voxel. Only the reference voxels the mask can reach are split. :func:`resample_mask`'s zero level cannot
    give volumes on thick slices: it pulls a drawing's caps in to its last slice. ``transform``: reference point →
    mask point."""
    m = sitk.Cast(mask > 0, sitk.sitkUInt8)
    out = np.zeros(reference.GetSize(), np.float32)
    nz = np.argwhere(geo.array_view(m) > 0)
    if not len(nz):
        return out
    transform = transform or sitk.Transform()
    # Only the reference voxels the mask can reach: its box's corners (half a voxel out) in the reference's frame.
    corners = geo.index_to_lps(m, geo.box_corners(nz.min(0) - 0.5, nz.max(0) + 0.5))
    try:
        inverse = transform.GetInverse()
    except RuntimeError:                      # a transform without an inverse: the whole reference
        corners, inverse = geo.corners_lps(reference), sitk.Transform()
    found = geo.grid_covering(reference, [inverse.TransformPoint(tuple(float(v) for v in p)) for p in corners])
    if found is None:
        return out
    sub, start = found
    step = min(SUBVOXEL_MM, 0.5 * min(m.GetSpacing()))
    factors = [int(min(max(np.ceil(s / step - 1e-6), 1), MAX_SPLIT)) for s in reference.GetSpacing()]
    while np.prod(sub.GetSize()) * np.prod(factors) > MAX_SUBVOXELS and max(factors) > 1:
        factors = [max(f - 1, 1) for f in factors]
    fine = sitk.Resample(m, geo.refined_grid(sub, factors), transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    out[tuple(slice(a, a + n) for a, n in zip(start, sub.GetSize()))] = geo.block_mean(geo.array_view(fine), factors)
    return out

