"""Enhancement on a post-contrast T1, and what of it is normal anatomy rather than pathology (planning frame, LPS).

Everything works on a box of the planning grid (see :class:`Box`). Enhancement is T1 ≥ NAWM + max(5 σ, 20 % of
NAWM) (the tissue model of :mod:`..anatomy.brain`). On real post-contrast T1 much of what crosses that threshold
is normal, and is left out — each reason with its volume and position in the evidence:

* **vessels**: tubular voxels (Hessian of the normalised image at σ = 0.75 and 1.5 mm: two strong negative
  eigenvalues of similar size, the third small; Frangi's R_A ≥ 0.5, R_B ≤ 0.4). A component that is mostly
  tubular is a vessel; the tubular branches of a lesion component that lie more than 2 mm from its non-tubular
  part are a vessel running past it. Rims of ring-enhancing lesions are plates, not tubes, and stay;
* **choroid plexus**: enhancement inside the ventricles, more than 1.5 mm from the ventricular wall (enhancement
  at the wall is judged as possible ependymal enhancement, see boundaries.py);
* **vessels and dura at the brain surface**: small components (< 150 mm³) lying mostly within 2.5 mm of the brain
  surface, and small (< 100 mm³) elongated ones (principal axes ≥ 3 : 1) — a vessel cut short or lying along
  the cortex, a sinus at the edge of the brain mask;
* **dura and venous sinuses**: enhancement lying in the falx/tentorium sheets (normal thin dura enhances; thickened
  or nodular dura is judged separately as boundary enhancement).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from ..anatomy.brain import TissueModel
from ..io import geometry as geo

MIN_COMPONENT_MM3 = 20.0


@dataclasses.dataclass
class Box:
    """An index box of the planning grid (slices) and its sub-grid image."""
    slices: tuple
    grid: sitk.Image

    def crop(self, arr: np.ndarray) -> np.ndarray:
        return arr[self.slices]


def box_image(arr: np.ndarray, box: Box) -> sitk.Image:
    return geo.image_from_array(arr.astype(np.uint8) if arr.dtype == bool else arr, box.grid)


def distance_mm(mask: np.ndarray, box: Box) -> np.ndarray:
    """Unsigned distance (mm) to the nearest voxel of ``mask`` (0 inside); +inf when the mask is empty."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    d = sitk.SignedMaurerDistanceMap(box_image(mask, box), insideIsPositive=False, squaredDistance=False,
                                     useImageSpacing=True)
    return np.clip(geo.array_view(d), 0, None)


def components(mask: np.ndarray, box: Box) -> np.ndarray:
    return geo.array_view(sitk.ConnectedComponent(box_image(mask, box), True)).astype(np.int32)


def remove_small(mask: np.ndarray, box: Box, min_volume_mm3: float) -> np.ndarray:
    if not mask.any():
        return mask
    lab = components(mask, box)
    counts = np.bincount(lab.ravel())
    vox = geo.voxel_volume_mm3(box.grid)
    keep = np.nonzero(counts * vox >= min_volume_mm3)[0]
    keep = keep[keep != 0]
    return np.isin(lab, keep)


def segment_enhancement(t1c_box: np.ndarray, roi_box: np.ndarray, model: TissueModel, box: Box,
                        min_volume_mm3: float = MIN_COMPONENT_MM3) -> np.ndarray:
    """Enhancing voxels (T1 ≥ threshold) inside the ROI, components smaller than ``min_volume_mm3`` removed."""
    return remove_small((t1c_box >= model.threshold) & roi_box, box, min_volume_mm3)


#: Straight rays from a voxel meet a lesion within this reach (mm) in the directions counted by
#: :func:`enclosed_fraction`.
ENCLOSURE_REACH_MM = 20.0
#: A voxel outside the closed enhancement is the lesion's core when rays meet the enhancement in at least this
#: fraction of the 26 grid directions (20 of 26). Outside a convex lesion a voxel sees it in at most about half of
#: them; in a sulcus between two walls of enhancement (two parts of a lesion on either side) in 18 of 26 (0.69);
#: the necrotic core of a ring whose thin wall is cut in places in 0.8-1.0. Measured on the real BraTS implant of
#: temporal_mixed_pd (two ring lesions, 1.5 mm walls): the extent covers 81 % of the true lesion instead of 51 %.
CORE_ENCLOSED_FRACTION = 0.75


def _shifted(a: np.ndarray, off) -> np.ndarray:
    """``a`` moved so that out[x] = a[x + off] (False beyond the edge)."""
    out = np.zeros_like(a)
    src, dst = [], []
    for o, n in zip(off, a.shape):
        o = int(o)
        if abs(o) >= n:
            return out
        src.append(slice(max(o, 0), n + min(o, 0)))
        dst.append(slice(max(-o, 0), n - max(o, 0)))
    out[tuple(dst)] = a[tuple(src)]
    return out


