"""Case ↔ MRML scene: build a :class:`case.Case` from nodes, run the assessment, and add its outputs as nodes.

Everything MRML goes through :mod:`..mrml.bridge` (the mrml package is the only one importing ``slicer``); the
scene is always passed in, so this runs in the Slicer application and on the ``slicer-core`` wheel alike. Inputs
are only read.
"""
from __future__ import annotations

import datetime as _dt

import numpy as np
import SimpleITK as sitk

from ..analysis.dose import parse_levels
from ..analysis.findings import finding_segments, segment_timepoint, when_label
from ..io import geometry as geo
from ..io.case import Case, Dose, Timepoint, boundary_kind
from ..io.validate import check_image
from ..mrml import bridge as mb
from ..output import palette
from ..pipeline.assess import assess_case


def case_from_nodes(scene, timepoint_volumes, treated_lesion_segmentation=None, dose_volume=None,
                    prescription_gy: float = 20.0, fractions: int = 1, boundaries=None,
                    case_id: str = "scene", register: bool = False, treated_lesion_segment: str | None = None) -> Case:
    """Read images out of the nodes (copies) into a validated Case. ``treated_lesion_segment``: the segment that is
    the treated lesion (default: every segment of the segmentation). Timepoints keep the given order unless all
    have dates, then they are sorted by date. Follow-ups under a linear transform node use it; the others are
    registered automatically when ``register``, else taken as already aligned with the SRS image."""
    if not timepoint_volumes:
        raise ValueError("select at least one timepoint volume (the image at the time of SRS first)")
    tps = []
    for n, node in enumerate(timepoint_volumes):
        tps.append(Timepoint(label=node.GetName() or f"t{n}", date=mb.acquisition_date(scene, node),
                             t1c=check_image(mb.image_from_volume(node), f"volume '{node.GetName()}'"),
                             source={"node": node.GetID()}))
    if all(t.date for t in tps):
        order = sorted(range(len(tps)), key=lambda i: tps[i].date)
        tps = [tps[i] for i in order]
        timepoint_volumes = [timepoint_volumes[i] for i in order]
    planning_node = timepoint_volumes[0]
    # A follow-up under a (linear) transform node is placed by it: that replaces the automatic registration.
    for tp, node in zip(tps, timepoint_volumes):
        tp.transform = mb.planning_to_node_transform(planning_node, node) if node is not planning_node else None
    treated = None
    if treated_lesion_segmentation is not None:
        masks = mb.masks_from_segmentation(scene, treated_lesion_segmentation, planning_node)
        if not masks:
            raise ValueError(f"segmentation '{treated_lesion_segmentation.GetName()}' has no segments")
        if treated_lesion_segment:
            if treated_lesion_segment not in masks:
                raise ValueError(f"segmentation '{treated_lesion_segmentation.GetName()}' has no segment named "
                                 f"'{treated_lesion_segment}' (its segments: {', '.join(masks)}); pick one of them "
                                 "or leave the name empty to use every segment")
            masks = {treated_lesion_segment: masks[treated_lesion_segment]}
        for name, m in masks.items():
            if len(masks) == 1 and not sitk.GetArrayViewFromImage(m).any():
                raise ValueError(f"segment '{name}' of '{treated_lesion_segmentation.GetName()}' is empty on the "
                                 f"SRS image '{planning_node.GetName()}' (drawn elsewhere, or nothing drawn)")
        treated = None
        for m in masks.values():
            treated = m if treated is None else sitk.Or(treated, m)
        tps[0].lesion = treated
    bnd = {}
    if boundaries is not None:
        names = mb.segment_names(boundaries)
        if not any(boundary_kind(n) for n in names):
            raise ValueError(f"segmentation '{boundaries.GetName()}' selected as boundaries has no segment named "
                             f"as one (falx, tentorium, ventricles, csf/sulcus); its segments: {names or 'none'}. "
                             "Rename the segments, or clear the boundaries selector to estimate them automatically")
        for name, m in mb.masks_from_segmentation(scene, boundaries, planning_node).items():
            kind = boundary_kind(name)
            if kind:
                bnd[kind] = m if kind not in bnd else sitk.Or(bnd[kind], m)
    dose = None
    if dose_volume is not None:
        dose_img = sitk.Cast(check_image(mb.image_from_volume(dose_volume), f"dose volume '{dose_volume.GetName()}'"),
                             sitk.sitkFloat32)
        to_dose = mb.planning_to_node_transform(planning_node, dose_volume)
        if to_dose is not None:
            # The dose follows the planning image: place its grid in the planning frame (exact, no resampling).
            m = np.eye(4)
            m[:3, :3] = np.array(to_dose.GetMatrix()).reshape(3, 3)
            m[:3, 3] = to_dose.GetTranslation()
            dose_img = geo.image_from_array(geo.array_view(dose_img),
                                            ijk_to_lps_matrix=np.linalg.inv(m) @ geo.ijk_to_lps(dose_img))
        # A volume SlicerRT did not import as dose may be any image or in cGy: Case.validate checks its values
        # against the prescription (io/validate.check_dose_values).
        dose = Dose(image=dose_img,
                    prescription_gy=float(prescription_gy), fractions=int(fractions), date=tps[0].date,
                    source=dose_volume.GetName(), from_rt_import=mb.is_dose_volume(dose_volume))
    patient = {}
    for node in [planning_node] + ([dose_volume] if dose_volume is not None else []):
        for k, v in mb.patient_identity(scene, node).items():
            patient.setdefault(k, v)
    case = Case(id=case_id, timepoints=tps, treated_lesion=treated, boundaries=bnd, dose=dose,
                registered=not register, patient=patient)
    case.validate()
    return case


