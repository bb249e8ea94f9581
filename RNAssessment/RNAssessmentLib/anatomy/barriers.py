"""Automatic boundary structures on the SRS-time post-contrast T1 (its grid, LPS): falx, tentorium, ventricles,
CSF spaces, and the compartments the dural folds separate.

Methods (each output says how it was obtained):

* **falx** and **tentorium**: the atlas prior (:mod:`.atlas`, warped onto the image) gives where each fold is and
  how far it reaches (the falx only above the corpus callosum); each is then refined locally on the image as a
  height field over a plane — the mid-sagittal plane for the falx, the axial plane for the tentorium. In cells of
  2 × 2 mm the intensity profile across the fold is searched (± ``search_mm``) for the strongest line, bright (dura,
  venous sinus) or dark (a CSF cleft), whichever the image shows, with a small pull towards the prior; the offsets
  are median-filtered and smoothed over neighbouring cells, so a vessel crossing one cell cannot bend the sheet.
  The sheet is as thick as the image's sampling across it (≥ 2 mm), so that no straight line crosses it unseen.
* **ventricles**: CSF-dark voxels connected to the warped atlas ventricles (kept within 8 mm of them), holes filled
  so the choroid plexus lies inside;
* **CSF** (sulci, cisterns, fissures): CSF-dark voxels inside the brain, ventricles and folds excluded, optionally
  refined by a T2 (CSF bright) and/or FLAIR (CSF dark, oedema bright) of the same session;
* **compartments**: left and right cerebral hemispheres and the infratentorial compartment from the atlas labels,
  re-assigned near the folds by the side of the refined sheet a voxel lies on.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo
from . import atlas as atl
from .brain import TissueModel, kmeans_1d

LEFT, RIGHT, INFRA = 1, 2, 3
COMPARTMENT_NAMES = {LEFT: "left cerebral hemisphere", RIGHT: "right cerebral hemisphere",
                     INFRA: "infratentorial compartment"}
#: The falx ends where white matter bridges the hemispheres with no line across it for this height: the corpus
#: callosum (4-5 mm thick at its body even in atrophy, 10 mm at genu and splenium). A cingulate gyrus pressed
#: against its twin is grey matter, darker than the 0.8 × white-matter threshold, and does not stop the falx.
BRIDGE_MM = 4.0
#: Where between grey matter and CSF on T2 a voxel darker than grey matter on T1 is a thin sulcus (1-2 mm slices).
THIN_SULCUS_T2_FRAC = 0.2


def intensity_classes(sequence: sitk.Image, reference: sitk.Image, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sequence`` ((i, j, k) float32) and the centres of its three intensity classes in the brain, ascending
    (k-means, once per sequence: every threshold :func:`csf_like` draws comes from them). The sequence must already
    lie on ``reference``'s grid, aligned with it (``registration.register_sequence``): resampled here in the
    scanner's coordinates, the clinical exam's T2 was read 16 mm from its T1."""
    if not geo.same_grid(sequence, reference):
        raise ValueError("the T2/FLAIR is not on the post-contrast T1's grid: align it first "
                         "(registration.register_sequence) and resample it onto that grid")
    arr = geo.array_view(sequence).astype(np.float32)
    vals = arr[brain]
    if vals.size < 1000:
        raise ValueError("the T2/FLAIR image hardly overlaps the brain of the post-contrast T1")
    centres, _, _ = kmeans_1d(vals, 3)
    return arr, np.sort(centres)


def csf_like(classes: tuple[np.ndarray, np.ndarray], bright: bool, frac: float = 0.5) -> np.ndarray:
    """Voxels whose intensity on another sequence of the same session says CSF: the brightest of three intensity
    classes in the brain on T2, the darkest on FLAIR (CSF is suppressed; oedema, T1-dark too, stays bright).
    ``classes``: :func:`intensity_classes` of that sequence. ``frac``: where between the two upper (bright) or lower
    class centres the threshold lies; below 0.5 on T2 admits partial-volumed CSF (thin sulci)."""
    arr, c = classes
    return (arr > c[1] + frac * (c[2] - c[1])) if bright else (arr < c[0] + frac * (c[1] - c[0]))


