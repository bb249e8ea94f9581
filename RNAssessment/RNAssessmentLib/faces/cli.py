"""``rnassess`` command line: demo, assess, import, dvh, isodose, cohort, review (arguments and outputs are
contracts)."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import sys
import time

from .. import DISCLAIMER, __version__

#: What the run is doing (for the one-line message of an internal error): the last "[case] step" logged.
_STATE = {"step": "start", "case": None, "out": None}


def _log(msg: str) -> None:
    if msg.startswith("[") and "]" in msg:
        tag, rest = msg[1:].split("]", 1)
        _STATE["step"] = rest.strip() or _STATE["step"]
        if tag not in ("assess", "demo", "dvh", "isodose", "cohort", "import"):
            _STATE["case"] = tag
    print(msg, file=sys.stderr, flush=True)


def cmd_demo(args) -> int:
    from ..io.case import load_manifest
    from ..output.cohort_table import write_cohort
    from ..teaching.demo import write_demo
    t0 = time.time()
    args.out = _checked_out(args.out)
    if args.real_mri and not os.path.isdir(args.real_mri):
        raise ValueError(f"--real-mri '{args.real_mri}' is not a folder: give the folder of the real brain MRIs "
                         f"(e.g. Testing/Data/real-mri)")
    manifests = write_demo(args.out, args.scenario or None, log=_log, real_mri=args.real_mri)
    index, records = [], []
    for m in manifests:
        case_dir = os.path.dirname(m)
        name = os.path.basename(case_dir)
        with open(os.path.join(case_dir, "truth", "truth.json"), encoding="utf-8") as f:
            outcome = json.load(f)["counterpart"]
        entry = {"case": name, "manifest": os.path.relpath(m, args.out), "outcome": outcome}
        if not args.no_assess:
            t_case = time.time()
            paths, _ = _assess_and_write(load_manifest(m), os.path.join(case_dir, "assessment"),
                                         deidentify=args.deidentify, pdf=not args.no_pdf)
            entry["findings"] = os.path.relpath(paths["findings"], args.out)
            entry["report"] = os.path.relpath(paths["report"], args.out)
            records.append({"case": name, "status": "ok", "outcome": outcome,
                            "outcome_source": "teaching ground truth", "findings": paths["findings"],
                            "report": paths["report"], "duration_s": round(time.time() - t_case, 1)})
        index.append(entry)
    with open(os.path.join(args.out, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": index, "disclaimer": DISCLAIMER}, f, indent=2)
    # The cases with their outcomes, as `rnassess cohort` reads them.
    with open(os.path.join(args.out, "outcomes.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["case", "manifest", "outcome", "outcome_source"])
        for e in index:
            w.writerow([e["case"], e["manifest"], e["outcome"], "teaching ground truth"])
    _log(f"[demo] {len(manifests)} cases in {args.out} ({time.time() - t0:.0f} s); ground truth in */truth/")
    if records:
        page = write_cohort(args.out, records, title="RNAssessment teaching cases")["html"]
        _log(f"[demo] open {page} first: every case, its findings and how each feature separates RN from PD")
    return 0


def cmd_cohort(args) -> int:
    from ..pipeline.cohort import run_cohort
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be at least 1")
    if args.scheduler and args.workers:
        raise ValueError("--workers sizes the local cluster; with --scheduler the cluster's own workers are used")
    args.out = _checked_out(args.out)
    r = run_cohort(args.source, args.out, scheduler=args.scheduler, workers=args.workers, resume=args.resume,
                   levels=args.levels, deidentify=args.deidentify, pdf=not args.no_pdf, log=_log)
    _log(f"[cohort] {len(r['ran'])} assessed, {len(r['unchanged'])} unchanged, {len(r['failed'])} failed"
         + (f" ({', '.join(r['failed'])})" if r["failed"] else "") + "; wrote "
         + ", ".join(os.path.relpath(p, args.out) for p in r["paths"].values()) + f" in {args.out}")
    if r["failed"]:
        return EXIT_ALL_FAILED if not (r["ran"] or r["unchanged"]) else EXIT_SOME_FAILED
    return 0


#: ``rnassess cohort`` exit codes beyond 0 (every case assessed or unchanged), 2 (bad input) and 3 (internal
#: error): every case failed, or some did (their records say why), so that a scheduled run can tell.
EXIT_ALL_FAILED = 1
EXIT_SOME_FAILED = 4


def _checked_out(out: str, what: str = "--out") -> str:
    """The output folder, checked before any work (atomic.check_output_folder): a symbolic link followed."""
    from ..output.atomic import check_output_folder
    return check_output_folder(out, what)


def _assess_and_write(case, out: str, *, levels=None, deidentify: bool = False, pdf: bool = True,
                      inputs: dict | None = None) -> tuple[dict, object]:
    """assess.assess_to_folder, remembering the case and folder for an internal error's message and log. Returns
    ({output name: path}, the Assessment)."""
    from ..pipeline.assess import assess_to_folder
    _STATE["case"], _STATE["out"] = case.id, os.path.abspath(out)
    return assess_to_folder(case, out, levels=levels, deidentify=deidentify, pdf=pdf, log_callback=_log,
                            inputs=inputs)


def cmd_review(args) -> int:
    import importlib.util

    from .review import find_assessments
    from .review_app import check_serving, token_from
    token = check_serving(args.host, token_from(args.token, args.token_file),
                          generate=args.generate_token)                     # before anything is read
    if args.port < 0 or args.port > 65535:
        raise ValueError(f"--port {args.port}: give 0-65535 (0 picks a free port)")
    if args.max_sessions < 1:
        raise ValueError(f"--max-sessions {args.max_sessions}: give at least 1")
    cases = find_assessments(args.folder)
    missing = [m for m in ("trame", "trame_slicer", "slicer") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"rnassess review needs {', '.join(missing)}: pip install \".[review]\" (trame-slicer with "
                         "Slicer's slicer-core)")
    for name in ("trame", "trame_client", "trame_server", "trame_rca", "trame_slicer", "wslink", "aiohttp"):
        logging.getLogger(name).setLevel(logging.WARNING)          # their INFO is a trace of every widget
    if args.one_session:
        # A browser's own review, started by the front below (review_sessions): it stops when the front does.
        from .review_app import serve, stop_with_stdin
        stop_with_stdin()
        return serve(args.folder, host=args.host, port=args.port, token=token, timeout=args.idle_timeout, log=_log)
    from .review_app import is_loopback
    from .review_sessions import serve_sessions
    _log(f"[review] {len(cases)} assessment(s) under {os.path.abspath(args.folder)}; read only; each browser gets "
         f"its own review (at most {args.max_sessions} at once)")
    return serve_sessions(args.folder, host=args.host, port=args.port, token=token,
                          loopback_only=is_loopback(args.host), n_cases=len(cases), max_sessions=args.max_sessions,
                          idle_timeout=args.idle_timeout, log=_log)


def _import_options(args):
    from ..io.dicom_import import ImportOptions
    return ImportOptions(patient=args.patient, t1c=tuple(args.t1c or ()), plan=args.plan, target=args.target,
                         prescription_gy=args.prescription, fractions=args.fractions)


def cmd_import(args) -> int:
    from ..io.dicom_import import import_dicom
    t0 = time.time()
    args.out = _checked_out(args.out)
    source = args.dicom_dir
    if args.from_pacs:
        from ..io.pacs import parse_address, retrieve_patient
        _need("pynetdicom", "--from-pacs")
        if args.dicom_dir:
            raise ValueError("give either a DICOM folder or --from-pacs, not both")
        if not args.patient:
            raise ValueError("--from-pacs needs --patient ID (the patient whose studies are retrieved)")
        addr = parse_address(args.from_pacs)
        source = os.path.join(args.out, "dicom")
        if os.path.isdir(source) and os.listdir(source):
            raise ValueError(f"'{source}' already holds files: give a new --out for a retrieved case")
        n = retrieve_patient(addr, args.patient, source, calling_aet=args.calling_aet)
        _log(f"[import] retrieved {n} instance(s) of patient '{args.patient}' from {addr} into {source}")
    elif not args.dicom_dir:
        raise ValueError("give the DICOM folder to import (or --from-pacs AET@HOST:PORT --patient ID)")
    r = import_dicom(source, args.out, _import_options(args))
    for line in r["log"]:
        _log(f"[import] {line}")
    _log(f"[import] wrote {r['manifest']} and import_log.txt ({time.time() - t0:.1f} s); assess it with: "
         f"rnassess assess {r['manifest']} --out ASSESSMENT_DIR")
    return 0


def _need(module: str, option: str) -> None:
    """A clear error, before any work, when an optional dependency of ``option`` is missing."""
    import importlib.util
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{option} needs the '{module}' package: pip install \".[dicom]\" (highdicom, pynetdicom)")


def _is_dicom_folder(path: str) -> bool:
    """A folder without case.json is a DICOM export; one holding no DICOM file at all is neither (said so)."""
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "case.json")):
        return False
    from ..io.images import is_dicom_file
    for root, _dirs, files in os.walk(path):
        if any(is_dicom_file(os.path.join(root, f)) or f.lower().endswith(".dcm") for f in files):
            return True
    raise ValueError(f"'{path}' is a folder with no case.json and no DICOM file: give a case manifest (case.json, "
                     "or the folder holding it) or a DICOM export")


def cmd_assess(args) -> int:
    import shutil
    import tempfile

    from ..analysis.dose import parse_levels
    from ..io.case import load_manifest
    imported = None
    args.out = _checked_out(args.out)
    if args.dicom_out:
        args.dicom_out = _checked_out(args.dicom_out, "--dicom-out")
    if args.send and not args.dicom_out:
        raise ValueError("--send stores the DICOM outputs: give --dicom-out DIR too")
    if args.send:
        from ..io.pacs import parse_address
        _need("pynetdicom", "--send")
        parse_address(args.send)             # a malformed address fails before the assessment, not after
    if _is_dicom_folder(args.manifest):
        # A DICOM export: import (into a scratch folder: the output folder is replaced as a whole), then assess.
        from ..io.dicom_import import import_dicom
        imported = tempfile.mkdtemp(prefix="rnassess-import-")
        try:
            r = import_dicom(args.manifest, imported, _import_options(args))
            for line in r["log"]:
                _log(f"[import] {line}")
            case = load_manifest(r["manifest"], allow_uneven_slices=args.allow_uneven_slices)
        except BaseException:
            shutil.rmtree(imported, ignore_errors=True)
            raise
    else:
        manifest = os.path.join(args.manifest, "case.json") if os.path.isdir(args.manifest) else args.manifest
        case = load_manifest(manifest, allow_uneven_slices=args.allow_uneven_slices)
    try:
        if args.dicom_out:
            _need("highdicom", "--dicom-out")
            if not case.planning.dicom_files:
                raise ValueError("--dicom-out needs a case whose images are DICOM series (a DICOM export, or a "
                                 "case.json written by 'rnassess import'): there is no source series to reference")
            if os.path.abspath(args.dicom_out) == os.path.abspath(args.out) or \
                    os.path.abspath(args.dicom_out).startswith(os.path.abspath(args.out) + os.sep):
                raise ValueError("--dicom-out must not be inside --out (the output folder is replaced as a whole)")
        levels = parse_levels(args.levels, case.dose.prescription_gy if case.dose else None) if args.levels else None
        # A DICOM case's manifest lives in a scratch folder: findings.json names the export and how it was read.
        inputs = ({"dicom": os.path.abspath(args.manifest),
                   "import_options": dataclasses.asdict(_import_options(args))} if imported else None)
        paths, assessment = _assess_and_write(case, args.out, levels=levels, deidentify=args.deidentify, pdf=not args.no_pdf,
                                  inputs=inputs)
        if imported and args.deidentify:
            # The import log names the source files, their patient, dates and UIDs: not in a de-identified output.
            with open(os.path.join(os.path.dirname(paths["findings"]), "import_log_left_out.txt"), "w",
                      encoding="utf-8") as f:
                f.write("The import log (which series, plan and dose were taken, and why) is left out of this "
                        "de-identified output: it names the source files, the patient's identifiers, the real "
                        "dates and the source UIDs. Run the assessment without --deidentify to keep it.\n")
        elif imported:
            for name in ("import_log.txt", "import_log.json"):
                shutil.copy(os.path.join(imported, name), os.path.join(os.path.dirname(paths["findings"]), name))
        if args.dicom_out:
            from ..output.dicom_out import write_dicom_outputs
            dicom_files = write_dicom_outputs(case, assessment, os.path.dirname(paths["findings"]), args.dicom_out,
                                              deidentify=args.deidentify, log=_log)
            _log(f"[assess] wrote {len(dicom_files)} DICOM file(s) in {args.dicom_out}")
            if args.send:
                from ..io.pacs import parse_address, store
                sent = store(dicom_files, parse_address(args.send), calling_aet=args.calling_aet)
                _log(f"[assess] sent {sent} DICOM file(s) to {args.send}")
    finally:
        if imported:
            shutil.rmtree(imported, ignore_errors=True)
    out = os.path.dirname(paths["findings"])
    written = sorted(os.path.relpath(os.path.join(root, f), out) for root, _, files in os.walk(out) for f in files)
    _log(f"[assess] wrote {len(written)} files in {out}: {', '.join(written)}")
    return 0


def _load_dose(path: str, prescription):
    from ..io.images import read_image
    from ..io.rtdose import read_rtdose
    if path.lower().endswith(".dcm"):
        img, info = read_rtdose(path, prescription)
        return img, info
    return read_image(path), None


def cmd_dvh(args) -> int:
    from ..analysis.dose import structure_stats, validate_dose
    from ..io.images import read_image
    from ..io.structures import read_structures
    from ..output.writers import write_dvh_csv, write_dvh_curves
    dose, info = _load_dose(args.dose, args.prescription)
    validate_dose(dose, f"dose '{args.dose}'")
    reference = read_image(args.reference) if args.reference else None
    structs = read_structures(args.structures, reference)
    if info is not None and info.frame_of_reference_uid:
        other = {s.frame_of_reference_uid for s in structs if s.frame_of_reference_uid}
        if other and info.frame_of_reference_uid not in other:
            raise ValueError(f"structures '{args.structures}' are in frame of reference {sorted(other)}, the dose "
                             f"'{args.dose}' in {info.frame_of_reference_uid}: they cannot be combined without a "
                             "registration")
    names = set(args.structure or [])
    stats, skipped = [], []
    for s in structs:
        if names and s.name not in names:
            continue
        if s.is_empty:
            skipped.append(s.name)
            _log(f"warning: structure '{s.name}' is empty and has no DVH")
            continue
        t = time.time()
        st = structure_stats(dose, s, grid=reference)
        stats.append(st)
        _log(f"[dvh] {s.name}: {st.volume_cc:.2f} cc, mean {st.mean_gy:.2f} Gy ({time.time() - t:.2f} s)")
        for w in st.warnings:
            _log(f"warning: {w}")
    if names - {s.name for s in structs}:
        raise ValueError(f"structures not found in '{args.structures}': {sorted(names - {s.name for s in structs})}")
    if not stats:
        raise ValueError(f"no non-empty structure in '{args.structures}'")
    from ..output.atomic import write_file_atomically
    inputs = [args.dose, args.structures, args.reference]
    curves = os.path.splitext(args.out)[0] + "_curves.csv"
    write_file_atomically(args.out, lambda p: write_dvh_csv(stats, p), inputs)
    write_file_atomically(curves, lambda p: write_dvh_curves(stats, p), inputs)
    _log(f"[dvh] wrote {args.out}")
    return 0


def cmd_isodose(args) -> int:
    from ..analysis.dose import isodose_set, parse_levels, volume_above, write_surface
    args.out = _checked_out(args.out)
    dose, info = _load_dose(args.dose, args.prescription)
    levels = parse_levels(args.levels, args.prescription)
    iso = isodose_set(dose, levels, args.prescription)
    from ..analysis.dose import levels_above_maximum
    for w in levels_above_maximum(dose, levels):
        _log(f"warning: {w}")
    from ..output.atomic import OutputFolder
    with OutputFolder(args.out, [args.dose]) as tmp, \
            open(os.path.join(tmp, "isodose_volumes.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["level_gy", "percent_of_prescription", "volume_cc", "voxel_volume_cc", "file"])
        for lv in iso:
            name = f"isodose_{lv.level_gy:g}Gy.vtk"
            write_surface(lv.surface_lps, os.path.join(tmp, name), ras=args.ras)
            pct = f"{lv.percent_of_prescription:.1f}" if lv.percent_of_prescription else ""
            w.writerow([f"{lv.level_gy:g}", pct, f"{lv.volume_cc:.3f}", f"{volume_above(dose, lv.level_gy):.3f}",
                        name])
            _log(f"[isodose] {lv.level_gy:g} Gy encloses {lv.volume_cc:.2f} cc")
    return 0


def _scenario_names() -> list:
    from ..teaching.scenarios import scenario_list
    return [s.name for s in scenario_list(misalign=False)]


def _real_demo_names() -> list:
    from ..teaching.realmri import DEMO_CASES
    return list(DEMO_CASES)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnassess", description="Radiation necrosis vs progression after SRS: "
                                "boundaries, change in shape and dose. " + DISCLAIMER)
    p.add_argument("--version", action="version", version=f"rnassess {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="write the teaching cases (with ground truth) and assess them")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--scenario", action="append", metavar="NAME",
                   help="only this scenario (repeatable); one of: " + ", ".join(_scenario_names()))
    d.add_argument("--real-mri", metavar="DIR",
                   help="also write the real-MRI teaching cases: lesions, foci, change, motion and dose implanted "
                        "into the real brain MRIs of DIR (e.g. Testing/Data/real-mri): "
                        + ", ".join(_real_demo_names()) + " (--scenario may name them)")
    d.add_argument("--no-assess", action="store_true", help="only write the cases")
    d.add_argument("--deidentify", action="store_true", help="de-identify the assessments (teaching export)")
    d.add_argument("--no-pdf", action="store_true", help="do not print report.pdf (needs Chromium)")
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("assess", help="assess a case from its manifest (case.json) or a DICOM export")
    a.add_argument("manifest", help="the case's manifest (case.json: timepoints with their post-contrast T1 and "
                                    "optional lesion masks, treated lesion, dose with prescription and fractions, "
                                    "boundaries; see README), a folder holding one, or a patient's DICOM export "
                                    "(imported as 'rnassess import' does; the import options below apply)")
    a.add_argument("--out", required=True, help="output folder (findings.json, dvh.csv, ...)")
    a.add_argument("--levels", help="isodose levels, Gy or %% of prescription, e.g. 20,15,12,10")
    a.add_argument("--deidentify", action="store_true",
                   help="remove names, IDs, birth date and absolute dates (days since SRS instead) from every output")
    a.add_argument("--no-pdf", action="store_true", help="do not print report.pdf (needs Chromium)")
    a.add_argument("--allow-uneven-slices", action="store_true",
                   help="use a DICOM series with a missing or repeated slice as it is (said in findings.json and the "
                        "report) instead of refusing it")
    a.add_argument("--dicom-out", metavar="DIR",
                   help="also write DICOM, referencing the source series (a case from DICOM): the findings and "
                        "grown/regressed portions as a Segmentation on each follow-up series, the isodose levels as "
                        "an RT Structure Set on the SRS-time series, the report as Encapsulated PDF, the key images "
                        "as Secondary Capture")
    a.add_argument("--calling-aet", metavar="AET", type=_aet, default="RNASSESS",
                   help="our own application entity title towards the PACS (--send; default RNASSESS): the PACS "
                        "must know it")
    a.add_argument("--send", metavar="AET@HOST:PORT",
                   help="store the --dicom-out files to a PACS by C-STORE (e.g. ORTHANC@127.0.0.1:4242)")
    _add_import_options(a)
    a.set_defaults(func=cmd_assess)

    m = sub.add_parser("import", help="a patient's DICOM export -> case.json (paths into the export) and an "
                                      "import log",
                       description="Scan a DICOM folder tree (any layout, headers only), pick per MR study date "
                                   "the post-contrast T1 (contrast attributes, then description; 3D, then thinnest "
                                   "slices), FLAIR/T2 of the same session, the RT plan, dose and target structure, "
                                   "the SRS-time study (nearest before the treatment) and spatial registrations; "
                                   "write case.json and import_log.txt saying why each was taken. Where the export "
                                   "allows two readings the import stops and lists the candidates and the option "
                                   "that chooses.")
    m.add_argument("dicom_dir", nargs="?", help="folder holding the patient's DICOM export (any layout; DICOMDIR "
                                                "not needed)")
    m.add_argument("--calling-aet", metavar="AET", type=_aet, default="RNASSESS",
                   help="our own application entity title towards the PACS (--from-pacs; default RNASSESS): the "
                        "PACS must know it and allow it C-FIND and C-GET")
    m.add_argument("--from-pacs", metavar="AET@HOST:PORT",
                   help="retrieve the studies of --patient from a PACS (C-FIND, then C-GET into CASE_DIR/dicom/) "
                        "instead of reading a folder")
    m.add_argument("--out", required=True, help="case folder to write (case.json, import_log.txt, "
                                                "import_log.json, a .tfm per DICOM registration); not inside "
                                                "the export")
    _add_import_options(m)
    m.set_defaults(func=cmd_import)

    v = sub.add_parser("dvh", help="dose statistics per structure")
    v.add_argument("--dose", required=True, help="RTDOSE .dcm or dose image in Gy")
    v.add_argument("--structures", required=True, help="RTSTRUCT, .seg.nrrd, .seg.vtm or label image")
    v.add_argument("--reference", help="image whose grid the structures are sampled on (default: dose grid)")
    v.add_argument("--prescription", type=float, help="prescription Gy (needed for RELATIVE dose)")
    v.add_argument("--structure", action="append", help="only this structure (repeatable)")
    v.add_argument("--out", required=True, help="dvh.csv path")
    v.set_defaults(func=cmd_dvh)

    c = sub.add_parser("cohort", help="assess many cases on Dask and tabulate how each feature separates RN from PD",
                       description="Assess every case of SOURCE (one Dask task per case), then write cohort.csv "
                                   "(one row per case and per finding), cohort.json and cohort.html (per-feature "
                                   "2x2 tables, sensitivity and specificity for RN with Wilson 95 %% intervals). "
                                   "Needs the 'cohort' extra: pip install \".[cohort]\". Exit code: 0 every case "
                                   "assessed (or unchanged), 4 some cases failed (their rows say why), 1 every case "
                                   "failed, 2 bad input, 3 internal error.")
    c.add_argument("source", help="a folder searched for case.json manifests, or a CSV with columns manifest and "
                                  "optionally case, outcome (RN, PD, mixed), outcome_source, outcome_date")
    c.add_argument("--out", required=True, help="output folder: cases/<case>/ as assess writes them, cohort.csv, "
                                                "cohort.json, cohort.html, cohort-state.json")
    c.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786 "
                                                          "(default: a local cluster on this machine)")
    c.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    c.add_argument("--resume", action="store_true", help="skip cases whose inputs, options and program version are "
                                                         "unchanged since their last successful run")
    c.add_argument("--levels", help="isodose levels for every case, Gy or %% of prescription")
    c.add_argument("--deidentify", action="store_true", help="de-identify every case's outputs")
    c.add_argument("--no-pdf", action="store_true", help="do not print report.pdf per case")
    c.set_defaults(func=cmd_cohort)

    r = sub.add_parser("review", help="serve an assessed case (or a cohort/demo folder) as a web app in Slicer's "
                                      "own views",
                       description="Serve FOLDER (an 'assess --out' folder, or a cohort or demo folder: a case "
                                   "picker) in the browser: the timepoints side by side in linked slice views with "
                                   "isodose lines (show/hide per level), the treated lesion, findings and "
                                   "boundaries, a 3D view, and the findings list (click one to centre the views on "
                                   "it). Read only. Loopback by default; any other --host needs a token. Needs the "
                                   "'review' extra: pip install \".[review]\".")
    r.add_argument("folder", help="assessment folder (holds findings.json), or a folder of several")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    r.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    r.add_argument("--token", help="secret the URL must carry (?token=...), 16+ characters; required with a --host "
                                   "other than loopback. Visible to local users in the process list: prefer "
                                   "--token-file or the environment variable RNASSESS_REVIEW_TOKEN")
    r.add_argument("--token-file", metavar="FILE", help="read the token from FILE (its first line)")
    r.add_argument("--generate-token", action="store_true", help="make a random token and print the URL with it")
    r.add_argument("--idle-timeout", type=int, metavar="S",
                   help="stop S seconds after the last browser's review ended (default: run until Ctrl-C)")
    r.add_argument("--max-sessions", type=int, default=4, metavar="N",
                   help="each browser gets its own review (case, selection, views); at most N at once (default 4: "
                        "each holds a Slicer scene)")
    r.add_argument("--one-session", action="store_true", help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_review)

    i = sub.add_parser("isodose", help="isodose surfaces and enclosed volumes")
    i.add_argument("--dose", required=True, help="RTDOSE .dcm or dose image in Gy (NRRD, NIfTI, MetaImage)")
    i.add_argument("--levels", required=True, help="isodose levels in Gy or %% of --prescription, highest first "
                                                   "or not, e.g. 20,15,12,10 or 100%%,50%%")
    i.add_argument("--prescription", type=float, help="prescription dose in Gy (needed for %% levels and for a "
                                                      "RELATIVE RTDOSE)")
    i.add_argument("--ras", action="store_true", help="write surfaces in RAS (Slicer model convention)")
    i.add_argument("--out", required=True, help="output folder")
    i.set_defaults(func=cmd_isodose)
    return p


def _add_import_options(p) -> None:
    g = p.add_argument_group("DICOM import (for a DICOM export)")
    g.add_argument("--patient", metavar="ID", help="PatientID to import when the export holds several patients")
    g.add_argument("--t1c", metavar="SERIES_UID", action="append",
                   help="SeriesInstanceUID of the post-contrast T1 of its study (repeatable, one per study), "
                        "when the headers do not say which it is or two are equally good")
    g.add_argument("--plan", metavar="LABEL", help="RT plan (RTPlanLabel, RTPlanName or SOPInstanceUID) when the "
                                                   "export holds several")
    g.add_argument("--target", metavar="NAME", help="ROI name of the treated lesion in the RT structure set "
                                                    "(default: the one GTV, else lesion/metastasis, else PTV)")
    g.add_argument("--prescription", type=float, metavar="GY",
                   help="prescription dose in Gy when the export has a dose but no plan (overrides the plan's)")
    g.add_argument("--fractions", type=int, metavar="N", help="number of fractions when there is no plan")


def _aet(text: str) -> str:
    """An application entity title: 1-16 characters, no backslash or control characters, not only spaces."""
    import argparse
    if not 1 <= len(text) <= 16 or not text.strip() or any(c == "\\" or ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError(f"'{text}' is no AE title (1-16 characters, no backslash)")
    return text


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Third-party chatter (highdicom's "copy ... attributes", a pynetdicom line per sub-operation) stays out of the
    # console: each transfer is one line of ours.
    for name in ("pynetdicom", "highdicom"):
        logging.getLogger(name).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    _STATE.update(step="start", case=None, out=getattr(args, "out", None))
    try:
        return args.func(args)
    except ValueError as exc:
        # Bad input: the message names the file, what is wrong and what to do.
        print(f"rnassess {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnassess {args.command}: interrupted; previous outputs left as they were", file=sys.stderr)
        return 130
    except Exception as exc:                        # a bug: one line, the traceback in a log file
        log_path = _write_error_log(args, exc)
        where = f" for case '{_STATE['case']}'" if _STATE["case"] else ""
        print(f"rnassess {args.command}: internal error at step '{_STATE['step']}'{where}: "
              f"{type(exc).__name__}: {exc}. Please report it with {log_path or 'the traceback'}.", file=sys.stderr)
        return 3


def _write_error_log(args, exc) -> str | None:
    """The traceback in ``rnassess-error.log`` inside ``--out`` (beside it for a file output), else a temp file."""
    import tempfile
    import traceback

    from ..output.atomic import ERROR_LOG, MARKER
    text = (f"rnassess {__version__} {args.command}; step '{_STATE['step']}', case '{_STATE['case']}'\n"
            f"argv: {sys.argv}\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    out = _STATE.get("out") or getattr(args, "out", None)
    candidates = []
    if out:
        out = os.path.abspath(out)
        if os.path.isfile(os.path.join(out, MARKER)):
            # A previous run's complete outputs stay as they were: the log goes beside them.
            candidates.append((os.path.dirname(out), f"{os.path.basename(out)}.{ERROR_LOG}"))
        else:
            candidates.append((out if (os.path.isdir(out) or not os.path.splitext(out)[1]) else
                               os.path.dirname(out), ERROR_LOG))
    candidates.append((tempfile.gettempdir(), f"rnassess-{os.getpid()}-error.log"))
    for folder, name in candidates:
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return None


if __name__ == "__main__":
    sys.exit(main())
