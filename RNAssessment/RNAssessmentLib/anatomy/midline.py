"""The mid-sagittal plane (MSP) of a head image from its left-right symmetry (LPS)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo


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
    reg = geo.registration_method()         # one work unit: the same plane on every run and in every layout
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
