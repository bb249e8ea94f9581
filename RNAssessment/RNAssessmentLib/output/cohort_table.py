"""One table for a cohort of assessed cases, and how well each feature separates RN from PD.

Reads only what ``assess`` wrote (``findings.json``, ``report.html``): no images, so a page over hundreds of cases
is built in seconds by one process.

``cohort.csv`` (a contract: extend, do not rename) has one row per case (``row_type`` = ``case``: status, outcome,
dose, RANO-BM, which features were found) and one row per case × finding (``row_type`` = ``finding``: every number
of the finding's evidence). Columns are :data:`COLUMNS`, documented in the README; a value a row does not have is
empty. ``cohort.parquet`` holds the same table when ``pyarrow`` is installed.

Performance (``cohort.json`` and ``cohort.html``): for each feature (:data:`FEATURES`) and for the paper's
combined rule, among the cases with outcome RN or PD, the 2×2 table of "the feature points to RN" against the
outcome, with sensitivity and specificity for RN and Wilson 95 % intervals. An RN-favouring feature points to RN
when present; a PD-favouring feature points to RN when absent. The combined rule points to RN when at least one
RN-favouring feature is present and no PD-favouring one is. Cases with outcome ``mixed``, no outcome or a failed
assessment are counted beside the tables, never in them.
"""
from __future__ import annotations

import csv
import html
import json
import math
import os
import re

from .. import DISCLAIMER, __version__
from ..analysis.findings import FAVOURS, KIND_TITLES

#: Case-level features: name → (finding kinds, the direction the paper gives them, title).
FEATURES = {
    "across_boundary": (("noncontiguous_across_boundary",), "RN", "Non-contiguous enhancement across a boundary"),
    "open_ring": (("open_ring",), "RN", "Open ring"),
    "mixed_response": (("mixed_response",), "RN", "Mixed response"),
    "boundary_enhancement": (("boundary_enhancement",), "PD", "Boundary (meningeal/ependymal) enhancement"),
    "concentric_growth": (("concentric_growth",), "PD", "Growth as a whole"),
}
COMBINED = "combined_rule"
COMBINED_TITLE = "Combined rule (an RN-favouring feature and no PD-favouring one)"
OUTCOMES = ("RN", "PD", "mixed")

COLUMNS = [
    # both row types
    "row_type", "case", "status", "error", "outcome", "outcome_source", "outcome_date",
    # case rows
    "prescription_gy", "fractions", "timepoints", "days_last", "treated_volume_mm3", "v12_outside_target_cc",
    "constraint_metric", "constraint_limit_cc", "constraint_volume_cc", "constraint_within_limit",
    "rano_bm_last", "sld_change_from_nadir_pct_last", "volume_last_mm3",
    "n_findings", "n_favour_rn", "n_favour_pd",
    *[f"has_{k}" for k in FEATURES], f"has_{COMBINED}", "findings_json", "report", "duration_s",
    # finding rows
    "finding", "kind", "favours", "timepoint", "from", "to", "boundary", "centroid_r", "centroid_a", "centroid_s",
    "volume_mm3", "gap_mm", "geodesic_mm", "boundary_enhancing", "dose_mean_gy", "dose_max_gy", "dose_min_gy",
    "highest_enclosing_isodose_gy", "fraction_inside_isodose", "open_fraction", "eccentricity_mm",
    "grew_mm3", "regressed_mm3", "portions_grew", "portions_regressed", "total_change_pct",
    "surface_moved_out_fraction", "min_depth_mm", "boundary_source", "description",
    # added later (columns are only ever appended): a focus's every timepoint ("t1;t2"), the lesions it concerns
    "finding_timepoints", "lesions",
]


def case_features(findings: list[dict]) -> dict:
    """{feature: present} for one case's findings (``findings.json`` dicts), with the combined rule."""
    kinds = {f["kind"] for f in findings}
    out = {name: any(k in kinds for k in ks) for name, (ks, _, _) in FEATURES.items()}
    rn = any(out[n] for n, (_, d, _) in FEATURES.items() if d == "RN")
    pd = any(out[n] for n, (_, d, _) in FEATURES.items() if d == "PD")
    out[COMBINED] = rn and not pd
    return out


