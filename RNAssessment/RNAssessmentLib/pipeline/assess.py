"""The assessment pipeline shared by the command line and the Slicer module.

``assess_case`` reads nothing and writes nothing: it takes a loaded :class:`..io.case.Case` and returns an
:class:`..analysis.findings.Assessment` (findings, summary, warnings and, in memory, the maps worth showing or
saving). ``assess_to_folder`` has :func:`..output.writers.write_outputs` write it, all at once.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import SimpleITK as sitk

from ..analysis import boundaries as bndmod
from ..analysis import change as changemod
from ..analysis import lesions as lesionmod
from ..analysis import dose as dosemod
from ..analysis.enhancement import lesion_extent, lesion_extent_apart
from ..analysis.findings import Assessment, Maps, describe, in_display_order, one_per_observation
from ..analysis.registration import Reference, register_followup, register_sequence, stable_region
from ..anatomy import atlas
from ..anatomy import barriers as anat_barriers
from ..anatomy import brain as anat_brain
from ..anatomy import midline as anat_midline
from ..io import geometry as geo
from ..io.case import BOUNDARY_KINDS, Case
from ..output import writers

log = logging.getLogger("rnassess")


def _volume_mm3(mask: sitk.Image) -> float:
    return float(geo.array_view(mask).astype(bool).sum() * geo.voxel_volume_mm3(mask))


def assess_case(case: Case, *, levels_gy=None, log_callback=None, estimate_boundaries: bool = True,
                min_portion_mm3: float | None = None, compare_with_srs: bool = True) -> Assessment:
    """Volumes per timepoint, dose to the treated lesion and lesions, isodose volumes, brain V10/V12 outside the
    target; with a treated lesion and follow-ups: registration, boundaries at each follow-up and change in shape
    between consecutive timepoints (and from SRS to the last when ``compare_with_srs``).

    ``estimate_boundaries``: estimate falx, ventricles and CSF when not given. Returns the :class:`Assessment`:
    findings, summary and warnings (findings.json), and in ``assessment.maps`` (:class:`Maps`) the images worth
    showing or saving (isodose, boundaries given and automatic, lesion masks and change maps on the planning grid,
    each finding's dose) and the atlas fit they rest on."""
    say = log_callback or log.info
    warnings: list[str] = list(case.notes)
    deid = bool(case.metadata.get("deidentified"))
    summary: dict = {"case": case.id, "timepoints": [], "registered": case.registered}
    if deid:
        summary["deidentified"] = "names, IDs, birth date and absolute dates removed; days are relative to SRS"
    maps = Maps()
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
        maps.isodose = iso
    if case.treated_lesion is not None:
        t = {"volume_mm3": _volume_mm3(case.treated_lesion)}
        if case.dose is not None:
            st = dosemod.mask_stats(case.dose.image, case.treated_lesion, name="treated lesion")
            t["dose"] = st.summary()
            maps.dose_stats.append(st)
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
                maps.dose_stats.append(st)
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
        findings += _boundaries_and_change(case, summary, maps, warnings, levels_gy, say,
                                           estimate_boundaries=estimate_boundaries,
                                           min_portion_mm3=min_portion_mm3, compare_with_srs=compare_with_srs)
    findings = in_display_order(one_per_observation(findings, [tp.label for tp in case.timepoints]))
    for n, f in enumerate(findings, 1):
        for les in maps.lesions or []:
            if les.id in (f.lesions or []):
                les.findings.append(f"F{n}")
    _describe(case, findings, maps)
    maps.finding_dose_stats = _finding_dose_stats(case, findings, maps)
    if len(case.timepoints) == 1:
        warnings.append("one timepoint only: with no follow-up to compare, neither new enhancement nor a change "
                        "in shape can be assessed")
    return Assessment(case_id=case.id, findings=findings, summary=summary, warnings=warnings, maps=maps,
                      lesions=maps.lesions)


def _name_lesions(case: Case, findings: list, maps: Maps) -> None:
    """Each finding names the lesions it concerns (lesions.lesion_ids_at)."""
    if not maps.lesions:
        return
    segments = maps.segments()
    planning = case.planning.t1c
    for f in findings:
        labels = [f.timepoint] if f.timepoint else [f.to, f.from_]
        mask = segments.get(f.segment) if f.segment else None
        if f.from_ and mask is None:
            lab = maps.change_maps.get((f.from_, f.to))
            mask = lab > 0 if lab is not None else None
        at = geo.lps_from_ras([f.centroid_ras])[0] if len(f.centroid_ras or ()) == 3 else None
        f.lesions = lesionmod.lesion_ids_at(maps.lesions, mask, [x for x in labels if x], planning, at)


def _finding_dose_stats(case: Case, findings: list, maps: Maps) -> list:
    """Dose-volume histograms of the treated lesion and of each finding with voxels (planning frame), named
    "F<n> <segment>" by the finding's place in the display order (the report's dose section)."""
    if case.dose is None:
        return []
    out = [s for s in maps.dose_stats if s.name == "treated lesion"]
    planning = case.planning.t1c
    for n, f in enumerate(findings, 1):
        m = maps.finding_masks.get(f.segment) if f.segment else None
        if m is not None and m.any():
            img = geo.image_from_array(m.astype(np.uint8), planning)
            out.append(dosemod.mask_stats(case.dose.image, img, name=f"F{n} {f.segment}"))
    return out


def _describe(case: Case, findings: list, maps: Maps) -> None:
    """Plain-language description of each finding; the side comes from the falx (given or automatic)."""
    days = {tp.label: case.days_since_srs(tp) for tp in case.timepoints}
    falx = (maps.boundaries or case.boundaries).get("falx")
    mid_x = None
    if falx is not None and geo.array_view(falx).any():
        mid_x = float(geo.centroid_lps(falx)[0])
    for f in findings:
        side = None
        if mid_x is not None:
            x = float(geo.lps_from_ras([f.centroid_ras])[0][0])
            side = "left" if x > mid_x + 2.0 else "right" if x < mid_x - 2.0 else None   # LPS +x = patient left
        focus = None
        if f.kind in ("noncontiguous_across_boundary", "noncontiguous_focus") and f.lesions:
            les = next((x for x in maps.lesions if x.id == f.lesions[0] and not x.treated), None)
            if les is not None:
                # The lesion table's volumes (what the chart draws and the total adds up), not the finding's
                # voxels alone.
                focus = (les.id, les.first_seen, les.at[les.first_seen].volume_mm3, _at_volume(les, f.timepoint))
        changed = ()
        if f.from_ and f.lesions:
            by_id = {x.id: x for x in maps.lesions}
            changed = tuple((lid, _at_volume(by_id[lid], f.from_), _at_volume(by_id[lid], f.to))
                            for lid in f.lesions if lid in by_id)
        f.description = describe(f, days, side, focus, changed)


def _at_volume(lesion, label: str) -> float:
    """A lesion's volume at a timepoint (0 before it was first seen)."""
    at = lesion.at.get(label)
    return at.volume_mm3 if at is not None else 0.0


def _aligned_sequences(case: Case, brain: sitk.Image, summary: dict, warnings: list, say,
                       reference: Reference | None = None) -> dict:
    """The SRS session's T2 and FLAIR on the planning grid, aligned with its post-contrast T1
    (:func:`register_sequence`); one that matches it neither as acquired nor registered is left out, said in the
    warnings (the boundaries then rest on the T1 alone). ``reference``: the SRS image as the registrations sample it
    (made here when None)."""
    out = {}
    for key, img in case.planning.extra.items():
        name = key.lower()
        if name not in ("t2", "flair"):
            continue
        reference = reference or Reference(case.planning.t1c)
        say(f"[{case.id}] aligning the {name.upper()} with the SRS post-contrast T1")
        try:
            reg = register_sequence(case.planning.t1c, img, brain, what=name.upper(), reference=reference)
        except ValueError as exc:
            warnings.append(f"{exc}; the {name.upper()} is not used")
            continue
        summary.setdefault("sequences", {})[name] = reg.to_dict()
        out[name] = sitk.Resample(img, case.planning.t1c, reg.transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return out


BOUNDARY_SOURCES = {"falx": "atlas prior refined on the image", "tentorium": "atlas prior refined on the image",
                    "ventricles": "atlas ventricles refined on the image (CSF-dark)",
                    "csf": "image (CSF-dark voxels in the brain)"}


def _boundaries(case: Case, fit, model0, summary: dict, maps: Maps, warnings: list, say,
                estimate_boundaries: bool, reference: Reference) -> bndmod.BoundaryContext:
    """The boundaries on the planning grid: the user's, and the missing ones estimated (unless switched off) from
    the atlas fit refined on the image (with the SRS session's T2/FLAIR, aligned). Returns the context (masks by
    kind, how each was obtained, compartments); the methods go to the summary, the automatic masks and compartments
    to ``maps``."""
    planning, treated = case.planning.t1c, case.treated_lesion
    bnd = dict(case.boundaries)
    sources = {k: "user" for k in bnd}
    methods = {k: "given (user mask)" for k in bnd}
    missing = [k for k in BOUNDARY_KINDS if k not in bnd] if estimate_boundaries else []
    for k in BOUNDARY_KINDS:
        if k not in bnd and not estimate_boundaries:
            methods[k] = "not given (estimation switched off)"
    compartments = None
    if missing:
        plane = anat_midline.midsagittal_plane(planning, exclude=treated, brain=fit.brain)
        extra_seq = _aligned_sequences(case, fit.brain, summary, warnings, say, reference)
        anatomy = anat_barriers.automatic_boundaries(planning, fit, model0, plane, lesion=treated,
                                                     t2=extra_seq.get("t2"), flair=extra_seq.get("flair"),
                                                     kinds=tuple(missing))
        for k in missing:
            bnd[k] = anatomy.masks[k]
            sources[k] = BOUNDARY_SOURCES[k]
            methods[k] = "automatic: " + anatomy.methods[k]
        summary["midsagittal_plane_lps"] = {"normal": plane["normal"], "point": plane["point"]}
        maps.auto_boundaries = {k: anatomy.masks[k] for k in missing}
        compartments = anatomy.compartments
        maps.compartments = compartments
    summary["boundaries"] = methods
    maps.boundaries = bnd
    return bndmod.BoundaryContext(masks=bnd, sources=sources, compartments=compartments)


class _Timeline:
    """The timepoints brought into the planning frame one by one, and what each leaves for the change analysis:
    lesion masks (drawn or the automatic extent), coverage fractions, foci, enhancing voxels, resolution, and the
    foci found across a boundary so far (a grown focus stays across)."""

    def __init__(self, case: Case, box, brain: sitk.Image, stable: sitk.Image, say, reference: Reference):
        self.case, self.box, self.brain, self.stable, self.say = case, box, brain, stable, say
        self.reference = reference
        self.planning = case.planning.t1c
        self.planning_fg = atlas.foreground_mask(self.planning) if not case.registered else None
        self.lesion_masks: dict = {}
        #: Per timepoint with a segmentation, the fraction of each planning voxel it covers as drawn: the volumes.
        self.fractions: dict = {}
        self.foci: dict = {}
        #: label → the foci with their findings' voxels (the lesions' tracking, lesions.track)
        self.focus_extents: dict = {}
        self.enhancing: dict = {}
        #: {boundary kind: (last timepoint, mask)}: foci found across a boundary so far.
        self.earlier_across: dict = {}
        #: The timepoints whose lesion mask is a drawing (the others: the extent of the automatic enhancement).
        self.drawn: set = set()
        #: Per timepoint, its acquisition's voxel in the planning frame and its registration uncertainty.
        self.resolution: dict = {}
        self.days: dict = {}
        self.registrations: dict = {}
        self.transforms_used: dict = {}

    def on_planning(self, box_mask: np.ndarray) -> np.ndarray:
        """A mask of the analysis box as a mask of the whole planning grid."""
        full = np.zeros(self.planning.GetSize(), bool)
        full[self.box.slices] = box_mask
        return full

    def transform(self, tp) -> tuple[sitk.Transform, float]:
        """Planning → ``tp`` (identity for the SRS image or a registered case; given; or registered here) and the
        registration uncertainty (mm) it adds."""
        case = self.case
        if tp is case.planning:
            return sitk.Transform(), 0.0
        if tp.transform is not None:
            self.registrations[tp.label] = {"method": "given transform (not registered here)",
                                            "source": os.path.basename(tp.source.get("transform", "")) or "scene"}
            self.transforms_used[tp.label] = tp.transform
            return tp.transform, changemod.REGISTRATION_UNCERTAINTY_MM
        if case.registered:
            return sitk.Transform(), 0.0
        self.say(f"[{case.id}] registering {tp.label} to the SRS image")
        # Centres of mass of the same kind of mask (head, or brain when skull-stripped) initialise it.
        reg = register_followup(self.planning, tp.t1c, self.stable, planning_brain=self.planning_fg,
                                followup_brain=atlas.foreground_mask(tp.t1c), what=f"timepoint '{tp.label}'",
                                reference=self.reference)
        self.registrations[tp.label] = reg.to_dict()
        self.transforms_used[tp.label] = reg.transform
        return reg.transform, changemod.REGISTRATION_UNCERTAINTY_MM

    def add_planning(self, lesion_p: sitk.Image | None) -> None:
        label, treated = self.case.planning.label, self.case.treated_lesion
        self.lesion_masks[label] = geo.array_view(lesion_p if lesion_p is not None else treated) > 0
        self.drawn.add(label)
        self.enhancing[label] = self.on_planning(bndmod.enhancing_in_box(self.planning, treated, self.brain,
                                                                         self.box))

    def add_followup(self, label: str, res, t1_p: sitk.Image, lesion_p: sitk.Image | None, maps: Maps) -> None:
        """What one analysed follow-up leaves: its finding masks, foci, enhancing voxels and lesion extent."""
        for f in res.findings:
            if f.kind == "noncontiguous_across_boundary":
                m = self.on_planning(res.finding_masks[f.segment])
                if f.boundary in self.earlier_across:
                    m |= self.earlier_across[f.boundary][1]
                self.earlier_across[f.boundary] = (label, m)
        if res.left_out:
            maps.left_out[label] = res.left_out
        for name, m in res.finding_masks.items():
            maps.finding_masks[name] = self.on_planning(m)
        # A focus is its finding's voxels (the focus's whole extent) where it has a finding, so that a lesion's
        # volume and the finding's agree.
        self.foci[label] = self.on_planning(res.foci)
        foci = res.foci.copy()
        for f in res.findings:
            if f.kind in ("noncontiguous_across_boundary", "noncontiguous_focus") and f.segment in res.finding_masks:
                foci |= res.finding_masks[f.segment]
        self.focus_extents[label] = self.on_planning(foci)
        self.enhancing[label] = self.on_planning(self.box.crop(geo.array_view(t1_p)) >= res.model.threshold)
        if lesion_p is not None:
            self.lesion_masks[label] = geo.array_view(lesion_p) > 0
            self.drawn.add(label)
        else:
            # Extent from the automatic enhancement, necrotic cores included, the non-contiguous foci apart.
            self.lesion_masks[label] = self.on_planning(lesion_extent_apart(res.enhancement, res.foci, self.box))

    def registration_summary(self) -> dict:
        for label, tf in self.transforms_used.items():
            # The transform itself, so that outputs can be put back on each follow-up's own grid (DICOM SEG).
            self.registrations[label]["planning_to_followup_lps"] = geo.linear_matrix(tf).round(8).tolist()
        return self.registrations


def _followup_lesion_dose(dose, lesion_p, entry: dict, maps: Maps, label: str) -> None:
    """Registered here: the follow-up lesion's dose in the planning frame (when not already reported)."""
    if dose is not None and lesion_p is not None and "lesion_dose" not in entry and geo.array_view(lesion_p).any():
        st = dosemod.mask_stats(dose, lesion_p, name=f"lesion {label}")
        entry["lesion_dose"] = {"mean_gy": st.mean_gy, "max_gy": st.max_gy, "d95_gy": st.dx_gy[95.0],
                                "frame": "registered to the SRS image"}
        maps.dose_stats.append(st)


def _boundaries_and_change(case: Case, summary: dict, maps: Maps, warnings: list, levels_gy, say, *,
                           estimate_boundaries: bool = True, min_portion_mm3: float | None = None,
                           compare_with_srs: bool = True) -> list:
    """Register follow-ups (unless the case says they are registered), analyse boundaries at each follow-up and
    changes between timepoints, all in the planning frame: the atlas and the boundaries (:func:`_boundaries`),
    each timepoint in turn (:class:`_Timeline`), then the change in shape (:func:`_change`); each finding then names
    its lesions, and the parts of one focus at one follow-up become one finding (boundaries.fold_parts_of_one_focus)."""
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
    maps.atlas_fit = fit
    if fit.quality_ncc < 0.1:
        warnings.append(f"the brain atlas fits the SRS image poorly (correlation {fit.quality_ncc:.2f}): check the "
                        "automatic boundaries, or give them")
    brain = fit.brain
    box = bndmod.analysis_box(treated, [treated], dose)
    model0 = anat_brain.tissue_model(box.crop(geo.array_view(planning)).astype(np.float32),
                                     box.crop(geo.array_view(brain)) > 0)
    # The SRS image as every registration of this case samples it (T2/FLAIR to it, follow-ups to it), made once.
    reference = Reference(planning)
    context = _boundaries(case, fit, model0, summary, maps, warnings, say, estimate_boundaries, reference)
    line = _Timeline(case, box, brain, stable_region(brain, [treated] + high_dose), say, reference)
    findings = []
    for tp in case.timepoints:
        line.days[tp.label] = case.days_since_srs(tp)
        transform, registration_mm = line.transform(tp)
        line.resolution[tp.label] = changemod.Resolution.of(tp.t1c, transform, registration_mm)
        t1_p = sitk.Resample(tp.t1c, planning, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        maps.t1_planning[tp.label] = t1_p
        lesion_p = None
        if tp.lesion is not None:
            lesion_p = changemod.resample_mask(tp.lesion, planning, transform) if tp is not case.planning else \
                sitk.Cast(tp.lesion > 0, sitk.sitkUInt8)
            if tp is not case.planning:
                line.fractions[tp.label] = changemod.mask_fraction(tp.lesion, planning, transform)
        if tp is case.planning:
            line.add_planning(lesion_p)
            continue
        entry = next(e for e in summary["timepoints"] if e["label"] == tp.label)
        _followup_lesion_dose(dose, lesion_p, entry, maps, tp.label)
        say(f"[{case.id}] boundaries at {tp.label}")
        res = bndmod.analyse_followup(tp.label, t1_p, treated, context, brain=brain, dose=dose_planning,
                                      lesion=lesion_p, levels_gy=levels, box=box,
                                      earlier_across=line.earlier_across)
        findings += res.findings
        if lesion_p is not None and not geo.array_view(lesion_p).any() and res.missed_mm3 > 0:
            # An empty mask where the image shows enhancement would read as complete response (RANO-BM CR).
            raise ValueError(f"lesion mask of timepoint '{tp.label}' is empty, but the automatic segmentation finds "
                             f"{res.missed_mm3 / 1000:.2f} cm³ of enhancement there; give the lesion's mask, or write "
                             "\"lesion\": null for this timepoint to let the automatic segmentation stand")
        warnings += res.mask_warnings
        line.add_followup(tp.label, res, t1_p, lesion_p, maps)
    if line.registrations:
        summary["registration"] = line.registration_summary()
    say(f"[{case.id}] change in shape")
    findings += _change(line, context.masks, dose_planning, summary, maps, min_portion_mm3, compare_with_srs, levels)
    _name_lesions(case, findings, maps)
    return bndmod.fold_parts_of_one_focus(findings, maps.finding_masks, maps.lesions, planning,
                                          geo.array_view(dose_planning) if dose_planning is not None else None,
                                          levels)


def _change(line: _Timeline, bnd: dict, dose_planning, summary: dict, maps: Maps, min_portion_mm3: float | None,
            compare_with_srs: bool, levels=()) -> list:
    """Change in shape between the timepoints, like for like; the lesions followed over time and the time course
    (RANO-BM table) they give."""
    planning, box = line.planning, line.box
    dose_p = geo.array_view(dose_planning) if dose_planning is not None else None
    kw = {"min_portion_mm3": min_portion_mm3} if min_portion_mm3 else {}
    all_bnd = np.zeros(planning.GetSize(), bool)
    for m in bnd.values():
        all_bnd |= geo.array_view(m) > 0
    # Like for like: drawn masks get the filling the automatic extents have (change.like_for_like).
    lesion_masks, filled_fractions = changemod.like_for_like(
        line.lesion_masks, line.drawn, lambda m: line.on_planning(lesion_extent(box.crop(m), box)))
    fractions = {**filled_fractions, **line.fractions}
    ch, change_maps = changemod.analyse_changes(lesion_masks, planning, dose_p, vs_first=compare_with_srs,
                                                resolution=line.resolution, foci=line.foci,
                                                boundaries=all_bnd, enhancing=line.enhancing, fractions=fractions,
                                                **kw)
    maps.change_maps = change_maps
    maps.lesion_masks = lesion_masks
    maps.lesions = lesionmod.track(lesion_masks, planning, foci=line.focus_extents, reach_mm=_reach(line.resolution),
                                   fractions=fractions, dose=dose_p, levels_gy=levels, enhancing=line.enhancing)
    if maps.atlas_fit is not None:
        lesionmod.locate(maps.lesions, maps.atlas_fit.codes(), atlas.load_atlas().meta["labels"])
    summary["time_course"] = lesionmod.rano_table(lesion_masks, planning, line.days, fractions, maps.lesions)
    return ch


def _reach(resolution: dict) -> dict:
    """How far (mm) a component at each timepoint may lie from a lesion's extent at the one before and still
    continue it: each timepoint's surface placed within half its coarsest voxel, plus both registrations'
    uncertainties (in quadrature)."""
    labels, out = list(resolution), {}
    for before, after in zip(labels, labels[1:]):
        interval = changemod.IntervalResolution(resolution[before], resolution[after])
        out[after] = (max(interval.before.spacing_mm) + max(interval.after.spacing_mm)) / 2.0 + \
            interval.registration_mm
    return out


def assess_to_folder(case: Case, out: str, *, levels=None, deidentify: bool = False, pdf: bool = True,
                     log_callback=None, inputs: dict | None = None) -> tuple[dict, Assessment]:
    """Assess and write every output to ``out`` at once (output/atomic.py): a failed or killed run leaves the
    previous outputs as they were; inputs are never inside ``out``. Returns ({output name: path}, assessment)."""
    from ..output.atomic import OutputFolder
    say = log_callback or log.info
    folder = OutputFolder(out, case.input_paths())
    with folder as tmp:
        phi = None
        if deidentify:
            from ..io.deid import deidentify_case
            case, phi = deidentify_case(case)
            say(f"[assess] de-identified as '{case.id}'")
        assessment = assess_case(case, levels_gy=levels, log_callback=say)
        paths = writers.write_outputs(case, assessment, tmp, pdf=pdf, phi=phi, log_callback=say, inputs=inputs)
    for w in assessment.warnings:
        say(f"warning: {w}")
    return {k: os.path.join(folder.out, os.path.relpath(v, tmp)) for k, v in paths.items()}, assessment
