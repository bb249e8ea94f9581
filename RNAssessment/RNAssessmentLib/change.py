"""Change in shape between timepoints: portions of one lesion that grew and portions that regressed.

All masks are lesion extents (enhancement + what it encloses) on the **planning grid** (LPS), i.e. after
registration. Method:

* local surface displacement Δ = SDF_before − SDF_after (signed distances, mm, negative inside), smoothed with a
  Gaussian of σ = 2 mm: positive where the boundary moved outwards, negative where it moved inwards. Smoothing
  averages out a segmentation's 1–2 voxel wobble, which moves the boundary both ways within a few mm, while a real
  change moves a whole portion one way;
* grew = after ∖ before where Δ ≥ 0.75 mm; regressed = before ∖ after where Δ ≤ −0.75 mm; 26-connected portions
  smaller than ``min_portion_mm3`` (50 mm³), or whose part lying ≥ 2.5 mm beyond the other surface is under
  10 mm³, are dropped, so a 1–2 voxel wobble of the segmentation is never called growth or regression;
* one lesion = the timepoints' lesion voxels grouped within ``group_mm`` (10 mm) of each other: foci across a
  barrier inside the dose region belong to the lesion they arose from;
* ``mixed_response`` when a lesion has, in the same interval, at least one portion that grew and one that regressed;
  ``concentric_growth`` / ``regression`` when all its portions went one way.

RANO-BM per timepoint: longest axial diameter and its perpendicular (planning image's axial planes), sum over
lesion components ≥ 10 mm, % change from baseline and from nadir, category (CR / PR ≥ 30 % decrease from baseline
/ PD ≥ 20 % and ≥ 5 mm increase from nadir / SD).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from . import geometry as geo
from .findings import Finding

MIN_PORTION_MM3 = 50.0
MIN_DEPTH_MM = 2.5        # a portion's core must reach this far beyond the other surface: more than a wobble
MIN_CORE_MM3 = 20.0       # ... over at least this volume
DISPLACEMENT_MM = 0.75
SMOOTH_SIGMA_MM = 2.0


def _sdf(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, 1e3, np.float32)
    d = sitk.SignedMaurerDistanceMap(geo.image_from_array(mask.astype(np.uint8), ref), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    return geo.array_view(d).astype(np.float32)


def displacement_mm(before: np.ndarray, after: np.ndarray, ref: sitk.Image, sigma_mm: float = SMOOTH_SIGMA_MM):
    """Smoothed local boundary displacement (mm, + outward) between two masks on ``ref``'s grid."""
    a = np.clip(_sdf(before, ref), -20, 20)
    b = np.clip(_sdf(after, ref), -20, 20)
    diff = geo.image_from_array((a - b).astype(np.float32), ref)
    return geo.array_view(sitk.SmoothingRecursiveGaussian(diff, sigma_mm)), a, b


