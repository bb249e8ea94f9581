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


def lesion_extent(enh: np.ndarray, box: Box) -> np.ndarray:
    """A lesion's extent from its enhancement: the enhancement, closed by 2 mm, plus what it encloses — a voxel is
    enclosed when hole filling in at least two of the three orthogonal slice directions says so, so a rim left open
    towards one side (an open ring, a rim cut by a sulcus) still has its necrotic core counted as lesion."""
    if not enh.any():
        return enh.copy()
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


def centroid_ras(mask: np.ndarray, box: Box) -> list:
    idx = np.argwhere(mask).mean(0, keepdims=True)
    return geo.ras_from_lps(geo.index_to_lps(box.grid, idx))[0].tolist()


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