def assess_nodes(scene, timepoint_volumes, treated_lesion_segmentation, dose_volume, prescription_gy, fractions,
                 isodose_levels: str, boundaries=None, log_callback=None, *, estimate_boundaries: bool = True,
                 min_portion_mm3: float | None = None, compare_with_srs: bool = True, deidentify: bool = False,
                 case_id: str = "scene", register: bool = False, treated_lesion_segment: str | None = None) -> dict:
    """Assess the case the nodes describe; outputs go into one new subject-hierarchy folder.

    ``deidentify``: the case is de-identified before the analysis (timepoints become srs, fu1, ...), so the
    scene outputs and any report written from this result carry no identity (teaching)."""
    case = case_from_nodes(scene, timepoint_volumes, treated_lesion_segmentation, dose_volume, prescription_gy,
                           fractions, boundaries, case_id=case_id, register=register,
                           treated_lesion_segment=treated_lesion_segment)
    phi = None
    if deidentify:
        from ..io.deid import deidentify_case
        case, phi = deidentify_case(case)
    levels = parse_levels(isodose_levels, prescription_gy) if (dose_volume is not None and isodose_levels) else None
    assessment = assess_case(case, levels_gy=levels, log_callback=log_callback,
                             estimate_boundaries=estimate_boundaries, min_portion_mm3=min_portion_mm3,
                             compare_with_srs=compare_with_srs)
    maps = assessment.maps
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    folder_name = f"RNAssessment {stamp}"
    folder = mb.folder(scene, folder_name)
    iso = maps.isodose
    rx = (assessment.summary.get("dose") or {}).get("prescription_gy")
    colours = palette.isodose_colours([i.level_gy for i in iso], rx)
    nodes = _isodose_nodes(scene, [(i.level_gy, colours[i.level_gy], i.surface_lps) for i in iso], folder)
    rows = []
    for t in assessment.summary["timepoints"]:
        rows.append({"timepoint": t["label"], "date": t["date"] or "", "days_since_srs": t["days_since_srs"],
                     "lesion_volume_mm3": t.get("lesion_volume_mm3"),
                     "lesion_mean_gy": (t.get("lesion_dose") or {}).get("mean_gy")})
    table = mb.add_table(scene, rows, f"{folder_name} timepoints", parent_item=folder)
    nodes.append(table)
    stats = maps.dose_stats
    if stats:
        nodes.append(mb.add_table(scene, [{k: v for k, v in s.row().items()} for s in stats],
                                  f"{folder_name} dose", parent_item=folder))
    course = assessment.summary.get("time_course")
    if course and all(r["days_since_srs"] is not None for r in course):
        # Volume and RANO-BM diameters over time (x: days since SRS, so SRS is at 0).
        ctable = mb.add_table(scene, [{"days_since_srs": r["days_since_srs"], "timepoint": r["timepoint"],
                                       "volume_cm3": r["volume_mm3"] / 1000.0,
                                       "sum_longest_diameter_mm": r["sum_longest_diameter_mm"],
                                       "rano_bm": r["rano_bm"]} for r in course],
                              f"{folder_name} time course", parent_item=folder)
        nodes.append(ctable)
        nodes.append(mb.add_plot(scene, ctable, "days_since_srs", ["volume_cm3", "sum_longest_diameter_mm"],
                                 f"{folder_name} lesion over time", x_title="days since SRS",
                                 y_title="cm³ / mm", parent_item=folder))
    planning = case.planning.t1c
    nodes += _finding_nodes(scene, planning, [f.to_dict() for f in assessment.findings],
                            {n: geo.image_from_array(m.astype("uint8"), planning)
                             for n, m in finding_segments(maps).items()},
                            maps.auto_boundaries, folder, f"{folder_name} boundaries (automatic)",
                            folder_name)
    findings_node = next((n for n in nodes if n.GetName() == f"{folder_name} findings"
                          and n.IsA("vtkMRMLSegmentationNode")), None)
    return {"nodes": nodes, "folder": folder, "folder_name": folder_name, "assessment": assessment,
            "case": case, "phi": phi, "timepoint_volumes": list(timepoint_volumes), "findings": findings_node,
            "isodose_models": [n for n in nodes if n.IsA("vtkMRMLModelNode")]}


