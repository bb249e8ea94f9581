"""The files an assessment is written to: findings.json, dvh.csv and dvh_curves.csv, volumes.csv, change maps, the
findings and boundary segmentations, isodose surfaces and the report; a de-identified output's last scrub.

The file names and columns are contracts (README, "Outputs"): extend, never rename."""
from __future__ import annotations

import csv
import logging
import os

import numpy as np
import SimpleITK as sitk

from ..analysis import dose as dosemod
from ..analysis.findings import Assessment, finding_segments
from ..io import geometry as geo
from ..io.case import Case
from . import palette

log = logging.getLogger("rnassess")


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


OUTPUT_NAMES = ("findings.json", "dvh.csv", "dvh_curves.csv", "volumes.csv", "report.html", "report.pdf",
                "findings.seg.nrrd", "boundaries_auto.seg.nrrd")


def write_outputs(case: Case, assessment: Assessment, out_dir: str, *, report: bool = True,
                  pdf: bool = True, phi: list | None = None, log_callback=None, inputs: dict | None = None) -> dict:
    """Write findings.json, dvh.csv (+ dvh_curves.csv), volumes.csv, change maps, segmentations, isodose surfaces
    and report.html (+ report.pdf). Refuses to write into a folder holding an input file under an output name.

    ``phi``: identifying strings of the original case (see io/deid.py); every text output is scrubbed of them.
    ``inputs``: where the images are, for findings.json (default: the case's manifest); a de-identified output
    (``phi`` given) records none, since a path may name the patient."""
    say = log_callback or log.info
    maps = assessment.maps
    out_dir = os.path.abspath(out_dir)
    protect = case.input_paths()
    os.makedirs(out_dir, exist_ok=True)
    paths = {"findings": os.path.join(out_dir, "findings.json"), "dvh": os.path.join(out_dir, "dvh.csv")}
    clash = sorted(p for p in protect if os.path.dirname(p) == out_dir and
                   (os.path.basename(p) in OUTPUT_NAMES or os.path.basename(p).startswith(("change_", "isodose"))))
    if clash:
        raise ValueError(f"refusing to overwrite input file '{clash[0]}': choose another output folder")
    if phi:
        assessment.inputs = {}
    elif inputs:
        assessment.inputs = dict(inputs)
    elif case.manifest_path:
        assessment.inputs = {"manifest": os.path.abspath(case.manifest_path)}
    assessment.write(paths["findings"])
    write_dvh_csv(maps.dose_stats, paths["dvh"])
    write_dvh_curves(maps.dose_stats, os.path.join(out_dir, "dvh_curves.csv"))
    planning = case.planning.t1c
    for (a, b), lab in maps.change_maps.items():
        img = geo.image_from_array(lab.astype(np.uint8), planning)
        sitk.WriteImage(img, os.path.join(out_dir, f"change_{a}_{b}.nrrd"), True)
    masks = finding_segments(maps)
    if masks:
        from ..io.structures import write_seg_nrrd
        write_seg_nrrd(os.path.join(out_dir, "findings.seg.nrrd"),
                       {n: geo.image_from_array(m.astype(np.uint8), planning) for n, m in masks.items()},
                       {n: palette.segment_colour(n) for n in masks})
        paths["findings_segmentation"] = os.path.join(out_dir, "findings.seg.nrrd")
    if maps.auto_boundaries:
        from ..io.structures import write_seg_nrrd
        write_seg_nrrd(os.path.join(out_dir, "boundaries_auto.seg.nrrd"), maps.auto_boundaries)
    course = assessment.summary.get("time_course")
    if course:
        with open(os.path.join(out_dir, "volumes.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(course[0].keys()))
            w.writeheader()
            for r in course:
                w.writerow(r)
    if maps.isodose:
        iso_dir = os.path.join(out_dir, "isodose")
        os.makedirs(iso_dir, exist_ok=True)
        for lv in maps.isodose:
            dosemod.write_surface(lv.surface_lps, os.path.join(iso_dir, f"isodose_{lv.level_gy:g}Gy.vtk"))
    if report:
        from ..output.report import write_report
        say(f"[{case.id}] report")
        rp = write_report(case, assessment, out_dir, pdf=pdf, log=say)
        paths.update(rp)
    if phi:
        _scrub_outputs(out_dir, phi, say)
    return paths


def _scrub_outputs(out_dir: str, phi: list, say) -> None:
    """Last check of a de-identified output: remove any identifying string left in a text file or file name."""
    from ..io.deid import REMOVED, scrub
    for root, _dirs, files in os.walk(out_dir):
        for name in files:
            path = os.path.join(root, name)
            clean_name, n_name = scrub(name, phi)
            if name.endswith((".json", ".csv", ".html", ".txt", ".mrml")):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                text, n = scrub(text, phi)
                if n:
                    say(f"warning: de-identification removed {n} identifying string(s) from {name}")
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(text)
            if n_name:
                os.replace(path, os.path.join(root, clean_name.replace(REMOVED, "removed")))