def points_to_rn(feature: str, present: bool) -> bool:
    if feature == COMBINED:
        return present
    return present if FEATURES[feature][1] == "RN" else not present


def wilson(k: int, n: int, z: float = 1.959964) -> dict | None:
    """Proportion k/n with its Wilson score interval (95 % for the default z); None when n = 0."""
    if n <= 0:
        return None
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"k": k, "n": n, "value": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}


def performance(cases: list[dict]) -> dict:
    """2×2 tables, sensitivity and specificity for RN per feature (see the module docstring). ``cases``: dicts with
    ``case``, ``status``, ``outcome`` and ``features`` ({feature: present})."""
    usable = [c for c in cases if c.get("status") == "ok" and c.get("outcome") in ("RN", "PD")]
    left_out = {
        "failed": sorted(c["case"] for c in cases if c.get("status") != "ok"),
        "mixed": sorted(c["case"] for c in cases if c.get("status") == "ok" and c.get("outcome") == "mixed"),
        "no_outcome": sorted(c["case"] for c in cases if c.get("status") == "ok" and not c.get("outcome")),
    }
    out = {}
    for feature in [*FEATURES, COMBINED]:
        cells = {"tp": [], "fn": [], "fp": [], "tn": []}
        for c in usable:
            rn_call = points_to_rn(feature, bool(c["features"][feature]))
            cell = ("tp" if rn_call else "fn") if c["outcome"] == "RN" else ("fp" if rn_call else "tn")
            cells[cell].append(c["case"])
        tp, fn, fp, tn = (len(cells[k]) for k in ("tp", "fn", "fp", "tn"))
        direction = "RN" if feature == COMBINED else FEATURES[feature][1]
        out[feature] = {
            "title": COMBINED_TITLE if feature == COMBINED else FEATURES[feature][2],
            "favours": direction,
            "points_to_rn_when": "present" if direction == "RN" else "absent",
            "table": {k: len(v) for k, v in cells.items()},
            "cases": {k: sorted(v) for k, v in cells.items()},
            "sensitivity": wilson(tp, tp + fn), "specificity": wilson(tn, tn + fp)}
    return {"n_cases": len(cases), "n_in_tables": len(usable), "left_out": left_out, "features": out}


def _num(v, nd=3):
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return round(v, nd)
    return v