# ----------------------------------------------------------------------------------------------------------------
# Dural folds as refined height fields
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Sheet:
    """A fold as a height field ``s = surface[a, b]`` along ``normal`` over cells of a plane (LPS mm)."""
    mask: np.ndarray                 # (i, j, k) bool on the image grid
    normal: np.ndarray               # unit vector, LPS
    u: np.ndarray
    v: np.ndarray
    cell_mm: float
    a0: float                        # coordinate of cell 0 along u
    b0: float
    surface: np.ndarray              # (na, nb) height along normal, NaN where the fold is absent
    prior: np.ndarray                # (na, nb) the prior's height
    confident: np.ndarray            # (na, nb) bool: a clear line was found in this cell
    thickness_mm: float
    polarity: dict                   # {"bright": cells, "dark": cells}

    def height_at(self, pts_lps: np.ndarray) -> np.ndarray:
        """The sheet's height under each point (NaN outside its extent)."""
        ia = np.floor((pts_lps @ self.u - self.a0) / self.cell_mm).astype(int)
        ib = np.floor((pts_lps @ self.v - self.b0) / self.cell_mm).astype(int)
        ok = (ia >= 0) & (ia < self.surface.shape[0]) & (ib >= 0) & (ib < self.surface.shape[1])
        out = np.full(len(pts_lps), np.nan)
        out[ok] = self.surface[ia[ok], ib[ok]]
        return out

    def side(self, pts_lps: np.ndarray) -> np.ndarray:
        """+1 / -1 for points on the positive / negative side of the sheet along ``normal``, 0 outside its extent."""
        h = self.height_at(pts_lps)
        s = pts_lps @ self.normal
        out = np.sign(s - h)
        out[np.isnan(h)] = 0
        return out


