"""Change in shape between timepoints: portions of one lesion that grew and portions that regressed.

All masks are lesion extents (enhancement + what it encloses) on the **planning grid** (LPS), i.e. after
registration. Method:

* local surface displacement Δ = SDF_before − SDF_after (signed distances, mm, negative inside), smoothed with a
  Gaussian of σ = 2 mm: positive where the boundary moved outwards, negative where it moved inwards. Smoothing
  averages out a segmentation's 1–2 voxel wobble, which moves the boundary both ways within a few mm, while a real
  change moves a whole portion one way;
* grew = after ∖ before where Δ ≥ 0.75 mm; regressed = before ∖ after where Δ ≤ −0.75 mm; 26-connected portions
  smaller than ``min_portion_mm3`` (50 mm³), or whose part lying beyond the other surface by 2.5 mm is under
  20 mm³, are dropped, so a 1–2 voxel wobble of the segmentation is never called growth or regression;
* the depth required knows the resolution **along each displacement's direction** (:class:`IntervalResolution`):
  a voxel beyond the other surface lies along that surface's normal, and each surface is placed within its
  voxel's extent along that normal (the in-plane pixel within the slice plane, the slice thickness along the slice
  normal, their projection in between; each timepoint's own grid and obliquity, rotated into the planning frame by
  its registration). Required depth = max(2.5 mm, the coarser of the two extents + the registration uncertainties
  in quadrature (0 in the planning frame, 0.5 mm for a registration)). A portion counts when at least 20 mm³ of it
  lies beyond the depth required where it lies: 5 mm of growth in the slice plane of 6.5 mm slices counts (about
  1 mm + 0.7 mm of registration, so the 2.5 mm floor applies), 5 mm through the slices does not (7.2 mm needed).
  Portions that reach 2.5 mm (between voxel centres) but not that are *sub-resolution*: an interval with nothing
  else is reported as ``change_indeterminate``, never as a mixed response. Each portion states its depth, the depth
  required there and the direction, where it reaches farthest beyond what is required;
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
  over at least ``CONCENTRIC_SURFACE_FRACTION`` (40 %) of its *measurable* surface (where both voxels reach at most 2
  mm along the normal: all of it on 1-2 mm grids, the in-plane rim on thick slices), else ``eccentric_growth`` (growth
  at part of the margin). The paper: a metastasis that is not responding grows as a whole, recurrence after response
  may grow at one margin, and RN enlarges eccentrically (its scenario 6), so growth at one margin points neither way.
  Measured on the teaching phantoms: the whole-nodule PD twins move 54-100 % of their surface out, one-sided RN growth
  0-23 % (the threshold sits between). On the real-MRI implants most PD twins move 55-100 %; growth on one side of two
  components or on 5.5 mm slices can fall below and is then reported without a direction, never as RN.

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
DISPLACEMENT_MM = 0.75
SMOOTH_SIGMA_MM = 2.0
CONCENTRIC_SURFACE_FRACTION = 0.4
#: A surface point counts for growth as a whole where the interval's voxels reach at most this far (mm) along its
#: normal: there a displacement of a voxel or less can be seen (every point of a 1-2 mm grid; on 5.5 mm slices the
#: points whose normal lies within about 12 degrees of the slice plane, where the slices cut the surface).
MEASURABLE_SURFACE_MM = geo.THIN_SLICE_MM
#: Directions within this angle (degrees) of the slice plane are "in the slice plane", beyond 90 minus it
#: "through the slices" (words in the evidence; the decision uses the voxel's extent along the direction itself).
PLANE_WORDS_DEG = 20.0


@dataclasses.dataclass(frozen=True)
class Resolution:
    """One timepoint's voxel as seen in the planning frame (LPS): its acquisition grid's spacing (mm) along each of
    its axes, those axes as LPS unit vectors of the planning frame (rows; a registered follow-up's own slices,
    rotated back), and the uncertainty (mm) of its registration to the planning image (0 in the planning frame)."""
    spacing_mm: tuple
    axes_lps: tuple
    registration_mm: float = 0.0

    @classmethod
    def of(cls, image: sitk.Image, transform: sitk.Transform | None = None,
           registration_mm: float = 0.0) -> "Resolution":
        """``image``'s own grid; ``transform``: planning point → image point (the follow-up's registration)."""
        axes = geo.axes_lps(image, transform)
        return cls(tuple(float(s) for s in image.GetSpacing()), tuple(tuple(float(v) for v in a) for a in axes),
                   float(registration_mm))

    @classmethod
    def isotropic(cls, spacing_mm: float, registration_mm: float = 0.0) -> "Resolution":
        return cls((float(spacing_mm),) * 3, ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
                   float(registration_mm))

    def along_mm(self, directions) -> np.ndarray:
        """How far one voxel reaches along each LPS unit direction (…, 3), mm."""
        return geo.voxel_extent_along_mm(self.spacing_mm, self.axes_lps, directions)

    @property
    def diagonal_mm(self) -> float:
        """The most a voxel reaches along any direction (its diagonal)."""
        return float(np.linalg.norm(self.spacing_mm))

    @property
    def slice_normal_lps(self) -> np.ndarray | None:
        """The slice normal of an anisotropic grid (its coarsest axis), None for (near-)isotropic voxels."""
        s = np.asarray(self.spacing_mm)
        if s.max() <= 1.25 * s.min():
            return None
        return np.asarray(self.axes_lps[int(np.argmax(s))], dtype=float)


@dataclasses.dataclass(frozen=True)
class IntervalResolution:
    """What two timepoints can show of a surface displacement. Along a unit direction n (LPS) each surface is placed
    within its voxel's extent along n (:meth:`Resolution.along_mm`): the coarser of the two grids sets the
    uncertainty, and the registrations add theirs (in quadrature between them). A displacement counts when it
    reaches beyond that and beyond :data:`MIN_DEPTH_MM` (a 1-2 voxel wobble of a segmentation, measured between
    voxel centres)."""
    before: Resolution
    after: Resolution

    @property
    def registration_mm(self) -> float:
        return float(np.hypot(self.before.registration_mm, self.after.registration_mm))

    def uncertainty_mm(self, directions) -> np.ndarray:
        return np.maximum(self.before.along_mm(directions), self.after.along_mm(directions)) + self.registration_mm

    def required_depth_mm(self, directions) -> np.ndarray:
        return np.maximum(MIN_DEPTH_MM, self.uncertainty_mm(directions))

    @property
    def worst_uncertainty_mm(self) -> float:
        """The uncertainty along the worst direction (a voxel's diagonal): used where no direction is defined."""
        return max(self.before.diagonal_mm, self.after.diagonal_mm) + self.registration_mm

    @property
    def slice_normal_lps(self) -> np.ndarray | None:
        """The slice normal of the coarser of the two grids, if anisotropic (None: both near-isotropic)."""
        for r in sorted((self.before, self.after), key=lambda r: max(r.spacing_mm), reverse=True):
            if r.slice_normal_lps is not None:
                return r.slice_normal_lps
        return None

    def in_plane_direction_lps(self) -> np.ndarray | None:
        """A direction in the coarser grid's slice plane (the in-plane extent hardly depends on which)."""
        normal = self.slice_normal_lps
        if normal is None:
            return None
        ref = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        d = np.cross(normal, ref)
        return d / np.linalg.norm(d)

    def direction_words(self, direction_lps) -> str:
        """Where a direction lies relative to the slices: in the slice plane, through the slices, or between."""
        normal = self.slice_normal_lps
        if normal is None:
            return "isotropic voxels"
        angle = float(np.degrees(np.arcsin(min(abs(float(np.dot(normal, direction_lps))), 1.0))))
        if angle <= PLANE_WORDS_DEG:
            return "in the slice plane"
        if angle >= 90.0 - PLANE_WORDS_DEG:
            return "through the slices"
        return f"oblique, {angle:.0f}° to the slice plane"

    def to_dict(self, a: str, b: str) -> dict:
        normal = self.slice_normal_lps
        in_plane = self.in_plane_direction_lps()
        return {"slice_thickness_mm": {a: max(self.before.spacing_mm), b: max(self.after.spacing_mm)},
                "voxel_mm": {a: list(self.before.spacing_mm), b: list(self.after.spacing_mm)},
                "registration_uncertainty_mm": {a: self.before.registration_mm, b: self.after.registration_mm},
                "uncertainty_mm": self.worst_uncertainty_mm,
                "required_depth_in_plane_mm": float(self.required_depth_mm(in_plane)) if normal is not None
                else None,
                "required_depth_through_plane_mm": float(self.required_depth_mm(normal)) if normal is not None
                else None,
                "min_depth_mm": MIN_DEPTH_MM,
                "rule": "a surface displacement counts where it reaches beyond the larger of 2.5 mm and the coarser "
                        "voxel's extent along its direction plus the registration uncertainty"}


def _sdf(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, 1e3, np.float32)
    d = sitk.SignedMaurerDistanceMap(geo.image_from_array(mask.astype(np.uint8), ref), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    return geo.array_view(d).astype(np.float32)


def normals_lps(sdf: np.ndarray, ref: sitk.Image, where: np.ndarray) -> np.ndarray:
    """Unit LPS directions in which a signed distance map increases at the voxels ``where`` (N, 3): for a voxel
    beyond a mask, the way it lies from the mask's surface, i.e. the normal of that surface. Across thick slices the
    central difference spans two slices: it follows how the mask's in-plane extent changes from slice to slice, so
    near a lesion's top or bottom, where its surface turns towards the slice plane, the direction turns with it
    (the nearest voxel centre alone would lie in the same slice and say "in the slice plane" where the surface is
    nearly parallel to the slices). NaN where the distance is flat (beyond its clipping)."""
    spacing = np.asarray(ref.GetSpacing(), dtype=float)
    direction = np.asarray(ref.GetDirection(), dtype=float).reshape(3, 3)
    g = np.stack([np.gradient(sdf, axis=d)[where] / spacing[d] for d in range(3)], axis=1) @ direction.T
    norm = np.linalg.norm(g, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0.2, g / norm, np.nan)


def _nearest_directions_lps(mask: np.ndarray, ref: sitk.Image, where: np.ndarray) -> np.ndarray:
    """For each voxel of ``where`` outside ``mask``, the unit LPS direction from the nearest voxel centre of
    ``mask`` to it (N, 3; a vector distance map). NaN rows where there is none."""
    out = np.full((int(where.sum()), 3), np.nan)
    if not mask.any() or not len(out):
        return out
    f = sitk.DanielssonDistanceMapImageFilter()
    f.SetUseImageSpacing(True)
    f.SetInputIsBinary(True)
    f.Execute(geo.image_from_array(mask.astype(np.uint8), ref))
    # Index offsets (i, j, k) from each voxel to its nearest mask voxel, on SimpleITK's (k, j, i) array.
    vector_map = f.GetVectorDistanceMap()  # kept alive while its array view is read
    offsets = sitk.GetArrayViewFromImage(vector_map).transpose(2, 1, 0, 3)[where].astype(float)
    vec = -(offsets * np.asarray(ref.GetSpacing())) @ np.asarray(ref.GetDirection(), dtype=float).reshape(3, 3).T
    norm = np.linalg.norm(vec, axis=1)
    ok = norm > 0
    out[ok] = vec[ok] / norm[ok, None]
    return out


def depth_beyond(other: np.ndarray, sdf_other: np.ndarray, ref: sitk.Image, where: np.ndarray,
                 interval: IntervalResolution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depth mm, required depth mm, unit direction LPS) for each voxel of ``where`` beyond the other timepoint's
    lesion ``other`` (``sdf_other``: its signed distance).

    The displacement is measured along that surface's normal (:func:`normals_lps`), where each surface is placed
    within its voxel's extent: required depth = :meth:`IntervalResolution.required_depth_mm` along it (the worst
    direction's where none is defined). On a near-isotropic planning grid the depth is the voxel's distance to the
    other lesion, which lies along that normal. On thick slices the nearest voxel centre usually lies in the same
    slice even where the surface is tilted towards the slices (a lesion's top and bottom): there the depth is that
    distance projected onto the normal, or a lesion moved 3 mm through 5.5 mm slices, whose cap's outline on one
    slice then widens by 4-5 mm, would read as growth in the slice plane."""
    depth = sdf_other[where].astype(float)
    n = normals_lps(sdf_other, ref, where)
    ok = np.isfinite(n).all(axis=1)
    spacing = np.asarray(ref.GetSpacing())
    if spacing.max() > 1.25 * spacing.min():
        v = _nearest_directions_lps(other, ref, where)
        both = ok & np.isfinite(v).all(axis=1)
        depth[both] *= np.clip((v[both] * n[both]).sum(1), 0.0, 1.0)
        n[~ok] = v[~ok]
        ok = np.isfinite(n).all(axis=1)
    required = np.full(len(n), max(MIN_DEPTH_MM, interval.worst_uncertainty_mm))
    if ok.any():
        required[ok] = interval.required_depth_mm(n[ok])
    return depth, required, n


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
    #: Where the portion reaches farthest beyond what the resolution allows: its depth there, the depth required
    #: along its direction there, and that direction (LPS unit vector; None where no direction is defined).
    depth_mm: float = 0.0
    required_depth_mm: float = 0.0
    direction_lps: tuple | None = None
    direction_words: str = ""
    #: Volume (mm³) of the portion lying beyond the required depth (at least MIN_CORE_MM3 for a portion that counts).
    beyond_resolution_mm3: float = 0.0

    def evidence(self) -> dict:
        """The portion as reported in a finding (RAS, mm)."""
        return {"kind": self.kind, "volume_mm3": self.volume_mm3, "max_displacement_mm": self.max_displacement_mm,
                "mean_displacement_mm": self.mean_displacement_mm, "centroid_ras": self.centroid_ras,
                "max_depth_mm": self.max_depth_mm, "depth_mm": self.depth_mm,
                "required_depth_mm": self.required_depth_mm,
                "direction_ras": (geo.ras_from_lps(self.direction_lps).round(3).tolist()
                                  if self.direction_lps is not None else None),
                "direction": self.direction_words, "beyond_resolution_mm3": self.beyond_resolution_mm3}


#: A regressed candidate is *enclosed* by the later lesion when straight rays from its voxels meet that lesion
#: (:func:`.enhancement.enclosed_fraction`) in, on average, at least ENCLOSED_FRACTION of the 26 directions. The
#: necrotic core of a grown ring lesion is enclosed even where the ring's wall is faint or cut (hole filling needs a
#: closed wall): 0.63-0.83 measured on the real-MRI implants; a portion at the edge of a lesion that really regressed
#: sees the rest of the lesion in at most about half the directions (a half-space; 0.14-0.16 measured).
ENCLOSED_FRACTION = 0.6


def interval_portions(before: np.ndarray, after: np.ndarray, ref: sitk.Image,
                      min_portion_mm3: float = MIN_PORTION_MM3, *, interval: IntervalResolution | None = None,
                      not_grown: np.ndarray | None = None,
                      boundaries: np.ndarray | None = None,
                      still_enhancing: np.ndarray | None = None,
                      was_enhancing: np.ndarray | None = None,
                      displacement: tuple | None = None) -> tuple[list[Portion], np.ndarray, list[Portion]]:
    """Grew/regressed portions between two masks, the label map (1 grew, 2 regressed, 3 stable) and the
    sub-resolution candidates (reaching ``MIN_DEPTH_MM`` but not, over ``MIN_CORE_MM3``, the depth the
    ``interval``'s resolution requires along each voxel's direction: :class:`IntervalResolution`; default: the
    grid of ``ref`` at both timepoints, no registration). ``not_grown``: voxels that are no grown portion whatever
    they look like (new non-contiguous foci); ``boundaries``: CSF spaces, folds and ventricles — their voxels are
    meningeal or ependymal enhancement coming and going (reported as boundary enhancement), never a portion of the
    lesion (a portion that grew into the lesion and along the enhancing pia at once had been dropped whole when
    most of it lay in the sulcus: the phantom central_sulcus_pd grew 2.9 cm³ as a whole from t1 to t2, unseen).
    ``still_enhancing``: voxels above the enhancement threshold on the later image; a portion regressed only where
    its enhancement is gone (not where the later segmentation merely left enhancing voxels out, as a
    vessel or dura at the brain surface, or drew its edge tighter). A regressed portion enclosed by the later
    lesion (:func:`enclosed_fraction`) is its core, not regression. ``was_enhancing``: the same on the earlier
    image; a regressed portion must have lost enhancement over at least ``MIN_CORE_MM3`` (enhancing before, not
    after): a portion that is only the necrotic core or resection cavity the earlier extent enclosed, where the
    later image's thick slices blurred the rim below the threshold, lost no enhancement. ``displacement``:
    :func:`displacement_mm` of the same masks when already computed.

    Depth: a grown voxel's distance (mm) beyond the earlier surface along that surface's normal, a regressed
    voxel's beyond the later one (:func:`depth_beyond`). Growth of 5 mm in the slice plane of 6.5 mm slices counts
    (the in-plane pixel and the registration allow about 1.6 mm, so the 2.5 mm wobble floor applies), 5 mm through
    the slices does not (7.2 mm required)."""
    disp, sdf_a, sdf_b = displacement if displacement is not None else displacement_mm(before, after, ref)
    interval = interval or IntervalResolution(Resolution.of(ref), Resolution.of(ref))
    vox = geo.voxel_volume_mm3(ref)
    out: list[Portion] = []
    below: list[Portion] = []
    label = np.zeros(before.shape, np.uint8)
    label[before & after] = 3
    for kind, raw, sign in (("grew", after & ~before, 1.0), ("regressed", before & ~after, -1.0)):
        cand = raw & (sign * disp >= DISPLACEMENT_MM)
        if kind == "grew" and not_grown is not None:
            cand &= ~not_grown
        if kind == "regressed" and still_enhancing is not None:
            cand &= ~still_enhancing
        if boundaries is not None:
            cand &= ~boundaries         # meninges / ependyma coming and going: boundary enhancement, not lesion
        enclosure = enclosed_fraction(after, ref, cand) if kind == "regressed" else None
        if not cand.any():
            continue
        other, other_sdf = (before, sdf_a) if kind == "grew" else (after, sdf_b)
        comps = _components(cand, ref)
        counts = np.bincount(comps.ravel())
        for lab in np.nonzero(counts * vox >= min_portion_mm3)[0]:
            if lab == 0:
                continue
            m = comps == lab
            if enclosure is not None and enclosure[m].mean() >= ENCLOSED_FRACTION:
                continue                # inside the later lesion: the core of a grown ring, not regression
            if kind == "regressed" and was_enhancing is not None and \
                    (m & was_enhancing).sum() * vox < MIN_CORE_MM3:
                continue                # no enhancement was lost there
            if (other_sdf[m] >= MIN_DEPTH_MM).sum() * vox < MIN_CORE_MM3:
                continue                # a wobble (between voxel centres)
            depth, required, normal = depth_beyond(other, other_sdf, ref, m, interval)
            beyond = depth >= required
            # Reported where it reaches deepest beyond what is required (else where it comes closest to it).
            i = int(np.argmax(np.where(beyond, depth, -np.inf))) if beyond.any() else int(np.argmax(depth - required))
            direction = tuple(float(v) for v in normal[i]) if np.isfinite(normal[i]).all() else None
            p = Portion(kind=kind, volume_mm3=float(m.sum() * vox),
                        max_displacement_mm=float(sign * np.max(sign * disp[m])),
                        mean_displacement_mm=float(disp[m].mean()),
                        centroid_ras=geo.centroid_ras(m, ref), mask=m,
                        max_depth_mm=float(other_sdf[m].max()), depth_mm=float(depth[i]),
                        required_depth_mm=float(required[i]), direction_lps=direction,
                        direction_words=interval.direction_words(direction) if direction is not None
                        else "no single direction",
                        beyond_resolution_mm3=float(beyond.sum() * vox))
            if p.beyond_resolution_mm3 < MIN_CORE_MM3:
                below.append(p)
                continue
            out.append(p)
            label[m] = 1 if kind == "grew" else 2
    return out, label, below


def surface_moved_out(before: np.ndarray, disp: np.ndarray, ref: sitk.Image, where: np.ndarray,
                      sdf_before: np.ndarray | None = None,
                      interval: IntervalResolution | None = None) -> float | None:
    """Fraction of the earlier lesion's measurable surface voxels within ``where`` whose boundary moved out by at
    least ``DISPLACEMENT_MM`` (None when the earlier lesion has no measurable surface there).

    Measurable: where both timepoints' voxels reach at most :data:`MEASURABLE_SURFACE_MM` along the surface normal
    (``sdf_before``'s gradient; with an ``interval``), so that a displacement of a voxel can be seen: through a
    5.5 mm slice a surface moves by whole slices, and 3 mm of growth left the top and bottom faces unmoved, so a
    lesion growing as a whole read as growth at part of its margin. On a planning grid with thick slices the
    surface is the in-plane rim of every slice and its normal the one within the slice (a normal taken through
    5.5 mm slices is that of the staircase, not of the surface)."""
    thin = geo.thin_axes(ref)
    radius = [int(t) for t in thin]
    inner = geo.array_view(sitk.BinaryErode(geo.image_from_array(before.astype(np.uint8), ref), radius)) > 0
    surface = before & ~inner & where
    if surface.any() and interval is not None and sdf_before is not None:
        spacing = np.asarray(ref.GetSpacing(), dtype=float)
        direction = np.asarray(ref.GetDirection(), dtype=float).reshape(3, 3)
        g = np.stack([np.gradient(sdf_before, axis=d)[surface] / spacing[d] if thin[d]
                      else np.zeros(int(surface.sum())) for d in range(3)], axis=1) @ direction.T
        norm = np.linalg.norm(g, axis=1)
        ok = norm > 0.2
        n = g[ok] / norm[ok, None]
        seen = np.maximum(interval.before.along_mm(n), interval.after.along_mm(n)) <= MEASURABLE_SURFACE_MM
        idx = np.flatnonzero(surface.ravel())[ok][seen]
        surface = np.zeros(surface.size, bool)
        surface[idx] = True
        surface = surface.reshape(before.shape)
    if not surface.any():
        return None
    return float(np.mean(disp[surface] >= DISPLACEMENT_MM))


#: How the lesion volumes of change findings and of the time course (lesions.rano_table) were measured (without,
#: with fractions).
VOLUMES_FROM = ("voxels of the lesion masks on the SRS grid",
                "each timepoint's lesion on the SRS grid, partial voxels counted (a follow-up's segmentation as "
                "drawn, whatever its slice thickness)")


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
                           interval: IntervalResolution) -> list[dict]:
    """New foci (:func:`new_foci`) lying within the interval's uncertainty of the earlier lesion without touching
    it: at this resolution a new focus cannot be told from a lobe of the lesion that grew (the clinical Sylvian
    focus, lobulated at t2 on 5.5 mm slices: one lobe over the t1 focus, the other 3.2 mm from it, its true growth
    2.5-3 mm). The uncertainty is taken along the gap: from the earlier lesion's surface to the focus's nearest
    voxel (:meth:`IntervalResolution.uncertainty_mm`). Each is still no grown portion; an interval with nothing else
    is ``change_indeterminate``. ``sdf_before``: the earlier lesion's signed distance (mm). Returns
    [{volume_mm3, gap_mm, uncertainty_mm, direction, centroid_ras, mask}]."""
    if new is None or not new.any():
        return []
    comps = _components(new, ref)
    vox = geo.voxel_volume_mm3(ref)
    out = []
    for lab in range(1, int(comps.max()) + 1):
        m = comps == lab
        if m.sum() * vox < MIN_CORE_MM3:
            continue
        gap = float(sdf_before[m].min())
        nearest = m & (sdf_before <= gap)
        n = normals_lps(sdf_before, ref, nearest)
        n = n[np.isfinite(n).all(axis=1)]
        if len(n):
            d = n.mean(0)
            d /= max(float(np.linalg.norm(d)), 1e-9)
            unc, words = float(interval.uncertainty_mm(d)), interval.direction_words(d)
        else:
            unc, words = interval.worst_uncertainty_mm, "no single direction"
        if gap <= unc:
            out.append({"volume_mm3": float(m.sum() * vox), "gap_mm": gap, "uncertainty_mm": unc,
                        "direction": words, "centroid_ras": geo.centroid_ras(m, ref), "mask": m})
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


@dataclasses.dataclass
class _IntervalChange:
    """What :func:`analyse_changes` measured over one interval a → b, shared by every lesion in it."""
    a: str
    b: str
    interval: IntervalResolution
    excluded: np.ndarray | None        # new foci at b, not counted as growth
    displacement: tuple                # displacement_mm(masks[a], masks[b])
    portions: list                     # portions above the resolution
    below: list                        # portions within it
    near_foci: list                    # foci within the resolution of the lesion


def _volume_owner(groups: np.ndarray, ref: sitk.Image, resolution: dict, fractions: dict | None) -> np.ndarray:
    """Which lesion group owns each voxel's coverage fraction: each group owns those around it, as far as a
    resampled mask can fall short of its drawing (its caps pulled in by up to half of the thickest slice) plus a
    voxel."""
    if groups.max() == 1:
        return np.ones(groups.shape, np.int32)
    if groups.any() and fractions:
        reach = 0.5 * max(max(r.spacing_mm) for r in resolution.values()) + max(ref.GetSpacing())
        grown = geo.array_view(sitk.GrayscaleDilate(geo.image_from_array(groups.astype(np.int32), ref),
                                                    [int(np.ceil(reach / s)) for s in ref.GetSpacing()]))
        return np.where(groups > 0, groups, grown)
    return groups


def _group_change(iv: _IntervalChange, gm: np.ndarray, owned: np.ndarray, masks: dict, coverage: dict,
                  ref: sitk.Image, dose_on_ref: np.ndarray | None, min_portion_mm3: float,
                  volumes_from: str) -> Finding | None:
    """One lesion group's change over the interval: mixed response, concentric or eccentric growth, regression,
    or change indeterminate when all it shows lies within the resolution; None when it shows nothing."""
    a, b = iv.a, iv.b
    vox = geo.voxel_volume_mm3(ref)
    mine = [p for p in iv.portions if (p.mask & gm).any()]
    low = [p for p in iv.below if (p.mask & gm).any()]
    near = [f for f in iv.near_foci if (f["mask"] & gm).any()]
    if not (masks[a] & gm).any() and not (masks[b] & gm).any():
        return None                            # a lesion of other timepoints only (portions lie in a or b)
    vol_a, vol_b = (float(coverage[t][owned].sum(dtype=np.float64) * vox) if (masks[t] & gm).any() else 0.0
                    for t in (a, b))
    centroid = geo.centroid_ras(gm & (masks[a] | masks[b]), ref)
    evidence = {"lesion_volume_before_mm3": vol_a, "lesion_volume_after_mm3": vol_b,
                "total_change_pct": 100.0 * (vol_b - vol_a) / vol_a if vol_a > 0 else None,
                "volumes_from": volumes_from,
                "min_portion_mm3": min_portion_mm3, "min_depth_mm": MIN_DEPTH_MM,
                "min_core_mm3": MIN_CORE_MM3, "displacement_threshold_mm": DISPLACEMENT_MM,
                "smoothing_sigma_mm": SMOOTH_SIGMA_MM, "resolution": iv.interval.to_dict(a, b)}
    if iv.excluded is not None and (iv.excluded & gm).any():
        evidence["new_foci_not_counted_mm3"] = float((iv.excluded & gm).sum() * vox)
    if low:
        evidence["sub_resolution_portions"] = [p.evidence() for p in low]
    if near:
        evidence["foci_within_resolution"] = [{k: v for k, v in f.items() if k != "mask"} for f in near]
    if not mine:
        if low or near:
            return Finding(kind="change_indeterminate", from_=a, to=b, centroid_ras=centroid, volume_mm3=vol_b,
                           dose={}, evidence=evidence)
        return None
    grew = [p for p in mine if p.kind == "grew"]
    reg = [p for p in mine if p.kind == "regressed"]
    if grew and not reg:
        moved = surface_moved_out(masks[a], iv.displacement[0], ref, gm, iv.displacement[1], iv.interval)
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
    return Finding(kind=kind, from_=a, to=b, centroid_ras=centroid, volume_mm3=vol_b, dose=dose,
                   grew_mm3=float(sum(p.volume_mm3 for p in grew)),
                   regressed_mm3=float(sum(p.volume_mm3 for p in reg)),
                   portions=[{**p.evidence(),
                              **({"mean_gy": float(dose_on_ref[p.mask].mean())} if dose_on_ref is not None else {})}
                             for p in mine],
                   evidence=evidence)


#: Change is analysed in a box around every timepoint's lesion, this far (mm) beyond it: distance maps of a whole
#: head cost seconds each.
CHANGE_BOX_MARGIN_MM = 25.0


def analyse_changes(masks: dict[str, np.ndarray], ref: sitk.Image, dose_on_ref: np.ndarray | None = None,
                    min_portion_mm3: float = MIN_PORTION_MM3, group_mm: float = GROUP_MM, vs_first: bool = True, *,
                    resolution: dict | None = None, foci: dict | None = None,
                    boundaries: np.ndarray | None = None, enhancing: dict | None = None,
                    fractions: dict | None = None):
    """Findings for every consecutive interval (and from the SRS image to the last timepoint).

    ``masks``: ordered {timepoint label: lesion extent on ``ref``}; ``resolution``: per timepoint, its
    acquisition's voxel in the planning frame and its registration uncertainty (:class:`Resolution`; default:
    ``ref``'s grid, no registration); ``foci``: per
    timepoint, the enhancement reported as non-contiguous with the treated lesion; ``enhancing``: per follow-up,
    every voxel above its enhancement threshold (see :func:`interval_portions`); ``fractions``: per timepoint, the
    fraction of each voxel its own segmentation covers (:func:`mask_fraction`), from which the lesion volumes are
    stated (the masks' voxel counts when not given: they read low where a thick-slice drawing was resampled).
    Each lesion group's change in each interval: :func:`_group_change`.
    Returns (findings, {interval: label map})."""
    union = np.zeros(next(iter(masks.values())).shape, bool)
    for m in masks.values():
        union |= m
    box = geo.crop_box(union, int(np.ceil(CHANGE_BOX_MARGIN_MM / min(ref.GetSpacing())))) if union.any() else None
    if box is not None and any((sl.stop - sl.start) < s for sl, s in zip(box, union.shape)):
        sub = sitk.RegionOfInterest(sitk.Image(ref.GetSize(), sitk.sitkUInt8), [sl.stop - sl.start for sl in box],
                                    [sl.start for sl in box])
        sub.SetOrigin(ref.TransformIndexToPhysicalPoint([sl.start for sl in box]))
        sub.SetSpacing(ref.GetSpacing())
        sub.SetDirection(ref.GetDirection())
        f, maps_c = analyse_changes({k: v[box] for k, v in masks.items()}, sub,
                                    dose_on_ref[box] if dose_on_ref is not None else None, min_portion_mm3,
                                    group_mm, vs_first, resolution=resolution,
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
    resolution = {k: (resolution or {}).get(k) or Resolution.of(ref) for k in labels}
    groups = lesion_groups(list(masks.values()), ref, group_mm)
    owner = _volume_owner(groups, ref, resolution, fractions)
    coverage = {k: (fractions or {}).get(k, masks[k]) for k in labels}
    findings: list[Finding] = []
    maps: dict = {}
    intervals = list(zip(labels[:-1], labels[1:]))
    if len(labels) > 2 and vs_first:
        intervals.append((labels[0], labels[-1]))
    for a, b in intervals:
        interval = IntervalResolution(resolution[a], resolution[b])
        excluded = new_foci((foci or {}).get(b), masks[a], ref, masks[b])
        displacement = displacement_mm(masks[a], masks[b], ref)
        portions, label_map, below = interval_portions(masks[a], masks[b], ref, min_portion_mm3,
                                                       interval=interval, not_grown=excluded,
                                                       boundaries=boundaries,
                                                       still_enhancing=(enhancing or {}).get(b),
                                                       was_enhancing=(enhancing or {}).get(a),
                                                       displacement=displacement)
        maps[(a, b)] = label_map
        iv = _IntervalChange(a=a, b=b, interval=interval, excluded=excluded, displacement=displacement,
                             portions=portions, below=below,
                             near_foci=foci_within_resolution(excluded, displacement[1], ref, interval))
        for g in range(1, int(groups.max()) + 1):
            found = _group_change(iv, groups == g, owner == g, masks, coverage, ref, dose_on_ref, min_portion_mm3,
                                  VOLUMES_FROM[bool(fractions)])
            if found is not None:
                findings.append(found)
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