def fill_findings_by_timepoint(scene, seg_node, labels: list, slice_nodes: list) -> list:
    """Each timepoint's slice view (``slice_nodes[i]`` shows ``labels[i]``) fills only the findings segments of its
    own scan (findings.segment_timepoint) and outlines the others: a focus first seen at t1 is an outline on the
    SRS scan, never a fill on a scan that predates it. Returns the display nodes added."""
    names = mb.segment_names(seg_node)
    return mb.fill_by_view(scene, seg_node, slice_nodes,
                           [{n for n in names if segment_timepoint(n) == label} for label in labels])


def write_report_for(result: dict, out_dir: str, *, pdf: bool = True, log_callback=None) -> dict:
    """Write report.html (+ report.pdf), findings.json and the tables of an :func:`assess_nodes` result."""
    from ..output.writers import write_outputs
    return write_outputs(result["case"], result["assessment"], out_dir, pdf=pdf,
                         phi=result.get("phi"), log_callback=log_callback)


def write_dicom_for(scene, result: dict, report_dir: str, dicom_dir: str, files_for_node, *, log_callback=None) -> list:
    """The DICOM outputs (SEG per follow-up, isodose RT structure set, Encapsulated PDF, key images) of an
    :func:`assess_nodes` result whose report was written to ``report_dir`` by :func:`write_report_for`.
    ``files_for_node(node)``: the DICOM files a volume was loaded from (in Slicer: its ``DICOM.instanceUIDs``
    looked up in the DICOM database); a volume without files is an error naming it. A de-identified result writes
    de-identified copies of the series too."""
    import dataclasses

    from ..output.dicom_out import write_dicom_outputs
    case = result["case"]
    series = {}
    for tp in case.timepoints:
        node = scene.GetNodeByID(tp.source.get("node", ""))
        files = list(files_for_node(node)) if node is not None else []
        if not files:
            raise ValueError(f"volume '{node.GetName() if node else tp.label}' was not loaded from DICOM (no files in "
                             "the DICOM database): DICOM outputs reference the source series")
        series[tp.label] = files
    timepoints = [dataclasses.replace(tp, dicom_files=series[tp.label]) for tp in case.timepoints]
    # A de-identified result keeps the dates inside (days since SRS); the original SRS date shifts the copies.
    return write_dicom_outputs(dataclasses.replace(case, timepoints=timepoints), result["assessment"], report_dir,
                               dicom_dir,
                               deidentify=bool(case.metadata.get("deidentified")), log=log_callback or print)


#: Opacity of each isodose shell in 3D: five nested shells at 0.5 hid the lesion inside them; at 0.15 the
#: treated lesion and the findings show through all five (slice lines are drawn opaque all the same).
ISODOSE_3D_OPACITY = 0.15


