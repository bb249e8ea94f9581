"""Dose: per-region statistics and DVHs, isodose surfaces and lines, enclosed volumes.

All dose images are Gy on their own grid (LPS). Regions are :class:`structures.Structure` objects (planar contours,
closed surfaces or masks). Statistics sample the dose **trilinearly** at sub-voxel points of the region, so small
SRS targets are sized from their contours, not from whole dose voxels. Isodose surfaces are built in the dose
grid's index space (flying edges → windowed-sinc smoothing → normals, as SlicerRT does) and returned in LPS mm.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from ..io import geometry as geo
from ..io.structures import Structure, rasterize, subgrid_around

DEFAULT_VX_GY = (5.0, 10.0, 12.0, 20.0)
DEFAULT_DX_PCT = (2.0, 50.0, 95.0, 98.0)
OUTSIDE = -1.0          # sentinel for samples outside the dose grid (dose itself is never negative)



@dataclasses.dataclass
class DoseStats:
    """Dose in one region. Volumes in cm³, doses in Gy; ``dvh_*`` is the cumulative DVH."""
    name: str
    volume_cc: float
    min_gy: float
    mean_gy: float
    max_gy: float
    dx_gy: dict                     # {95.0: D95 in Gy, ...}: dose received by at least x % of the volume
    vx_cc: dict                     # {12.0: V12 in cm³, ...}
    vx_pct: dict
    dvh_dose_gy: np.ndarray
    dvh_volume_cc: np.ndarray
    samples: int
    sample_volume_mm3: float
    warnings: list = dataclasses.field(default_factory=list)

    def d_cc(self, cc: float) -> float:
        """Minimum dose to the hottest ``cc`` cm³ (e.g. D2cc)."""
        return float(np.interp(-cc, -self.dvh_volume_cc, self.dvh_dose_gy))

    def row(self, vx=DEFAULT_VX_GY) -> dict:
        r = {"structure": self.name, "volume_cc": self.volume_cc, "min_gy": self.min_gy, "mean_gy": self.mean_gy,
             "max_gy": self.max_gy, "d95_gy": self.dx_gy.get(95.0), "d2_gy": self.dx_gy.get(2.0),
             "v10_cc": self.vx_cc.get(10.0), "v12_cc": self.vx_cc.get(12.0),
             "d50_gy": self.dx_gy.get(50.0), "d98_gy": self.dx_gy.get(98.0)}
        for x in vx:
            r.setdefault(f"v{x:g}_cc", self.vx_cc.get(x))
            r[f"v{x:g}_pct"] = self.vx_pct.get(x)
        r["samples"] = self.samples
        r["sample_volume_mm3"] = self.sample_volume_mm3
        r["warnings"] = "; ".join(self.warnings)
        return r

    def summary(self) -> dict:
        return {"volume_cc": self.volume_cc, "min_gy": self.min_gy, "mean_gy": self.mean_gy, "max_gy": self.max_gy,
                **{f"d{k:g}_gy": v for k, v in self.dx_gy.items()}, **{f"v{k:g}_cc": v for k, v in self.vx_cc.items()}}


def _as_float32(image: sitk.Image) -> sitk.Image:
    return image if image.GetPixelID() == sitk.sitkFloat32 else sitk.Cast(image, sitk.sitkFloat32)


def validate_dose(dose: sitk.Image, what: str = "dose") -> None:
    """Clear errors for doses no statistic should be computed on."""
    arr = sitk.GetArrayViewFromImage(dose)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    if arr.min() < -1e-6:
        raise ValueError(f"{what} has negative values (min {float(arr.min()):g} Gy); dose must be >= 0")


def stats_from_samples(name: str, doses: np.ndarray, sample_volume_mm3: float, *, vx=DEFAULT_VX_GY,
                       dx=DEFAULT_DX_PCT, bin_gy: float = 0.01, warnings=None) -> DoseStats:
    """Statistics from equally weighted dose samples (Gy), each standing for ``sample_volume_mm3``."""
    d = np.sort(np.asarray(doses, dtype=np.float64))
    n = d.size
    if n == 0:
        raise ValueError(f"structure '{name}' is empty: no volume to compute dose statistics on")
    vol_cc = n * sample_volume_mm3 / 1000.0
    # Dx: the dose that x % of the volume receives at least = the (100 - x) percentile (linear between ranks,
    # as numpy.percentile, but on the array already sorted).
    ranks = np.arange(n)
    dxs = {float(x): float(np.interp((100.0 - x) / 100.0 * (n - 1), ranks, d)) for x in dx}
    vxc = {float(x): float((n - np.searchsorted(d, x, side="left")) * sample_volume_mm3 / 1000.0) for x in vx}
    vxp = {k: 100.0 * v / vol_cc for k, v in vxc.items()}
    edges = np.arange(0.0, d[-1] + bin_gy, bin_gy)
    cum = (n - np.searchsorted(d, edges, side="left")) * sample_volume_mm3 / 1000.0
    return DoseStats(name=name, volume_cc=vol_cc, min_gy=float(d[0]), mean_gy=float(d.mean()), max_gy=float(d[-1]),
                     dx_gy=dxs, vx_cc=vxc, vx_pct=vxp, dvh_dose_gy=edges, dvh_volume_cc=cum, samples=n,
                     sample_volume_mm3=sample_volume_mm3, warnings=list(warnings or []))


def auto_oversample(sub_grid: sitk.Image, target_samples: float = 3e5, max_factor: int = 8) -> int:
    """Sub-voxel factor so a region's box holds about ``target_samples`` points (small targets → finer)."""
    n = float(np.prod(sub_grid.GetSize()))
    return int(min(max(math.ceil((target_samples / max(n, 1.0)) ** (1.0 / 3.0)), 1), max_factor))