def case_rows(record: dict, findings_doc: dict | None) -> list[dict]:
    """The case row and its finding rows. ``record``: case, status, error, outcome, outcome_source, outcome_date,
    findings (path), report (path), duration_s; ``findings_doc``: the parsed findings.json (None if failed)."""
    base = {k: record.get(k) for k in ("case", "status", "error", "outcome", "outcome_source", "outcome_date")}
    row = {"row_type": "case", **base, "findings_json": record.get("findings_rel"),
           "report": record.get("report_rel"), "duration_s": record.get("duration_s")}
    rows = [row]
    if not findings_doc:
        return rows
    s = findings_doc.get("summary", {})
    findings = findings_doc.get("findings", [])
    dose = s.get("dose") or {}
    tl = s.get("treated_lesion") or {}
    constraint = tl.get("normal_brain_constraint") or {}
    course = s.get("time_course") or []
    last = course[-1] if course else {}
    feats = case_features(findings)
    row.update({"prescription_gy": dose.get("prescription_gy"), "fractions": dose.get("fractions"),
                "timepoints": len(s.get("timepoints") or []), "days_last": last.get("days_since_srs"),
                "treated_volume_mm3": tl.get("volume_mm3"), "v12_outside_target_cc": tl.get("v12_outside_target_cc"),
                "constraint_metric": constraint.get("metric"), "constraint_limit_cc": constraint.get("limit_cc"),
                "constraint_volume_cc": constraint.get("volume_cc"),
                "constraint_within_limit": constraint.get("within_limit"),
                "rano_bm_last": last.get("rano_bm"), "sld_change_from_nadir_pct_last": last.get("change_from_nadir_pct"),
                "volume_last_mm3": last.get("volume_mm3"), "n_findings": len(findings),
                "n_favour_rn": sum(f.get("favours") == "RN" for f in findings),
                "n_favour_pd": sum(f.get("favours") == "PD" for f in findings),
                **{f"has_{k}": v for k, v in feats.items()}})
    for i, f in enumerate(findings, 1):
        ev = f.get("evidence") or {}
        d = f.get("dose") or {}
        c = f.get("centroid_ras") or [None, None, None]
        portions = f.get("portions") or []
        inside = d.get("fraction_inside_isodose")
        rows.append({"row_type": "finding", **base, "finding": f"F{i}", "kind": f["kind"],
                     "favours": f.get("favours", FAVOURS.get(f["kind"])), "timepoint": f.get("timepoint"),
                     "from": f.get("from"), "to": f.get("to"), "boundary": f.get("boundary"),
                     "centroid_r": c[0], "centroid_a": c[1], "centroid_s": c[2], "volume_mm3": f.get("volume_mm3"),
                     "gap_mm": f.get("gap_mm"), "geodesic_mm": f.get("geodesic_mm"),
                     "boundary_enhancing": f.get("boundary_enhancing"), "dose_mean_gy": d.get("mean_gy"),
                     "dose_max_gy": d.get("max_gy"), "dose_min_gy": d.get("min_gy"),
                     "highest_enclosing_isodose_gy": d.get("highest_enclosing_isodose_gy"),
                     "fraction_inside_isodose": json.dumps(inside, sort_keys=False) if inside else None,
                     "open_fraction": ev.get("open_fraction"), "eccentricity_mm": ev.get("eccentricity_mm"),
                     "grew_mm3": f.get("grew_mm3"), "regressed_mm3": f.get("regressed_mm3"),
                     "portions_grew": sum(p.get("kind") == "grew" for p in portions) if portions else None,
                     "portions_regressed": sum(p.get("kind") == "regressed" for p in portions) if portions else None,
                     "total_change_pct": ev.get("total_change_pct"),
                     "surface_moved_out_fraction": ev.get("surface_moved_out_fraction"),
                     "min_depth_mm": ev.get("min_depth_mm"), "boundary_source": ev.get("boundary_source"),
                     "description": f.get("description"),
                     "finding_timepoints": ";".join(f.get("timepoints") or []) or None,
                     "lesions": ";".join(f.get("lesions") or []) or None})
    return rows


def _first_key_image(report_path: str | None) -> str | None:
    """The case's thumbnail: its first finding (RN, then PD, then the rest: the display order) on its own scan, the
    report's first key image marked ``data-own`` (a self-contained SVG); a report without the mark (an older one)
    gives its first key image."""
    if not report_path or not os.path.isfile(report_path):
        return None
    with open(report_path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'<figure class="panel" data-own="1">\s*(<svg\b[^>]*>.*?</svg>)', text, re.S)
    m = m or re.search(r"(<svg\b[^>]*>.*?</svg>)", text, re.S)
    if not m or "data:image/png" not in m.group(1):
        return None
    return m.group(1)


