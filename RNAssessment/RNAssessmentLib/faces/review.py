"""``rnassess review``: an assessed case (or a cohort / demo folder of them) in Slicer's own views, in a browser.

Two halves:

* reading an assessment back (:func:`find_assessments`, :func:`load_review_case`): findings.json, the isodose
  surfaces, the findings segmentation, and the images it names in ``inputs`` (the case manifest, or the DICOM export
  re-imported with the options it was assessed with). Nothing in the case or output folder is written.
* the web app (:mod:`review_app`, trame-slicer): the scene is built by :func:`slicer_case.add_review_nodes` through
  the MRML bridge, the same nodes the Slicer panel adds, and rendered server-side by Slicer's displayable managers.

Coordinates: images and surfaces are LPS here; centroids in findings.json are RAS (as shown in Slicer).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

import numpy as np

from ..analysis.findings import KIND_TITLES, Assessment, when_label
from ..io.case import Case, load_manifest
from ..output import palette

#: How deep below the given folder assessments are looked for (demo: <case>/assessment, cohort: cases/<case>).
SEARCH_DEPTH = 3


class NotAnAssessment(ValueError):
    """The folder holds no assessment (or one that cannot be read back)."""


def read_findings(path: str) -> dict | None:
    """findings.json as written by RNAssessment, or None for a missing, unreadable or foreign file."""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None
    ok = isinstance(d, dict) and "findings" in d and "summary" in d and \
        str(d.get("software", "")).startswith("RNAssessment")
    return d if ok else None


def find_assessments(path: str) -> list[tuple[str, str]]:
    """[(case name, assessment folder)] for ``path``: the folder itself when it holds findings.json, else every
    assessment up to :data:`SEARCH_DEPTH` folders below it (a cohort or demo folder), sorted by name."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise NotAnAssessment(f"'{path}' is not a folder: give an assessment folder (rnassess assess --out), or a "
                              "cohort or demo folder holding several")
    own = os.path.join(path, "findings.json")
    if os.path.isfile(own):
        d = read_findings(own)
        if d is None:
            raise NotAnAssessment(f"'{own}' is not an RNAssessment findings.json (no findings/summary, or another "
                                  "program's file)")
        return [(str(d.get("case") or os.path.basename(path)), path)]
    found = []
    base_depth = path.rstrip(os.sep).count(os.sep)
    for root, dirs, files in os.walk(path):
        dirs.sort()
        if root.count(os.sep) - base_depth >= SEARCH_DEPTH:
            dirs[:] = []
        if "findings.json" in files and root != path:
            d = read_findings(os.path.join(root, "findings.json"))
            if d is not None:
                found.append((str(d.get("case") or os.path.basename(root)), root))
                dirs[:] = []
    if not found:
        raise NotAnAssessment(f"'{path}' is not an assessment: no RNAssessment findings.json in it or in its "
                              f"sub-folders (up to {SEARCH_DEPTH} levels). Give the folder 'rnassess assess --out' "
                              "wrote, or a cohort or demo folder")
    names: dict[str, int] = {}
    out = []
    for name, folder in sorted(found, key=lambda x: (x[0], x[1])):
        names[name] = names.get(name, 0) + 1
        out.append((name if names[name] == 1 else f"{name} ({os.path.relpath(folder, path)})", folder))
    return out


@dataclasses.dataclass
class ReviewCase:
    """One assessment read back: findings.json, its case, and what the assessment drew (LPS, planning grid)."""
    folder: str
    findings: dict                          # findings.json as written
    case: Case
    isodose: list                           # [(level Gy, colour rgb, surface LPS vtkPolyData)], highest first
    finding_masks: dict                     # findings-segmentation segment name → mask on the planning grid
    boundaries: dict                        # boundary name → mask on the planning grid (given, or automatic)
    boundaries_source: str                  # "given" or "automatic"
    planning_to_followup: dict              # follow-up label → 4x4 LPS matrix (planning point → follow-up point);
    #                                         none for a follow-up given already aligned
    assessment: Assessment = None           # findings.json as the typed object the writers consume (no maps)

    @property
    def labels(self) -> list[str]:
        return [t["label"] for t in self.findings["summary"]["timepoints"]]

    def finding_items(self) -> list[dict]:
        """The findings in display order (numbered from 1 as in the report), with what the page shows."""
        items = []
        for i, f in enumerate(self.findings.get("findings") or [], 1):
            when = when_label(f)
            title = f"{i}. {KIND_TITLES.get(f['kind'], f['kind'])} ({when})"
            items.append({"number": i, "kind": f["kind"], "title": title,
                          "description": f.get("description") or "", "favours": f.get("favours") or "",
                          "centroid_ras": [float(v) for v in f["centroid_ras"]],
                          "fov_mm": finding_fov_mm(f.get("volume_mm3")),
                          "colour": palette.hex_colour(palette.finding_colour(f["kind"]))})
        return items

    def lesion_items(self) -> list[dict]:
        """The lesions followed over time (findings.json ``lesions``; none in an output written before them):
        :func:`lesion_rows`."""
        return lesion_rows(self.findings.get("lesions") or [])