def sample_dose_in(dose: sitk.Image, structure: Structure, grid: sitk.Image | None = None,
                   oversample: int | None = None) -> tuple[np.ndarray, float, list]:
    """Dose samples (Gy) at the sub-voxel points of ``structure`` on ``grid`` (default: the dose grid).

    Returns (samples, volume per sample in mm³, warnings). Points outside the dose grid are dropped with a
    warning; a region entirely outside the dose grid is an error.
    """
    grid = grid if grid is not None else dose
    if structure.is_empty:
        raise ValueError(f"structure '{structure.name}' is empty: no volume to compute dose statistics on")
    # Not clipped to the grid: samples beyond the dose grid must be counted (and reported), not silently lost.
    sub, _ = subgrid_around(structure, grid, clip=False)
    f = oversample or auto_oversample(sub)
    fine = geo.refined_grid(sub, f)
    mask = rasterize(structure, fine)
    if not mask.any():
        raise ValueError(f"structure '{structure.name}' covers no sample point of the grid "
                         f"{geo.describe_grid(grid)}")
    sampled = sitk.Resample(_as_float32(dose), fine, sitk.Transform(), sitk.sitkLinear, OUTSIDE, sitk.sitkFloat32)
    # Sample order is irrelevant to statistics: index SimpleITK's (k, j, i) view with the transposed mask, no copy.
    values = sitk.GetArrayViewFromImage(sampled)[mask.transpose(2, 1, 0)]
    outside = values < 0
    warnings = []
    if outside.all():
        raise ValueError(f"the dose grid does not overlap structure '{structure.name}' "
                         f"(dose {geo.describe_grid(dose)})")
    if outside.any():
        warnings.append(f"{100.0 * outside.mean():.1f}% of '{structure.name}' lies outside the dose grid and was "
                        "left out")
        values = values[~outside]
    return values, geo.voxel_volume_mm3(fine), warnings