def _isodose_nodes(scene, levels: list, folder) -> list:
    """Isodose colour table and one model per level ([(level Gy, colour, LPS surface)]), shown as slice lines."""
    if not levels:
        return []
    table = mb.add_colour_table(scene, [lv for lv, _, _ in levels], [c for _, c, _ in levels])
    mb.set_parent(scene, table, folder)
    return [table] + [mb.add_model(scene, surf, f"Isodose {lv:g} Gy", colour, parent_item=folder,
                                   opacity=ISODOSE_3D_OPACITY) for lv, colour, surf in levels]


#: Findings whose centroids lie closer than this (mm) share one marker labelled with all their numbers ("F1, F2"):
#: two numbered markers this close print over each other ("21", "3/5") at the zoom a lesion is read at (a field of
#: view 4x its size, at least 40 mm: 10 mm is a quarter of it, about two label widths).
MARKER_MERGE_MM = 10.0


def marker_groups(centroids_ras, merge_mm: float = MARKER_MERGE_MM) -> list[tuple[list, str]]:
    """One marker per place: findings (numbered 1.. in order) linked by centroids closer than ``merge_mm`` (single
    linkage) share a marker at their mean centroid (RAS), labelled "F1, F2" with the numbers of the findings list."""
    pts = np.asarray(centroids_ras, float).reshape(-1, 3)
    group = list(range(len(pts)))

    def root(i):
        while group[i] != i:
            i = group[i]
        return i
    for i in range(len(pts)):
        for j in range(i):
            if np.linalg.norm(pts[i] - pts[j]) < merge_mm:
                group[max(root(i), root(j))] = min(root(i), root(j))
    members: dict = {}
    for i in range(len(pts)):
        members.setdefault(root(i), []).append(i)
    return [(pts[m].mean(axis=0).tolist(), ", ".join(f"F{i + 1}" for i in m)) for _, m in sorted(members.items())]


def _finding_nodes(scene, planning, findings: list[dict], masks: dict, boundaries: dict | None, folder,
                   boundaries_name: str, folder_name: str, *, closed_surface: bool = False) -> list:
    """Findings table, one markup per finding at its centroid, findings and boundary segmentations (masks on the
    planning grid). ``findings``: as in findings.json (``Finding.to_dict``)."""
    nodes = []
    if findings:
        rows = []
        for i, f in enumerate(findings, 1):
            when = when_label(f)
            rows.append({"finding": i, "kind": f["kind"], "when": when, "description": f.get("description") or "",
                         "boundary": f.get("boundary") or "", "volume_mm3": f.get("volume_mm3"),
                         "gap_mm": f.get("gap_mm"), "geodesic_mm": f.get("geodesic_mm"),
                         "mean_gy": (f.get("dose") or {}).get("mean_gy"), "favours": f.get("favours"),
                         "r": f["centroid_ras"][0], "a": f["centroid_ras"][1], "s": f["centroid_ras"][2]})
        nodes.append(mb.add_table(scene, rows, f"{folder_name} findings", parent_item=folder))
        places = marker_groups([f["centroid_ras"] for f in findings])
        pts = geo.lps_from_ras([ras for ras, _ in places])
        nodes.append(mb.add_markups(scene, pts, [label for _, label in places], f"{folder_name} finding markers",
                                    parent_item=folder))
    if masks:
        nodes.append(mb.add_segmentation(scene, masks, planning, f"{folder_name} findings",
                                         colours={n: palette.segment_colour(n) for n in masks}, parent_item=folder,
                                         closed_surface=closed_surface))
    if boundaries:
        nodes.append(mb.add_segmentation(scene, boundaries, planning, boundaries_name, parent_item=folder,
                                         colours={n: palette.BOUNDARY for n in boundaries}))
    return nodes


def add_review_nodes(scene, rc, progress=None) -> dict:
    """The scene of an assessment read back (:class:`review.ReviewCase`); see :func:`review_node_steps`.
    ``progress(fraction, message)`` is called before each step. Returns the nodes by role."""
    out: dict = {}
    for fraction, message in review_node_steps(scene, rc, out):
        if progress:
            progress(fraction, message)
    return out