def write_cohort(out_dir: str, records: list[dict], *, title: str = "Cohort") -> dict:
    """cohort.csv (+ .parquet), cohort.json and cohort.html in ``out_dir`` from per-case ``records`` (see
    :func:`case_rows`; ``findings`` and ``report`` are paths, made relative to ``out_dir``). Returns the paths."""
    from .atomic import write_file_atomically

    def write_text_atomic(path, text):
        def write(tmp):
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        write_file_atomically(path, write)
    os.makedirs(out_dir, exist_ok=True)
    rows, cases = [], []
    for r in records:
        r = dict(r)
        doc = None
        if r.get("status") == "ok" and r.get("findings") and os.path.isfile(r["findings"]):
            with open(r["findings"], encoding="utf-8") as f:
                doc = json.load(f)
            r["findings_rel"] = os.path.relpath(r["findings"], out_dir)
            if r.get("report") and os.path.isfile(r["report"]):
                r["report_rel"] = os.path.relpath(r["report"], out_dir)
        elif r.get("status") == "ok":
            r["status"], r["error"] = "failed", f"findings.json missing: {r.get('findings')}"
        mine = case_rows(r, doc)
        rows += mine
        cases.append({"case": r["case"], "status": r["status"], "outcome": r.get("outcome"),
                      "outcome_source": r.get("outcome_source"), "error": r.get("error"),
                      "features": case_features(doc["findings"]) if doc else None,
                      "findings": [(f"F{i}", f["kind"], f.get("favours")) for i, f in enumerate(doc["findings"], 1)]
                      if doc else [], "report": r.get("report"), "report_rel": r.get("report_rel")})
    paths = {"csv": os.path.join(out_dir, "cohort.csv"), "json": os.path.join(out_dir, "cohort.json"),
             "html": os.path.join(out_dir, "cohort.html")}
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _num(row.get(k)) for k in COLUMNS})
    write_text_atomic(paths["csv"], buf.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
        table = pacsv.read_csv(paths["csv"], convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in ("error", "description", "fraction_inside_isodose", "case",
                                                   "outcome_date", "findings_json", "report")}))
        write_file_atomically(paths["csv"][:-4] + ".parquet", lambda tmp: pq.write_table(table, tmp))
        paths["parquet"] = paths["csv"][:-4] + ".parquet"
    except ImportError:
        pass
    perf = performance(cases)
    doc = {"software": {"name": "rnassess", "version": __version__}, "disclaimer": DISCLAIMER, "title": title,
           "definitions": __doc__.split("Performance", 1)[1].strip(), "performance": perf,
           "cases": [{k: c[k] for k in ("case", "status", "outcome", "outcome_source", "error", "features")}
                     for c in cases]}
    write_text_atomic(paths["json"], json.dumps(doc, indent=2))
    write_text_atomic(paths["html"], cohort_html(title, cases, perf))
    return paths


# ----------------------------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------------------------