def structure_stats(dose: sitk.Image, structure: Structure, *, grid: sitk.Image | None = None,
                    oversample: int | None = None, vx=DEFAULT_VX_GY, dx=DEFAULT_DX_PCT) -> DoseStats:
    """Dose statistics and cumulative DVH of a structure (contours, surface or mask)."""
    validate_dose(dose)
    if structure.mask is not None and grid is None:
        grid = structure.mask
        if oversample is None:
            # A mask finer than the dose grid is sampled as is; a coarser one is refined to the dose resolution.
            ratio = max(structure.mask.GetSpacing()) / min(dose.GetSpacing())
            oversample = max(1, int(math.ceil(ratio - 1e-6)))
    values, vvol, warnings = sample_dose_in(dose, structure, grid, oversample)
    return stats_from_samples(structure.name, values, vvol, vx=vx, dx=dx, warnings=warnings)


def mask_stats(dose: sitk.Image, mask: sitk.Image, name: str = "mask", **kw) -> DoseStats:
    """Dose statistics of a binary mask image (any grid; it keeps its own geometry)."""
    return structure_stats(dose, Structure(name=name, mask=sitk.Cast(mask > 0, sitk.sitkUInt8)), **kw)


def dose_on_grid(dose: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None) -> sitk.Image:
    """Dose (Gy) trilinearly resampled onto ``reference``; outside the dose grid = 0 Gy.

    ``transform`` maps reference-frame points to the dose (planning) frame, e.g. a follow-up-to-planning
    registration.
    """
    return sitk.Resample(_as_float32(dose), reference, transform or sitk.Transform(),
                         sitk.sitkLinear, 0.0, sitk.sitkFloat32)


# ----------------------------------------------------------------------------------------------------------------
# Isodose
# ----------------------------------------------------------------------------------------------------------------

def parse_levels(text: str, prescription_gy: float | None = None) -> list[float]:
    """'20,15,12,10' (Gy) or '100%,75%,50%' (of prescription) → levels in Gy, highest first."""
    out = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            if tok.endswith("%"):
                if not prescription_gy:
                    raise ValueError(f"--levels: isodose level '{tok}' is relative: give the prescription dose "
                                     "(--prescription)")
                value = float(tok[:-1]) / 100.0 * prescription_gy
            else:
                value = float(tok.lower().removesuffix("gy").strip())
        except ValueError as exc:
            if "relative" in str(exc):
                raise
            raise ValueError(f"--levels: '{tok}' is not a dose: give numbers in Gy or percentages of the "
                             "prescription, separated by commas, e.g. --levels 20,15,12,10 or 100%,50%") from None
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"isodose level '{tok}' must be positive")
        out.append(value)
    if not out:
        raise ValueError("no isodose levels given")
    return sorted(set(out), reverse=True)


#: Normal-brain dose-volume constraints for SRS by number of fractions, from the HyTEC brain report (Milano MT et
#: al., "Single- and multifraction stereotactic radiosurgery dose/volume tolerances of the brain", Int J Radiat
#: Oncol Biol Phys 2021;110(1):68-86): the volume of brain (target excluded) receiving at least ``level_gy``,
#: with the volume below which the reported risk of radionecrosis stays under about 10 %.
BRAIN_CONSTRAINTS = {
    1: {"metric": "V12", "level_gy": 12.0, "limit_cc": 5.0},
    3: {"metric": "V20", "level_gy": 20.0, "limit_cc": 20.0},
    5: {"metric": "V24", "level_gy": 24.0, "limit_cc": 20.0},
}
BRAIN_CONSTRAINT_SOURCE = ("HyTEC brain SRS report (Milano et al., Int J Radiat Oncol Biol Phys 2021;110:68-86), "
                           "brain outside the target")
#: Default levels of a fractionated plan, in % of the prescription.
FRACTIONATED_LEVELS_PCT = (100.0, 80.0, 60.0, 40.0, 20.0)
#: Two default levels closer than this (% of the prescription) are one band on a printed image: only one is drawn.
MIN_LEVEL_SPACING_PCT = 5.0