def enclosed_fraction(mask: np.ndarray, grid: sitk.Image, where: np.ndarray,
                      reach_mm: float = ENCLOSURE_REACH_MM) -> np.ndarray:
    """For the voxels of ``where``: the fraction of the 26 grid directions in which a straight ray meets ``mask``
    within ``reach_mm`` (array on ``grid``, 0 outside ``where``)."""
    out = np.zeros(mask.shape, np.float32)
    if not where.any() or not mask.any():
        return out
    sp = np.array(grid.GetSpacing(), float)
    hits = np.zeros(int(where.sum()), np.uint8)
    dirs = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)]
    for d in dirs:
        step = np.array(d)
        n = max(int(np.ceil(reach_mm / float(np.linalg.norm(step * sp)))), 1)
        h = _shifted(mask, step)            # covers steps 1 .. covered
        covered = 1
        while covered < n:
            h = h | _shifted(h, step * covered)
            covered *= 2
        hits += h[where]
    out[where] = hits / float(len(dirs))
    return out


def _closed_and_filled(enh: np.ndarray, box: Box) -> np.ndarray:
    closed = geo.array_view(sitk.BinaryMorphologicalClosing(
        box_image(enh, box), [max(int(round(2.0 / s)), 1) for s in box.grid.GetSpacing()])) > 0
    votes = np.zeros(enh.shape, np.uint8)
    for axis in range(3):
        filled = np.zeros(enh.shape, bool)
        for i in np.nonzero(closed.any(axis=tuple(a for a in range(3) if a != axis)))[0]:
            sl = np.take(closed, i, axis=axis)
            f = sitk.GetArrayFromImage(sitk.BinaryFillhole(sitk.GetImageFromArray(sl.astype(np.uint8)))) > 0
            idx = [slice(None)] * 3
            idx[axis] = i
            filled[tuple(idx)] = f
        votes += filled
    return closed | (votes >= 2) | enh


def lesion_extent(enh: np.ndarray, box: Box) -> np.ndarray:
    """A lesion's extent from its enhancement: the enhancement, closed by 2 mm, plus what it encloses.

    A voxel is enclosed when hole filling in at least two of the three orthogonal slice directions says so (a rim
    left open towards one side, an open ring or a rim cut by a sulcus, still has its core), or when straight rays
    meet the lesion in at least :data:`CORE_ENCLOSED_FRACTION` of the 26 directions: a thin ring wall that blur and
    noise cut in several places leaves no closed slice around the core, and the core would otherwise be missing
    from the extent (and its growth read as growth at one margin). Repeated (at most three times) while cores are
    added, since a filled core encloses the rest."""
    if not enh.any():
        return enh.copy()
    ext = _closed_and_filled(enh, box)
    for _ in range(3):
        near = ~ext & (distance_mm(ext, box) <= ENCLOSURE_REACH_MM)
        core = enclosed_fraction(ext, box.grid, near) >= CORE_ENCLOSED_FRACTION
        if not core.any():
            break
        ext = _closed_and_filled(ext | core, box)
    return ext


def lesion_extent_apart(enh: np.ndarray, foci: np.ndarray, box: Box) -> np.ndarray:
    """:func:`lesion_extent` of the non-contiguous foci apart from the rest of the enhancement, so that its 2 mm
    closing does not join across a boundary what the boundary analysis found separate (brats sylvian_cavity_rn: a
    focus 3.3 mm from the cavity rim, across the fissure, became one extent with it, and its growth since SRS a
    growth of the lesion)."""
    return lesion_extent(enh & ~foci, box) | lesion_extent(enh & foci, box)


def centroid_ras(mask: np.ndarray, box: Box) -> list:
    return geo.centroid_ras(mask, box.grid)


def tubular(t1c_box: np.ndarray, candidates: np.ndarray, model: TissueModel, box: Box,
            scales_mm=(0.75, 1.5)) -> np.ndarray:
    """Voxels of ``candidates`` belonging to bright tubes (vessels): centreline voxels found at any scale (module
    docstring; on the ridge, i.e. where the gradient is small against the curvature, so the rounded surface of a
    small nodule, which is tube-like at the edge, does not count), grown back by 1.5 mm inside ``candidates``."""
    out = np.zeros(candidates.shape, bool)
    if not candidates.any():
        return out
    norm = ((t1c_box.astype(np.float32) - model.nawm) / max(model.nawm, 1e-6)).astype(np.float32)
    img = geo.image_from_array(norm, box.grid)
    sp = np.array(box.grid.GetSpacing(), float)
    pts = np.argwhere(candidates)
    centre = np.zeros(candidates.shape, bool)
    for sigma in scales_mm:
        g = geo.array_view(sitk.SmoothingRecursiveGaussian(img, float(sigma))).astype(np.float64)
        grads = np.gradient(g, *sp)
        gmag = np.sqrt(sum(gr[tuple(pts.T)] ** 2 for gr in grads)) * sigma
        hess = np.zeros((len(pts), 3, 3))
        for a in range(3):
            ga = np.gradient(grads[a], *sp)
            for b in range(3):
                hess[:, a, b] = ga[b][tuple(pts.T)]
        del grads
        hess = 0.5 * (hess + hess.transpose(0, 2, 1))
        w = np.linalg.eigvalsh(hess) * sigma * sigma
        w = np.take_along_axis(w, np.argsort(np.abs(w), axis=1), axis=1)
        l1, l2, l3 = w[:, 0], w[:, 1], w[:, 2]
        ra = np.abs(l2) / np.maximum(np.abs(l3), 1e-9)
        rb = np.abs(l1) / np.maximum(np.sqrt(np.abs(l2 * l3)), 1e-9)
        ridge = gmag <= 0.3 * np.abs(l3)
        tube = (l2 < 0) & (l3 < 0) & (ra >= 0.5) & (rb <= 0.4) & (l3 <= -0.04) & ridge
        centre[tuple(pts[tube].T)] = True
    if centre.any():
        out = (distance_mm(centre, box) <= 1.5) & candidates
    return out


