"""``rnassess`` command line: demo, assess, dvh, isodose (arguments and output files are contracts)."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time

from . import DISCLAIMER, __version__


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_demo(args) -> int:
    from .io.case import load_manifest
    from .teaching.demo import write_demo
    t0 = time.time()
    manifests = write_demo(args.out, args.scenario or None, log=_log)
    index = []
    for m in manifests:
        case_dir = os.path.dirname(m)
        entry = {"case": os.path.basename(case_dir), "manifest": os.path.relpath(m, args.out)}
        if not args.no_assess:
            paths = _assess_and_write(load_manifest(m), os.path.join(case_dir, "assessment"),
                                      deidentify=args.deidentify, pdf=not args.no_pdf)
            entry["findings"] = os.path.relpath(paths["findings"], args.out)
            entry["report"] = os.path.relpath(paths["report"], args.out)
        index.append(entry)
    with open(os.path.join(args.out, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": index, "disclaimer": DISCLAIMER}, f, indent=2)
    _log(f"[demo] {len(manifests)} cases in {args.out} ({time.time() - t0:.0f} s); ground truth in */truth/")
    return 0


def _assess_and_write(case, out: str, *, levels=None, deidentify: bool = False, pdf: bool = True) -> dict:
    from .assess import assess_case, write_outputs
    phi = None
    if deidentify:
        from .output.deid import deidentify_case
        case, phi = deidentify_case(case)
        _log(f"[assess] de-identified as '{case.id}'")
    assessment, extra = assess_case(case, levels_gy=levels, log_callback=_log)
    paths = write_outputs(case, assessment, extra, out, pdf=pdf, phi=phi, log_callback=_log)
    for w in assessment.warnings:
        _log(f"warning: {w}")
    return paths


def cmd_assess(args) -> int:
    from .analysis.dose import parse_levels
    from .io.case import load_manifest
    case = load_manifest(args.manifest)
    levels = parse_levels(args.levels, case.dose.prescription_gy if case.dose else None) if args.levels else None
    paths = _assess_and_write(case, args.out, levels=levels, deidentify=args.deidentify, pdf=not args.no_pdf)
    _log(f"[assess] wrote {paths['findings']} and {paths['report']}")
    return 0


def _load_dose(path: str, prescription):
    from .io.images import read_image
    from .io.rtdose import read_rtdose
    if path.lower().endswith(".dcm"):
        img, info = read_rtdose(path, prescription)
        return img, info
    return read_image(path), None


def cmd_dvh(args) -> int:
    from .analysis.dose import structure_stats, validate_dose
    from .assess import write_dvh_csv, write_dvh_curves
    from .io.images import read_image
    from .io.structures import read_structures
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
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_dvh_csv(stats, args.out)
    write_dvh_curves(stats, os.path.splitext(args.out)[0] + "_curves.csv")
    _log(f"[dvh] wrote {args.out}")
    return 0


def cmd_isodose(args) -> int:
    from .analysis.dose import isodose_set, parse_levels, volume_above, write_surface
    dose, info = _load_dose(args.dose, args.prescription)
    levels = parse_levels(args.levels, args.prescription)
    iso = isodose_set(dose, levels, args.prescription)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "isodose_volumes.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["level_gy", "percent_of_prescription", "volume_cc", "voxel_volume_cc", "file"])
        for lv in iso:
            name = f"isodose_{lv.level_gy:g}Gy.vtk"
            write_surface(lv.surface_lps, os.path.join(args.out, name), ras=args.ras)
            pct = f"{lv.percent_of_prescription:.1f}" if lv.percent_of_prescription else ""
            w.writerow([f"{lv.level_gy:g}", pct, f"{lv.volume_cc:.3f}", f"{volume_above(dose, lv.level_gy):.3f}",
                        name])
            _log(f"[isodose] {lv.level_gy:g} Gy encloses {lv.volume_cc:.2f} cc")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnassess", description="Radiation necrosis vs progression after SRS: "
                                "boundaries, change in shape and dose. " + DISCLAIMER)
    p.add_argument("--version", action="version", version=f"rnassess {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="write the teaching cases (with ground truth) and assess them")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    d.add_argument("--no-assess", action="store_true", help="only write the cases")
    d.add_argument("--deidentify", action="store_true", help="de-identify the assessments (teaching export)")
    d.add_argument("--no-pdf", action="store_true", help="do not print report.pdf (needs Chromium)")
    d.set_defaults(func=cmd_demo)

    a = sub.add_parser("assess", help="assess a case from its manifest (case.json)")
    a.add_argument("manifest")
    a.add_argument("--out", required=True, help="output folder (findings.json, dvh.csv, ...)")
    a.add_argument("--levels", help="isodose levels, Gy or %% of prescription, e.g. 20,15,12,10")
    a.add_argument("--deidentify", action="store_true",
                   help="remove names, IDs, birth date and absolute dates (days since SRS instead) from every output")
    a.add_argument("--no-pdf", action="store_true", help="do not print report.pdf (needs Chromium)")
    a.set_defaults(func=cmd_assess)

    v = sub.add_parser("dvh", help="dose statistics per structure")
    v.add_argument("--dose", required=True, help="RTDOSE .dcm or dose image in Gy")
    v.add_argument("--structures", required=True, help="RTSTRUCT, .seg.nrrd, .seg.vtm or label image")
    v.add_argument("--reference", help="image whose grid the structures are sampled on (default: dose grid)")
    v.add_argument("--prescription", type=float, help="prescription Gy (needed for RELATIVE dose)")
    v.add_argument("--structure", action="append", help="only this structure (repeatable)")
    v.add_argument("--out", required=True, help="dvh.csv path")
    v.set_defaults(func=cmd_dvh)

    i = sub.add_parser("isodose", help="isodose surfaces and enclosed volumes")
    i.add_argument("--dose", required=True)
    i.add_argument("--levels", required=True, help="e.g. 20,15,12,10 or 100%%,50%%")
    i.add_argument("--prescription", type=float)
    i.add_argument("--ras", action="store_true", help="write surfaces in RAS (Slicer model convention)")
    i.add_argument("--out", required=True, help="output folder")
    i.set_defaults(func=cmd_isodose)
    return p


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"rnassess {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
