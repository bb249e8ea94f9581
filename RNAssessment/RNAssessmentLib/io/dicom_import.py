"""A patient's DICOM export → a case manifest (``case.json``) with paths into the export, and an import log.

Every choice is made from the headers (:mod:`dicom_index`) and written to the log with its reason; where the
export allows more than one reading (two patients, two equally good post-contrast T1 series in one study, several
plans or targets) the import stops with :class:`AmbiguousImport`, listing the candidates and the option that
chooses. Nothing is guessed silently and no pixel data are copied: the manifest names the export's files, and only
small derived files are written beside it (a registration's transform, as the ITK ``.tfm`` the loader reads).

Coordinates: DICOM patient coordinates are LPS, as everywhere in this package, so matrices are used as stored.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re

import numpy as np

from . import dicom_index as dx
from .case import boundary_kind

#: Target ROI names, by preference: the gross tumour is the treated lesion; a PTV includes a margin.
TARGET_PATTERNS = (
    ("GTV", re.compile(r"^(gtv|gross)", re.I)),
    ("lesion", re.compile(r"(lesion|met(astasis)?\b|mets?\d*$|tumou?r)", re.I)),
    ("PTV", re.compile(r"^ptv", re.I)),
)

_T1 = re.compile(r"t1|mprage|mp-rage|spgr|bravo|tfe|vibe|flash|mp2rage|fspgr|3d\s*ffe", re.I)
_T2 = re.compile(r"\bt2|t2w|tse.?t2|t2.?tse", re.I)
_FLAIR = re.compile(r"flair|\bdark.?fluid|\bir\b", re.I)
_POST = re.compile(r"post|\+\s*c\b|\+\s*gd|\bgd\b|gad|contrast|\bce\b|t1c\b|t1-?ce|\bkm\b|\+km|enhanc", re.I)
_PRE = re.compile(r"\bpre\b|pre[-_ ]?contrast|\bnative?\b|nativ|without|\bw/?o\b|non[-_ ]?contrast|plain", re.I)


#: Series descriptions of what ``assess --dicom-out`` writes (output/dicom_out.py).
OUTPUT_PREFIX = "RNAssessment "


class AmbiguousImport(ValueError):
    """The export allows more than one reading; the message lists the candidates and the option that chooses."""


@dataclasses.dataclass
class ImportOptions:
    patient: str | None = None        # PatientID
    t1c: tuple = ()                   # SeriesInstanceUIDs chosen as post-contrast T1 (one per study)
    plan: str | None = None           # RTPlanLabel, RTPlanName or SOPInstanceUID
    target: str | None = None         # ROI name of the treated lesion
    prescription_gy: float | None = None   # when there is no plan
    fractions: int | None = None


def _date(text: str) -> _dt.date | None:
    text = str(text or "").strip()
    if len(text) >= 8 and text[:8].isdigit():
        try:
            return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return None
    return None


def _float(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------------------------------------------------------------
# MR series: what each one is
# ---------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class MRInfo:
    series: object                    # a dicom_index.Series, or whatever the caller classified (an MRML node)
    usable: bool
    label: str = ""
    why_not: str = ""
    weighting: str = "unknown"        # T1, T2, FLAIR, unknown
    weighting_why: str = ""
    contrast: str = "unknown"         # post, pre, unknown
    contrast_why: str = ""
    is_3d: bool = False
    thickness_mm: float = float("inf")

    def rank(self):
        return (0 if self.is_3d else 1, round(self.thickness_mm, 2))

    def describe(self) -> str:
        return (f"{self.label or self.series.label()}: {self.weighting} ({self.weighting_why}), contrast {self.contrast} "
                f"({self.contrast_why}), {'3D' if self.is_3d else '2D'}, {self.thickness_mm:.2f} mm slices")


class _Getter:
    def __init__(self, get):
        self._get = get

    def get(self, key, default=None):
        try:
            v = self._get(key, default)
        except KeyError:
            return default
        return default if v in (None, "") else v


def rank_t1c(infos: list) -> tuple[list, list]:
    """(post-contrast T1 candidates, best first; the ones tied with the best). More than one tied: ambiguous."""
    cands = sorted((m for m in infos if m.usable and m.weighting == "T1" and m.contrast == "post"), key=MRInfo.rank)
    tied = [m for m in cands if m.rank() == cands[0].rank()] if cands else []
    return cands, tied


def classify_mr(se: dx.Series) -> MRInfo:
    info = MRInfo(series=se, usable=True)
    first = se.first
    itype = se.image_type
    itype_text = "\\".join(itype)
    desc = f"{se.description} {first.get('SequenceName', '')}".strip()
    if any(t in itype for t in ("LOCALIZER", "SCOUT")):
        return dataclasses.replace(info, usable=False, why_not=f"a localizer (ImageType {itype_text})")
    if itype and itype[0] == "DERIVED":
        return dataclasses.replace(info, usable=False,
                                   why_not=f"derived images (ImageType {itype_text}: reformat, subtraction "
                                           "or map), not an acquisition")
    frames = int(_float(first.get("NumberOfFrames", 1), 1))
    nslices = frames if len(se.instances) == 1 else len(se.instances)
    if nslices < 5:
        return dataclasses.replace(info, usable=False, why_not=f"{nslices} slice(s): not a volume")
    if frames > 1:
        return dataclasses.replace(info, usable=False, why_not="an enhanced (multi-frame) MR object: export the "
                                                               "series as classic MR Image Storage")
    orients = {tuple(np.round(np.array(i.get("ImageOrientationPatient", [0] * 6), float), 3))
               for i in se.instances}
    if len(orients) > 1:
        return dataclasses.replace(info, usable=False, why_not=f"{len(orients)} slice orientations: not one volume")
    return classify_attributes(first.get, desc, series=se)


def classify_attributes(get, desc: str, *, series=None, label: str = "") -> MRInfo:
    """Weighting, contrast, 3D and slice thickness of one usable MR series from its attributes (``get(keyword,
    default)``, e.g. a header's or a DICOM database's) and its description. Shared by the import and the Slicer
    panel's auto-fill, so both pick the same series."""
    info = MRInfo(series=series, usable=True, label=label)
    first = _Getter(get)
    # Weighting: the description first (what the technologist named it), then the timing parameters.
    if _FLAIR.search(desc):
        info.weighting, info.weighting_why = "FLAIR", f"description '{desc}'"
    elif _T1.search(desc):
        info.weighting, info.weighting_why = "T1", f"description '{desc}'"
    elif _T2.search(desc):
        info.weighting, info.weighting_why = "T2", f"description '{desc}'"
    else:
        tr, te, ti = (_float(first.get(k, None)) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
        if ti and ti > 1200 and tr and tr > 4000:
            info.weighting, info.weighting_why = "FLAIR", f"TI {ti:g} ms, TR {tr:g} ms"
        elif te is not None and te > 60:
            info.weighting, info.weighting_why = "T2", f"TE {te:g} ms"
        elif te is not None and tr is not None and te < 20 and tr < 1200:
            info.weighting, info.weighting_why = "T1", f"TR {tr:g} ms, TE {te:g} ms"
        else:
            info.weighting_why = "neither description nor timing says"
    # Contrast: the contrast/bolus module is the standard's own answer; the description only where it is absent.
    agent = str(first.get("ContrastBolusAgent", "") or first.get("ContrastBolusIngredient", "") or "").strip()
    if agent:
        info.contrast, info.contrast_why = "post", f"ContrastBolusAgent '{agent}'"
    elif _PRE.search(desc):
        info.contrast, info.contrast_why = "pre", f"no contrast attributes; description '{desc}'"
    elif _POST.search(desc):
        info.contrast, info.contrast_why = "post", f"no contrast attributes; description '{desc}'"
    else:
        info.contrast_why = "no contrast attributes and the description does not say"
    info.is_3d = str(first.get("MRAcquisitionType", "")).upper() == "3D"
    th = _float(first.get("SliceThickness", None))
    if th is None or th <= 0:
        th = _float(first.get("SpacingBetweenSlices", None), float("inf"))
    info.thickness_mm = th
    return info


# ---------------------------------------------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------------------------------------------

class _Log:
    def __init__(self):
        self.lines: list[str] = []
        self.choices: list[dict] = []

    def say(self, text: str) -> None:
        if text not in self.lines:          # a reason said once (the same series seen from two studies, ...)
            self.lines.append(text)

    def choose(self, what: str, chosen: str, why: str, **extra) -> None:
        self.choices.append({"what": what, "chosen": chosen, "why": why, **extra})
        self.lines.append(f"{what}: {chosen} — {why}")


def _choose_patient(idx: dx.Index, opts: ImportOptions, log: _Log) -> dx.Patient:
    pats = idx.patients
    if opts.patient is not None:
        if opts.patient not in pats:
            raise ValueError(f"--patient '{opts.patient}': not in this export (patients: "
                             + "; ".join(p.label() for p in pats.values()) + ")")
        log.choose("patient", opts.patient, "chosen with --patient")
        return pats[opts.patient]
    if len(pats) > 1:
        raise AmbiguousImport(f"the export in '{idx.root}' holds {len(pats)} patients:\n  "
                              + "\n  ".join(p.label() for p in pats.values())
                              + "\nchoose one with --patient ID")
    p = next(iter(pats.values()))
    log.choose("patient", f"'{p.id}'", "the only patient in the export")
    return p


def _plan_info(inst: dx.Instance) -> dict:
    ds = inst.ds
    rx = None
    for item in ds.get("DoseReferenceSequence", []) or []:
        v = _float(item.get("TargetPrescriptionDose", None))
        if v and str(item.get("DoseReferenceType", "TARGET")).upper() == "TARGET":
            rx = max(rx or 0.0, v)
    fractions = None
    for fg in ds.get("FractionGroupSequence", []) or []:
        n = fg.get("NumberOfFractionsPlanned", None)
        if n is not None:
            fractions = int(n)
            break
    return {"uid": str(ds.SOPInstanceUID), "label": str(ds.get("RTPlanLabel", "") or ""),
            "name": str(ds.get("RTPlanName", "") or ""), "date": _date(ds.get("RTPlanDate", "")),
            "prescription_gy": rx, "fractions": fractions, "path": inst.path,
            "approval": str(ds.get("ApprovalStatus", "") or ""),
            "frame": str(ds.get("FrameOfReferenceUID", "") or "")}


def _plan_text(p: dict) -> str:
    return (f"plan '{p['label'] or p['name'] or '?'}' dated {p['date'] or '?'} "
            f"({p['prescription_gy'] or '?'} Gy in {p['fractions'] or '?'} fraction(s), SOPInstanceUID {p['uid']})")


def _rt_objects(pat: dx.Patient, modality: str) -> list[tuple[dx.Study, dx.Series, dx.Instance]]:
    out = []
    for st in pat.studies.values():
        for se in st.series.values():
            if se.modality == modality:
                out += [(st, se, i) for i in se.instances]
    return out


def _choose_plan(pat, opts, log) -> dict | None:
    plans = [_plan_info(i) for _, _, i in _rt_objects(pat, "RTPLAN")]
    if not plans:
        return None
    if opts.plan:
        hit = [p for p in plans if opts.plan in (p["uid"], p["label"], p["name"])]
        if len(hit) != 1:
            raise ValueError(f"--plan '{opts.plan}' matches {len(hit)} plan(s); plans in the export:\n  "
                             + "\n  ".join(_plan_text(p) for p in plans))
        log.choose("RT plan", _plan_text(hit[0]), "chosen with --plan")
        return hit[0]
    if len(plans) > 1:
        raise AmbiguousImport(f"{len(plans)} RT plans for patient '{pat.id}':\n  "
                              + "\n  ".join(_plan_text(p) for p in plans)
                              + "\nchoose one with --plan LABEL (or its SOPInstanceUID)")
    log.choose("RT plan", _plan_text(plans[0]), "the only RT plan")
    return plans[0]


def _choose_dose(pat, plan, opts, log) -> dict | None:
    doses = _rt_objects(pat, "RTDOSE")
    if not doses:
        log.say("RT dose: none in the export; the case has no dose (isodose and dose findings are left out)")
        return None
    def ref_plan(i):
        seq = i.ds.get("ReferencedRTPlanSequence", []) or []
        return str(seq[0].ReferencedSOPInstanceUID) if len(seq) else ""
    if plan is not None:
        mine = [d for d in doses if ref_plan(d[2]) == plan["uid"]]
        if not mine:
            raise ValueError(f"no RTDOSE references {_plan_text(plan)}; RTDOSE files: "
                             + ", ".join(d[2].path for d in doses))
    else:
        mine = doses
        plans = {ref_plan(d[2]) for d in doses}
        if len(plans) > 1:
            raise AmbiguousImport(f"{len(doses)} RTDOSE files reference {len(plans)} different plans that are not "
                                  "in the export:\n  " + "\n  ".join(f"{d[2].path} (plan {ref_plan(d[2]) or '?'})"
                                                                       for d in doses)
                                  + "\nexport the plan(s) too, or keep one plan's dose")
    kinds = {}
    for d in mine:
        kinds.setdefault(str(d[2].get("DoseSummationType", "")).upper(), []).append(d[2])
    if kinds.get("PLAN"):
        if len(kinds["PLAN"]) > 1:
            raise AmbiguousImport(f"{len(kinds['PLAN'])} plan-sum RTDOSE files for the same plan:\n  "
                                  + "\n  ".join(i.path for i in kinds["PLAN"]) + "\nkeep one in the export")
        chosen, why = kinds["PLAN"], "the plan-sum dose (DoseSummationType PLAN)" + (
            f"; {len(mine) - 1} beam/fraction dose(s) not added" if len(mine) > 1 else "")
    elif kinds.get("BEAM"):
        chosen, why = kinds["BEAM"], f"no plan sum: the sum of {len(kinds['BEAM'])} beam dose(s) (DoseSummationType BEAM)"
    else:
        raise ValueError("RTDOSE summation type(s) " + ", ".join(sorted(kinds)) + " cannot be turned into the plan "
                         "dose here (PLAN or BEAM expected): " + ", ".join(i.path for v in kinds.values() for i in v))
    frames = {str(i.get("FrameOfReferenceUID", "")) for i in chosen}
    if len(frames) > 1:
        raise ValueError("the dose files to sum are in different frames of reference: "
                         + ", ".join(i.path for i in chosen))
    log.choose("RT dose", ", ".join(i.path for i in chosen), why)
    return {"files": [i.path for i in chosen], "frame": frames.pop()}


def _choose_target(pat, srs_frame: str, opts, log) -> tuple[dict | None, dict]:
    """(treated-lesion ROI reference, boundary ROI references) from the structure sets in the SRS frame."""
    sets = [(st, se, i) for st, se, i in _rt_objects(pat, "RTSTRUCT")]
    # Our own results sent back to PACS (assess --dicom-out) are not inputs, as long as the planning system's
    # structure set is there: a de-identified teaching output has only ours, and then it is used.
    ours = [x for x in sets if x[1].description.startswith(OUTPUT_PREFIX)]
    if ours and len(ours) < len(sets):
        for _, se, _ in ours:
            log.say(f"{se.label()}: an RNAssessment result, not an input: not used")
        sets = [x for x in sets if x not in ours]
    rois = []    # (name, path, frame)
    for _, _, inst in sets:
        for item in inst.ds.get("StructureSetROISequence", []) or []:
            rois.append((str(item.get("ROIName", "")), inst.path, str(item.get("ReferencedFrameOfReferenceUID", ""))))
    if not rois:
        return None, {}
    here = [r for r in rois if r[2] in ("", srs_frame)]
    elsewhere = [r for r in rois if r not in here]
    if elsewhere:
        log.say("structure set ROIs in another frame of reference than the SRS-time T1 (not used): "
                + ", ".join(sorted({r[0] for r in elsewhere})))
    boundaries = {}
    for name, path, _ in here:
        k = boundary_kind(name)
        if k and k not in boundaries:
            boundaries[k] = {"rtstruct": path, "roi": name}
            log.choose(f"boundary '{k}'", f"ROI '{name}'", "its name says the boundary kind")
    if opts.target:
        hit = [r for r in here if r[0] == opts.target]
        if len(hit) != 1:
            raise ValueError(f"--target '{opts.target}' matches {len(hit)} ROI(s) in the SRS frame; ROIs: "
                             + ", ".join(sorted({r[0] for r in here})))
        log.choose("treated lesion", f"ROI '{hit[0][0]}'", "chosen with --target")
        return {"rtstruct": hit[0][1], "roi": hit[0][0]}, boundaries
    for kind, pattern in TARGET_PATTERNS:
        hit = [r for r in here if pattern.search(r[0]) and boundary_kind(r[0]) is None]
        if len(hit) == 1:
            why = f"ROI name matches {kind}" + (" (no GTV: the PTV includes a margin around the lesion)"
                                                 if kind == "PTV" else "")
            log.choose("treated lesion", f"ROI '{hit[0][0]}'", why)
            return {"rtstruct": hit[0][1], "roi": hit[0][0]}, boundaries
        if len(hit) > 1:
            raise AmbiguousImport(f"{len(hit)} ROIs could be the treated lesion ({kind}): "
                                  + ", ".join(f"'{r[0]}'" for r in hit) + "\nchoose one with --target NAME")
    raise AmbiguousImport("no ROI is named like a target (GTV, lesion, metastasis, PTV); ROIs: "
                          + ", ".join(f"'{r[0]}'" for r in here) + "\nchoose one with --target NAME")


def _reg_matrices(pat) -> list[tuple[str, dict]]:
    """(REG path, {frame UID: 4x4 matrix into the REG's frame}) for every rigid/affine spatial registration."""
    out = []
    for _, _, inst in _rt_objects(pat, "REG"):
        ds = inst.ds
        own = str(ds.get("FrameOfReferenceUID", ""))
        mats = {own: np.eye(4)} if own else {}
        for item in ds.get("RegistrationSequence", []) or []:
            frame = str(item.get("FrameOfReferenceUID", ""))
            for mr in item.get("MatrixRegistrationSequence", []) or []:
                m = np.eye(4)
                for ms in mr.get("MatrixSequence", []) or []:
                    kind = str(ms.get("FrameOfReferenceTransformationMatrixType", "RIGID")).upper()
                    if kind not in ("RIGID", "RIGID_SCALE", "AFFINE"):
                        raise ValueError(f"REG '{inst.path}': matrix type {kind} is not supported")
                    m = np.array([float(v) for v in ms.FrameOfReferenceTransformationMatrix]).reshape(4, 4) @ m
                mats[frame] = m
        out.append((inst.path, mats))
    return out


def _series_ref(se: dx.Series, base: str) -> dict:
    return {"dicom_series": se.uid, "files": [os.path.relpath(f, base) for f in se.sorted_files()]}


def _prescription(dose: dict, plan: dict | None, opts: ImportOptions, log: _Log) -> None:
    """The dose's prescription and fractions (in ``dose``): given, else the plan's; one fraction when nothing says."""
    rx = plan["prescription_gy"] if plan else None
    fx = plan["fractions"] if plan else None
    if opts.prescription_gy is not None:
        rx = opts.prescription_gy
        log.choose("prescription", f"{rx:g} Gy", "given with --prescription")
    elif rx is not None:
        log.choose("prescription", f"{rx:g} Gy", "the plan's TargetPrescriptionDose")
    else:
        raise ValueError("the RTDOSE has no RT plan in the export (or the plan gives no TargetPrescriptionDose): "
                         "give the prescription with --prescription GY (and --fractions N)")
    if opts.fractions is not None:
        fx = opts.fractions
        log.choose("fractions", str(fx), "given with --fractions")
    elif fx is None:
        fx = 1
        log.choose("fractions", "1", "not in the export (no plan or no NumberOfFractionsPlanned): assumed "
                                     "single-fraction SRS; give --fractions N otherwise")
    else:
        log.choose("fractions", str(fx), "the plan's NumberOfFractionsPlanned")
    dose.update(prescription_gy=float(rx), fractions=int(fx))


def _study_t1c(st, usable: list, chosen_uids: set, log: _Log):
    """The post-contrast T1 of one study and why (None when it has none): chosen with --t1c, else the best ranked;
    raises :class:`AmbiguousImport` when nothing or more than one could be it."""
    forced = [m for m in usable if m.series.uid in chosen_uids]
    if len(forced) > 1:
        raise ValueError(f"--t1c names {len(forced)} series of the study of {st.date}; give one per study")
    if forced:
        return forced[0], "chosen with --t1c"
    cands, tied = rank_t1c(usable)
    if not cands:
        unknown = [m for m in usable if m.weighting in ("T1", "unknown") and m.contrast == "unknown"]
        if unknown:
            raise AmbiguousImport(f"study of {st.date}: no series is marked post-contrast T1 (no contrast "
                                  "attributes, no description saying so); candidates:\n  "
                                  + "\n  ".join(m.describe() for m in unknown)
                                  + "\nchoose with --t1c SERIES_UID (one per study)")
        log.say(f"study of {st.date}: no post-contrast T1 (series: "
                + "; ".join(f"{m.series.description or m.series.uid} = {m.weighting}, {m.contrast}"
                            for m in usable) + "); not a timepoint")
        return None, ""
    if len(tied) > 1:
        raise AmbiguousImport(f"study of {st.date}: {len(tied)} post-contrast T1 series are equally good:\n  "
                              + "\n  ".join(m.describe() for m in tied)
                              + "\nchoose with --t1c SERIES_UID")
    t1c = cands[0]
    why = f"post-contrast T1 ({t1c.contrast_why}; {t1c.weighting_why})" + (
        f", {'3D' if t1c.is_3d else '2D'} {t1c.thickness_mm:g} mm preferred over "
        + "; ".join(f"'{m.series.description}' ({'3D' if m.is_3d else '2D'} {m.thickness_mm:g} mm)"
                    for m in cands[1:]) if len(cands) > 1 else "")
    return t1c, why


def _mr_timepoints(pat, opts: ImportOptions, log: _Log) -> list[dict]:
    """MR studies by date, each with its post-contrast T1 (and the FLAIR/T2 of the same study): the candidate
    timepoints {study, t1c, why, extra, date}."""
    by_study = []
    for st in pat.studies.values():
        mrs = [classify_mr(se) for se in st.series.values() if se.modality == "MR"]
        if mrs:
            by_study.append((st, mrs))
    if not by_study:
        raise ValueError(f"patient '{pat.id}': no MR series in the export")
    undated = [st for st, _ in by_study if _date(st.date) is None]
    if undated:
        raise ValueError("MR studies without a StudyDate cannot be ordered in time: "
                         + ", ".join(st.uid for st in undated))
    by_study.sort(key=lambda x: _date(x[0].date))
    timepoints = []
    for st, mrs in by_study:
        for m in mrs:
            if not m.usable:
                log.say(f"study {st.date}: {m.series.label()} not used: {m.why_not}")
        usable = [m for m in mrs if m.usable]
        t1c, why = _study_t1c(st, usable, set(opts.t1c), log)
        if t1c is None:
            continue
        extra = {}
        for kind in ("FLAIR", "T2"):
            ms = sorted((m for m in usable if m.weighting == kind and m is not t1c), key=MRInfo.rank)
            if ms:
                extra[kind.lower()] = ms[0]
        # Every other usable series, and why it is not the post-contrast T1 (a pre-contrast T1 says so here).
        for m in usable:
            if m is not t1c:
                role = next((f" (taken as the {k.upper()})" for k, e in extra.items() if e is m), "")
                log.say(f"study of {st.date}: {m.series.description or m.series.uid} not taken as the post-contrast "
                        f"T1: {m.weighting} ({m.weighting_why}), contrast {m.contrast} ({m.contrast_why}){role}")
        timepoints.append({"study": st, "t1c": t1c, "why": why, "extra": extra, "date": _date(st.date)})
    if not timepoints:
        raise ValueError(f"patient '{pat.id}': no study has a post-contrast T1")
    return timepoints


def _from_srs(timepoints: list, pat, plan: dict | None, dose: dict | None, log: _Log):
    """The timepoints from the SRS-time study on: the MR study nearest before the treatment (the plan's date, else
    the dose study's date; the earliest without either). Returns (timepoints, treatment date or None)."""
    treat_date = None
    if plan and plan["date"]:
        treat_date, treat_why = plan["date"], "the RT plan's date"
    elif dose is not None:
        dstudy = next(st for st in pat.studies.values() for se in st.series.values()
                      for i in se.instances if i.path == dose["files"][0])
        treat_date, treat_why = _date(dstudy.date), "the RT dose study's date (no plan date)"
    if treat_date is None:
        log.choose("SRS timepoint", f"study of {timepoints[0]['date']}", "no RT plan or dose: the earliest study")
        return timepoints, None
    before = [t for t in timepoints if t["date"] <= treat_date]
    if not before:
        raise ValueError(f"no post-contrast T1 on or before the treatment date {treat_date} ({treat_why}): "
                         "the SRS-time image is missing from the export")
    srs = before[-1]
    for t in before[:-1]:
        log.say(f"study of {t['date']}: before the SRS-time study; not a timepoint")
    log.choose("SRS timepoint", f"study of {srs['date']}",
               f"the MR study nearest before the treatment on {treat_date} ({treat_why})")
    return [srs] + [t for t in timepoints if t["date"] > treat_date], treat_date


def _timepoint_entries(timepoints: list, pat, srs_frame, out_dir: str, log: _Log) -> tuple[list, bool]:
    """case.json's timepoints ("srs", "fu1" ...), with a transform file written for each follow-up in another frame
    that a DICOM REG relates to the SRS-time frame. Returns (entries, whether every follow-up is registered)."""
    regs = _reg_matrices(pat)          # planning point -> follow-up point, for follow-ups in another frame
    tps, all_registered = [], True
    for n, t in enumerate(timepoints):
        label = "srs" if n == 0 else f"fu{n}"
        se = t["t1c"].series
        entry = {"label": label, "date": t["date"].isoformat(), "t1c": _series_ref(se, out_dir)}
        log.choose(f"timepoint '{label}' ({t['date']}) post-contrast T1", se.label(), t["why"])
        if t["extra"]:
            entry["extra"] = {k: _series_ref(m.series, out_dir) for k, m in t["extra"].items()}
            for k, m in t["extra"].items():
                log.choose(f"timepoint '{label}' {k}", m.series.label(), f"{m.weighting} of the same study "
                           f"({m.weighting_why})")
        frame = se.frame_of_reference
        if n and frame != srs_frame:
            hit = [(p, mats) for p, mats in regs if srs_frame in mats and frame in mats]
            if hit:
                path, mats = hit[0]
                m = np.linalg.inv(mats[frame]) @ mats[srs_frame]      # planning (LPS) -> follow-up (LPS)
                name = f"{label}_from_reg.tfm"
                _write_tfm(m, os.path.join(out_dir, name))
                entry["transform"] = name
                log.choose(f"timepoint '{label}' registration", f"spatial registration '{path}'",
                           "a DICOM REG relates its frame to the SRS-time frame: no registration is computed")
            else:
                all_registered = False
                log.say(f"timepoint '{label}': frame of reference differs from the SRS-time image and no REG relates "
                        "them: it will be registered automatically")
        tps.append(entry)
    return tps, all_registered


def import_dicom(folder: str | os.PathLike, out_dir: str | os.PathLike, options: ImportOptions | None = None,
                 *, index: dx.Index | None = None) -> dict:
    """Write ``out_dir/case.json`` (paths into ``folder``), ``import_log.txt`` and ``import_log.json``.

    Patient, plan and dose (:func:`_prescription`), the MR timepoints (:func:`_mr_timepoints`) from the SRS-time
    study on (:func:`_from_srs`), the treated lesion and boundaries, then the entries (:func:`_timepoint_entries`).
    Returns {"manifest": path, "log": [...], "choices": [...]}. Raises :class:`AmbiguousImport` (listing the
    candidates and the option that chooses) or ValueError (what is missing) before anything is written.
    """
    opts = options or ImportOptions()
    out_dir = os.path.abspath(os.fspath(out_dir))
    idx = index or dx.scan(folder)
    if os.path.commonpath([out_dir, idx.root]) == idx.root:
        raise ValueError(f"--out '{out_dir}' is inside the DICOM export '{idx.root}': write the case elsewhere "
                         "(the export is read only)")
    log = _Log()
    log.say(f"scanned '{idx.root}': {idx.files} DICOM file(s), {len(idx.skipped)} skipped")
    for path, why in idx.skipped[:20]:
        log.say(f"  skipped {path}: {why}")
    pat = _choose_patient(idx, opts, log)
    plan = _choose_plan(pat, opts, log)
    dose = _choose_dose(pat, plan, opts, log)
    if dose is not None:
        _prescription(dose, plan, opts, log)
    timepoints, treat_date = _from_srs(_mr_timepoints(pat, opts, log), pat, plan, dose, log)
    srs_frame = timepoints[0]["t1c"].series.frame_of_reference
    if dose is not None and dose["frame"] and srs_frame and dose["frame"] != srs_frame:
        raise ValueError(f"the dose is in frame of reference {dose['frame']} and the SRS-time T1 in {srs_frame}: "
                         "export the dose on the planning MR's frame (or register and resample it first); "
                         "a dose in another frame is not resampled by the import")
    target, boundaries = _choose_target(pat, srs_frame, opts, log)
    if target is None:
        raise ValueError(f"patient '{pat.id}': no RT structure set in the SRS-time frame names the treated lesion; "
                         "export the planning structure set (RTSTRUCT) with the GTV")
    os.makedirs(out_dir, exist_ok=True)
    tps, all_registered = _timepoint_entries(timepoints, pat, srs_frame, out_dir, log)
    # "registered": every follow-up is in the SRS frame or has its REG transform; otherwise assess registers
    # the follow-ups that have neither (a given transform is always used as given).
    spec = {"id": str(pat.id or "dicom-case"), "timepoints": tps, "registered": all_registered,
            "treated_lesion": {"rtstruct": os.path.relpath(target["rtstruct"], out_dir), "roi": target["roi"]}}
    if boundaries:
        spec["boundaries"] = {k: {"rtstruct": os.path.relpath(v["rtstruct"], out_dir), "roi": v["roi"]}
                              for k, v in boundaries.items()}
    if dose is not None:
        spec["dose"] = {"path": [os.path.relpath(f, out_dir) for f in dose["files"]],
                        "prescription_gy": dose["prescription_gy"], "fractions": dose["fractions"]}
        if treat_date:
            spec["dose"]["date"] = treat_date.isoformat()
    spec["metadata"] = {"imported_from": idx.root, "patient": {"name": pat.name, "id": pat.id}}
    manifest = os.path.join(out_dir, "case.json")
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)
    with open(os.path.join(out_dir, "import_log.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(log.lines) + "\n")
    with open(os.path.join(out_dir, "import_log.json"), "w", encoding="utf-8") as f:
        json.dump({"source": idx.root, "files": idx.files, "skipped": idx.skipped, "choices": log.choices,
                   "log": log.lines}, f, indent=2, default=str)
    return {"manifest": manifest, "log": log.lines, "choices": log.choices}


def _write_tfm(m: np.ndarray, path: str) -> None:
    import SimpleITK as sitk
    tf = sitk.AffineTransform(3)
    tf.SetMatrix(m[:3, :3].ravel().tolist())
    tf.SetTranslation(m[:3, 3].tolist())
    sitk.WriteTransform(tf, path)