def default_levels(prescription_gy: float, fractions: int = 1) -> list[float]:
    """Default isodose levels, highest first. One fraction (SRS): the prescription and the absolute levels 15, 12,
    10, 5 Gy below it. Several fractions: :data:`FRACTIONATED_LEVELS_PCT` of the prescription, plus the level of
    the normal-brain constraint for that fractionation (:data:`BRAIN_CONSTRAINTS`) when below the prescription; a
    percentage level within :data:`MIN_LEVEL_SPACING_PCT` of the prescription from the constraint level is left out
    (24 Gy × 3: 19.2 Gy beside the V20 level would print as one band)."""
    rx = float(prescription_gy)
    if int(fractions or 1) <= 1:
        levels = {rx} | {v for v in (15.0, 12.0, 10.0, 5.0) if v < rx}
    else:
        levels = {round(rx * p / 100.0, 2) for p in FRACTIONATED_LEVELS_PCT}
        c = BRAIN_CONSTRAINTS.get(int(fractions))
        if c and c["level_gy"] < rx:
            near = MIN_LEVEL_SPACING_PCT / 100.0 * rx
            levels = {v for v in levels if v == rx or abs(v - c["level_gy"]) >= near} | {c["level_gy"]}
    return sorted(levels, reverse=True)


def brain_constraint(fractions: int) -> dict | None:
    """The normal-brain constraint that fits ``fractions`` (with its source), None when HyTEC gives none."""
    c = BRAIN_CONSTRAINTS.get(int(fractions or 1))
    return dict(c, fractions=int(fractions or 1), source=BRAIN_CONSTRAINT_SOURCE) if c else None


def _vtk_image_index_space(image: sitk.Image, pad: int = 1) -> vtk.vtkImageData:
    """vtkImageData of ``image`` in index space (origin = -pad, spacing 1), zero-padded so surfaces close."""
    arr = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkFloat32))   # (k, j, i)
    if pad:
        arr = np.pad(arr, pad, mode="constant", constant_values=0.0)
    vimg = vtk.vtkImageData()
    vimg.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    vimg.SetOrigin(-pad, -pad, -pad)
    vimg.SetSpacing(1, 1, 1)
    vimg.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.ravel(), deep=True, array_type=vtk.VTK_FLOAT))
    return vimg


def isodose_surface(dose: sitk.Image, level_gy: float, *, smoothing_iterations: int = 2,
                    pass_band: float = 0.1, close_at_border: bool = True) -> vtk.vtkPolyData:
    """Surface of dose = ``level_gy`` in LPS mm (empty polydata when the level is never reached).

    ``close_at_border``: pad the grid with 0 Gy so a level reaching the grid's edge still gives a closed surface
    whose enclosed volume is right. SlicerRT does not pad (its surfaces are open there).
    """
    vimg = _vtk_image_index_space(dose, pad=1 if close_at_border else 0)
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(vimg)
    fe.SetValue(0, float(level_gy))
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    tri = vtk.vtkTriangleFilter()
    tri.SetInputConnection(fe.GetOutputPort())
    last = tri
    if smoothing_iterations > 0:
        sm = vtk.vtkWindowedSincPolyDataFilter()
        sm.SetInputConnection(tri.GetOutputPort())
        sm.SetNumberOfIterations(smoothing_iterations)
        sm.SetPassBand(pass_band)
        sm.BoundarySmoothingOff()
        sm.FeatureEdgeSmoothingOff()
        sm.NonManifoldSmoothingOn()
        sm.NormalizeCoordinatesOn()
        last = sm
    tf = vtk.vtkTransform()
    tf.SetMatrix(geo.to_vtk_matrix(geo.ijk_to_lps(dose)))
    tpd = vtk.vtkTransformPolyDataFilter()
    tpd.SetInputConnection(last.GetOutputPort())
    tpd.SetTransform(tf)
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputConnection(tpd.GetOutputPort())
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    normals.SplittingOff()
    normals.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(normals.GetOutput())
    return out