#: A click on a finding or lesion zooms the slice views to this many times its size ...
ZOOM_TIMES = 4.0
#: ... but never closer than this field of view (mm), so that the anatomy around a small focus stays in view.
ZOOM_MIN_FOV_MM = 40.0


def zoom_fov_mm(size_mm: float | None) -> float:
    """The field of view (mm, the views' shorter side) that shows something ``size_mm`` across with its
    surroundings: :data:`ZOOM_TIMES` its size, at least :data:`ZOOM_MIN_FOV_MM`."""
    return max(ZOOM_MIN_FOV_MM, ZOOM_TIMES * float(size_mm or 0.0))


def _sphere_diameter_mm(volume_mm3) -> float:
    """The diameter of a sphere of that volume (a finding's size when only its volume is known)."""
    return (6.0 * max(float(volume_mm3 or 0.0), 0.0) / np.pi) ** (1.0 / 3.0)


def finding_fov_mm(volume_mm3) -> float:
    """The field of view a click on a finding zooms to: :func:`zoom_fov_mm` of a sphere of its volume."""
    return zoom_fov_mm(_sphere_diameter_mm(volume_mm3))


def lesion_rows(listed: list[dict]) -> list[dict]:
    """The lesion list of the review and of the Slicer panel, from findings.json ``lesions`` (or
    ``Lesion.to_dict()``): id, title (what it is, when first seen), location, its volume at each timepoint, the
    findings that name it, and where to jump (its RAS centroid where it was last seen, and that timepoint). A
    lesion with no voxels at any timepoint has nowhere to jump to and is left out."""
    items = []
    colours = palette.lesion_colours([(x["id"], x.get("role") == "treated lesion") for x in listed])
    for les in listed:
        seen = [t for t in les.get("timepoints") or [] if (t.get("volume_mm3") or 0) > 0 and t.get("centroid_ras")]
        if not seen:
            continue
        last = seen[-1]
        course = ", ".join(f"{t['timepoint']} {t['volume_mm3'] / 1000:.2f}" for t in les["timepoints"])
        items.append({"id": les["id"], "title": f"{les['id']} {les.get('role', '')} (first seen "
                                                 f"{les.get('first_seen')})",
                      "location": les.get("location") or "", "course": f"{course} cm³",
                      "findings": ", ".join(les.get("findings") or []),
                      "centroid_ras": [float(v) for v in last["centroid_ras"]], "at": last["timepoint"],
                      "fov_mm": zoom_fov_mm(max(float(last.get("longest_diameter_mm") or 0.0),
                                                _sphere_diameter_mm(last.get("volume_mm3")))),
                      "colour": palette.hex_colour(colours[les["id"]])})
    return items


def load_timepoint_labels(folder: str) -> list[str]:
    """The timepoint labels of an assessment (from findings.json only: cheap)."""
    return [t["label"] for t in read_findings(os.path.join(folder, "findings.json"))["summary"]["timepoints"]]


