"""The case model (timepoints, treated lesion, boundaries, dose) and its JSON manifest.

A manifest names files relative to itself::

    {"id": "case-001",
     "timepoints": [{"label": "srs", "date": "2024-03-04", "t1c": "t0_t1c.nrrd", "lesion": "t0_lesion.nrrd"},
                    {"label": "fu1", ..., "transform": "fu1_to_srs.tfm"}, ...],   # transform: optional
     "treated_lesion": "t0_lesion.nrrd",
     "boundaries": {"falx": "falx.nrrd", ...}        # or one .seg.nrrd whose segment names say the kind
     "dose": {"path": "dose.dcm", "prescription_gy": 20, "fractions": 1, "date": "2024-03-04"},
     "registered": true, "metadata": {...}}

All images are LPS ``SimpleITK`` images. The first timepoint (earliest date) is the SRS-time (planning) image: the
treated lesion and boundaries are on its grid and the dose is in its frame. Follow-up masks are on their own
image's grid. ``registered`` says the follow-ups are already in the planning frame (same physical space).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re

import SimpleITK as sitk

from . import geometry as geo
from .images import (
    check_overlap,
    check_same_grid,
    dicom_identity,
    is_dicom_file,
    read_dicom_files,
    read_image,
    read_transform,
)
from .structures import read_mask
from .validate import check_dose_values, check_grey_levels

BOUNDARY_KINDS = ("falx", "tentorium", "ventricles", "csf")
BOUNDARY_SYNONYMS = {
    "falx": ("falx", "falx cerebri", "falx_cerebri", "interhemispheric", "interhemispheric fissure"),
    "tentorium": ("tentorium", "tentorium cerebelli", "tent", "tentorial"),
    "ventricles": ("ventricles", "ventricle", "lateral ventricles", "lateral ventricle", "ventricular system",
                   "ependyma"),
    "csf": ("csf", "sulci", "sulcus", "sulcal csf", "cisterns", "cistern", "subarachnoid", "liquor"),
}


def boundary_kind(name: str) -> str | None:
    """Boundary kind for a segment/structure name (case-insensitive, common synonyms), or None."""
    key = re.sub(r"[\s_\-]+", " ", name.strip().lower())
    for kind, names in BOUNDARY_SYNONYMS.items():
        if key in {re.sub(r"[\s_\-]+", " ", n) for n in names}:
            return kind
    return None


@dataclasses.dataclass
class Timepoint:
    label: str
    date: _dt.date | None
    t1c: sitk.Image
    lesion: sitk.Image | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    source: dict = dataclasses.field(default_factory=dict)    # what file each image came from
    #: Rigid/affine transform mapping SRS-image (planning) points, LPS mm, to this image's points — the
    #: SimpleITK/ITK resampling convention, what a Slicer transform file of a follow-up → SRS registration holds.
    #: Given, it replaces the automatic registration.
    transform: sitk.Transform | None = None
    #: The manifest says "lesion": null: no lesion mask, the automatic segmentation is meant.
    lesion_automatic: bool = False
    #: How the post-contrast T1's array was stored before the case put it in the canonical layout
    #: (geometry.CANONICAL_ORIENTATION): outputs referencing the source series (DICOM SEG) go back to it.
    orientation: str = ""
    #: The DICOM files of the post-contrast T1's series, when it was read from DICOM: outputs that reference the
    #: source series (DICOM SEG, RT structure set, key images) need them.
    dicom_files: list = dataclasses.field(default_factory=list)

    def canonicalise(self) -> None:
        """Every image of this timepoint in the canonical array layout, its grid held (geometry.canonical: no
        resampling)."""
        if not self.orientation:
            self.orientation = geo.orientation_code(self.t1c)
        self.t1c = geo.canonical(self.t1c)
        if self.lesion is not None:
            self.lesion = geo.canonical(self.lesion)
        self.extra = {k: geo.canonical(v) for k, v in self.extra.items()}


@dataclasses.dataclass
class Dose:
    image: sitk.Image               # Gy, LPS, planning frame
    prescription_gy: float
    fractions: int = 1
    date: _dt.date | None = None
    source: str = ""
    from_rt_import: bool = False    # read from DICOM RTDOSE (its scaling and unit applied)


@dataclasses.dataclass
class Case:
    id: str
    timepoints: list
    treated_lesion: sitk.Image | None = None
    boundaries: dict = dataclasses.field(default_factory=dict)
    dose: Dose | None = None
    registered: bool = True
    metadata: dict = dataclasses.field(default_factory=dict)
    manifest_path: str = ""
    #: Identifying data found in the inputs (DICOM attributes, manifest ``metadata.patient``): shown in reports,
    #: removed by ``--deidentify``. Keys are DICOM keywords (PatientName, PatientID, PatientBirthDate, ...).
    patient: dict = dataclasses.field(default_factory=dict)
    #: Scans before the SRS image that the manifest marks ``"prior": true``: listed, not analysed.
    prior: list = dataclasses.field(default_factory=list)
    #: What reading the inputs did that the reader should know (a probability map thresholded ...): warnings.
    notes: list = dataclasses.field(default_factory=list)
    #: Every file the case was read from (images, masks, boundaries, dose parts, series files): outputs must never
    #: overwrite one (:meth:`input_paths`).
    source_files: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        # Whatever built the case (a manifest, Slicer's nodes, a teaching generator), its images are analysed in one
        # array layout, so that no result depends on how a file stored its array.
        for tp in list(self.timepoints) + list(self.prior):
            tp.canonicalise()
        if self.treated_lesion is not None:
            self.treated_lesion = geo.canonical(self.treated_lesion)
        self.boundaries = {k: geo.canonical(v) for k, v in self.boundaries.items()}
        if self.dose is not None:
            self.dose.image = geo.canonical(self.dose.image)

    @property
    def planning(self) -> Timepoint:
        return self.timepoints[0]

    @property
    def srs_date(self) -> _dt.date | None:
        return self.dose.date if self.dose and self.dose.date else self.planning.date

    def days_since_srs(self, tp: Timepoint) -> int | None:
        if tp.date is None or self.srs_date is None:
            return None
        return (tp.date - self.srs_date).days

    def input_paths(self) -> set[str]:
        """Every file this case was read from (outputs must never overwrite these)."""
        paths = set()
        for tp in self.timepoints:
            paths.update(v for v in tp.source.values() if v)
        paths.update(self.source_files)
        if self.manifest_path:
            paths.add(self.manifest_path)
        return {os.path.abspath(p) for p in paths}

    def validate(self) -> None:
        """Raise ValueError naming the problem when the inputs do not fit together."""
        if not self.timepoints:
            raise ValueError(f"case '{self.id}': no timepoints")
        labels = [t.label for t in self.timepoints]
        if len(set(labels)) != len(labels):
            raise ValueError(f"case '{self.id}': timepoint labels are not unique: {labels}")
        for tp in self.timepoints:
            if tp.lesion is not None:
                check_same_grid(tp.lesion, tp.t1c, f"lesion mask of timepoint '{tp.label}'")
        ref = self.planning.t1c
        if self.treated_lesion is not None:
            check_same_grid(self.treated_lesion, ref, "treated lesion mask")
            if not sitk.GetArrayViewFromImage(self.treated_lesion).any():
                raise ValueError(f"case '{self.id}': the treated lesion mask is empty")
        for kind, m in self.boundaries.items():
            if kind not in BOUNDARY_KINDS:
                raise ValueError(f"case '{self.id}': unknown boundary kind '{kind}' (known: "
                                 f"{', '.join(BOUNDARY_KINDS)})")
            check_same_grid(m, ref, f"boundary '{kind}'")
        if self.dose is not None:
            check_overlap(self.dose.image, ref, f"dose '{self.dose.source}'")
            if self.treated_lesion is not None:
                covered = dose_covers(self.dose.image, self.treated_lesion)
                if covered < 0.99:
                    raise ValueError(f"case '{self.id}': the dose grid '{self.dose.source}' covers only "
                                     f"{100 * covered:.0f} % of the treated lesion: its dose cannot be known; "
                                     "check that this is the dose of this lesion's plan (and its full grid)")
            check_dose_values(self.dose.image, self.dose.prescription_gy,
                              f"case '{self.id}': dose '{self.dose.source}'", from_rt_import=self.dose.from_rt_import)


def dose_covers(dose: sitk.Image, mask: sitk.Image) -> float:
    """Fraction of the mask's voxel centres inside the dose grid (within half a dose voxel of its outer centres)."""
    import numpy as np

    from . import geometry as geo
    ijk = np.argwhere(geo.array_view(mask) > 0)
    if not len(ijk):
        return 1.0
    idx = geo.lps_to_index(dose, geo.index_to_lps(mask, ijk))
    size = np.array(dose.GetSize())
    inside = np.all((idx >= -0.5) & (idx <= size - 0.5), axis=1)
    return float(inside.mean())