def surface_volume_cc(surface: vtk.vtkPolyData) -> float:
    """Volume enclosed by a closed triangulated surface (mm → cm³)."""
    if surface.GetNumberOfPolys() == 0:
        return 0.0
    mp = vtk.vtkMassProperties()
    mp.SetInputData(surface)
    mp.Update()
    return abs(mp.GetVolume()) / 1000.0


def volume_above(dose: sitk.Image, level_gy: float, region: Structure | sitk.Image | None = None, *,
                 oversample: int = 2) -> float:
    """Volume (cm³) receiving ≥ ``level_gy``, overall or inside ``region`` (trilinear sub-voxel sampling)."""
    if region is None:
        fine = geo.refined_grid(dose, oversample) if oversample > 1 else dose
        vals = geo.array_view(sitk.Resample(_as_float32(dose), fine, sitk.Transform(),
                                            sitk.sitkLinear, 0.0, sitk.sitkFloat32)) if oversample > 1 else \
            geo.array_view(dose)
        return float((vals >= level_gy).sum() * geo.voxel_volume_mm3(fine) / 1000.0)
    if isinstance(region, sitk.Image):
        region = Structure(name="region", mask=sitk.Cast(region > 0, sitk.sitkUInt8))
    values, vvol, _ = sample_dose_in(dose, region, region.mask if region.mask is not None else None,
                                     oversample if region.mask is None else None)
    return float((values >= level_gy).sum() * vvol / 1000.0)


@dataclasses.dataclass
class IsodoseLevel:
    level_gy: float
    percent_of_prescription: float | None
    surface_lps: vtk.vtkPolyData
    volume_cc: float                # enclosed by the surface


def levels_above_maximum(dose: sitk.Image, levels_gy) -> list[str]:
    """Warnings for isodose levels the dose never reaches (their surfaces are empty)."""
    top = float(sitk.GetArrayViewFromImage(dose).max())
    return [f"isodose level {lv:g} Gy is above the dose's maximum ({top:.2f} Gy): it has no surface, and no "
            "voxel is inside it" for lv in sorted(levels_gy, reverse=True) if lv > top]


def isodose_set(dose: sitk.Image, levels_gy, prescription_gy: float | None = None) -> list[IsodoseLevel]:
    """One closed surface per level (highest first), with its enclosed volume. Colours are the output's
    (:func:`..output.palette.isodose_colours`): the measurement does not pick them."""
    validate_dose(dose)
    out = []
    for lv in sorted(levels_gy, reverse=True):
        surf = isodose_surface(dose, lv)
        out.append(IsodoseLevel(level_gy=float(lv),
                                percent_of_prescription=100.0 * lv / prescription_gy if prescription_gy else None,
                                surface_lps=surf,
                                volume_cc=surface_volume_cc(surf)))
    return out


def cut_surface(surface_lps: vtk.vtkPolyData, origin_lps, normal_lps) -> list[np.ndarray]:
    """Intersection lines of a surface with a plane (LPS), as a list of (N, 3) polylines: isodose lines."""
    if surface_lps.GetNumberOfPoints() == 0:
        return []
    plane = vtk.vtkPlane()
    plane.SetOrigin(*[float(v) for v in origin_lps])
    plane.SetNormal(*[float(v) for v in normal_lps])
    cutter = vtk.vtkCutter()
    cutter.SetInputData(surface_lps)
    cutter.SetCutFunction(plane)
    stripper = vtk.vtkStripper()
    stripper.SetInputConnection(cutter.GetOutputPort())
    stripper.JoinContiguousSegmentsOn()
    stripper.Update()
    pd = stripper.GetOutput()
    if pd.GetNumberOfPoints() == 0:
        return []
    pts = numpy_support.vtk_to_numpy(pd.GetPoints().GetData()).astype(float)
    lines = pd.GetLines()
    ids = numpy_support.vtk_to_numpy(lines.GetConnectivityArray())
    offs = numpy_support.vtk_to_numpy(lines.GetOffsetsArray())
    return [pts[ids[a:b]] for a, b in zip(offs[:-1], offs[1:]) if b - a >= 2]


