"""Rigid registration of follow-up post-contrast T1 images to the SRS-time (planning) image.

Transforms follow ITK's resampling convention: a transform maps **planning-frame** points (LPS) to points of the
follow-up image, so ``sitk.Resample(followup, planning, transform)`` puts the follow-up on the planning grid. The
dose, the treated lesion and the boundaries stay in the planning frame.

Method: Mattes mutual information, 3 resolution levels (4, 2, 1 × shrink), Euler (rigid) transform initialised
by aligning the brain masks' centres of mass; the metric is restricted to the planning brain *minus* the changing
region (treated lesion + 15 mm and the ≥ 10 Gy region), so the lesion does not drive the result. Quality: the
normalised cross-correlation of the two images over that same region after registration; below
``MIN_QUALITY`` the registration is refused with a clear message.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo
from ..io.images import itk_message

MIN_QUALITY = 0.6


@dataclasses.dataclass
class Registration:
    transform: sitk.Transform        # planning point → follow-up point
    quality_ncc: float               # normalised cross-correlation over the stable brain after registration
    metric: float                    # final Mattes MI value (lower is better)
    method: str
    iterations: int = 0

    def to_dict(self) -> dict:
        m = np.array(self.transform.GetMatrix()).reshape(3, 3) if hasattr(self.transform, "GetMatrix") else None
        angle = float(np.degrees(np.arccos(np.clip((np.trace(m) - 1) / 2, -1, 1)))) if m is not None else None
        t = list(self.transform.GetTranslation()) if hasattr(self.transform, "GetTranslation") else None
        return {"quality_ncc": self.quality_ncc, "metric": self.metric, "rotation_deg": angle,
                "translation_mm": t, "method": self.method}


def stable_region(planning_brain: sitk.Image, changing: list) -> sitk.Image:
    """Planning brain minus the regions expected to change (each given mask grown by 15 mm)."""
    keep = sitk.Cast(planning_brain > 0, sitk.sitkUInt8)
    for m in changing:
        if m is None:
            continue
        d = sitk.SignedMaurerDistanceMap(sitk.Cast(m > 0, sitk.sitkUInt8), insideIsPositive=False,
                                         squaredDistance=False, useImageSpacing=True)
        keep = keep * sitk.Cast(d > 15.0, sitk.sitkUInt8)
    return keep


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def register_followup(planning: sitk.Image, followup: sitk.Image, stable_mask: sitk.Image, *,
                      planning_brain: sitk.Image | None = None, followup_brain: sitk.Image | None = None,
                      seed: int = 11, what: str = "follow-up") -> Registration:
    """Rigidly register ``followup`` to ``planning``; raises ValueError when the result is clearly wrong.

    The planning image is sampled on an isotropic 1.5 mm grid of its own orientation (smoothed by 0.75 mm): the
    finest level a rigid transform needs, whatever the planning image's own voxels (1 mm, or 5.5 mm slices)."""
    grid = geo.isotropic_grid(planning, 1.5)
    fixed = sitk.Resample(sitk.SmoothingRecursiveGaussian(sitk.Cast(planning, sitk.sitkFloat32), 0.75), grid,
                          sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    stable_mask = sitk.Resample(sitk.Cast(stable_mask > 0, sitk.sitkUInt8), grid, sitk.Transform(),
                                sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    moving = sitk.Cast(followup, sitk.sitkFloat32)
    if planning_brain is not None and followup_brain is not None:
        # Brain masks' centres of mass give the translation even for a 20 mm shift.
        init = sitk.CenteredTransformInitializer(sitk.Cast(planning_brain > 0, sitk.sitkFloat32),
                                                 sitk.Cast(followup_brain > 0, sitk.sitkFloat32),
                                                 sitk.Euler3DTransform(),
                                                 sitk.CenteredTransformInitializerFilter.MOMENTS)
    else:
        init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                 sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = geo.registration_method()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel([0.3, 0.1, 0.03], seed=seed)
    reg.SetMetricFixedMask(sitk.Cast(stable_mask > 0, sitk.sitkUInt8))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=150,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([3.0, 1.5, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    try:
        out = reg.Execute(fixed, moving)
    except RuntimeError as exc:
        raise ValueError(f"registration of {what} failed: {itk_message(exc)}") from None
    tf = out.GetNthTransform(0) if isinstance(out, sitk.CompositeTransform) else out
    tf = sitk.Euler3DTransform(tf)
    resampled = sitk.Resample(moving, fixed, tf, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask = sitk.GetArrayViewFromImage(stable_mask) > 0
    q = ncc(sitk.GetArrayViewFromImage(fixed)[mask].astype(np.float64),
            sitk.GetArrayViewFromImage(resampled)[mask].astype(np.float64))
    result = Registration(transform=tf, quality_ncc=q, metric=float(reg.GetMetricValue()),
                          method="rigid, Mattes MI, 3 levels (6, 3, 1.5 mm), lesion region masked out",
                          iterations=int(reg.GetOptimizerIteration()))
    if q < MIN_QUALITY:
        raise ValueError(f"registration of {what} to the SRS image failed (correlation {q:.2f} over the stable "
                         f"brain, need ≥ {MIN_QUALITY}); check that both are post-contrast T1 of the same patient, "
                         "or supply a transform")
    return result