def _parse_date(value, what: str) -> _dt.date | None:
    """ISO dates (YYYY-MM-DD, a time after it is ignored) and DICOM dates (YYYYMMDD); anything else, notably
    03/04/2024 (March or April?), is an error."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 8 and text.isdigit():
            return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return _dt.date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"{what}: date '{value}' is not an ISO date (YYYY-MM-DD) nor a DICOM date "
                         "(YYYYMMDD)") from None


#: The manifest's keys and the JSON types they take (the schema documented in the README).
#: An image is a file name (or a folder holding one DICOM series), or {"dicom_series": UID, "files": [...]} (what
#: ``rnassess import`` writes: the series' files in a DICOM export). A mask is a file name, or
#: {"rtstruct": FILE, "roi": NAME} (a structure of a DICOM RT structure set, rasterised on the image's grid).
_CASE_KEYS = {"id": (str, int), "timepoints": list, "registered": bool, "treated_lesion": (str, dict),
              "boundaries": (str, dict), "dose": dict, "metadata": dict}
_TIMEPOINT_KEYS = {"label": (str, int), "date": (str, int), "t1c": (str, dict), "lesion": (str, dict, type(None)),
                   "extra": dict, "transform": str, "prior": bool}
_DOSE_KEYS = {"path": (str, list), "prescription_gy": (int, float), "fractions": int, "date": (str, int)}
_SERIES_KEYS = {"dicom_series": str, "files": list}
_ROI_KEYS = {"rtstruct": str, "roi": str}
_LABEL_KEYS = {"path": str, "label": int}


def _check_keys(obj: dict, schema: dict, where: str, required=()) -> None:
    unknown = sorted(set(obj) - set(schema))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} (known: {', '.join(schema)}); check the spelling")
    for k in required:
        if k not in obj:
            raise ValueError(f"{where}: missing '{k}'")
    for k, v in obj.items():
        types = schema[k] if isinstance(schema[k], tuple) else (schema[k],)
        if v is None and type(None) in types:
            continue
        if v is None or isinstance(v, bool) and bool not in types or not isinstance(v, types):
            names = " or ".join({str: "a string", int: "an integer", float: "a number", bool: "true/false",
                                 list: "a list", dict: "an object", type(None): "null"}[t] for t in types)
            raise ValueError(f"{where}: '{k}' must be {names}, got {type(v).__name__} {json.dumps(v)[:60]}")


def check_manifest(spec, path: str) -> None:
    """The manifest's structure and types, before any file is read."""
    where = f"manifest '{path}'"
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a JSON object with 'timepoints', got {type(spec).__name__}")
    _check_keys(spec, _CASE_KEYS, where, required=("timepoints",))
    if not spec["timepoints"]:
        raise ValueError(f"{where}: needs a non-empty 'timepoints' list")
    for n, t in enumerate(spec["timepoints"]):
        if not isinstance(t, dict):
            raise ValueError(f"{where}: timepoint {n} must be an object, got {type(t).__name__}")
        _check_keys(t, _TIMEPOINT_KEYS, f"{where} timepoint {n}", required=("t1c",))
        _check_ref(t["t1c"], f"{where} timepoint {n} t1c", image=True)
        if t.get("lesion") is not None:
            _check_ref(t["lesion"], f"{where} timepoint {n} lesion", image=False)
        for name, rel in (t.get("extra") or {}).items():
            _check_ref(rel, f"{where} timepoint {n} extra '{name}'", image=True)
    if "treated_lesion" in spec:
        _check_ref(spec["treated_lesion"], f"{where} treated_lesion", image=False)
    if "dose" in spec:
        _check_keys(spec["dose"], _DOSE_KEYS, f"{where} dose", required=("path", "prescription_gy"))
        paths = spec["dose"]["path"]
        if isinstance(paths, list) and (not paths or not all(isinstance(p, str) for p in paths)):
            raise ValueError(f"{where} dose: 'path' must be a file name or a non-empty list of file names (dose "
                             "files summed, e.g. beam doses)")
        if not spec["dose"]["prescription_gy"] > 0:
            raise ValueError(f"{where} dose: 'prescription_gy' must be positive, got {spec['dose']['prescription_gy']}")
        if spec["dose"].get("fractions", 1) < 1:
            raise ValueError(f"{where} dose: 'fractions' must be at least 1")
    if isinstance(spec.get("boundaries"), dict):
        for k, v in spec["boundaries"].items():
            _check_ref(v, f"{where}: boundary '{k}'", image=False)