def _components(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    return geo.array_view(sitk.ConnectedComponent(geo.image_from_array(mask.astype(np.uint8), ref), True))


def lesion_groups(masks: list[np.ndarray], ref: sitk.Image, group_mm: float = 10.0) -> np.ndarray:
    """Label map of lesions: all timepoints' voxels, grouped when within ``group_mm`` of each other."""
    union = np.zeros(masks[0].shape, bool)
    for m in masks:
        union |= m
    if not union.any():
        return np.zeros(union.shape, np.int32)
    d = _sdf(union, ref)
    grown = _components(d <= group_mm / 2.0, ref)
    return np.where(union, grown, 0).astype(np.int32)


@dataclasses.dataclass
class Portion:
    kind: str                 # "grew" or "regressed"
    volume_mm3: float
    max_displacement_mm: float
    mean_displacement_mm: float
    centroid_ras: list
    mask: np.ndarray
    max_depth_mm: float = 0.0     # how far the portion reaches beyond the other timepoint's surface


def interval_portions(before: np.ndarray, after: np.ndarray, ref: sitk.Image,
                      min_portion_mm3: float = MIN_PORTION_MM3) -> tuple[list[Portion], np.ndarray]:
    """Grew/regressed portions between two masks; also returns the label map (1 grew, 2 regressed, 3 stable)."""
    disp, sdf_a, sdf_b = displacement_mm(before, after, ref)
    vox = geo.voxel_volume_mm3(ref)
    out: list[Portion] = []
    label = np.zeros(before.shape, np.uint8)
    label[before & after] = 3
    for kind, raw, sign in (("grew", after & ~before, 1.0), ("regressed", before & ~after, -1.0)):
        cand = raw & (sign * disp >= DISPLACEMENT_MM)
        if not cand.any():
            continue
        comps = _components(cand, ref)
        counts = np.bincount(comps.ravel())
        for lab in np.nonzero(counts * vox >= min_portion_mm3)[0]:
            if lab == 0:
                continue
            m = comps == lab
            depth = sdf_a[m] if kind == "grew" else sdf_b[m]
            if (depth >= MIN_DEPTH_MM).sum() * vox < MIN_CORE_MM3:
                continue
            idx = np.argwhere(m).mean(0, keepdims=True)
            out.append(Portion(kind=kind, volume_mm3=float(m.sum() * vox),
                               max_displacement_mm=float(sign * np.max(sign * disp[m])),
                               mean_displacement_mm=float(disp[m].mean()),
                               centroid_ras=geo.ras_from_lps(geo.index_to_lps(ref, idx))[0].tolist(), mask=m,
                               max_depth_mm=float(depth.max())))
            label[m] = 1 if kind == "grew" else 2
    return out, label


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


def rano_table(masks: dict[str, np.ndarray], ref: sitk.Image, days: dict[str, int | None]) -> list[dict]:
    """Per timepoint: volume, sum of longest axial diameters of measurable components, % changes, category."""
    rows = []
    vox = geo.voxel_volume_mm3(ref)
    for label, m in masks.items():
        comps = _components(m, ref)
        sld, perp_sum, n_meas = 0.0, 0.0, 0
        for lab in range(1, int(comps.max()) + 1):
            ld, pd = axial_diameters(comps == lab, ref)
            if ld >= 10.0:
                sld += ld
                perp_sum += pd
                n_meas += 1
        rows.append({"timepoint": label, "days_since_srs": days.get(label), "volume_mm3": float(m.sum() * vox),
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
        elif r["volume_mm3"] == 0:
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

def analyse_changes(masks: dict[str, np.ndarray], ref: sitk.Image, dose_on_ref: np.ndarray | None = None,
                    min_portion_mm3: float = MIN_PORTION_MM3, group_mm: float = 10.0, vs_first: bool = True):
    """Findings for every consecutive interval (and from the SRS image to the last timepoint).

    ``masks``: ordered {timepoint label: lesion extent on ``ref``}. Returns (findings, {interval: label map})."""
    labels = list(masks)
    groups = lesion_groups(list(masks.values()), ref, group_mm)
    findings: list[Finding] = []
    maps: dict = {}
    intervals = list(zip(labels[:-1], labels[1:]))
    if len(labels) > 2 and vs_first:
        intervals.append((labels[0], labels[-1]))
    for a, b in intervals:
        portions, label_map = interval_portions(masks[a], masks[b], ref, min_portion_mm3)
        maps[(a, b)] = label_map
        for g in range(1, int(groups.max()) + 1):
            gm = groups == g
            mine = [p for p in portions if (p.mask & gm).any()]
            if not mine:
                continue
            grew = [p for p in mine if p.kind == "grew"]
            reg = [p for p in mine if p.kind == "regressed"]
            kind = "mixed_response" if grew and reg else ("concentric_growth" if grew else "regression")
            union = np.zeros(gm.shape, bool)
            for p in mine:
                union |= p.mask
            idx = np.argwhere(gm & (masks[a] | masks[b])).mean(0, keepdims=True)
            dose = {}
            if dose_on_ref is not None:
                dose = {"mean_gy": float(dose_on_ref[union].mean()), "max_gy": float(dose_on_ref[union].max())}
            vol_a = float((masks[a] & gm).sum() * geo.voxel_volume_mm3(ref))
            vol_b = float((masks[b] & gm).sum() * geo.voxel_volume_mm3(ref))
            findings.append(Finding(
                kind=kind, from_=a, to=b, centroid_ras=geo.ras_from_lps(geo.index_to_lps(ref, idx))[0].tolist(),
                volume_mm3=vol_b, dose=dose,
                grew_mm3=float(sum(p.volume_mm3 for p in grew)),
                regressed_mm3=float(sum(p.volume_mm3 for p in reg)),
                portions=[{"kind": p.kind, "volume_mm3": p.volume_mm3,
                           "max_displacement_mm": p.max_displacement_mm, "max_depth_mm": p.max_depth_mm,
                           "mean_displacement_mm": p.mean_displacement_mm, "centroid_ras": p.centroid_ras,
                           **({"mean_gy": float(dose_on_ref[p.mask].mean())} if dose_on_ref is not None else {})}
                          for p in mine],
                evidence={"lesion_volume_before_mm3": vol_a, "lesion_volume_after_mm3": vol_b,
                          "total_change_pct": 100.0 * (vol_b - vol_a) / vol_a if vol_a > 0 else None,
                          "min_portion_mm3": min_portion_mm3, "min_depth_mm": MIN_DEPTH_MM, "min_core_mm3": MIN_CORE_MM3,
                          "displacement_threshold_mm": DISPLACEMENT_MM,
                          "smoothing_sigma_mm": SMOOTH_SIGMA_MM}))
    return findings, maps
