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

from . import palette
from .analysis import boundaries as bndmod
from .analysis import change as changemod
from .analysis import dose as dosemod
from .analysis.enhancement import lesion_extent, lesion_extent_apart
from .analysis.findings import Assessment, describe, finding_segments, in_display_order
from .analysis.registration import register_followup, register_sequence, stable_region
from .anatomy import atlas
from .anatomy import barriers as anat_barriers
from .anatomy import brain as anat_brain
from .anatomy import midline as anat_midline
from .io import geometry as geo
from .io.case import BOUNDARY_KINDS, Case

log = logging.getLogger("rnassess")


def _volume_mm3(mask: sitk.Image) -> float:
    return float(geo.array_view(mask).astype(bool).sum() * geo.voxel_volume_mm3(mask))


def assess_case(case: Case, *, levels_gy=None, log_callback=None, estimate_boundaries: bool = True,
                min_portion_mm3: float | None = None, compare_with_srs: bool = True) -> tuple[Assessment, dict]:
    """Volumes per timepoint, dose to the treated lesion and lesions, isodose volumes, brain V10/V12 outside the
    target; with a treated lesion and follow-ups: registration, boundaries at each follow-up and change in shape
    between consecutive timepoints (and from SRS to the last when ``compare_with_srs``).

    ``estimate_boundaries``: estimate falx, ventricles and CSF when not given. Returns (assessment, extra); extra
    holds the images worth showing or saving (isodose, boundaries given and automatic, compartments, lesion masks
    and change maps on the planning grid) and the atlas fit they rest on (``atlas_fit``)."""
    say = log_callback or log.info
    warnings: list[str] = list(case.notes)
    deid = bool(case.metadata.get("deidentified"))
    summary: dict = {"case": case.id, "timepoints": [], "registered": case.registered}
    if deid:
        summary["deidentified"] = "names, IDs, birth date and absolute dates removed; days are relative to SRS"
    extra: dict = {"dose_stats": []}
    if case.dose is not None:
        rx = case.dose.prescription_gy
        summary["dose"] = {"prescription_gy": rx, "fractions": case.dose.fractions,
                           "srs_date": case.srs_date.isoformat() if case.srs_date and not deid else None,
                           "max_gy": float(sitk.GetArrayViewFromImage(case.dose.image).max())}
        levels = sorted(levels_gy or dosemod.default_levels(rx, case.dose.fractions), reverse=True)
        say(f"[{case.id}] isodose surfaces at {', '.join(f'{v:g}' for v in levels)} Gy")
        iso = dosemod.isodose_set(case.dose.image, levels, rx)
        warnings += dosemod.levels_above_maximum(case.dose.image, levels)
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
            c = dosemod.brain_constraint(case.dose.fractions)
            if c is None:
                t["normal_brain_constraint"] = {
                    "fractions": int(case.dose.fractions), "source": dosemod.BRAIN_CONSTRAINT_SOURCE,
                    "note": f"no SRS normal-brain constraint for {case.dose.fractions} fractions in this source"}
            else:
                c["volume_cc"] = dosemod.volume_above(case.dose.image, c["level_gy"], outside)
                c["within_limit"] = bool(c["volume_cc"] <= c["limit_cc"])
                t["normal_brain_constraint"] = c
        summary["treated_lesion"] = t
    # With a treated lesion and follow-ups, every follow-up is brought into the planning frame below.
    analysed = case.treated_lesion is not None and len(case.timepoints) > 1
    for tp in case.timepoints:
        entry = {"label": tp.label, "date": tp.date.isoformat() if tp.date and not deid else None,
                 "days_since_srs": case.days_since_srs(tp)}
        # The SRS image's lesion is the treated lesion when no mask of its own was given (a DICOM case: the
        # structure set's target).
        lesion = tp.lesion if tp.lesion is not None or tp is not case.planning else case.treated_lesion
        if lesion is not None:
            entry["lesion_volume_mm3"] = _volume_mm3(lesion)
            same_frame = case.registered or tp is case.planning
            if case.dose is not None and same_frame and entry["lesion_volume_mm3"] > 0:
                st = dosemod.mask_stats(case.dose.image, lesion, name=f"lesion {tp.label}")
                entry["lesion_dose"] = {"mean_gy": st.mean_gy, "max_gy": st.max_gy, "d95_gy": st.dx_gy[95.0]}
                extra["dose_stats"].append(st)
            elif case.dose is not None and not same_frame and not analysed:
                warnings.append(f"timepoint '{tp.label}' is not registered to the planning image: its lesion dose "
                                "is not reported")
        summary["timepoints"].append(entry)
        lesion_words = f"lesion {entry['lesion_volume_mm3']:.0f} mm³" if "lesion_volume_mm3" in entry else \
            "no lesion mask (automatic segmentation)"
        say(f"[{case.id}] timepoint {tp.label}: {lesion_words}")
    if case.prior:
        summary["prior_timepoints"] = [
            {"label": tp.label, "date": tp.date.isoformat() if tp.date and not deid else None,
             "days_since_srs": case.days_since_srs(tp), "note": "before SRS (marked prior): listed, not analysed"}
            for tp in case.prior]
    findings = []
    if analysed:
        findings += _boundaries_and_change(case, summary, extra, warnings, levels_gy, say,
                                           estimate_boundaries=estimate_boundaries,
                                           min_portion_mm3=min_portion_mm3, compare_with_srs=compare_with_srs)
    findings = in_display_order(findings)
    _describe(case, findings, extra)
    return Assessment(case_id=case.id, findings=findings, summary=summary, warnings=warnings), extra