def contour_lines_on_slice(dose: sitk.Image, level_gy: float, slice_grid: sitk.Image,
                           transform: sitk.Transform | None = None) -> list[np.ndarray]:
    """Isodose lines of ``level_gy`` on a single-slice grid (any orientation), in that slice's (i, j) pixel units.

    ``slice_grid`` is a 3D image with size 1 along k (e.g. one axial or coronal plane of an MRI);
    ``transform`` maps its points into the dose frame. Used for report images and checks.
    """
    if slice_grid.GetSize()[2] != 1:
        raise ValueError("slice_grid must have exactly one slice")
    plane = geo.array_view(dose_on_grid(dose, slice_grid, transform))[:, :, 0]    # (i, j)
    return contour_lines_2d(plane, level_gy)


def contour_lines_2d(plane: np.ndarray, level: float) -> list[np.ndarray]:
    """Iso-lines of a 2D (i, j) array at ``level`` (flying edges), as polylines in (i, j) pixel units; closed
    loops repeat their first point."""
    plane = np.asarray(plane, dtype=np.float32)
    vimg = vtk.vtkImageData()
    vimg.SetDimensions(plane.shape[0], plane.shape[1], 1)
    vimg.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.ascontiguousarray(plane.T).ravel(), deep=True,
                                                              array_type=vtk.VTK_FLOAT))
    fe = vtk.vtkFlyingEdges2D()
    fe.SetInputData(vimg)
    fe.SetValue(0, float(level))
    stripper = vtk.vtkStripper()
    stripper.SetInputConnection(fe.GetOutputPort())
    stripper.JoinContiguousSegmentsOn()
    stripper.Update()
    pd = stripper.GetOutput()
    if pd.GetNumberOfPoints() == 0:
        return []
    pts = numpy_support.vtk_to_numpy(pd.GetPoints().GetData())[:, :2].astype(float)
    lines = pd.GetLines()
    ids = numpy_support.vtk_to_numpy(lines.GetConnectivityArray())
    offs = numpy_support.vtk_to_numpy(lines.GetOffsetsArray())
    return [pts[ids[a:b]] for a, b in zip(offs[:-1], offs[1:]) if b - a >= 2]


def write_surface(surface: vtk.vtkPolyData, path: str, *, ras: bool = False) -> None:
    """Write a surface as legacy .vtk (LPS by default; ``ras=True`` flips it for Slicer's model files)."""
    pd = surface
    if ras:
        pd = vtk.vtkPolyData()
        pd.DeepCopy(surface)
        if pd.GetNumberOfPoints():
            pts = numpy_support.vtk_to_numpy(pd.GetPoints().GetData()).astype(float)
            pd.GetPoints().SetData(numpy_support.numpy_to_vtk(geo.ras_from_lps(pts), deep=True))
    w = vtk.vtkPolyDataWriter()
    w.SetFileName(path)
    w.SetInputData(pd)
    w.SetFileVersion(42)
    w.Write()


def read_surface(path: str) -> vtk.vtkPolyData:
    """Read a legacy .vtk surface written by :func:`write_surface` (LPS)."""
    if not os.path.isfile(path):
        raise ValueError(f"surface '{path}': file not found")
    r = vtk.vtkPolyDataReader()
    r.SetFileName(path)
    r.Update()
    pd = r.GetOutput()
    if pd is None or not r.IsFilePolyData():
        raise ValueError(f"surface '{path}': not a VTK polydata file")
    out = vtk.vtkPolyData()
    out.DeepCopy(pd)
    return out