@dataclasses.dataclass
class Filtered:
    """Enhancement split into what is analysed (``kept``) and what was left out as normal anatomy."""
    kept: np.ndarray
    left_out: list                       # [{"reason", "volume_mm3", "components", "centroid_ras"}]
    tube: np.ndarray                     # tubular voxels among the raw enhancement (also used for boundaries)


def leave_out_normal(enh: np.ndarray, t1c_box: np.ndarray, model: TissueModel, box: Box, *,
                     ventricles: np.ndarray | None = None, folds: np.ndarray | None = None,
                     protect: np.ndarray | None = None, brain: np.ndarray | None = None,
                     min_volume_mm3: float = MIN_COMPONENT_MM3) -> Filtered:
    """Leave out vessels, choroid plexus and normal dura (module docstring). ``protect``: voxels never left out
    (e.g. a user's lesion mask)."""
    vox = geo.voxel_volume_mm3(box.grid)
    tube = tubular(t1c_box, enh, model, box)
    kept = enh.copy()
    removed: dict[str, np.ndarray] = {}

    def drop(reason, mask):
        mask = mask & kept
        if protect is not None:
            mask &= ~protect
        if mask.any():
            removed[reason] = removed.get(reason, np.zeros_like(kept)) | mask
            kept[mask] = False

    if ventricles is not None and ventricles.any():
        wall_dist = distance_mm(~ventricles, box)        # depth inside the ventricles
        drop("choroid plexus (inside the ventricles, away from the wall)", ventricles & (wall_dist > 1.5))
    if folds is not None and folds.any():
        drop("dura or venous sinus (in the falx/tentorium)", folds)
    labels = components(kept, box)
    if labels.max() > 0:
        n = int(labels.max())
        total = np.bincount(labels.ravel(), minlength=n + 1)
        tub = np.bincount(labels[tube & kept].ravel(), minlength=n + 1)
        vessel_comps = [lab for lab in range(1, n + 1) if total[lab] and tub[lab] >= 0.5 * total[lab]]
        drop("vessel (tubular enhancement)", np.isin(labels, vessel_comps))
        # Tubular branches of the remaining components, > 2 mm from their non-tubular part.
        core = kept & ~tube
        if core.any():
            drop("vessel (tubular enhancement)", kept & tube & (distance_mm(core, box) > 2.0))
    labels = components(kept, box)
    if labels.max() > 0 and brain is not None:
        surface = distance_mm(~brain, box) <= 2.5
        small_surface, elongated = [], []
        # A small piece within 3 mm of the lesion (the protected mask, or any component of >= 150 mm³) is a
        # fragment of its rim where it meets the surface, not a vessel: kept.
        sizes = np.bincount(labels.ravel()) * vox
        body = np.isin(labels, [lab for lab in np.nonzero(sizes >= 150.0)[0] if lab > 0])
        if protect is not None:
            body |= protect
        near_body = distance_mm(body, box) <= 3.0 if body.any() else np.zeros_like(kept)
        for lab in range(1, int(labels.max()) + 1):
            m = labels == lab
            if protect is not None and (m & protect).any():
                continue
            vol = m.sum() * vox
            if vol < 150.0 and near_body[m].any():
                continue
            if vol < 150.0 and surface[m].mean() >= 0.5:
                small_surface.append(lab)
            elif vol < 100.0 and m.sum() >= 4:
                pts = np.argwhere(m) * np.array(box.grid.GetSpacing())
                ev = np.sort(np.linalg.eigvalsh(np.cov(pts.T)))[::-1]
                if ev[1] <= 0 or np.sqrt(ev[0] / max(ev[1], 1e-9)) >= 3.0:
                    elongated.append(lab)
        drop("vessel or dura at the brain surface (small, on the surface)", np.isin(labels, small_surface))
        drop("vessel (small elongated enhancement)", np.isin(labels, elongated))
    kept = remove_small(kept, box, min_volume_mm3)
    left_out = []
    for reason, mask in removed.items():
        n_comp = int(components(mask, box).max())
        left_out.append({"reason": reason, "volume_mm3": float(mask.sum() * vox), "components": n_comp,
                         "centroid_ras": centroid_ras(mask, box)})
    return Filtered(kept=kept, left_out=left_out, tube=tube)