def _describe(case: Case, findings: list, extra: dict) -> None:
    """Plain-language description of each finding; the side comes from the falx (given or automatic)."""
    days = {tp.label: case.days_since_srs(tp) for tp in case.timepoints}
    falx = (extra.get("boundaries") or case.boundaries).get("falx")
    mid_x = None
    if falx is not None and geo.array_view(falx).any():
        mid_x = float(geo.centroid_lps(falx)[0])
    for f in findings:
        side = None
        if mid_x is not None:
            x = float(geo.lps_from_ras([f.centroid_ras])[0][0])
            side = "left" if x > mid_x + 2.0 else "right" if x < mid_x - 2.0 else None   # LPS +x = patient left
        f.description = describe(f, days, side)


def _aligned_sequences(case: Case, brain: sitk.Image, summary: dict, warnings: list, say) -> dict:
    """The SRS session's T2 and FLAIR on the planning grid, aligned with its post-contrast T1
    (:func:`register_sequence`); one that matches it neither as acquired nor registered is left out, said in the
    warnings (the boundaries then rest on the T1 alone)."""
    out = {}
    for key, img in case.planning.extra.items():
        name = key.lower()
        if name not in ("t2", "flair"):
            continue
        say(f"[{case.id}] aligning the {name.upper()} with the SRS post-contrast T1")
        try:
            reg = register_sequence(case.planning.t1c, img, brain, what=name.upper())
        except ValueError as exc:
            warnings.append(f"{exc}; the {name.upper()} is not used")
            continue
        summary.setdefault("sequences", {})[name] = reg.to_dict()
        out[name] = sitk.Resample(img, case.planning.t1c, reg.transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return out


BOUNDARY_SOURCES = {"falx": "atlas prior refined on the image", "tentorium": "atlas prior refined on the image",
                    "ventricles": "atlas ventricles refined on the image (CSF-dark)",
                    "csf": "image (CSF-dark voxels in the brain)"}


def _boundaries_and_change(case: Case, summary: dict, extra: dict, warnings: list, levels_gy, say, *,
                           estimate_boundaries: bool = True, min_portion_mm3: float | None = None,
                           compare_with_srs: bool = True) -> list:
    """Register follow-ups (unless the case says they are registered), analyse boundaries at each follow-up and
    changes between timepoints, all in the planning frame."""
    planning = case.planning.t1c
    treated = case.treated_lesion
    dose = case.dose.image if case.dose else None
    levels = sorted(levels_gy or (dosemod.default_levels(case.dose.prescription_gy, case.dose.fractions)
                                 if case.dose else []),
                    reverse=True)
    # The dose on the planning grid, once: atlas and registration masks, each follow-up's boundaries, the changes.
    dose_planning = dosemod.dose_on_grid(dose, planning) if dose is not None else None
    high_dose = [sitk.Cast(dose_planning >= 10.0, sitk.sitkUInt8)] if dose is not None else []
    changing = treated if not high_dose else sitk.Or(sitk.Cast(treated > 0, sitk.sitkUInt8), high_dose[0])
    say(f"[{case.id}] atlas, brain and boundaries")
    fit = atlas.fit_atlas(planning, exclude=changing)
    summary["atlas"] = fit.summary()
    extra["atlas_fit"] = fit
    if fit.quality_ncc < 0.1:
        warnings.append(f"the brain atlas fits the SRS image poorly (correlation {fit.quality_ncc:.2f}): check the "
                        "automatic boundaries, or give them")
    brain = fit.brain
    box = bndmod.analysis_box(treated, [treated], dose)
    model0 = anat_brain.tissue_model(box.crop(geo.array_view(planning)).astype(np.float32),
                                     box.crop(geo.array_view(brain)) > 0)
    bnd = dict(case.boundaries)
    sources = {k: "user" for k in bnd}
    methods = {k: "given (user mask)" for k in bnd}
    missing = [k for k in BOUNDARY_KINDS if k not in bnd] if estimate_boundaries else []
    for k in BOUNDARY_KINDS:
        if k not in bnd and not estimate_boundaries:
            methods[k] = "not given (estimation switched off)"
    compartments = None
    if missing:
        plane = anat_midline.midsagittal_plane(planning, exclude=treated, brain=brain)
        extra_seq = _aligned_sequences(case, brain, summary, warnings, say)
        anatomy = anat_barriers.automatic_boundaries(planning, fit, model0, plane, lesion=treated,
                                                     t2=extra_seq.get("t2"), flair=extra_seq.get("flair"),
                                                     kinds=tuple(missing))
        for k in missing:
            bnd[k] = anatomy.masks[k]
            sources[k] = BOUNDARY_SOURCES[k]
            methods[k] = "automatic: " + anatomy.methods[k]
        summary["midsagittal_plane_lps"] = {"normal": plane["normal"], "point": plane["point"]}
        extra["auto_boundaries"] = {k: anatomy.masks[k] for k in missing}
        compartments = anatomy.compartments
        extra["compartments"] = compartments
    summary["boundaries"] = methods
    extra["boundaries"] = bnd
    context = bndmod.BoundaryContext(masks=bnd, sources=sources, compartments=compartments)

    stable = stable_region(brain, [treated] + high_dose)
    planning_fg = atlas.foreground_mask(planning) if not case.registered else None
    lesion_masks: dict = {}
    #: Per timepoint with a segmentation, the fraction of each planning voxel it covers as drawn: the volumes.
    fractions: dict = {}
    foci: dict = {}
    enhancing: dict = {}
    #: {boundary kind: (last timepoint, mask)}: foci found across a boundary so far (a grown focus stays across).
    earlier_across: dict = {}
    #: The timepoints whose lesion mask is a drawing (the others: the extent of the automatic enhancement).
    drawn: set = set()

    def on_planning(box_mask: np.ndarray) -> np.ndarray:
        """A mask of the analysis box as a mask of the whole planning grid."""
        full = np.zeros(planning.GetSize(), bool)
        full[box.slices] = box_mask
        return full
    #: Per timepoint, its acquisition's voxel in the planning frame and its registration uncertainty (change.py).
    resolution: dict = {}
    days = {}
    findings = []
    registrations = {}
    transforms_used = {}
    for tp in case.timepoints:
        days[tp.label] = case.days_since_srs(tp)
        registration_mm = 0.0
        if tp is case.planning:
            transform = sitk.Transform()
        elif tp.transform is not None:
            transform = tp.transform
            registration_mm = changemod.REGISTRATION_UNCERTAINTY_MM
            registrations[tp.label] = {"method": "given transform (not registered here)",
                                       "source": os.path.basename(tp.source.get("transform", "")) or "scene"}
        elif case.registered:
            transform = sitk.Transform()
        else:
            say(f"[{case.id}] registering {tp.label} to the SRS image")
            # Centres of mass of the same kind of mask (head, or brain when skull-stripped) initialise it.
            reg = register_followup(planning, tp.t1c, stable, planning_brain=planning_fg,
                                    followup_brain=atlas.foreground_mask(tp.t1c), what=f"timepoint '{tp.label}'")
            transform = reg.transform
            registration_mm = changemod.REGISTRATION_UNCERTAINTY_MM
            registrations[tp.label] = reg.to_dict()
        if tp.label in registrations:
            transforms_used[tp.label] = transform
        resolution[tp.label] = changemod.Resolution.of(tp.t1c, transform, registration_mm)
        t1_p = sitk.Resample(tp.t1c, planning, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        extra.setdefault("t1_planning", {})[tp.label] = t1_p
        lesion_p = None
        if tp.lesion is not None:
            lesion_p = changemod.resample_mask(tp.lesion, planning, transform) if tp is not case.planning else \
                sitk.Cast(tp.lesion > 0, sitk.sitkUInt8)
            if tp is not case.planning:
                fractions[tp.label] = changemod.mask_fraction(tp.lesion, planning, transform)
        if tp is case.planning:
            lesion_masks[tp.label] = geo.array_view(lesion_p if lesion_p is not None else treated) > 0
            drawn.add(tp.label)
            enhancing[tp.label] = on_planning(bndmod.enhancing_in_box(planning, treated, brain, box))
            continue
        entry = next(e for e in summary["timepoints"] if e["label"] == tp.label)
        if dose is not None and lesion_p is not None and "lesion_dose" not in entry and \
                geo.array_view(lesion_p).any():
            # Registered here: the follow-up lesion's dose in the planning frame.
            st = dosemod.mask_stats(dose, lesion_p, name=f"lesion {tp.label}")
            entry["lesion_dose"] = {"mean_gy": st.mean_gy, "max_gy": st.max_gy, "d95_gy": st.dx_gy[95.0],
                                    "frame": "registered to the SRS image"}
            extra["dose_stats"].append(st)
        say(f"[{case.id}] boundaries at {tp.label}")
        res = bndmod.analyse_followup(tp.label, t1_p, treated, context, brain=brain, dose=dose_planning,
                                      lesion=lesion_p, levels_gy=levels, box=box, earlier_across=earlier_across)
        findings += res.findings
        for f in res.findings:
            if f.kind == "noncontiguous_across_boundary":
                m = on_planning(res.finding_masks[f.segment])
                if f.boundary in earlier_across:
                    m |= earlier_across[f.boundary][1]
                earlier_across[f.boundary] = (tp.label, m)
        if lesion_p is not None and not geo.array_view(lesion_p).any() and res.missed_mm3 > 0:
            # An empty mask where the image shows enhancement would read as complete response (RANO-BM CR).
            raise ValueError(f"lesion mask of timepoint '{tp.label}' is empty, but the automatic segmentation finds "
                             f"{res.missed_mm3 / 1000:.2f} cm³ of enhancement there; give the lesion's mask, or write "
                             "\"lesion\": null for this timepoint to let the automatic segmentation stand")
        warnings += res.mask_warnings
        if res.left_out:
            extra.setdefault("left_out", {})[tp.label] = res.left_out
        for name, m in res.finding_masks.items():
            extra.setdefault("finding_masks", {})[name] = on_planning(m)
        foci[tp.label] = on_planning(res.foci)
        enhancing[tp.label] = on_planning(box.crop(geo.array_view(t1_p)) >= res.model.threshold)
        if lesion_p is not None:
            lesion_masks[tp.label] = geo.array_view(lesion_p) > 0
            drawn.add(tp.label)
        else:
            # Extent from the automatic enhancement, necrotic cores included, the non-contiguous foci apart.
            lesion_masks[tp.label] = on_planning(lesion_extent_apart(res.enhancement, res.foci, box))
    if registrations:
        for label, tf in transforms_used.items():
            # The transform itself, so that outputs can be put back on each follow-up's own grid (DICOM SEG).
            registrations[label]["planning_to_followup_lps"] = geo.linear_matrix(tf).round(8).tolist()
        summary["registration"] = registrations
    say(f"[{case.id}] change in shape")
    dose_p = geo.array_view(dose_planning) if dose is not None else None
    kw = {"min_portion_mm3": min_portion_mm3} if min_portion_mm3 else {}
    all_bnd = np.zeros(planning.GetSize(), bool)
    for m in bnd.values():
        all_bnd |= geo.array_view(m) > 0
    # Like for like: drawn masks get the filling the automatic extents have (change.like_for_like).
    lesion_masks, filled_fractions = changemod.like_for_like(
        lesion_masks, drawn, lambda m: on_planning(lesion_extent(box.crop(m), box)))
    fractions = {**filled_fractions, **fractions}
    ch, maps = changemod.analyse_changes(lesion_masks, planning, dose_p, vs_first=compare_with_srs,
                                         resolution=resolution, foci=foci,
                                         boundaries=all_bnd, enhancing=enhancing, fractions=fractions, **kw)
    findings += ch
    extra["change_maps"] = maps
    extra["lesion_masks"] = lesion_masks
    summary["time_course"] = changemod.rano_table(lesion_masks, planning, days, fractions)
    return findings


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


def write_outputs(case: Case, assessment: Assessment, extra: dict, out_dir: str, *, report: bool = True,
                  pdf: bool = True, phi: list | None = None, log_callback=None, inputs: dict | None = None) -> dict:
    """Write findings.json, dvh.csv (+ dvh_curves.csv), volumes.csv, change maps, segmentations, isodose surfaces
    and report.html (+ report.pdf). Refuses to write into a folder holding an input file under an output name.

    ``phi``: identifying strings of the original case (see deid.py); every text output is scrubbed of them.
    ``inputs``: where the images are, for findings.json (default: the case's manifest); a de-identified output
    (``phi`` given) records none, since a path may name the patient."""
    say = log_callback or log.info
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
    write_dvh_csv(extra.get("dose_stats", []), paths["dvh"])
    write_dvh_curves(extra.get("dose_stats", []), os.path.join(out_dir, "dvh_curves.csv"))
    planning = case.planning.t1c
    for (a, b), lab in (extra.get("change_maps") or {}).items():
        img = geo.image_from_array(lab.astype(np.uint8), planning)
        sitk.WriteImage(img, os.path.join(out_dir, f"change_{a}_{b}.nrrd"), True)
    masks = finding_segments(extra)
    if masks:
        from .io.structures import write_seg_nrrd
        write_seg_nrrd(os.path.join(out_dir, "findings.seg.nrrd"),
                       {n: geo.image_from_array(m.astype(np.uint8), planning) for n, m in masks.items()},
                       {n: palette.segment_colour(n) for n in masks})
        paths["findings_segmentation"] = os.path.join(out_dir, "findings.seg.nrrd")
    if extra.get("auto_boundaries"):
        from .io.structures import write_seg_nrrd
        write_seg_nrrd(os.path.join(out_dir, "boundaries_auto.seg.nrrd"), extra["auto_boundaries"])
    course = assessment.summary.get("time_course")
    if course:
        with open(os.path.join(out_dir, "volumes.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(course[0].keys()))
            w.writeheader()
            for r in course:
                w.writerow(r)
    if extra.get("isodose"):
        iso_dir = os.path.join(out_dir, "isodose")
        os.makedirs(iso_dir, exist_ok=True)
        for lv in extra["isodose"]:
            dosemod.write_surface(lv.surface_lps, os.path.join(iso_dir, f"isodose_{lv.level_gy:g}Gy.vtk"))
    if report:
        from .output.report import write_report
        say(f"[{case.id}] report")
        rp = write_report(case, assessment, extra, out_dir, pdf=pdf, log=say)
        paths.update(rp)
    if phi:
        _scrub_outputs(out_dir, phi, say)
    return paths


def assess_to_folder(case: Case, out: str, *, levels=None, deidentify: bool = False, pdf: bool = True,
                     log_callback=None, inputs: dict | None = None) -> tuple[dict, Assessment]:
    """Assess and write every output to ``out`` at once (output/atomic.py): a failed or killed run leaves the
    previous outputs as they were; inputs are never inside ``out``. Returns ({output name: path}, assessment)."""
    from .output.atomic import OutputFolder
    say = log_callback or log.info
    folder = OutputFolder(out, case.input_paths())
    with folder as tmp:
        phi = None
        if deidentify:
            from .output.deid import deidentify_case
            case, phi = deidentify_case(case)
            say(f"[assess] de-identified as '{case.id}'")
        assessment, extra = assess_case(case, levels_gy=levels, log_callback=say)
        paths = write_outputs(case, assessment, extra, tmp, pdf=pdf, phi=phi, log_callback=say, inputs=inputs)
    for w in assessment.warnings:
        say(f"warning: {w}")
    return {k: os.path.join(folder.out, os.path.relpath(v, tmp)) for k, v in paths.items()}, assessment


def _scrub_outputs(out_dir: str, phi: list, say) -> None:
    """Last check of a de-identified output: remove any identifying string left in a text file or file name."""
    from .output.deid import REMOVED, scrub
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
