"""Brain mask and tissue intensities on a post-contrast T1 (any grid, LPS).

* brain mask: T1 above half-way between CSF and grey matter, largest component, closed (8 mm) and hole-filled so
  sulci and ventricles are inside;
* tissue statistics: 3-class k-means on brain intensities; normal-appearing white matter (NAWM) = the brightest
  class, robust spread from its MAD; enhancement threshold = NAWM median + max(5·σ, 20 % of NAWM).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo


@dataclasses.dataclass(frozen=True)
class TissueModel:
    """Intensity reference on one follow-up image (arbitrary MR units)."""
    nawm: float
    nawm_sigma: float
    csf: float
    threshold: float
    method: str = ("3-class k-means in the analysis box; NAWM = brightest class; "
                   "threshold = NAWM + max(5 sigma, 0.2 NAWM)")


#: Intensity classes are estimated on an evenly spaced sample of at most this many voxels (the classes of a head
#: are settled long before that; every voxel would cost seconds).
KMEANS_SAMPLE = 200_000


def kmeans_1d(values: np.ndarray, k: int = 3, *, sample: int = KMEANS_SAMPLE,
              iters: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k intensity classes of ``values`` (1D): (centres, each sampled value's class, the sampled values), on every
    ``len(values) // sample``-th value *in order of intensity* (all of them when fewer). Sampling the sorted values
    keeps the histogram and makes the classes independent of how an image's array is stored (a strided sample of
    the array took other voxels once the image was flipped to the canonical layout)."""
    values = np.asarray(values).ravel()
    step = max(1, values.size // sample)
    if step > 1:
        values = np.sort(values)[step // 2:: step]
    centres = np.percentile(values, np.linspace(15, 85, k))
    for _ in range(iters):
        lab = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        new = np.array([values[lab == i].mean() if np.any(lab == i) else centres[i] for i in range(k)])
        if np.allclose(new, centres, atol=0.5):
            break
        centres = new
    return centres, lab, values


def brain_mask(t1c: sitk.Image) -> sitk.Image:
    """Brain (parenchyma + the CSF spaces inside it) from a post-contrast T1, see module docstring."""
    arr = geo.array_view(t1c).astype(np.float32)
    fg = arr[arr > np.percentile(arr, 30)]
    centres, _, _ = kmeans_1d(fg, 3)
    c = np.sort(centres)
    # Dark class = CSF/bone; the threshold between it and grey matter keeps parenchyma, drops skull and CSF.
    thr = 0.5 * (c[0] + c[1])
    tissue = sitk.BinaryThreshold(sitk.Cast(t1c, sitk.sitkFloat32), float(thr), float(arr.max()) + 1.0, 1, 0)
    tissue = sitk.BinaryMorphologicalOpening(tissue, [2, 2, 2])
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(tissue), sortByObjectSize=True)
    brain = sitk.Cast(cc == 1, sitk.sitkUInt8)
    brain = sitk.BinaryMorphologicalClosing(brain, [8, 8, 8])
    return sitk.BinaryFillhole(brain)


def tissue_model(t1c_box: np.ndarray, brain_box: np.ndarray, exclude: np.ndarray | None = None) -> TissueModel:
    """NAWM and CSF reference intensities and the enhancement threshold from the analysis box."""
    sel = brain_box.copy()
    if exclude is not None:
        sel &= ~exclude
    v = t1c_box[sel].astype(np.float64)
    if v.size < 1000:
        raise ValueError("too little brain in the analysis box to estimate normal white matter")
    v = v[v < np.percentile(v, 98)]          # leave enhancement out of the tissue classes
    centres, lab, sampled = kmeans_1d(v, 3, sample=300_000)
    order = np.argsort(centres)
    wm = sampled[lab == order[-1]]
    med = float(np.median(wm))
    sigma = float(1.4826 * np.median(np.abs(wm - med)))
    thr = med + max(5.0 * sigma, 0.2 * med)
    return TissueModel(nawm=med, nawm_sigma=sigma, csf=float(centres[order[0]]), threshold=thr)