def review_node_steps(scene, rc, out: dict):
    """Add the nodes of an assessment read back, one step per ``next()`` (yields (fraction done, next step), so a
    server can report progress between steps), filling ``out`` with the nodes by role: the timepoint images
    (follow-ups under the registration's transform, so linked views show the same anatomy), the dose, the treated
    lesion, and the same isodose, findings and boundary nodes :func:`assess_nodes` adds, in one folder."""
    case = rc.case
    planning = case.planning.t1c
    folder_name = f"RNAssessment review {case.id}"
    folder = mb.folder(scene, folder_name)
    n_steps = len(case.timepoints) + 4
    volumes, transforms = [], []
    for i, tp in enumerate(case.timepoints):
        yield i / n_steps, f"image {tp.label}"
        vol = mb.add_volume(scene, tp.t1c, f"{case.id} {tp.label}", parent_item=folder)
        m = rc.planning_to_followup.get(tp.label) if i else None
        if m is not None:
            transforms.append(mb.add_linear_transform(scene, m, f"{case.id} {tp.label} to SRS image", [vol],
                                                      parent_item=folder))
        volumes.append(vol)
    step = len(case.timepoints)
    dose = None
    if case.dose is not None:
        yield step / n_steps, "dose"
        dose = mb.add_volume(scene, case.dose.image, f"{case.id} dose", parent_item=folder)
        mb.mark_dose_volume(scene, dose)
    yield (step + 1) / n_steps, "isodose surfaces"
    iso_nodes = _isodose_nodes(scene, rc.isodose, folder)
    iso_models = {lv: n for (lv, _, _), n in zip(rc.isodose, iso_nodes[1:])}
    treated = None
    if case.treated_lesion is not None:
        yield (step + 2) / n_steps, "treated lesion"
        treated = mb.add_segmentation(scene, {"treated lesion": case.treated_lesion}, planning,
                                      f"{case.id} treated lesion", colours={"treated lesion": palette.TREATED},
                                      parent_item=folder, closed_surface=True)
        mb.set_segment_display(treated, fill_2d=0.0, outline_2d=True, opacity_3d=0.35)
    yield (step + 3) / n_steps, "findings"
    bname = f"{folder_name} boundaries ({rc.boundaries_source})"
    fnodes = _finding_nodes(scene, planning, rc.findings.get("findings") or [], rc.finding_masks, rc.boundaries,
                            folder, bname, folder_name, closed_surface=True)
    by_name = {n.GetName(): n for n in fnodes}
    seg = by_name.get(f"{folder_name} findings")
    if seg is not None:
        mb.set_segment_display(seg, fill_2d=0.35, outline_2d=True, opacity_3d=0.8)
    bnd = by_name.get(bname)
    if bnd is not None:
        mb.set_segment_display(bnd, fill_2d=0.25, outline_2d=True)
        mb.set_shown(bnd, True, view_3d=False)
    out.update({"folder": folder, "volumes": volumes, "transforms": transforms, "dose": dose,
                "isodose": iso_models, "colour_table": iso_nodes[0] if iso_nodes else None,
                "treated_lesion": treated, "findings": seg, "boundaries": bnd,
                "markers": by_name.get(f"{folder_name} finding markers"),
                "nodes": [n for n in volumes + transforms + [dose, treated] + iso_nodes + fnodes if n is not None]})
    yield 1.0, "views"


def load_phantom_into_scene(scene, scenario_name: str) -> dict:
    """Render a teaching scenario and add it to the scene as a user would have it loaded (for tests and demos)."""
    from ..teaching.phantom import render_scenario
    from ..teaching.scenarios import get_scenario
    scn = get_scenario(scenario_name, misalign=False)
    r = render_scenario(scn)
    vols = []
    for t in r["timepoints"]:
        v = mb.add_volume(scene, t.t1c, f"{scn.name} {t.label}")
        v.SetAttribute("RNAssessment.Date", t.date.isoformat())
        vols.append(v)
    dose = mb.add_volume(scene, r["dose"], f"{scn.name} dose")
    mb.mark_dose_volume(scene, dose)
    treated = mb.add_segmentation(scene, {"treated lesion": r["treated_lesion"]}, r["treated_lesion"],
                                  f"{scn.name} treated lesion")
    bnd = mb.add_segmentation(scene, dict(r["boundaries"]), r["treated_lesion"], f"{scn.name} boundaries")
    return {"timepoints": vols, "dose": dose, "treated_lesion": treated, "boundaries": bnd, "rendered": r}