def _basis(normal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    helper = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.8 else np.array([0.0, 1.0, 0.0])
    v = helper - (helper @ n) * n
    v /= np.linalg.norm(v)
    u = np.cross(v, n)                       # (u, v, n) right-handed
    return u, v, n


def _median_filter2d(a: np.ndarray, valid: np.ndarray, r: int) -> np.ndarray:
    """Median of the valid values in a (2r+1)² window (NaN where none)."""
    na, nb = a.shape
    out = np.full(a.shape, np.nan)
    pad = np.pad(np.where(valid, a, np.nan), r, constant_values=np.nan)
    stack = np.stack([pad[i:i + na, j:j + nb] for i in range(2 * r + 1) for j in range(2 * r + 1)])
    ok = np.isfinite(stack).any(axis=0)
    if ok.any():
        out[ok] = np.nanmedian(stack[:, ok], axis=0)
    return out


def _close2d(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary closing of a 2D mask with a (2r+1)² square."""
    img = sitk.GetImageFromArray(mask.astype(np.uint8).T.copy())
    return sitk.GetArrayFromImage(sitk.BinaryMorphologicalClosing(img, [r, r])).T > 0


def _nanmean2d(a: np.ndarray, r: int) -> np.ndarray:
    """Mean of the finite values in a (2r+1)² window (NaN where none)."""
    na, nb = a.shape
    pad = np.pad(a, r, constant_values=np.nan)
    stack = np.stack([pad[i:i + na, j:j + nb] for i in range(2 * r + 1) for j in range(2 * r + 1)])
    ok = np.isfinite(stack)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(0), np.where(ok, stack, 0).sum(0) / np.maximum(ok.sum(0), 1), np.nan)


def _smooth_cells(vol: np.ndarray, cell_mm: float, sigma_cells: float = 2.0) -> np.ndarray:
    """Gaussian average of a (cells, cells, profile) volume over the two cell axes only; NaN counts as absent."""
    ok = np.isfinite(vol)
    out = np.zeros(vol.shape, np.float32)
    w = np.zeros(vol.shape, np.float32)
    for arr, dst in ((np.where(ok, vol, 0.0), out), (ok.astype(np.float32), w)):
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr.astype(np.float32).transpose(2, 1, 0)))
        img.SetSpacing((cell_mm, cell_mm, 1.0))
        for d in (0, 1):
            if img.GetSize()[d] >= 4:
                img = sitk.RecursiveGaussian(img, sigma_cells * cell_mm, False,
                                             sitk.RecursiveGaussianImageFilter.ZeroOrder, d)
        dst[...] = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w > 0.2, out / np.maximum(w, 1e-6), np.nan)


def _smooth2d(a: np.ndarray, sigma_cells: float) -> np.ndarray:
    """Separable Gaussian smoothing of a small 2D field (edges replicated)."""
    r = max(int(np.ceil(3 * sigma_cells)), 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_cells) ** 2)
    k /= k.sum()
    out = a.astype(float)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="edge")
        out = sum(k[i] * np.take(p, np.arange(i, i + out.shape[axis]), axis=axis) for i in range(2 * r + 1))
    return out


#: A cell holds a clear line when its line response (brighter, or darker, than both flanks, averaged over
#: neighbouring cells) reaches this share of the white-matter intensity; a bright line is preferred.
LINE_MIN_RESPONSE = 0.08
#: Going down the falx, a cell is bridged by white matter when its line response is below this share ...
BRIDGE_MAX_RESPONSE = 0.06
#: ... and its intensity at the sheet at least this share of the white-matter intensity.
BRIDGE_MIN_NAWM = 0.8
#: Profiles across the fold are sampled this far apart (mm).
PROFILE_STEP_MM = 0.5
#: The second, finer search for the line stays this close (mm) to the robust first surface.
REFINE_WINDOW_MM = 2.5
#: A falx cell whose two flanks at either of these distances (mm) both lie in the ventricles is the septum
#: pellucidum, not the falx.
SEPTUM_FLANKS_MM = (2.5, 4.0)


@dataclasses.dataclass
class _Frame:
    """The cells of a fold's plane: basis (u, v, n), cell 0's corner (a0, b0), the prior's mean height per cell
    (NaN where the prior has none) and how many prior voxels each cell holds (0.5 for a cell closed between thick
    slices)."""
    u: np.ndarray
    v: np.ndarray
    n: np.ndarray
    a0: float
    b0: float
    s0: np.ndarray
    counts: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.s0.shape


def _frame(t1c: sitk.Image, prior: np.ndarray, normal, cell_mm: float) -> _Frame:
    """The prior as a height field over cells of ``cell_mm``. Thick slices sample the prior only every few
    millimetres along the sheet: the footprint is closed so the sheet is continuous between slices (new cells take
    the mean height of their neighbours)."""
    u, v, n = _basis(normal)
    pts = geo.index_to_lps(t1c, np.argwhere(prior))
    a, b, s = pts @ u, pts @ v, pts @ n
    a0, b0 = float(a.min()), float(b.min())
    ia = np.floor((a - a0) / cell_mm).astype(int)
    ib = np.floor((b - b0) / cell_mm).astype(int)
    na, nb = int(ia.max()) + 1, int(ib.max()) + 1
    sums = np.zeros((na, nb))
    counts = np.zeros((na, nb))
    np.add.at(sums, (ia, ib), s)
    np.add.at(counts, (ia, ib), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s0 = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    dd = np.array(t1c.GetDirection()).reshape(3, 3) * np.array(t1c.GetSpacing())[None, :]
    gap = float(max(np.max(np.abs(u @ dd)), np.max(np.abs(v @ dd))))
    r = int(np.ceil(gap / cell_mm))
    if r >= 2:
        closed = _close2d(counts > 0, r)
        for _ in range(2 * r):
            todo = closed & ~np.isfinite(s0)
            if not todo.any():
                break
            s0 = np.where(todo, _nanmean2d(s0, 1), s0)
        counts = np.where(closed & np.isfinite(s0) & (counts == 0), 0.5, counts)
    return _Frame(u=u, v=v, n=n, a0=a0, b0=b0, s0=s0, counts=counts)


def _profile_grid(frame: _Frame, cell_mm: float, search_mm: float, flank_mm: float) -> tuple[sitk.Image, float]:
    """A grid aligned with (u, v, n): cells × profiles across the fold, :data:`PROFILE_STEP_MM` apart, reaching
    the search distance, a flank and 1 mm beyond the prior on either side. Returns the grid and the height of its
    first sample."""
    na, nb = frame.shape
    s_lo = float(np.nanmin(frame.s0)) - search_mm - flank_mm - 1.0
    s_hi = float(np.nanmax(frame.s0)) + search_mm + flank_mm + 1.0
    ns = int(np.ceil((s_hi - s_lo) / PROFILE_STEP_MM)) + 1
    grid = sitk.Image([na, nb, ns], sitk.sitkFloat32)
    grid.SetSpacing((cell_mm, cell_mm, PROFILE_STEP_MM))
    grid.SetDirection(tuple(np.column_stack([frame.u, frame.v, frame.n]).ravel()))
    grid.SetOrigin(tuple(frame.u * (frame.a0 + cell_mm / 2) + frame.v * (frame.b0 + cell_mm / 2) + frame.n * s_lo))
    return grid, s_lo


def _line_responses(prof: np.ndarray, flank_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """How much brighter (darker) each sample is than *both* of its flanks ``flank_mm`` away: an edge between CSF
    and cortex is neither a bright nor a dark line."""
    w = int(round(flank_mm / PROFILE_STEP_MM))
    left, right = np.roll(prof, w, axis=2), np.roll(prof, -w, axis=2)
    left[:, :, :w] = np.nan
    right[:, :, -w:] = np.nan
    return np.fmin(prof - left, prof - right), np.fmin(left - prof, right - prof)


def _pick(resp: np.ndarray, window: np.ndarray, dist: np.ndarray, counts: np.ndarray, nawm: float,
          pull_per_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the sample with the strongest response within ``window`` (pulled gently towards the prior by
    ``pull_per_mm`` per mm of ``dist``) and its response in units of ``nawm`` (-1 where the cell has none)."""
    score = np.where(window, resp / nawm - pull_per_mm * dist, np.nan)
    ok = np.isfinite(score).any(axis=2) & (counts > 0)
    idx = np.zeros(counts.shape, int)
    idx[ok] = np.nanargmax(np.where(np.isfinite(score[ok]), score[ok], -np.inf), axis=1)
    val = np.where(ok, np.take_along_axis(np.nan_to_num(resp / nawm, nan=-1.0), idx[..., None], axis=2)[..., 0],
                   -1.0)
    return idx, val


def _offsets(bright: np.ndarray, dark: np.ndarray, window: np.ndarray, dist: np.ndarray, frame: _Frame,
             s_axis: np.ndarray, nawm: float, pull_per_mm: float):
    """The line's height offset from the prior per cell (NaN where no clear line): bright where a bright line
    reaches :data:`LINE_MIN_RESPONSE`, else dark where a dark one does. Returns (offset, confident, bright, dark)."""
    ib, b_val = _pick(bright, window, dist, frame.counts, nawm, pull_per_mm)
    id_, d_val = _pick(dark, window, dist, frame.counts, nawm, pull_per_mm)
    use_bright = b_val >= LINE_MIN_RESPONSE
    use_dark = ~use_bright & (d_val >= LINE_MIN_RESPONSE)
    confident = (use_bright | use_dark) & (frame.counts > 0)
    offset = np.where(confident, s_axis[np.where(use_bright, ib, id_)] - frame.s0, np.nan)
    return offset, confident, use_bright, use_dark


def _surface(bright: np.ndarray, dark: np.ndarray, frame: _Frame, s_axis: np.ndarray, search_mm: float,
             cell_mm: float, nawm: float, pull_per_mm: float):
    """The fold's surface (height per cell). A fold is a continuous sheet: responses are averaged over
    neighbouring cells (σ = 2 cells) before picking, so an isolated vessel or sulcus cannot win over the line that
    runs through many cells; a wide median (9 × 9 cells) of those offsets gives a robust surface, the line is
    searched again within :data:`REFINE_WINDOW_MM` of it with the cell's own (lightly smoothed) response, and the
    result median-filtered and smoothed. Returns (surface, confident, bright cells, dark cells)."""
    dist = np.abs(s_axis[None, None, :] - frame.s0[:, :, None])
    offset, confident, _, _ = _offsets(_smooth_cells(bright, cell_mm), _smooth_cells(dark, cell_mm),
                                       dist <= search_mm, dist, frame, s_axis, nawm, pull_per_mm)
    coarse = _median_filter2d(offset, confident, 4)
    coarse = np.where(np.isnan(coarse), np.nanmedian(offset) if np.isfinite(offset).any() else 0.0, coarse)
    coarse = _smooth2d(coarse, 2.0)
    near = np.abs(s_axis[None, None, :] - (frame.s0 + coarse)[:, :, None]) <= REFINE_WINDOW_MM
    fine_b = np.where(near, _smooth_cells(bright, cell_mm, 1.0), np.nan)
    fine_d = np.where(near, _smooth_cells(dark, cell_mm, 1.0), np.nan)
    off2, conf2, ub, ud = _offsets(fine_b, fine_d, dist <= search_mm, dist, frame, s_axis, nawm, pull_per_mm)
    med = _median_filter2d(off2, conf2, 2)
    med = np.where(np.isnan(med), coarse, med)
    surface = np.where(frame.counts > 0, frame.s0 + _smooth2d(med, 1.0), np.nan)
    return surface, conf2, ub, ud


def _cut_at_bridge(surface: np.ndarray, at_surface, bright: np.ndarray, dark: np.ndarray, prof: np.ndarray,
                   counts: np.ndarray, cell_mm: float, nawm: float) -> None:
    """Going down each column of cells, the falx ends where white matter bridges the two sides without any line
    for :data:`BRIDGE_MM` (the corpus callosum): cells from there down are cut from ``surface`` (in place)."""
    i_surf = at_surface(prof)
    r_surf = np.fmax(at_surface(_smooth_cells(bright, cell_mm, 1.0)),
                     at_surface(_smooth_cells(dark, cell_mm, 1.0))) / nawm
    bridged = (r_surf < BRIDGE_MAX_RESPONSE) & (i_surf >= BRIDGE_MIN_NAWM * nawm) & (counts > 0)
    bridge_cells = max(int(np.ceil(BRIDGE_MM / cell_mm)), 1)
    na, nb = surface.shape
    for ia_ in range(na):
        run = 0
        for ib_ in range(nb - 1, -1, -1):           # from superior down
            run = run + 1 if bridged[ia_, ib_] else 0
            if run >= bridge_cells:
                surface[ia_, :ib_ + bridge_cells] = np.nan
                break


def _cut_between(surface: np.ndarray, si: np.ndarray, between: np.ndarray) -> None:
    """Cells whose two flanks (:data:`SEPTUM_FLANKS_MM`) both lie in ``between`` (profile grid) are cut from
    ``surface`` (in place): the septum pellucidum between the lateral ventricles is no falx."""
    ns = between.shape[2]
    both = np.zeros(si.shape, bool)
    for mm in SEPTUM_FLANKS_MM:
        kk = int(round(mm / PROFILE_STEP_MM))
        lo_i, hi_i = np.clip(si - kk, 0, ns - 1), np.clip(si + kk, 0, ns - 1)
        both |= np.take_along_axis(between, lo_i[..., None], axis=2)[..., 0] & \
            np.take_along_axis(between, hi_i[..., None], axis=2)[..., 0]
    surface[both] = np.nan


def fit_sheet(t1c: sitk.Image, prior: np.ndarray, normal, brain: np.ndarray, model: TissueModel, *,
              search_mm: float = 8.0, cell_mm: float = 2.0, flank_mm: float = 2.5,
              pull_per_mm: float = 0.015, exclude: np.ndarray | None = None, stop_at_bridge: bool = False,
              not_between: np.ndarray | None = None) -> Sheet | None:
    """Refine a fold given as a prior mask (see the module docstring). None when the prior is empty.

    The prior becomes a height field over cells (:func:`_frame`); the image is sampled in profiles across the
    fold (:func:`_profile_grid`), brain only, ``exclude`` left out; the line is found in each profile
    (:func:`_line_responses`, :func:`_surface`). ``stop_at_bridge`` (the falx): cut below the corpus callosum
    (:func:`_cut_at_bridge`). ``not_between``: cut where both flanks lie in this mask (:func:`_cut_between`)."""
    if len(np.argwhere(prior)) < 20:
        return None
    frame = _frame(t1c, prior, normal, cell_mm)
    grid, s_lo = _profile_grid(frame, cell_mm, search_mm, flank_mm)
    ns = grid.GetSize()[2]
    prof = geo.array_view(sitk.Resample(sitk.Cast(t1c, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkLinear,
                                        np.nan, sitk.sitkFloat32))
    if exclude is not None and exclude.any():
        prof = np.where(geo.mask_on_grid(exclude, t1c, grid), np.nan, prof)
    prof = np.where(geo.mask_on_grid(brain, t1c, grid), prof, np.nan)
    s_axis = s_lo + PROFILE_STEP_MM * np.arange(ns)
    bright, dark = _line_responses(prof, flank_mm)
    nawm = max(model.nawm, 1e-6)
    surface, confident, use_bright, use_dark = _surface(bright, dark, frame, s_axis, search_mm, cell_mm, nawm,
                                                        pull_per_mm)
    if stop_at_bridge or not_between is not None:
        si = np.clip(np.round((np.nan_to_num(surface, nan=s_lo) - s_lo) / PROFILE_STEP_MM).astype(int), 0, ns - 1)
        if stop_at_bridge:
            def at_surface(vol):
                return np.take_along_axis(np.nan_to_num(vol, nan=0.0), si[..., None], axis=2)[..., 0]
            _cut_at_bridge(surface, at_surface, bright, dark, prof, frame.counts, cell_mm, nawm)
        if not_between is not None and not_between.any():
            _cut_between(surface, si, geo.mask_on_grid(not_between, t1c, grid))
    # Cells the sheet was cut back from (a bridge, between the ventricles) are no part of it, clear line or not: the
    # text counts the confident cells among the sheet's own ("1587 of 1525 cells" had counted them too).
    confident = confident & np.isfinite(surface)
    pol = {"bright": int((use_bright & confident).sum()), "dark": int((use_dark & confident).sum())}
    # Thickness: at least the image's sampling across the sheet (thick slices) and 2 mm.
    d = np.array(t1c.GetDirection()).reshape(3, 3) * np.array(t1c.GetSpacing())[None, :]
    thickness = max(2.0, float(np.max(np.abs(frame.n @ d))) + 0.5)
    sheet = Sheet(mask=np.zeros(t1c.GetSize(), bool), normal=frame.n, u=frame.u, v=frame.v, cell_mm=cell_mm,
                  a0=frame.a0, b0=frame.b0, surface=surface, prior=frame.s0, confident=confident,
                  thickness_mm=thickness, polarity=pol)
    # Voxels near the sheet: candidates are the prior dilated across the fold by the search distance.
    reach = [max(int(np.ceil((search_mm + thickness) / sp)), 1) for sp in t1c.GetSpacing()]
    cand = geo.array_view(sitk.BinaryDilate(geo.image_from_array(prior.astype(np.uint8), t1c), reach)) > 0
    cand &= brain
    cidx = np.argwhere(cand)
    cpts = geo.index_to_lps(t1c, cidx)
    h = sheet.height_at(cpts)
    on = np.isfinite(h) & (np.abs(cpts @ frame.n - h) <= thickness / 2.0)
    sheet.mask[tuple(cidx[on].T)] = True
    return sheet


# ----------------------------------------------------------------------------------------------------------------
# All boundaries
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Anatomy:
    """Boundary masks (sitk, on the SRS image grid), how each was obtained, compartments and the fitted folds."""
    masks: dict
    methods: dict
    compartments: sitk.Image          # 1 left, 2 right cerebral hemisphere, 3 infratentorial, 0 elsewhere
    sheets: dict                      # "falx"/"tentorium" → Sheet
    atlas: atl.AtlasFit | None = None


def _superior_axis(fit: atl.AtlasFit | None, t1c: sitk.Image) -> np.ndarray:
    """The patient's superior direction (LPS) from the atlas transform's linear part, else the image's."""
    if fit is not None:
        tf = fit.transform
        aff = tf.GetNthTransform(0) if isinstance(tf, sitk.CompositeTransform) else tf
        if hasattr(aff, "GetMatrix"):
            m = np.array(aff.GetMatrix()).reshape(3, 3)        # patient → atlas
            z = np.linalg.solve(m, np.array([0.0, 0.0, 1.0]))   # atlas +z in patient coordinates
            return z / np.linalg.norm(z)
    return np.array([0.0, 0.0, 1.0])


@dataclasses.dataclass
class _Dark:
    """CSF-dark voxels of the brain (treated lesion left out): on the T1 alone (``t1``), and refined by the T2
    and FLAIR where given (``refined``, with the words for it in ``how``); each sequence's intensity classes."""
    t1: np.ndarray
    refined: np.ndarray
    how: list
    t2_classes: tuple | None
    flair_classes: tuple | None


def _csf_dark(t1c: sitk.Image, arr: np.ndarray, br: np.ndarray, model: TissueModel, t2: sitk.Image | None,
              flair: sitk.Image | None) -> _Dark:
    """Voxels darker than half-way between CSF and 0.7 × white matter on the T1, refined by the T2 (CSF bright)
    and the FLAIR (CSF dark, oedema bright); thin sulci added from the T2 (see the comment inside)."""
    dark_thr = model.csf + 0.5 * (0.7 * model.nawm - model.csf)
    dark = br & (arr < dark_thr)
    dark_t1 = dark.copy()
    refined = []
    t2_classes = intensity_classes(t2, t1c, br) if t2 is not None else None
    flair_classes = intensity_classes(flair, t1c, br) if flair is not None else None
    if t2_classes is not None:
        dark &= csf_like(t2_classes, bright=True)
        refined.append("T2-bright")
    if flair_classes is not None:
        dark &= csf_like(flair_classes, bright=False)
        refined.append("FLAIR-dark")
    if t2_classes is not None:
        # Thin sulci, partial-volumed on T1, are plain on T2: T2-bright voxels darker than grey matter on T1 are CSF
        # too, unless the FLAIR calls them oedema (bright). On 1-2 mm slices a sulcus 1-2 voxels wide is seen at
        # 20 % of the way from grey matter to CSF on T2 (the BraTS central sulcus: T2 138-152 with grey matter at
        # 119 and CSF at 212; the half-way threshold, 165, missed it and the pial enhancement implanted in it);
        # on thick slices every slab with a sliver of CSF reaches that far (on the clinical exam's 5.5 mm slices the
        # CSF over the tentorium became a second, false meningeal enhancement), so the half-way threshold stays.
        thin_frac = THIN_SULCUS_T2_FRAC if all(geo.thin_axes(t1c)) else 0.5
        thin = br & csf_like(t2_classes, bright=True, frac=thin_frac) & (arr < 0.85 * model.nawm)
        if flair_classes is not None:
            thin &= ~csf_like(flair_classes, bright=True)
        dark |= thin
        refined.append("thin sulci from T2")
    return _Dark(t1=dark_t1, refined=dark, how=refined, t2_classes=t2_classes, flair_classes=flair_classes)


def _ventricles(t1c: sitk.Image, codes: np.ndarray, dark: _Dark, les: np.ndarray) -> np.ndarray:
    """Dark voxels connected to the warped atlas ventricles (within 8 mm of them, each piece with ≥ 30 mm³ and
    ≥ 30 % of it within 3 mm), holes filled so the choroid plexus lies inside."""
    prior_v = np.isin(codes, atl.VENTRICLES)
    pv = geo.image_from_array(prior_v.astype(np.uint8), t1c)
    near3 = geo.array_view(sitk.BinaryDilate(pv, _vox(t1c, 3.0))) > 0
    near8 = geo.array_view(sitk.BinaryDilate(pv, _vox(t1c, 8.0))) > 0
    candidates = dark.refined & near8
    if not all(geo.thin_axes(t1c)):
        # On thick slices T2 and FLAIR, acquired on their own oblique grid, see another slab than the T1's: next
        # to the atlas ventricles (3 mm) the T1 alone says CSF (oedema is not that dark on T1). Found when the
        # clinical exam's T2 was still read unaligned (16 mm off: its lateral ventricle body read T2 247-270,
        # tissue); once aligned (assess._aligned_sequences) the clinical callosal case finds that horn without
        # this rule too; the clinical matrix was measured with it.
        candidates |= dark.t1 & near3
    cc = geo.array_view(sitk.ConnectedComponent(geo.image_from_array(candidates.astype(np.uint8), t1c), False))
    vent = np.zeros(codes.shape, bool)
    if cc.max() > 0:
        total = np.bincount(cc.ravel())
        hit = np.bincount(cc[near3].ravel(), minlength=len(total))
        vox = geo.voxel_volume_mm3(t1c)
        keep = [lab for lab in range(1, len(total)) if hit[lab] * vox >= 30.0 and hit[lab] >= 0.3 * total[lab]]
        vent = np.isin(cc, keep)
    if vent.any():
        vent = _fill_holes_2d(vent, t1c) & near8 & ~les
    return vent


def _falx_normal(fit: atl.AtlasFit, plane: dict | None) -> np.ndarray:
    """Across the falx: the mid-sagittal plane's normal, else the atlas's left-right axis in patient coordinates."""
    if plane:
        return np.array(plane["normal"], float)
    tf = fit.transform.GetNthTransform(0) if isinstance(fit.transform, sitk.CompositeTransform) else fit.transform
    return np.linalg.solve(np.array(tf.GetMatrix()).reshape(3, 3).T, np.array([1.0, 0.0, 0.0]))


def _sheet_method(kind: str, sheet: Sheet, atlas_note: str, plane: dict | None) -> str:
    n_cells = int(np.isfinite(sheet.surface).sum())
    conf = int(sheet.confident.sum())
    return (f"{atlas_note} prior refined on the image: {conf} of {n_cells} cells of 2 mm with a clear "
            f"line ({sheet.polarity['bright']} bright dura/sinus, {sheet.polarity['dark']} dark CSF), "
            f"sheet {sheet.thickness_mm:.1f} mm thick"
            + (", oriented by the mid-sagittal plane" if kind == "falx" and plane else ""))


def _csf(t1c: sitk.Image, dark: _Dark, masks: dict) -> np.ndarray:
    """CSF: the dark voxels, ventricles and dural folds excluded (see the comment on thick slices inside)."""
    csf = dark.refined.copy()
    if not all(geo.thin_axes(t1c)) and (dark.t2_classes is not None or dark.flair_classes is not None):
        # On thick slices the T2 and FLAIR, each on its own oblique slab, average a sulcus with the tissue
        # beside it: a sylvian fissure 3-5 mm wide, dark on every T1 slice through it, read T2-bright on only a
        # quarter of them (the clinical exam, 5.5 mm). There the other sequences only veto: T1-dark voxels that
        # are T2-dark (white-matter-like) or FLAIR-bright (oedema) are not CSF, the rest are.
        veto = np.zeros(csf.shape, bool)
        if dark.t2_classes is not None:
            veto |= csf_like(dark.t2_classes, bright=False)
        if dark.flair_classes is not None:
            veto |= csf_like(dark.flair_classes, bright=True)
        csf |= dark.t1 & ~veto
    for k in ("ventricles", "falx", "tentorium"):
        if k in masks:
            csf &= ~masks[k]
    return csf


def automatic_boundaries(t1c: sitk.Image, fit: atl.AtlasFit, model: TissueModel, plane: dict | None = None, *,
                         lesion: sitk.Image | None = None, t2: sitk.Image | None = None,
                         flair: sitk.Image | None = None, kinds=("falx", "tentorium", "ventricles", "csf")) -> Anatomy:
    """Falx, tentorium, ventricles and CSF on ``t1c``'s grid from the atlas fit refined on the image.

    ``plane``: the mid-sagittal plane (:func:`midline.midsagittal_plane`); its normal orients the falx search.
    ``lesion`` (the treated lesion) is neither CSF nor a fold: a necrotic core is dark like CSF. ``t2``, ``flair``:
    the session's other sequences on ``t1c``'s grid, aligned with it (:func:`intensity_classes`)."""
    arr = geo.array_view(t1c).astype(np.float32)
    brain = geo.array_view(fit.brain) > 0
    les = np.zeros(brain.shape, bool)
    if lesion is not None:
        les = geo.array_view(sitk.BinaryFillhole(sitk.Cast(lesion > 0, sitk.sitkUInt8))) > 0
    dark = _csf_dark(t1c, arr, brain & ~les, model, t2, flair)
    masks: dict = {}
    methods: dict = {}
    sheets: dict = {}
    atlas_note = "atlas " + ("(affine + B-spline)" if fit.deformable else "(affine)")
    if "ventricles" in kinds:
        masks["ventricles"] = _ventricles(t1c, fit.codes(), dark, les)
        methods["ventricles"] = (f"{atlas_note} ventricles refined on the image: CSF-dark voxels connected to them "
                                 "(within 8 mm), holes filled (choroid plexus inside)")
    dura = geo.array_view(fit.dura)
    for kind, code, normal in (("falx", 1, _falx_normal(fit, plane)), ("tentorium", 2, _superior_axis(fit, t1c))):
        if kind not in kinds:
            continue
        sheet = fit_sheet(t1c, (dura == code) & brain, normal, brain, model, exclude=les,
                          search_mm=8.0 if kind == "falx" else 10.0, stop_at_bridge=kind == "falx",
                          not_between=masks.get("ventricles") if kind == "falx" else None)
        if sheet is None:
            masks[kind] = np.zeros(brain.shape, bool)
            methods[kind] = f"{atlas_note}: no {kind} in the imaged brain"
            continue
        sheets[kind] = sheet
        masks[kind] = sheet.mask & ~les
        methods[kind] = _sheet_method(kind, sheet, atlas_note, plane)
    if "csf" in kinds:
        masks["csf"] = _csf(t1c, dark, masks)
        methods["csf"] = "CSF-dark voxels inside the brain, ventricles and dural folds excluded" + \
            (f"; refined: also {' and '.join(dark.how)}" if dark.how else "")
    compartments = _compartments(t1c, fit, sheets)
    out = {k: geo.image_from_array(v.astype(np.uint8), t1c) for k, v in masks.items()}
    return Anatomy(masks=out, methods=methods, compartments=compartments, sheets=sheets, atlas=fit)


def _vox(image: sitk.Image, mm: float) -> list[int]:
    return [max(int(round(mm / s)), 0) for s in image.GetSpacing()]


def _fill_holes_2d(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    """3D hole filling (the choroid plexus is enclosed by ventricular CSF)."""
    return geo.array_view(sitk.BinaryFillhole(geo.image_from_array(mask.astype(np.uint8), ref))) > 0


def _compartments(t1c: sitk.Image, fit: atl.AtlasFit, sheets: dict) -> sitk.Image:
    """Left / right cerebral hemisphere and infratentorial compartment of every brain voxel: the atlas labels,
    re-assigned by the side of the refined falx and tentorium where those sheets reach."""
    codes = fit.codes()
    brain = geo.array_view(fit.brain) > 0
    comp = np.zeros(codes.shape, np.uint8)
    comp[np.isin(codes, atl.LEFT_CEREBRAL + (31,))] = LEFT
    comp[np.isin(codes, atl.RIGHT_CEREBRAL + (32,))] = RIGHT
    comp[np.isin(codes, atl.INFRATENTORIAL)] = INFRA
    # Brain voxels the atlas calls CSF (fissures, sulci) or third ventricle: nearest compartment.
    unl = brain & (comp == 0)
    if unl.any() and comp.any():
        best = np.full(codes.shape, np.inf, np.float32)
        fill = np.zeros(codes.shape, np.uint8)
        for c in (LEFT, RIGHT, INFRA):
            if not (comp == c).any():
                continue
            d = geo.array_view(sitk.SignedMaurerDistanceMap(geo.image_from_array((comp == c).astype(np.uint8), t1c),
                                                            insideIsPositive=False, squaredDistance=False,
                                                            useImageSpacing=True))
            better = unl & (d < best)
            best[better] = d[better]
            fill[better] = c
        comp[unl] = fill[unl]
    idx = np.argwhere(brain)
    pts = geo.index_to_lps(t1c, idx)
    vals = comp[tuple(idx.T)]
    tent = sheets.get("tentorium")
    if tent is not None:
        side = tent.side(pts)
        near = np.isfinite(tent.height_at(pts)) & (np.abs(pts @ tent.normal - np.nan_to_num(tent.height_at(pts))) <= 12)
        below = near & (side < 0)
        above = near & (side > 0)
        # Above the tentorium: cerebral (keep the atlas side when it was cerebral, else by the falx/MSP below).
        vals = np.where(below, INFRA, vals)
        vals = np.where(above & (vals == INFRA), 0, vals)
    falx = sheets.get("falx")
    if falx is not None:
        side = falx.side(pts)
        cerebral = (vals == LEFT) | (vals == RIGHT) | (vals == 0)
        # The normal points to patient left (+x) when it comes from the MSP; otherwise compare with LPS x.
        left_sign = 1.0 if falx.normal[0] >= 0 else -1.0
        in_extent = side != 0
        vals = np.where(cerebral & in_extent & (side * left_sign > 0), LEFT, vals)
        vals = np.where(cerebral & in_extent & (side * left_sign < 0), RIGHT, vals)
    if (vals == 0).any():
        x = pts[:, 0]
        mid = float(np.median(x))
        vals = np.where(vals == 0, np.where(x > mid, LEFT, RIGHT), vals)
    comp[tuple(idx.T)] = vals
    return geo.image_from_array(comp, t1c)
