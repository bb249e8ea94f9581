"""Boundaries: new enhancement that is non-contiguous with the treated lesion across the falx, the tentorium, a
sulcus (CSF) or a ventricle; enhancement of the boundary itself; open rings.

Everything here works in the **planning frame** (the SRS-time image's grid, LPS): follow-up images and masks are
resampled onto it first (see change.py for registration). Work is restricted to a box around the treated lesion and
the dose region, so the cost does not grow with the head.

Methods (stated in outputs so a reader can judge them):

* brain mask: T1 above half-way between CSF and grey matter, largest component, closed (8 mm) and hole-filled so
  sulci and ventricles are inside;
* tissue statistics: 3-class k-means on brain intensities in the box; normal-appearing white matter (NAWM) = the
  brightest class, robust spread from its MAD; enhancement = T1 ≥ NAWM median + max(5·σ, 20 % of NAWM);
* components: 26-connected; two components (or a component and the treated lesion) are contiguous when at most
  one voxel separates them, transitively (enhancing meninges can bridge a lesion and a focus);
* separating boundary: straight segments from component voxels to their nearest treated-lesion voxels; the specific
  barrier (falx, tentorium, ventricles) crossed by ≥ 30 % of segments, else CSF when ≥ 30 % cross it;
* geodesic distance: fast marching through brain that excludes every boundary structure (speed 1 mm/mm there,
  ~0 in barriers);
* boundary enhancement: boundary voxels within 2 mm of the enhancement brighter than half-way from the same
  boundary ≥ 15 mm away to the enhancement threshold; enhancing when ≥ 25 % of them are;
* open ring (toward the ventricles; facing the cortex is not evaluated yet): next to the ventricle, non-enhancing
  tissue lying under the enhancement outweighs enhancement touching the ependyma (≥ 50 %).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from . import geometry as geo
from .dose import dose_on_grid
from .findings import Finding

KINDS = ("falx", "tentorium", "ventricles", "csf")
SPECIFIC = ("falx", "tentorium", "ventricles")
MIN_COMPONENT_MM3 = 20.0


@dataclasses.dataclass(frozen=True)
class TissueModel:
    """Intensity reference on one follow-up image (arbitrary MR units)."""
    nawm: float
    nawm_sigma: float
    csf: float
    threshold: float
    method: str = ("3-class k-means in the analysis box; NAWM = brightest class; "
                   "threshold = NAWM + max(5 sigma, 0.2 NAWM)")


@dataclasses.dataclass
class Box:
    """An index box of the planning grid (slices) and its sub-grid image."""
    slices: tuple
    grid: sitk.Image

    def crop(self, arr: np.ndarray) -> np.ndarray:
        return arr[self.slices]


def analysis_box(reference: sitk.Image, masks, dose: sitk.Image | None = None, dose_floor_gy: float = 5.0,
                 margin_mm: float = 30.0) -> Box:
    """Box around the given masks (and the dose ≥ ``dose_floor_gy`` region) plus ``margin_mm``."""
    union = np.zeros(reference.GetSize(), bool)
    for m in masks:
        if m is not None:
            union |= geo.array_view(m) > 0
    if dose is not None:
        union |= geo.array_view(sitk.Resample(dose, reference, sitk.Transform(), sitk.sitkLinear, 0.0)) >= \
            dose_floor_gy
    margin = [int(np.ceil(margin_mm / s)) for s in reference.GetSpacing()]
    nz = np.nonzero(union)
    if len(nz[0]) == 0:
        slices = tuple(slice(0, s) for s in reference.GetSize())
    else:
        slices = tuple(slice(max(int(a.min()) - mg, 0), min(int(a.max()) + mg + 1, s))
                       for a, mg, s in zip(nz, margin, reference.GetSize()))
    start = [sl.start for sl in slices]
    size = [sl.stop - sl.start for sl in slices]
    grid = sitk.RegionOfInterest(sitk.Cast(reference, sitk.sitkUInt8) * 0, size, start)
    return Box(slices=slices, grid=grid)


def _img(arr, box: Box) -> sitk.Image:
    return geo.image_from_array(arr.astype(np.uint8) if arr.dtype == bool else arr, box.grid)


def distance_mm(mask: np.ndarray, box: Box) -> np.ndarray:
    """Unsigned distance (mm) to the nearest voxel of ``mask`` (0 inside); +inf when the mask is empty."""
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    d = sitk.SignedMaurerDistanceMap(_img(mask, box), insideIsPositive=False, squaredDistance=False,
                                     useImageSpacing=True)
    return np.clip(geo.array_view(d), 0, None)


# ----------------------------------------------------------------------------------------------------------------
# Brain, tissue statistics, enhancement
# ----------------------------------------------------------------------------------------------------------------

def _kmeans_1d(values: np.ndarray, k: int = 3, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    centres = np.percentile(values, np.linspace(15, 85, k))
    for _ in range(iters):
        lab = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        new = np.array([values[lab == i].mean() if np.any(lab == i) else centres[i] for i in range(k)])
        if np.allclose(new, centres, atol=0.5):
            break
        centres = new
    return centres, lab


def brain_mask(t1c: sitk.Image) -> sitk.Image:
    """Brain (parenchyma + the CSF spaces inside it) from a post-contrast T1, see module docstring."""
    arr = geo.array_view(t1c).astype(np.float32)
    fg = arr[arr > np.percentile(arr, 30)]
    centres, _ = _kmeans_1d(fg[:: max(1, fg.size // 200000)], 3)
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
    centres, lab = _kmeans_1d(v[:: max(1, v.size // 300000)], 3)
    order = np.argsort(centres)
    wm = v[:: max(1, v.size // 300000)][lab == order[-1]]
    med = float(np.median(wm))
    sigma = float(1.4826 * np.median(np.abs(wm - med)))
    thr = med + max(5.0 * sigma, 0.2 * med)
    return TissueModel(nawm=med, nawm_sigma=sigma, csf=float(centres[order[0]]), threshold=thr)


def segment_enhancement(t1c_box: np.ndarray, roi_box: np.ndarray, model: TissueModel, box: Box,
                        min_volume_mm3: float = MIN_COMPONENT_MM3) -> np.ndarray:
    """Enhancing voxels (T1 ≥ threshold) inside the ROI, components smaller than ``min_volume_mm3`` removed."""
    enh = (t1c_box >= model.threshold) & roi_box
    return remove_small(enh, box, min_volume_mm3)


def remove_small(mask: np.ndarray, box: Box, min_volume_mm3: float) -> np.ndarray:
    if not mask.any():
        return mask
    lab = geo.array_view(sitk.ConnectedComponent(_img(mask, box), True))
    counts = np.bincount(lab.ravel())
    vox = geo.voxel_volume_mm3(box.grid)
    keep = np.nonzero(counts * vox >= min_volume_mm3)[0]
    keep = keep[keep != 0]
    return np.isin(lab, keep)


# ----------------------------------------------------------------------------------------------------------------
# Automatic boundaries
# ----------------------------------------------------------------------------------------------------------------

def midsagittal_plane(t1c: sitk.Image, exclude: sitk.Image | None = None, brain: sitk.Image | None = None) -> dict:
    """Mid-sagittal plane from left-right symmetry: the image is mirrored and rigidly registered to itself
    (correlation, 2 resolution levels, the ``exclude`` region — e.g. the lesion — left out of the metric). The
    registered mirror is a reflection whose fixed plane is the MSP. Returns {"normal", "point"} in LPS."""
    shrink = [2, 2, 2]
    img = sitk.Cast(t1c, sitk.sitkFloat32)
    if brain is not None:
        img = img * sitk.Cast(brain, sitk.sitkFloat32)
    small = sitk.Shrink(sitk.SmoothingRecursiveGaussian(img, 1.0), shrink)
    centre = np.array(small.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in small.GetSize()]))
    direction = np.array(small.GetDirection()).reshape(3, 3)
    # Mirror across the plane through the image centre perpendicular to the image's first (left-right) axis.
    u = direction[:, 0]
    mirror = np.eye(3) - 2.0 * np.outer(u, u)
    mt = sitk.AffineTransform(3)
    mt.SetMatrix(tuple(mirror.ravel()))
    mt.SetCenter(tuple(centre))
    mirrored = sitk.Resample(small, small, mt, sitk.sitkLinear, 0.0)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, seed=7)
    if exclude is not None:
        ex = sitk.Resample(sitk.Cast(exclude > 0, sitk.sitkUInt8), small, sitk.Transform(), sitk.sitkNearestNeighbor)
        ex = sitk.BinaryDilate(ex, [4, 4, 4])
        ex_m = sitk.Resample(ex, small, mt, sitk.sitkNearestNeighbor)
        keep = sitk.Cast((ex == 0) & (ex_m == 0), sitk.sitkUInt8)
        if brain is not None:
            keep = keep * sitk.Cast(sitk.Resample(brain, small, sitk.Transform(), sitk.sitkNearestNeighbor) > 0,
                                    sitk.sitkUInt8)
        reg.SetMetricFixedMask(keep)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    init = sitk.Euler3DTransform()
    init.SetCenter(tuple(centre))
    reg.SetInitialTransform(init, inPlace=False)
    tf = reg.Execute(small, mirrored)
    # Point p of the original maps to the mirrored image at tf(p), i.e. to the original at mt(tf(p)).
    rig = sitk.Euler3DTransform(tf.GetNthTransform(0)) if isinstance(tf, sitk.CompositeTransform) else \
        sitk.Euler3DTransform(tf)
    r = np.array(rig.GetMatrix()).reshape(3, 3)
    c = np.array(rig.GetCenter())
    t = np.array(rig.GetTranslation())
    a_r, b_r = r, c + t - r @ c                                 # rig(p) = a_r p + b_r
    a_m, b_m = mirror, centre - mirror @ centre                 # mt(p)  = a_m p + b_m
    a = a_m @ a_r
    b = a_m @ b_r + b_m
    w, v = np.linalg.eig(a)
    n = np.real(v[:, np.argmin(np.real(w))])
    n /= np.linalg.norm(n)
    if n[0] < 0:
        n = -n
    # For a reflection S(p) = p - 2 (n·p - d) n: b = 2 d n.
    d = float(n @ b) / 2.0
    return {"normal": n.tolist(), "point": (n * d).tolist(), "metric": float(reg.GetMetricValue()),
            "method": "mirror-and-register symmetry (correlation), lesion masked"}


def plane_angle_and_distance(p1: dict, p2: dict, at_lps) -> tuple[float, float]:
    """Angle (degrees) between two planes and their distance (mm) measured at a point."""
    n1, n2 = np.array(p1["normal"]), np.array(p2["normal"])
    ang = float(np.degrees(np.arccos(np.clip(abs(n1 @ n2), -1, 1))))
    x = np.asarray(at_lps, float)
    d1 = x - (x - np.array(p1["point"])) @ n1 * n1          # projection of x on plane 1
    dist = abs((d1 - np.array(p2["point"])) @ n2)
    return ang, float(dist)


def csf_like(sequence: sitk.Image, reference: sitk.Image, brain: np.ndarray, bright: bool) -> np.ndarray:
    """Voxels whose intensity on another sequence of the same session says CSF: the brightest of three intensity
    classes in the brain on T2, the darkest on FLAIR (CSF is suppressed; oedema, T1-dark too, stays bright)."""
    img = sequence if geo.same_grid(sequence, reference) else \
        sitk.Resample(sequence, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    arr = geo.array_view(img).astype(np.float32)
    vals = arr[brain]
    if vals.size < 1000:
        raise ValueError("the T2/FLAIR image hardly overlaps the brain of the post-contrast T1")
    centres, _ = _kmeans_1d(vals[:: max(1, vals.size // 200000)], 3)
    c = np.sort(centres)
    return (arr > 0.5 * (c[1] + c[2])) if bright else (arr < 0.5 * (c[0] + c[1]))


def auto_boundaries(t1c: sitk.Image, brain: sitk.Image, model: TissueModel, plane: dict,
                    lesion: sitk.Image | None = None, t2: sitk.Image | None = None,
                    flair: sitk.Image | None = None) -> tuple[dict, dict]:
    """Automatic falx, ventricles and CSF masks on ``t1c``'s grid (tentorium is not automated: it must be given).
    ``lesion`` (e.g. the treated lesion, holes filled) is left out: a necrotic core is dark like CSF but is no
    boundary. A T2 and/or FLAIR of the same session (any grid in the same frame) refines the CSF: T1-dark voxels
    must also be T2-bright / FLAIR-dark, which removes oedema. Returns (masks, methods)."""
    arr = geo.array_view(t1c).astype(np.float32)
    br = geo.array_view(brain) > 0
    if lesion is not None:
        br = br & ~(geo.array_view(sitk.BinaryFillhole(sitk.Cast(lesion > 0, sitk.sitkUInt8))) > 0)
    # CSF-dark: below half-way between CSF and the darker of grey/white matter (GM ≈ 0.7 NAWM on post-contrast T1).
    dark_thr = model.csf + 0.5 * (0.7 * model.nawm - model.csf)
    dark = br & (arr < dark_thr)
    refined = []
    if t2 is not None:
        dark &= csf_like(t2, t1c, br, bright=True)
        refined.append("T2-bright")
    if flair is not None:
        dark &= csf_like(flair, t1c, br, bright=False)
        refined.append("FLAIR-dark")
    img_dark = geo.image_from_array(dark.astype(np.uint8), t1c)
    # Distance from the outer brain surface: ventricles are deep, large, dark components.
    depth = geo.array_view(sitk.SignedMaurerDistanceMap(brain, insideIsPositive=True, squaredDistance=False,
                                                        useImageSpacing=True))
    cc = geo.array_view(sitk.ConnectedComponent(sitk.BinaryMorphologicalOpening(img_dark, [1, 1, 1]), False))
    vent = np.zeros_like(dark)
    vox = geo.voxel_volume_mm3(t1c)
    for lab in np.unique(cc[(cc > 0) & (depth > 18.0)]):
        comp = cc == lab
        if comp.sum() * vox >= 500.0 and np.median(depth[comp]) > 20.0:
            vent |= comp
    if vent.any():
        # The opening above trims thin horns and the ependymal edge: give the ventricles back their dark rim.
        grown = geo.array_view(sitk.BinaryDilate(geo.image_from_array(vent.astype(np.uint8), t1c), [2, 2, 2])) > 0
        vent |= dark & grown
    csf = dark & ~vent
    # Falx: dark voxels within 1 mm of the mid-sagittal plane, above the corpus callosum (the topmost bright
    # structure crossing the plane).
    idx = np.argwhere(br)
    pts = geo.index_to_lps(t1c, idx)
    n, p0 = np.array(plane["normal"]), np.array(plane["point"])
    sd = (pts - p0) @ n
    on_plane = np.abs(sd) <= 1.0
    plane_idx = idx[on_plane]
    plane_pts = pts[on_plane]
    vals = arr[tuple(plane_idx.T)]
    bright = vals >= model.nawm - 3 * max(model.nawm_sigma, 1.0)
    falx = np.zeros_like(dark)
    if bright.any():
        # Superior-inferior coordinate along the image's third axis; CC = bright plane voxels in the upper half of
        # the brain's midline, the falx lies above the CC's top at each antero-posterior position.
        z = plane_pts[:, 2]
        y = plane_pts[:, 1]
        zmid = np.median(pts[:, 2])
        cc_sel = bright & (z > zmid - 10) & (z < zmid + 30)
        if cc_sel.any():
            ys = np.round(y).astype(int)
            top = {}
            for yy, zz in zip(ys[cc_sel], z[cc_sel]):
                top[yy] = max(top.get(yy, -1e9), zz)
            y_lo, y_hi = min(top), max(top)
            cc_top = np.array([top.get(v, np.nan) for v in ys])
            above = np.where(np.isnan(cc_top), z > zmid + 5, z > cc_top + 2.0)
            outside_ap = (ys < y_lo) | (ys > y_hi)
            sel = ~bright & (vals < dark_thr) & (above | (outside_ap & (z > zmid - 10)))
            falx[tuple(plane_idx[sel].T)] = True
    csf &= ~falx
    masks = {k: geo.image_from_array(v.astype(np.uint8), t1c) for k, v in
             (("falx", falx), ("ventricles", vent), ("csf", csf))}
    methods = {"falx": f"mid-sagittal plane ({plane.get('method', '')}), dark voxels within 1 mm of it above the "
                       "corpus callosum",
               "ventricles": "dark (CSF) components deeper than 18 mm from the brain surface, >= 500 mm3",
               "csf": "dark (CSF) voxels inside the brain mask, ventricles excluded"
                      + (f"; refined: also {' and '.join(refined)}" if refined else ""),
               "tentorium": "not automated: give it as a segment named 'tentorium'"}
    return masks, methods


# ----------------------------------------------------------------------------------------------------------------
# Analysis of one follow-up
# ----------------------------------------------------------------------------------------------------------------

def components(mask: np.ndarray, box: Box) -> np.ndarray:
    return geo.array_view(sitk.ConnectedComponent(_img(mask, box), True)).astype(np.int32)


def contiguity_groups(labels: np.ndarray, treated: np.ndarray) -> dict[int, int]:
    """Union-find over components that touch after a 1-voxel tolerance (at most one voxel between them),
    transitively; the treated lesion is node 0. Returns component label → group id (0 = with the treated lesion)."""
    n = int(labels.max())
    parent = list(range(n + 1))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    # Treated lesion voxels get label -1 in a combined map; neighbours up to 2 voxels away (one voxel between)
    # are looked up from the labelled voxels only, so the cost follows the enhancement, not the box.
    combined = labels.copy()
    combined[(combined == 0) & treated] = -1
    pad = np.pad(combined, 2)
    idx = np.argwhere(labels > 0)
    own = labels[tuple(idx.T)]
    for a in range(-2, 3):
        for b in range(-2, 3):
            for c in range(-2, 3):
                if a == b == c == 0:
                    continue
                nb = pad[idx[:, 0] + 2 + a, idx[:, 1] + 2 + b, idx[:, 2] + 2 + c]
                sel = (nb != 0) & (nb != own)
                if not sel.any():
                    continue
                for x, y in np.unique(np.stack([own[sel], nb[sel]], axis=1), axis=0):
                    union(int(x), 0 if y == -1 else int(y))
    for a in np.unique(labels[(labels > 0) & treated]):
        union(0, int(a))
    return {lab: find(lab) for lab in range(1, n + 1)}


def _segments_crossing(comp: np.ndarray, treated: np.ndarray, bnd: dict, box: Box, max_lines: int = 300):
    """Fractions of straight segments (component voxel → nearest treated voxel) that cross each boundary kind,
    plus the boundary voxels those segments cross (the intervening boundary)."""
    ci = np.argwhere(comp)
    ti = np.argwhere(treated)
    rng = np.random.default_rng(0)
    if len(ci) > max_lines:
        ci = ci[rng.choice(len(ci), max_lines, replace=False)]
    # Nearest treated voxel for each sampled component voxel (physical distance), surface voxels suffice.
    er = geo.array_view(sitk.BinaryErode(_img(treated, box), [1, 1, 1])) > 0
    surf = np.argwhere(treated & ~er)
    if len(surf) == 0:
        surf = ti
    if len(surf) > 4000:
        surf = surf[rng.choice(len(surf), 4000, replace=False)]
    sp = np.array(box.grid.GetSpacing())
    cip, sip = ci * sp, surf * sp
    nearest = surf[np.argmin(((cip[:, None, :] - sip[None, :, :]) ** 2).sum(-1), axis=1)]
    crosses = {k: np.zeros(len(ci), bool) for k in bnd}
    crossed_voxels = {k: set() for k in bnd}
    for n, (a, b) in enumerate(zip(ci, nearest)):
        length = np.linalg.norm((b - a) * sp)
        steps = max(int(np.ceil(length / 0.25)), 2)
        t = np.linspace(0, 1, steps)[:, None]
        pts = np.unique(np.round(a + t * (b - a)).astype(int), axis=0)
        for k, m in bnd.items():
            hit = m[tuple(pts.T)]
            if hit.any():
                crosses[k][n] = True
                crossed_voxels[k].update(map(tuple, pts[hit]))
    frac = {k: float(v.mean()) if len(v) else 0.0 for k, v in crosses.items()}
    return frac, crossed_voxels


def separating_boundary(frac: dict, minimum: float = 0.3) -> str | None:
    best = max((k for k in SPECIFIC if k in frac), key=lambda k: frac[k], default=None)
    if best is not None and frac[best] >= minimum:
        return best
    if frac.get("csf", 0.0) >= minimum:
        return "csf"
    return None


def geodesic_mm(treated: np.ndarray, comp: np.ndarray, passable: np.ndarray, box: Box,
                stop_mm: float = 250.0) -> float | None:
    """Shortest path length (mm) from the treated lesion to the component through ``passable`` voxels."""
    speed = np.where(passable | treated | comp, 1.0, 1e-6).astype(np.float32)
    seeds = np.argwhere(treated & ~(geo.array_view(sitk.BinaryErode(_img(treated, box), [1, 1, 1])) > 0))
    if len(seeds) == 0:
        return None
    fm = sitk.FastMarchingImageFilter()
    fm.SetTrialPoints([(int(i), int(j), int(k)) for i, j, k in seeds])
    fm.SetStoppingValue(stop_mm)
    arrival = geo.array_view(fm.Execute(_img(speed, box)))
    vals = arrival[comp]
    best = float(vals.min()) if vals.size else np.inf
    return best if best < stop_mm else None


def boundary_intensity_check(t1c_box: np.ndarray, bmask: np.ndarray, near: np.ndarray, far: np.ndarray,
                             model: TissueModel) -> dict:
    """Is the boundary enhancing where it is ``near`` compared with where it is ``far``?

    A boundary voxel enhances when it is brighter than half-way from the boundary's own far reference to the
    enhancement threshold (partial volume from an adjacent enhancing rim stays well below that). The boundary
    counts as enhancing when ≥ 25 % (and ≥ 8 voxels) of its near voxels do."""
    n_vals = t1c_box[bmask & near]
    f_vals = t1c_box[bmask & far]
    if n_vals.size < 8:
        return {"enhancing": False, "near_voxels": int(n_vals.size)}
    ref = float(np.median(f_vals)) if f_vals.size >= 30 else model.csf
    level = ref + 0.5 * (model.threshold - ref)
    bright = n_vals > level
    enhancing = bool(bright.sum() >= 8 and bright.mean() >= 0.25)
    return {"enhancing": enhancing, "enhancing_fraction": float(bright.mean()), "enhancing_voxels": int(bright.sum()),
            "near_median": float(np.median(n_vals)), "reference_median": ref, "level": level,
            "near_voxels": int(n_vals.size)}


OPEN_RING_KINDS = ("ventricles",)


def open_ring(enhancement: np.ndarray, t1c_box: np.ndarray, bmask: np.ndarray, model: TissueModel, box: Box,
              allowed: np.ndarray) -> dict | None:
    """Does the enhancement stop short of the boundary it lies against (an open ring)?

    Two layers next to the boundary (≤ 1.5 mm) are compared: enhancement touching it (the ring closed along the
    boundary) and non-enhancing ``allowed`` tissue lying *under* the enhancement, i.e. every enhancing voxel
    within one voxel of it is farther from the boundary (the ring left open). Open when the second is ≥ 50 %.
    None when fewer than 15 voxels of the enhancement come within 3 mm of the boundary (nothing to judge)."""
    d_b = distance_mm(bmask, box)
    if (enhancement & (d_b <= 3.0)).sum() < 15:
        return None
    # A user's lesion mask may include the non-enhancing rim; the ring is judged on what enhances inside it.
    enhancement = enhancement & (t1c_box >= model.threshold)
    depth_of_enh = np.where(enhancement, d_b, np.float32(1e6)).astype(np.float32)
    nearest_enh_depth = geo.array_view(sitk.GrayscaleErode(_img(depth_of_enh, box), [1, 1, 1], sitk.sitkBox))
    under = allowed & ~enhancement & (d_b <= 1.5) & (nearest_enh_depth < 1e5) & (nearest_enh_depth > d_b + 0.5)
    under &= t1c_box < model.threshold
    touching = enhancement & (d_b <= 1.5)
    total = int(under.sum() + touching.sum())
    if total < 15:
        return None
    open_frac = float(under.sum()) / total
    return {"open_fraction": open_frac, "open_layer_voxels": int(under.sum()),
            "enhancement_touching_voxels": int(touching.sum()), "is_open": bool(open_frac >= 0.5)}


def _centroid_ras(mask: np.ndarray, box: Box) -> list:
    idx = np.argwhere(mask).mean(0, keepdims=True)
    return geo.ras_from_lps(geo.index_to_lps(box.grid, idx))[0].tolist()


def _dose_evidence(dose_box: np.ndarray | None, mask: np.ndarray, levels) -> dict:
    if dose_box is None or not mask.any():
        return {}
    d = dose_box[mask]
    inside = [lv for lv in sorted(levels or [], reverse=True) if d.min() >= lv]
    frac = {f"{lv:g}": float((d >= lv).mean()) for lv in sorted(levels or [], reverse=True)}
    return {"mean_gy": float(d.mean()), "max_gy": float(d.max()), "min_gy": float(d.min()),
            "highest_enclosing_isodose_gy": inside[0] if inside else None, "fraction_inside_isodose": frac}


@dataclasses.dataclass
class FollowupResult:
    findings: list
    enhancement: np.ndarray            # box-sized
    finding_masks: dict                # name → box-sized mask
    model: TissueModel
    box: Box


def analyse_followup(timepoint: str, t1c: sitk.Image, treated: sitk.Image, boundaries: dict, *,
                     brain: sitk.Image, dose: sitk.Image | None = None, lesion: sitk.Image | None = None,
                     levels_gy=(20.0, 15.0, 12.0, 10.0, 5.0), roi_dose_gy: float = 5.0,
                     roi_margin_mm: float = 12.0, min_volume_mm3: float = MIN_COMPONENT_MM3,
                     box: Box | None = None) -> FollowupResult:
    """Boundary findings for one follow-up, everything on the planning grid.

    ``lesion``: the user's enhancement/lesion mask at this follow-up (planning grid); otherwise enhancement is
    segmented automatically inside (treated lesion + ``roi_margin_mm``) ∪ (dose ≥ ``roi_dose_gy``).
    """
    box = box or analysis_box(treated, [treated, lesion], dose)
    t1 = box.crop(geo.array_view(t1c)).astype(np.float32)
    tr = box.crop(geo.array_view(treated)) > 0
    br = box.crop(geo.array_view(brain)) > 0
    bnd = {k: box.crop(geo.array_view(v)) > 0 for k, v in boundaries.items() if k in KINDS}
    if dose is not None and not geo.same_grid(dose, treated):
        dose = dose_on_grid(dose, treated)
    dose_box = box.crop(geo.array_view(dose)) if dose is not None else None
    model = tissue_model(t1, br, exclude=distance_mm(tr, box) <= 5.0)
    if lesion is not None:
        enh = box.crop(geo.array_view(lesion)) > 0
        source = "user mask"
    else:
        roi = br & (distance_mm(tr, box) <= roi_margin_mm)
        if dose_box is not None:
            roi |= br & (dose_box >= roi_dose_gy)
        enh = segment_enhancement(t1, roi, model, box, min_volume_mm3)
        source = "automatic"
    enh = remove_small(enh, box, min_volume_mm3)
    # What the enhancement encloses (a necrotic core) is lesion, not boundary, whatever its intensity.
    interior = (geo.array_view(sitk.BinaryFillhole(_img(enh, box))) > 0) & ~enh
    bnd = {k: v & ~interior for k, v in bnd.items()}
    if "csf" in bnd:
        # The falx, tentorium and ventricles are CSF-dark too; each voxel belongs to its most specific kind.
        for k in SPECIFIC:
            if k in bnd:
                bnd["csf"] &= ~bnd[k]
    vox = geo.voxel_volume_mm3(box.grid)
    findings: list[Finding] = []
    masks: dict = {}
    d_enh = distance_mm(enh, box)

    # Boundary enhancement anywhere next to the enhancement.
    for kind, bm in bnd.items():
        chk = boundary_intensity_check(t1, bm, d_enh <= 2.0, d_enh >= 15.0, model)
        if chk["enhancing"]:
            near = bm & (d_enh <= 2.0)
            masks[f"{timepoint} {kind} enhancement"] = near
            findings.append(Finding(kind="boundary_enhancement", timepoint=timepoint, boundary=kind,
                                    segment=f"{timepoint} {kind} enhancement",
                                    centroid_ras=_centroid_ras(near, box), volume_mm3=float(near.sum() * vox),
                                    dose=_dose_evidence(dose_box, near, levels_gy), boundary_enhancing=True,
                                    evidence={**chk, "enhancement_source": source}))

    labels = components(enh, box)
    groups = contiguity_groups(labels, tr)
    passable = br & ~np.any(np.stack([bnd[k] for k in bnd]), axis=0) if bnd else br
    by_group: dict[int, list[int]] = {}
    for lab, g in groups.items():
        by_group.setdefault(g, []).append(lab)
    for g, labs in sorted(by_group.items()):
        comp = np.isin(labels, labs)
        if g == 0:
            beyond = comp & ~(distance_mm(tr, box) <= 1.0)
            if beyond.sum() * vox >= min_volume_mm3:
                masks[f"{timepoint} contiguous extension"] = beyond
                findings.append(Finding(kind="contiguous_extension", timepoint=timepoint,
                                        segment=f"{timepoint} contiguous extension",
                                        centroid_ras=_centroid_ras(beyond, box),
                                        volume_mm3=float(beyond.sum() * vox),
                                        dose=_dose_evidence(dose_box, beyond, levels_gy),
                                        evidence={"components": len(labs), "enhancement_source": source}))
            continue
        dist_tr = distance_mm(tr, box)
        gap = float(dist_tr[comp].min())
        frac, crossed = _segments_crossing(comp, tr, bnd, box)
        kind_b = separating_boundary(frac)
        geo_mm = geodesic_mm(tr, comp, passable, box)
        evidence = {"segment_crossing_fraction": frac, "enhancement_source": source,
                    "euclidean_gap_mm": gap, "geodesic_mm": geo_mm}
        enhancing_between = None
        if kind_b is not None:
            inter = np.zeros_like(comp)
            if crossed[kind_b]:
                inter[tuple(np.array(sorted(crossed[kind_b])).T)] = True
            far = distance_mm(comp | tr, box) >= 15.0
            chk = boundary_intensity_check(t1, bnd[kind_b], distance_mm(inter, box) <= 1.0, far & bnd[kind_b],
                                           model)
            enhancing_between = chk["enhancing"]
            evidence["intervening_boundary"] = chk
        name = f"{timepoint} across {kind_b}" if kind_b else f"{timepoint} non-contiguous"
        masks[name] = comp
        findings.append(Finding(kind="noncontiguous_across_boundary" if kind_b else "noncontiguous_focus",
                                segment=name,
                                timepoint=timepoint, boundary=kind_b, centroid_ras=_centroid_ras(comp, box),
                                volume_mm3=float(comp.sum() * vox), gap_mm=gap, geodesic_mm=geo_mm,
                                boundary_enhancing=enhancing_between,
                                dose=_dose_evidence(dose_box, comp, levels_gy), evidence=evidence))

    # Open rings: each lesion group's rim facing a boundary.
    for g, labs in sorted(by_group.items()):
        comp = np.isin(labels, labs)
        for kind in (k for k in OPEN_RING_KINDS if k in bnd):
            bm = bnd[kind]
            ring = open_ring(comp, t1, bm, model, box, passable)
            if ring and ring["is_open"]:
                masks[f"{timepoint} open ring {kind}"] = comp
                findings.append(Finding(kind="open_ring", timepoint=timepoint, boundary=kind,
                                        segment=f"{timepoint} open ring {kind}",
                                        centroid_ras=_centroid_ras(comp, box), volume_mm3=float(comp.sum() * vox),
                                        dose=_dose_evidence(dose_box, comp, levels_gy),
                                        evidence={**ring, "enhancement_source": source}))
    return FollowupResult(findings=findings, enhancement=enh, finding_masks=masks, model=model, box=box)