def esc(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _pct(w: dict | None) -> str:
    if not w:
        return "n/a"
    return f"{100 * w['value']:.0f} % ({w['k']}/{w['n']}; 95 % CI {100 * w['low']:.0f}-{100 * w['high']:.0f} %)"


#: A forest-plot label is wrapped at this many characters a line (12 px type: at most 7 px a character fills the
#: 300 px left of the plot less its 8 px gap), never cut.
FOREST_LABEL_CHARS = 40


def wrap_words(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words (a longer word stands alone)."""
    lines: list[str] = []
    for word in str(text).split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def forest_plot(perf: dict, width: int = 720) -> str:
    """Sensitivity and specificity for RN with their Wilson intervals, one line per feature (SVG)."""
    feats = list(perf["features"].items())
    n_lines = max([len(wrap_words(f["title"], FOREST_LABEL_CHARS)) for _, f in feats] or [1])
    left, right, row_h, top = 300, 30, max(26, 14 * n_lines + 6), 34
    h = top + row_h * len(feats) + 30
    plot_w = width - left - right

    def X(v):
        return left + v * plot_w
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}" '
             f'role="img" aria-label="Sensitivity and specificity for RN with 95 % intervals" class="forest">']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{X(t):.1f}" y1="{top - 8}" x2="{X(t):.1f}" y2="{h - 26}" stroke="#ccc"/>'
                     f'<text x="{X(t):.1f}" y="{h - 10}" font-size="11" text-anchor="middle">{100 * t:.0f} %</text>')
    parts.append(f'<circle cx="{left}" cy="12" r="4" fill="#0077BB"/><text x="{left + 8}" y="16" font-size="11">'
                 f'sensitivity for RN</text><rect x="{left + 140}" y="8" width="8" height="8" fill="#EE7733"/>'
                 f'<text x="{left + 152}" y="16" font-size="11">specificity for RN</text>')
    for i, (name, f) in enumerate(feats):
        y = top + row_h * i + row_h / 2
        lines = wrap_words(f["title"], FOREST_LABEL_CHARS)
        y0 = y + 4 - 7 * (len(lines) - 1)
        parts.append(f'<text x="{left - 8}" y="{y0:.1f}" font-size="12" text-anchor="end">' + "".join(
            f'<tspan x="{left - 8}" dy="{0 if k == 0 else 14}">{esc(line)}</tspan>' for k, line in enumerate(lines))
            + "</text>")
        for off, key, colour, mark in ((-5, "sensitivity", "#0077BB", "circle"), (5, "specificity", "#EE7733", "rect")):
            w = f[key]
            if not w:
                continue
            yy = y + off
            parts.append(f'<line x1="{X(w["low"]):.1f}" y1="{yy:.1f}" x2="{X(w["high"]):.1f}" y2="{yy:.1f}" '
                         f'stroke="{colour}" stroke-width="2"/>')
            if mark == "circle":
                parts.append(f'<circle cx="{X(w["value"]):.1f}" cy="{yy:.1f}" r="4" fill="{colour}"/>')
            else:
                parts.append(f'<rect x="{X(w["value"]) - 4:.1f}" y="{yy - 4:.1f}" width="8" height="8" '
                             f'fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.disclaimer{background:#fff4d6;
padding:8px 12px;border-left:4px solid #e0a800}.cases{display:grid;grid-template-columns:repeat(auto-fill,
minmax(230px,1fr));gap:12px}.case{border:1px solid #ccc;padding:8px;font-size:12px}.case svg{width:100%;height:auto}
.failed{background:#fde8e8}.RN{color:#0077BB}.PD{color:#CC3311}.small{font-size:12px;color:#555}"""


def cohort_html(title: str, cases: list[dict], perf: dict) -> str:
    n = perf["n_in_tables"]
    lo = perf["left_out"]
    out = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
           f'<style>{CSS}</style></head><body><h1>{esc(title)}</h1>',
           f'<p class="disclaimer">{esc(DISCLAIMER)} The figures below describe how often each measured feature '
           f'was found in cases with a known outcome; they are not a validated test.</p>',
           f'<p>{len(cases)} cases; {n} with outcome RN or PD and a completed assessment are in the tables'
           + "".join(f"; {len(v)} {k.replace('_', ' ')} ({esc(', '.join(v))})" for k, v in lo.items() if v)
           + '.</p>', '<h2>Sensitivity and specificity for RN</h2>',
           '<p class="small">An RN-favouring feature points to RN when present, a PD-favouring one when absent; the '
           'combined rule points to RN when an RN-favouring feature is present and no PD-favouring one. Wilson '
           '95 % intervals.</p>', forest_plot(perf),
           '<table><tr><th>Feature</th><th>favours</th><th>points to RN, outcome RN</th>'
           '<th>not, outcome RN</th><th>points to RN, outcome PD</th><th>not, outcome PD</th><th>Sensitivity</th>'
           '<th>Specificity</th></tr>']
    for name, f in perf["features"].items():
        cells = "".join(f'<td title="{esc(", ".join(f["cases"][k]))}">{f["table"][k]}'
                        f'<div class="small">{esc(", ".join(f["cases"][k]))}</div></td>'
                        for k in ("tp", "fn", "fp", "tn"))
        out.append(f'<tr id="feature-{esc(name)}"><td>{esc(f["title"])}</td><td class="{f["favours"]}">'
                   f'{f["favours"]}</td>{cells}<td>{_pct(f["sensitivity"])}</td><td>{_pct(f["specificity"])}</td></tr>')
    out.append('</table><h2>Cases</h2><div class="cases">')
    for c in cases:
        link = c.get("report_rel")
        thumb = _first_key_image(c.get("report")) if c["status"] == "ok" else None
        body = thumb or '<p class="small">no key image</p>'
        if link:
            body = f'<a href="{esc(link)}">{body}</a>'
        found = ", ".join(f'<span class="{fav}" title="{esc(kind)}">{esc(num)} {esc(KIND_TITLES.get(kind, kind))}'
                          f'</span>' for num, kind, fav in c["findings"])
        status = "" if c["status"] == "ok" else f'<p><b>failed:</b> {esc(c.get("error"))}</p>'
        out.append(f'<div class="case{" failed" if c["status"] != "ok" else ""}" id="case-{esc(c["case"])}">'
                   f'<b>{esc(c["case"])}</b> <span class="small">outcome: {esc(c.get("outcome") or "unknown")}'
                   f'{(" (" + esc(c["outcome_source"]) + ")") if c.get("outcome_source") else ""}</span>'
                   f'{status}{body}<p class="small">{found or "no findings"}</p>'
                   + (f'<a href="{esc(link)}">report</a>' if link else "") + '</div>')
    out.append(f'</div><p class="small">rnassess {esc(__version__)}</p></body></html>')
    return "".join(out)