def _check_ref(value, where: str, *, image: bool) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a file name" + (" or a DICOM series" if image else
                                                            ", a labelled file or an RT structure")
                         + f", got {type(value).__name__}")
    if image:
        _check_keys(value, _SERIES_KEYS, where, required=("files",))
        if not value["files"] or not all(isinstance(f, str) for f in value["files"]):
            raise ValueError(f"{where}: 'files' must be a non-empty list of file names")
    elif "path" in value:
        _check_keys(value, _LABEL_KEYS, where, required=("path", "label"))
    else:
        _check_keys(value, _ROI_KEYS, where, required=("rtstruct", "roi"))


def _read_image_ref(value, base: str, what: str, notes: list,
                    allow_uneven: bool = False) -> tuple[sitk.Image, str, list]:
    """(image, source path, every file read) for a manifest image reference; ``allow_uneven``: a DICOM series with
    uneven slice positions is used as it is, said in ``notes``."""
    if isinstance(value, str):
        path = os.path.join(base, value)
        return read_image(path, what=what), path, [path]
    files = [os.path.join(base, f) for f in value["files"]]
    return read_dicom_files(files, what=f"{what} (DICOM series {value.get('dicom_series', '?')})",
                            allow_uneven=allow_uneven, notes=notes), files[0], files


