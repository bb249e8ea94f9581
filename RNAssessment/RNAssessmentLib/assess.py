"""The assessment pipeline shared by the command line and the Slicer module.

``assess_case`` reads nothing and writes nothing: it takes a loaded :class:`case.Case` and returns an
:class:`findings.Assessment` plus the images worth saving. ``write_outputs`` does the writing.
"""
from __future__ import annotations

import csv
import logging
import os

import numpy as np
import SimpleITK as sitk

from . import dose as dosemod
from . import geometry as geo
from .case import Case
from .findings import Assessment

log = logging.getLogger("rnassess")


def _volume_mm3(mask: sitk.Image) -> float:
    return float(geo.array_view(mask).astype(bool).sum() * geo.voxel_volume_mm3(mask))


def assess_case(case: Case, *, levels_gy=None, log_callback=None) -> tuple[Assessment, dict]:
    """Measure what the foundation can measure: volumes per timepoint, dose to the treated lesion and lesions,
    isodose volumes, brain V10/V12 outside the target. Returns (assessment, extra outputs)."""
    say = log_callback or log.info
    warnings: list[str] = []
    summary: dict = {"case": case.id, "timepoints": [], "registered": case.registered}
    extra: dict = {"dose_stats": []}
    if case.dose is not None:
        rx = case.dose.prescription_gy
        summary["dose"] = {"prescription_gy": rx, "fractions": case.dose.fractions,
                           "srs_date": case.srs_date.isoformat() if case.srs_date else None,
                           "max_gy": float(sitk.GetArrayViewFromImage(case.dose.image).max())}
        levels = sorted(levels_gy or dosemod.default_levels(rx), reverse=True)
        say(f"[{case.id}] isodose surfaces at {', '.join(f'{v:g}' for v in levels)} Gy")
        iso = dosemod.isodose_set(case.dose.image, levels, rx)
        summary["isodose"] = [{"level_gy": i.level_gy, "percent_of_prescription": i.percent_of_prescription,
                               "volume_cc": i.volume_cc} for i in iso]
        extra["isodose"] = iso
    if case.treated_lesion is not None:
        t = {"volume_mm3": _volume_mm3(case.treated_lesion)}
        if case.dose is not None:
            st = dosemod.mask_stats(case.dose.image, case.treated_lesion, name="treated lesion")
            t["dose"] = st.summary()
            extra["dose_stats"].append(st)
            # Normal tissue outside the target receiving ≥ 10 / 12 Gy (RN risk grows with it).
            outside = sitk.Cast(case.treated_lesion == 0, sitk.sitkUInt8)
            for lv in (10.0, 12.0):
                t[f"v{lv:g}_outside_target_cc"] = dosemod.volume_above(case.dose.image, lv, outside)
        summary["treated_lesion"] = t
    for tp in case.timepoints:
        entry = {"label": tp.label, "date": tp.date.isoformat() if tp.date else None,
                 "days_since_srs": case.days_since_srs(tp)}
        if tp.lesion is not None:
            entry["lesion_volume_mm3"] = _volume_mm3(tp.lesion)
            same_frame = case.registered or tp is case.planning
            if case.dose is not None and same_frame and entry["lesion_volume_mm3"] > 0:
                st = dosemod.mask_stats(case.dose.image, tp.lesion, name=f"lesion {tp.label}")
                entry["lesion_dose"] = {"mean_gy": st.mean_gy, "max_gy": st.max_gy, "d95_gy": st.dx_gy[95.0]}
                extra["dose_stats"].append(st)
            elif case.dose is not None and not same_frame:
                warnings.append(f"timepoint '{tp.label}' is not registered to the planning image: its lesion dose "
                                "is not reported")
        summary["timepoints"].append(entry)
        say(f"[{case.id}] timepoint {tp.label}: lesion {entry.get('lesion_volume_mm3', float('nan')):.0f} mm³")
    return Assessment(case_id=case.id, findings=[], summary=summary, warnings=warnings), extra


DVH_COLUMNS = ["structure", "volume_cc", "min_gy", "mean_gy", "max_gy", "d95_gy", "d2_gy", "v10_cc", "v12_cc",
               "d50_gy", "d98_gy", "v5_cc", "v5_pct", "v10_pct", "v12_pct", "v20_cc", "v20_pct", "samples",
               "sample_volume_mm3", "warnings"]


def write_dvh_csv(stats, path: str) -> None:
    """One row per structure (the ``dvh.csv`` contract: the first nine columns are fixed)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=DVH_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for st in stats:
            row = st.row()
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})


def write_dvh_curves(stats, path: str, step_gy: float = 0.1) -> None:
    """Cumulative DVHs side by side: dose_gy, then volume (cm³) per structure."""
    if not stats:
        return
    top = max(float(s.dvh_dose_gy[-1]) for s in stats)
    grid = np.arange(0.0, top + step_gy, step_gy)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["dose_gy"] + [f"{s.name} (cc)" for s in stats])
        cols = [np.interp(grid, s.dvh_dose_gy, s.dvh_volume_cc, right=0.0) for s in stats]
        for i, d in enumerate(grid):
            w.writerow([f"{d:.2f}"] + [f"{c[i]:.4f}" for c in cols])


def write_outputs(case: Case, assessment: Assessment, extra: dict, out_dir: str) -> dict:
    """Write findings.json, dvh.csv (+ dvh_curves.csv) and isodose surfaces; refuses to overwrite inputs."""
    out_dir = os.path.abspath(out_dir)
    protect = case.input_paths()
    os.makedirs(out_dir, exist_ok=True)
    paths = {"findings": os.path.join(out_dir, "findings.json"), "dvh": os.path.join(out_dir, "dvh.csv")}
    for p in paths.values():
        if os.path.abspath(p) in protect:
            raise ValueError(f"refusing to overwrite input file '{p}'")
    assessment.write(paths["findings"])
    write_dvh_csv(extra.get("dose_stats", []), paths["dvh"])
    write_dvh_curves(extra.get("dose_stats", []), os.path.join(out_dir, "dvh_curves.csv"))
    if extra.get("isodose"):
        iso_dir = os.path.join(out_dir, "isodose")
        os.makedirs(iso_dir, exist_ok=True)
        for lv in extra["isodose"]:
            dosemod.write_surface(lv.surface_lps, os.path.join(iso_dir, f"isodose_{lv.level_gy:g}Gy.vtk"))
    return paths