def _inputs_case(folder: str, findings: dict, log) -> Case:
    """The assessed case's images: findings.json ``inputs``; for an output written before that key, the demo
    layout (the manifest one folder up). Read-only; a DICOM export is re-imported into a scratch folder."""
    inputs = findings.get("inputs") or {}
    if findings.get("summary", {}).get("deidentified") and not inputs:
        raise NotAnAssessment(f"'{folder}' was written de-identified and keeps no link to its images (a path may "
                              "name the patient): review the identified assessment instead, or show its report.html")
    if inputs.get("manifest"):
        manifest = inputs["manifest"]
        if not os.path.isfile(manifest):
            raise NotAnAssessment(f"the images of '{folder}' were read from '{manifest}', which is no longer there: "
                                  "put the case back where it was assessed, or assess it again")
        log(f"images from {manifest}")
        return load_manifest(manifest)
    if inputs.get("dicom"):
        from ..io.dicom_import import ImportOptions, import_dicom
        src = inputs["dicom"]
        if not os.path.isdir(src):
            raise NotAnAssessment(f"the images of '{folder}' were read from the DICOM export '{src}', which is no "
                                  "longer there")
        opts = dict(inputs.get("import_options") or {})
        opts["t1c"] = tuple(opts.get("t1c") or ())
        scratch = tempfile.mkdtemp(prefix="rnassess-review-")
        try:
            log(f"images from the DICOM export {src}")
            r = import_dicom(src, scratch, ImportOptions(**opts))
            return load_manifest(r["manifest"])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    for candidate in (os.path.join(os.path.dirname(folder), "case.json"), os.path.join(folder, "case.json")):
        if os.path.isfile(candidate):
            log(f"images from {candidate} (beside the assessment)")
            return load_manifest(candidate)
    raise NotAnAssessment(f"'{folder}' does not say where its images are (findings.json has no 'inputs'; it was "
                          "written by an older version): assess the case again")


def load_review_case(folder: str, log=print) -> ReviewCase:
    """Read one assessment folder back (see :class:`ReviewCase`). Raises :class:`NotAnAssessment` with what is
    wrong and what to do; writes nothing."""
    from ..analysis.dose import read_surface
    from ..io import geometry as geo
    from ..io.structures import read_seg_nrrd
    folder = os.path.abspath(folder)
    findings = read_findings(os.path.join(folder, "findings.json"))
    if findings is None:
        raise NotAnAssessment(f"'{folder}' is not an assessment: no RNAssessment findings.json in it")
    try:
        assessment = Assessment.from_dict(findings)
    except (TypeError, ValueError) as exc:
        raise NotAnAssessment(f"'{folder}': its findings.json cannot be read as an assessment ({exc})") from None
    case = _inputs_case(folder, findings, log)
    labels = [t["label"] for t in findings["summary"]["timepoints"]]
    if [t.label for t in case.timepoints] != labels:
        raise NotAnAssessment(f"the case behind '{folder}' has timepoints {[t.label for t in case.timepoints]}, the "
                              f"assessment {labels}: the case was changed after it was assessed; assess it again")
    planning = case.planning.t1c
    iso = []
    levels = [float(x["level_gy"]) for x in findings["summary"].get("isodose") or []]
    colours = palette.isodose_colours(levels, (findings["summary"].get("dose") or {}).get("prescription_gy")) \
        if levels else {}
    for lv in sorted(levels, reverse=True):
        p = os.path.join(folder, "isodose", f"isodose_{lv:g}Gy.vtk")
        if not os.path.isfile(p):
            raise NotAnAssessment(f"'{folder}' lists the {lv:g} Gy isodose but has no {os.path.relpath(p, folder)}")
        iso.append((lv, colours[lv], read_surface(p)))

    def on_planning(structs, what):
        out = {}
        for s in structs:
            if not geo.same_grid(s.mask, planning, tol_mm=1e-2):
                raise NotAnAssessment(f"{what} of '{folder}' is not on the SRS image's grid: the case was changed "
                                      "after it was assessed; assess it again")
            out[s.name] = s.mask
        return out

    masks = {}
    seg = os.path.join(folder, "findings.seg.nrrd")
    if os.path.isfile(seg):
        masks = on_planning(read_seg_nrrd(seg), "findings.seg.nrrd")
    boundaries, source = {}, "given"
    auto = os.path.join(folder, "boundaries_auto.seg.nrrd")
    if os.path.isfile(auto):
        boundaries, source = on_planning(read_seg_nrrd(auto), "boundaries_auto.seg.nrrd"), "automatic"
    for name, m in case.boundaries.items():        # given masks win over the automatic ones
        boundaries[name] = m
    registrations = findings["summary"].get("registration") or {}
    transforms = {label: np.asarray(reg["planning_to_followup_lps"], float) for label, reg in registrations.items()
                  if label in labels[1:] and reg.get("planning_to_followup_lps") is not None}
    return ReviewCase(folder=folder, findings=findings, case=case, isodose=iso, finding_masks=masks,
                      boundaries=boundaries, boundaries_source=source, planning_to_followup=transforms,
                      assessment=assessment)