def _read_mask_ref(value, base: str, reference: sitk.Image, what: str, notes: list,
                   lesion: bool = False) -> tuple[sitk.Image, str]:
    """(binary mask on ``reference``'s grid, source path) for a manifest mask reference: a file, a file and the
    label meant (``{"path", "label"}``) or an RT structure set's ROI. What was done to read it (a probability map
    thresholded) is added to ``notes``."""
    if isinstance(value, str) or "path" in value:
        path = os.path.join(base, value if isinstance(value, str) else value["path"])
        mask, note = read_mask(path, reference, what=what, lesion=lesion,
                               label=None if isinstance(value, str) else value["label"])
        if note:
            notes.append(note)
        return mask, path
    from .structures import mask_on_grid, read_rtstruct
    path = os.path.join(base, value["rtstruct"])
    rois = [s for s in read_rtstruct(path) if s.name == value["roi"]]
    if len(rois) != 1:
        raise ValueError(f"{what}: RT structure set '{path}' has {len(rois)} ROI(s) named '{value['roi']}'")
    if rois[0].is_empty:
        raise ValueError(f"{what}: ROI '{value['roi']}' of '{path}' has no contours")
    mask = sitk.Cast(mask_on_grid(rois[0], reference) > 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise ValueError(f"{what}: ROI '{value['roi']}' of '{path}' does not cover any voxel of the image "
                         "(another frame of reference?)")
    return mask, path


def _read_boundaries(spec, base: str, reference: sitk.Image, notes: list) -> tuple[dict, list]:
    from .structures import read_seg_nrrd
    out, sources = {}, []
    if isinstance(spec, str):
        path = os.path.join(base, spec)
        sources.append(path)
        for s in read_seg_nrrd(path):
            kind = boundary_kind(s.name)
            if kind is None:
                continue
            check_same_grid(s.mask, reference, f"boundary segment '{s.name}' in '{path}'")
            out[kind] = s.mask if kind not in out else sitk.Or(out[kind], s.mask)
        return out, sources
    for kind, rel in (spec or {}).items():
        k = boundary_kind(kind) or kind
        if k not in BOUNDARY_KINDS:
            raise ValueError(f"manifest: unknown boundary '{kind}' (known: {', '.join(BOUNDARY_KINDS)})")
        out[k], path = _read_mask_ref(rel, base, reference, f"boundary '{k}'", notes)
        sources.append(path)
    return out, sources


def _patient_identity(meta: dict, files: list) -> dict:
    """Identity from the manifest's ``metadata.patient`` ({"name", "id", "birth_date"} or DICOM keywords), then
    from every DICOM input (first value wins; dates of all inputs are kept so de-identification finds them)."""
    keys = {"name": "PatientName", "id": "PatientID", "birth_date": "PatientBirthDate"}
    out: dict = {}
    for k, v in (meta.get("patient") or {}).items():
        if v not in (None, ""):
            out[keys.get(k, k)] = str(v)
    for legacy, key in (("patient_name", "PatientName"), ("patient_id", "PatientID")):
        if meta.get(legacy) and key not in out:
            out[key] = str(meta[legacy])
    dates = set()
    for f in files:
        if not f:
            continue
        for k, v in dicom_identity(f).items():
            if k.endswith("Date"):
                dates.add(v)
            out.setdefault(k, v)
    if dates:
        out["_dates"] = sorted(dates)
    return out


def _order_timepoints(tps: list, dose_date: _dt.date | None, path: str) -> tuple[list, list]:
    """(timepoints in date order, the SRS image first; prior scans) from [(timepoint, marked prior)].

    The first timepoint listed is the SRS (planning) image. A follow-up dated before it, or before the dose's date,
    would silently become the baseline of every comparison (a follow-up typed with the wrong year read "day -100"
    and lost its finding): refused, unless the manifest marks it ``"prior": true`` (a scan before SRS, listed and
    not analysed). Two timepoints on one date are refused too: their order, and so every interval, would be a
    guess."""
    where = f"manifest '{path}'"
    prior = [t for t, p in tps if p]
    main = [t for t, p in tps if not p]
    if not main:
        raise ValueError(f"{where}: every timepoint is marked \"prior\"; the SRS image must not be")
    if all(t.date is not None for t in main):
        dates = [t.date for t in main]
        for d in sorted(set(dates)):
            same = [t.label for t in main if t.date == d]
            if len(same) > 1:
                raise ValueError(f"{where}: timepoints {', '.join(repr(x) for x in same)} share the date {d}: give "
                                 "each its own date (or keep one of them)")
        first = main[0]
        for t in main[1:]:
            limit, against = (first.date, f"the SRS image '{first.label}' ({first.date})")
            if dose_date is not None and dose_date > first.date:
                limit, against = dose_date, f"the dose ({dose_date})"
            if t.date < first.date or t.date < limit:
                raise ValueError(f"{where}: timepoint '{t.label}' ({t.date}) is dated before {against}; a follow-up "
                                 "must come after SRS: correct its date, or mark a scan before SRS \"prior\": true "
                                 "(listed, not analysed)")
        main.sort(key=lambda t: t.date)
    for t in prior:
        if t.date is None or main[0].date is None or t.date >= main[0].date:
            raise ValueError(f"{where}: timepoint '{t.label}' is marked \"prior\" but is not dated before the SRS "
                             f"image '{main[0].label}'")
    return main, sorted(prior, key=lambda t: t.date)


def load_manifest(path: str | os.PathLike, *, allow_uneven_slices: bool = False) -> Case:
    """Read a case manifest and every file it names. Errors name the manifest and the file.
    ``allow_uneven_slices``: DICOM series with a missing or repeated slice are used as they are (a warning) instead
    of refused."""
    path = os.path.abspath(os.fspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"manifest '{path}': file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest '{path}': not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"manifest '{path}': not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"manifest '{path}': cannot be read ({exc.strerror or exc})") from None
    base = os.path.dirname(path)
    check_manifest(spec, path)
    tps = []
    sources, notes = [], []
    for n, t in enumerate(spec["timepoints"]):
        label = str(t.get("label", f"t{n}"))
        img, t1c_path, t1c_files = _read_image_ref(t["t1c"], base, f"post-contrast T1 of timepoint '{label}'",
                                                   notes, allow_uneven_slices)
        check_grey_levels(img, f"post-contrast T1 of timepoint '{label}' ('{t1c_path}')")
        sources += t1c_files
        lesion = None
        src = {"t1c": t1c_path}
        if t.get("lesion"):
            lesion, src["lesion"] = _read_mask_ref(t["lesion"], base, img, f"lesion mask of timepoint '{label}'",
                                                   notes, lesion=True)
        extra = {}
        for name, rel in (t.get("extra") or {}).items():
            extra[name], src[name], files = _read_image_ref(rel, base, f"{name} of timepoint '{label}'", notes,
                                                            allow_uneven_slices)
            sources += files
        transform = None
        if t.get("transform"):
            src["transform"] = os.path.join(base, t["transform"])
            transform = read_transform(src["transform"], f"transform of timepoint '{label}'")
        tp = Timepoint(label=label, date=_parse_date(t.get("date"), f"manifest '{path}' timepoint '{label}'"),
                       t1c=img, lesion=lesion, extra=extra, source=src, transform=transform,
                       lesion_automatic="lesion" in t and t["lesion"] is None,
                       dicom_files=list(t1c_files) if isinstance(t["t1c"], dict) else [])
        tps.append((tp, bool(t.get("prior"))))
    dose_date = _parse_date((spec.get("dose") or {}).get("date"), f"manifest '{path}' dose")
    tps, prior = _order_timepoints(tps, dose_date, path)
    ref = tps[0].t1c
    treated = None
    if spec.get("treated_lesion"):
        treated, p = _read_mask_ref(spec["treated_lesion"], base, ref, "treated lesion mask", notes, lesion=True)
        sources.append(p)
    elif tps[0].lesion is not None:
        treated = tps[0].lesion
    boundaries, bsrc = _read_boundaries(spec.get("boundaries"), base, ref, notes)
    sources += bsrc
    dose = None
    if spec.get("dose"):
        d = spec["dose"]
        if "path" not in d:
            raise ValueError(f"manifest '{path}': 'dose' needs a 'path'")
        rx = d.get("prescription_gy")
        if rx is None:
            raise ValueError(f"manifest '{path}': 'dose' needs 'prescription_gy' (the prescribed dose in Gy)")
        parts = [os.path.join(base, q) for q in (d["path"] if isinstance(d["path"], list) else [d["path"]])]
        sources += parts
        p = parts[0]
        img = sitk.Cast(read_image(p, prescription_gy=rx, what="dose"), sitk.sitkFloat32)
        for q in parts[1:]:
            # A beam dose on another grid is resampled (linear) onto the first file's grid before adding.
            other = sitk.Cast(read_image(q, prescription_gy=rx, what="dose"), sitk.sitkFloat32)
            check_overlap(other, img, f"dose part '{q}'")
            img = img + sitk.Resample(other, img, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        dose = Dose(image=img, prescription_gy=float(rx),
                    from_rt_import=os.path.isfile(p) and is_dicom_file(p),
                    fractions=int(d.get("fractions", 1)), date=_parse_date(d.get("date"), f"manifest '{path}' dose"),
                    source=p)
    meta = dict(spec.get("metadata") or {})
    case = Case(id=str(spec.get("id", os.path.splitext(os.path.basename(path))[0])), timepoints=tps,
                treated_lesion=treated, boundaries=boundaries, dose=dose,
                registered=bool(spec.get("registered", True)), metadata=meta, manifest_path=path,
                patient=_patient_identity(meta, [t.source.get("t1c") for t in tps] + ([dose.source] if dose else [])),
                prior=prior, notes=notes, source_files=sources)
    case.validate()
    return case


def save_case(case: Case, out_dir: str | os.PathLike, *, ext: str = ".nrrd", dose_path: str | None = None) -> str:
    """Write a case as images + ``case.json`` into ``out_dir``; returns the manifest path.

    ``dose_path`` names a dose file already written into ``out_dir`` (e.g. an RTDOSE); otherwise the dose is saved as
    an image. Refuses to overwrite any file the case was read from.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    protect = case.input_paths()

    def write(img, name):
        p = os.path.join(out_dir, name)
        if os.path.abspath(p) in protect:
            raise ValueError(f"refusing to overwrite input file '{p}'")
        sitk.WriteImage(img, p, useCompression=True)
        return name

    tps = []
    for tp in case.timepoints:
        entry = {"label": tp.label, "date": tp.date.isoformat() if tp.date else None,
                 "t1c": write(tp.t1c, f"{tp.label}_t1c{ext}")}
        if tp.lesion is not None:
            entry["lesion"] = write(tp.lesion, f"{tp.label}_lesion{ext}")
        if tp.transform is not None:
            name = f"{tp.label}_to_srs.tfm"
            if os.path.join(out_dir, name) in protect:
                raise ValueError(f"refusing to overwrite input file '{os.path.join(out_dir, name)}'")
            sitk.WriteTransform(tp.transform, os.path.join(out_dir, name))
            entry["transform"] = name
        if tp.extra:
            entry["extra"] = {k: write(v, f"{tp.label}_{k}{ext}") for k, v in tp.extra.items()}
        tps.append(entry)
    spec = {"id": case.id, "timepoints": tps, "registered": case.registered}
    if case.treated_lesion is not None:
        spec["treated_lesion"] = write(case.treated_lesion, f"treated_lesion{ext}")
    if case.boundaries:
        spec["boundaries"] = {k: write(v, f"boundary_{k}{ext}") for k, v in case.boundaries.items()}
    if case.dose is not None:
        name = dose_path or write(case.dose.image, f"dose{ext}")
        spec["dose"] = {"path": name, "prescription_gy": case.dose.prescription_gy,
                        "fractions": case.dose.fractions,
                        "date": case.dose.date.isoformat() if case.dose.date else None}
    meta = {k: v for k, v in case.metadata.items() if not k.startswith("_")}
    if meta:
        spec["metadata"] = meta
    manifest = os.path.join(out_dir, "case.json")
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=2)
    return manifest

