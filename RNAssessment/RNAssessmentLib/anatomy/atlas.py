"""Atlas compartments on the SRS-time image: the ICBM 2009a template with its labels, registered to the patient.

The atlas (``Resources/Atlas``, 2 mm, derived by ``Utilities/make_atlas.py``; licence beside it) holds a T1 template
with scalp and skull, its brain mask, compartment labels (lobes and deep grey matter per hemisphere, cerebellum,
brainstem, ventricles, extracerebral CSF) and priors for the falx and the tentorium.

Registration (template → patient, all in LPS mm; the resulting transform maps **patient points to atlas points**,
ITK's resampling convention, so atlas labels are pulled onto the patient's grid):

1. the patient image is resampled to an isotropic 2 mm grid of its own orientation (thick-slice, oblique scans
   are handled the same way as 1 mm ones); skull-stripped images (a large exactly-zero background around one brain
   sized component) are registered to the template's brain, raw head scans to the whole template;
2. translation from the centres of mass of the heads (brains), then a similarity and a per-axis scaling stage
   (Mattes mutual information, two resolution levels); the lesion and the high-dose region (``exclude``) are left
   out of the metric;
3. optionally a coarse B-spline (one control point per ~45 mm) over the brain, same metric and mask, kept only when
   it improves the normalised correlation inside the brain.

The brain mask of a raw scan is the warped template mask refined on the image (tissue brighter than CSF/bone,
separated from the scalp by a morphological opening, closed and hole-filled); of a skull-stripped scan, its
non-zero region.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo

ATLAS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Atlas")

# Compartment codes of the atlas labels (see atlas.json).
LEFT_CEREBRAL = (1, 2, 3, 4, 5)
RIGHT_CEREBRAL = (11, 12, 13, 14, 15)
LATERAL_THIRD_VENTRICLES = (31, 32, 33)
FOURTH_VENTRICLE = (34,)
INFRATENTORIAL = (21, 22, 23) + FOURTH_VENTRICLE
CEREBELLUM = (21, 22)
VENTRICLES = LATERAL_THIRD_VENTRICLES + FOURTH_VENTRICLE
EXTRACEREBRAL_CSF = (40,)
OCCIPITAL = (4, 14)
TEMPORAL = (3, 13)
#: Compartments that a dural fold separates (what ``compartment_of`` returns).
COMPARTMENTS = ("left cerebral hemisphere", "right cerebral hemisphere", "infratentorial")


@dataclasses.dataclass(frozen=True)
class Atlas:
    t1: sitk.Image          # uint8 T1 template with scalp and skull
    brain: sitk.Image       # uint8 0/1
    labels: sitk.Image      # uint8 compartment codes
    dura: sitk.Image        # uint8: 1 falx prior, 2 tentorium prior
    meta: dict


@functools.lru_cache(maxsize=1)
def load_atlas(directory: str = ATLAS_DIR) -> Atlas:
    """The bundled atlas (read once per process)."""
    def read(name):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            raise ValueError(f"atlas file '{path}' is missing: reinstall RNAssessment or run "
                             "Utilities/make_atlas.py")
        return sitk.ReadImage(path)
    with open(os.path.join(directory, "atlas.json"), encoding="utf-8") as f:
        meta = json.load(f)
    return Atlas(t1=read("icbm152_2009a_t1_2mm.nrrd"), brain=read("icbm152_2009a_brain_2mm.nrrd"),
                 labels=read("icbm152_2009a_labels_2mm.nrrd"), dura=read("icbm152_2009a_dura_2mm.nrrd"), meta=meta)


@dataclasses.dataclass
class AtlasFit:
    """The atlas on one patient image (its grid)."""
    transform: sitk.Transform       # patient point (LPS) → atlas point (LPS, MNI 2009a)
    labels: sitk.Image              # compartment codes on the patient grid
    dura: sitk.Image                # 1 falx prior, 2 tentorium prior, on the patient grid
    brain: sitk.Image               # brain mask (parenchyma + the CSF spaces inside it) on the patient grid
    skull_stripped: bool
    deformable: bool
    quality_ncc: float              # normalised correlation of template and patient inside the brain
    seconds: float
    method: str

    def codes(self) -> np.ndarray:
        return geo.array_view(self.labels)

    def mask(self, codes) -> np.ndarray:
        """(i, j, k) bool array of the voxels whose compartment code is in ``codes``."""
        return np.isin(self.codes(), tuple(codes))

    def summary(self) -> dict:
        # No run time here: the same inputs give byte-identical findings.json (timings go to the log and benchmarks).
        return {"method": self.method, "skull_stripped": self.skull_stripped, "deformable": self.deformable,
                "quality_ncc": round(self.quality_ncc, 3),
                "template": "ICBM 2009a nonlinear symmetric (2 mm), labels from raidionicsrads 1.3.2"}


def is_skull_stripped(image: sitk.Image) -> bool:
    """A skull-stripped image: ≥ 25 % of its voxels are exactly zero and the non-zero region is brain sized
    (0.6 – 2.4 litres); raw scans have noise, scalp and skull around the brain."""
    arr = sitk.GetArrayViewFromImage(image)
    zero = float((arr == 0).mean())
    if zero < 0.25:
        return False
    vol_l = float((arr != 0).sum()) * geo.voxel_volume_mm3(image) / 1e6
    return 0.6 <= vol_l <= 2.4


def foreground_mask(image: sitk.Image) -> sitk.Image:
    """Head (raw scan) or brain (skull-stripped scan) foreground: above Otsu's threshold, largest component, holes
    filled. Used where two images only need the same kind of mask (registration initialisation)."""
    fg = sitk.OtsuThreshold(image, 0, 1)
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True)
    return sitk.BinaryFillhole(sitk.Cast(cc == 1, sitk.sitkUInt8))


def _head_mask(image: sitk.Image) -> sitk.Image:
    """Everything above 10 % of the bright end, closed and hole-filled: the head with its skull (raw scans), the
    brain (skull-stripped ones)."""
    a = sitk.GetArrayViewFromImage(image)
    thr = 0.1 * float(np.percentile(a[a > 0], 99)) if (a > 0).any() else 0.0
    m = sitk.BinaryMorphologicalClosing(sitk.Cast(image > thr, sitk.sitkUInt8), [3, 3, 3])
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(m), sortByObjectSize=True)
    return sitk.BinaryFillhole(sitk.Cast(cc == 1, sitk.sitkUInt8))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _register(fixed, moving, fixed_mask, transform, *, shrink, sigmas, iterations, seed, bspline=False):
    reg = geo.registration_method()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25 if not bspline else 0.5, seed=seed)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    if bspline:
        reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations,
                                 maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=4 * iterations,
                                 costFunctionConvergenceFactor=1e7)
    else:
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3, numberOfIterations=iterations,
                                                     relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
        reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(shrink))
    reg.SetSmoothingSigmasPerLevel(list(sigmas))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)
    return transform


def _affine(fixed: sitk.Image, moving: sitk.Image, head_fixed: sitk.Image, head_moving: sitk.Image,
            keep: sitk.Image, seed: int) -> sitk.ScaleVersor3DTransform:
    """Centres of mass of the two heads (or brains), then similarity, then scaling per axis (no shear: a shear has
    no anatomical meaning here and lets the optimiser drift on images unlike the template)."""
    init = sitk.CenteredTransformInitializer(sitk.Cast(head_fixed, sitk.sitkFloat32),
                                             sitk.Cast(head_moving, sitk.sitkFloat32), sitk.Similarity3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    sim = sitk.Similarity3DTransform(init)
    _register(fixed, moving, keep, sim, shrink=(4, 2), sigmas=(4.0, 2.0), iterations=150, seed=seed)
    aff = sitk.ScaleVersor3DTransform()
    aff.SetCenter(sim.GetCenter())
    aff.SetRotation(sim.GetVersor())
    aff.SetTranslation(sim.GetTranslation())
    aff.SetScale([sim.GetScale()] * 3)
    _register(fixed, moving, keep, aff, shrink=(2, 1), sigmas=(2.0, 1.0), iterations=100, seed=seed + 1)
    return aff


#: The B-spline's control points lie about this far apart (mm) over the 2 mm registration grid: coarse, so the
#: template bends to the head without following a lesion.
BSPLINE_SPACING_MM = 45.0


def _bspline(fixed: sitk.Image, moving: sitk.Image, region: sitk.Image, aff: sitk.Transform, grid: sitk.Image,
             seed: int) -> sitk.Transform:
    """A coarse B-spline on top of ``aff`` (Mattes MI in ``region``, L-BFGS-B, one level at 2 mm). Raises
    RuntimeError when the optimiser fails."""
    mesh = [max(int(round(s * 2.0 / BSPLINE_SPACING_MM)), 2) for s in grid.GetSize()]
    bs = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    reg = geo.registration_method()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.1, seed=seed + 2)
    reg.SetMetricFixedMask(region)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=30,
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=90,
                             costFunctionConvergenceFactor=1e7)
    reg.SetShrinkFactorsPerLevel([2])
    reg.SetSmoothingSigmasPerLevel([2.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetMovingInitialTransform(aff)
    reg.SetInitialTransform(bs, inPlace=True)
    reg.Execute(fixed, moving)
    return bs


def fit_atlas(t1c: sitk.Image, exclude: sitk.Image | None = None, *, deformable: bool = True,
              atlas: Atlas | None = None, seed: int = 3) -> AtlasFit:
    """Register the atlas to ``t1c`` (see the module docstring) and pull its labels onto ``t1c``'s grid.

    ``exclude``: a mask on ``t1c``'s grid (lesion, high-dose region) left out of the registration metric."""
    t0 = time.time()
    atlas = atlas or load_atlas()
    stripped = is_skull_stripped(t1c)
    grid = geo.isotropic_grid(t1c, 2.0)
    # Anti-aliasing before 2 mm sampling; thick slices are already averaged through.
    fixed = sitk.Resample(sitk.SmoothingRecursiveGaussian(sitk.Cast(t1c, sitk.sitkFloat32), 1.0), grid,
                          sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    moving = sitk.Cast(atlas.t1, sitk.sitkFloat32)
    if stripped:
        moving = moving * sitk.Cast(atlas.brain, sitk.sitkFloat32)
    head_fixed, head_moving = _head_mask(fixed), _head_mask(moving)
    keep = head_fixed
    if exclude is not None and sitk.GetArrayViewFromImage(exclude).any():
        ex = sitk.Resample(sitk.Cast(exclude > 0, sitk.sitkUInt8), grid, sitk.Transform(), sitk.sitkNearestNeighbor)
        ex = sitk.BinaryDilate(ex, [3, 3, 3])                 # 6 mm: the lesion's surroundings change too
        keep = sitk.Cast(keep * (1 - ex), sitk.sitkUInt8)
    aff = _affine(fixed, moving, head_fixed, head_moving, keep, seed)

    def brain_on(tf):
        b = sitk.Resample(sitk.Cast(atlas.brain, sitk.sitkFloat32), grid, tf, sitk.sitkLinear, 0.0)
        return sitk.Cast(b >= 0.5, sitk.sitkUInt8)

    def quality(tf, brain):
        warped = geo.array_view(sitk.Resample(moving, grid, tf, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        sel = (geo.array_view(brain) > 0) & (geo.array_view(keep) > 0)
        return _ncc(geo.array_view(fixed)[sel].astype(np.float64), warped[sel].astype(np.float64))

    brain_aff = brain_on(aff)
    q_aff = quality(aff, brain_aff)
    transform: sitk.Transform = aff
    used_deformable = False
    q = q_aff
    if deformable:
        region = sitk.Cast(sitk.BinaryDilate(brain_aff, [3, 3, 3]) * keep, sitk.sitkUInt8)
        try:
            bs = _bspline(fixed, moving, region, aff, grid, seed)
            composite = sitk.CompositeTransform([aff, bs])
            brain_def = brain_on(composite)
            q_def = quality(composite, brain_def)
            if q_def > q_aff + 0.005:
                transform, q, used_deformable = composite, q_def, True
        except RuntimeError:
            pass                      # the affine result stands; the method string says so
    # On the patient's grid each voxel costs a B-spline evaluation (2.7 s a resample on a 140x170x136 phantom, one
    # thread): labels and dura, both nearest-neighbour, in one resample of a two-component image (the same voxels);
    # the template brain only where the brain comes from it (a skull-stripped image's brain is its own). With both
    # resamples, the B-spline is evaluated once, as a displacement field on this grid (read at its own grid points
    # it gives the same points).
    on_grid = transform
    if used_deformable and not stripped:
        on_grid = sitk.DisplacementFieldTransform(sitk.TransformToDisplacementField(
            transform, sitk.sitkVectorFloat64, t1c.GetSize(), t1c.GetOrigin(), t1c.GetSpacing(), t1c.GetDirection()))
    both = sitk.Resample(sitk.Compose(sitk.Cast(atlas.labels, sitk.sitkUInt8), sitk.Cast(atlas.dura, sitk.sitkUInt8)),
                         t1c, on_grid, sitk.sitkNearestNeighbor, 0, sitk.sitkVectorUInt8)
    labels = sitk.VectorIndexSelectionCast(both, 0, sitk.sitkUInt8)
    dura = sitk.VectorIndexSelectionCast(both, 1, sitk.sitkUInt8)
    warped_brain = None
    if not stripped:
        warped_brain = sitk.Resample(sitk.Cast(atlas.brain, sitk.sitkFloat32), t1c, on_grid, sitk.sitkLinear, 0.0)
        warped_brain = sitk.Cast(warped_brain >= 0.5, sitk.sitkUInt8)
    brain = _brain_from(t1c, warped_brain, stripped)
    method = ("ICBM 2009a template registered to the SRS image (" + ("skull-stripped image: template brain"
              if stripped else "raw head: whole template") + "; similarity + scaling per axis" +
              (" + coarse B-spline" if used_deformable else "") + ", Mattes MI, lesion and high-dose region masked)")
    return AtlasFit(transform=transform, labels=labels, dura=dura, brain=brain, skull_stripped=stripped,
                    deformable=used_deformable, quality_ncc=q, seconds=time.time() - t0, method=method)


def _radius(image: sitk.Image, mm: float) -> list[int]:
    return [max(int(round(mm / s)), 0) for s in image.GetSpacing()]


def _brain_from(t1c: sitk.Image, warped_brain: sitk.Image | None, stripped: bool) -> sitk.Image:
    """The brain on ``t1c``'s grid: a skull-stripped image's own non-zero region (``warped_brain`` unused, may be
    None), else the tissue near the template brain warped onto it."""
    if stripped:
        nz = sitk.Cast(sitk.Cast(t1c, sitk.sitkFloat32) != 0, sitk.sitkUInt8)
        cc = sitk.RelabelComponent(sitk.ConnectedComponent(nz), sortByObjectSize=True)
        return sitk.BinaryFillhole(sitk.Cast(cc == 1, sitk.sitkUInt8))
    arr = geo.array_view(t1c).astype(np.float32)
    wb = geo.array_view(warped_brain) > 0
    core = geo.array_view(sitk.BinaryErode(warped_brain, _radius(t1c, 6.0))) > 0
    near = geo.array_view(sitk.BinaryDilate(warped_brain, _radius(t1c, 4.0))) > 0
    from .brain import kmeans_1d
    vals = arr[wb]
    centres, _, _ = kmeans_1d(vals, 3)
    c = np.sort(centres)
    tissue = near & (arr > 0.5 * (c[0] + c[1]))
    img = geo.image_from_array(tissue.astype(np.uint8), t1c)
    img = sitk.BinaryMorphologicalOpening(img, _radius(t1c, 2.0))
    cc = geo.array_view(sitk.ConnectedComponent(img))
    keep_labels = np.unique(cc[core & (cc > 0)])
    brain = np.isin(cc, keep_labels[keep_labels > 0])
    img = geo.image_from_array(brain.astype(np.uint8), t1c)
    img = sitk.BinaryMorphologicalClosing(img, _radius(t1c, 6.0))
    img = sitk.BinaryFillhole(img)
    out = (geo.array_view(img) > 0) & near
    out |= core
    return geo.image_from_array(out.astype(np.uint8), t1c)
