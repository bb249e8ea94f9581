"""De-identification for teaching (``--deidentify``).

What goes: patient name, IDs, birth date, institution/physician/accession, and every absolute date (replaced by days
relative to SRS). The case id becomes a pseudonym and timepoint labels become ``srs``, ``fu1``, ``fu2``, ... (a label
may be a date). Images written by RNAssessment carry no DICOM header, and report images carry no burnt-in text, so
the remaining risk is free text: :func:`scrub` is run over every text output as a last check.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
import re

from .case import Case

REMOVED = "[removed]"
#: Metadata worth keeping in a teaching case (descriptive, never identifying).
KEEP_METADATA = ("title", "description", "paper_scenario", "counterpart", "synthetic")


def pseudonym(case: Case) -> str:
    key = f"{case.id}|{case.patient.get('PatientID', '')}".encode("utf-8")
    return "case-" + hashlib.sha256(key).hexdigest()[:8]


def _date_forms(value) -> set[str]:
    """The ways a date is written: 20240304, 2024-03-04, 2024/03/04, 04.03.2024, 03/04/2024, 04/03/2024."""
    if isinstance(value, _dt.date):
        d = value
    else:
        s = re.sub(r"[^0-9]", "", str(value))
        if len(s) < 8:
            return set()
        try:
            d = _dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
        except ValueError:
            return set()
    return {d.strftime("%Y%m%d"), d.isoformat(), d.strftime("%Y/%m/%d"), d.strftime("%d.%m.%Y"),
            d.strftime("%m/%d/%Y"), d.strftime("%d/%m/%Y")}


def phi_values(case: Case) -> list[str]:
    """Every identifying string of ``case`` (longest first), as it might appear in text outputs."""
    vals: set[str] = set()
    for k, v in case.patient.items():
        items = v if isinstance(v, (list, tuple)) else [v]
        for item in items:
            s = str(item).strip()
            if not s:
                continue
            if k.endswith("Date") or k == "_dates":
                vals |= _date_forms(s)
                continue
            vals.add(s)
            if k == "PatientName":
                parts = [p for p in re.split(r"[\^=\s,]+", s) if len(p) >= 3]
                vals |= set(parts)
                vals.add(" ".join(p for p in re.split(r"\^", s) if p))
    for tp in case.timepoints:
        if tp.date:
            vals |= _date_forms(tp.date)
    if case.dose is not None and case.dose.date:
        vals |= _date_forms(case.dose.date)
    if case.metadata.get("deidentified") is not True and case.id not in ("scene", "case"):
        vals.add(case.id)
    return sorted((v for v in vals if len(v) >= 3), key=len, reverse=True)


def scrub(text: str, values) -> tuple[str, int]:
    """Replace every value (case-insensitive, as a whole token: not inside a longer word or number) by
    ``[removed]``; returns (text, number of replacements)."""
    n = 0
    for v in values:
        text, k = re.subn(r"(?<![A-Za-z0-9])" + re.escape(v) + r"(?![A-Za-z0-9])", REMOVED, text,
                          flags=re.IGNORECASE)
        n += k
    return text, n


def deidentify_case(case: Case) -> tuple[Case, list[str]]:
    """A de-identified copy (images shared, not copied) and the PHI values of the original for :func:`scrub`.

    Dates stay inside the copy only to compute days since SRS; ``metadata['deidentified']`` tells every writer
    to print days instead."""
    values = phi_values(case)
    renamed = {}
    tps = []
    for n, tp in enumerate(case.timepoints):
        label = "srs" if n == 0 else f"fu{n}"
        renamed[tp.label] = label
        tps.append(dataclasses.replace(tp, label=label))
    meta = {k: copy.deepcopy(v) for k, v in case.metadata.items() if k in KEEP_METADATA}
    meta["deidentified"] = True
    new = dataclasses.replace(case, id=pseudonym(case),
                              timepoints=tps, metadata=meta, patient={})
    # Labels that are not the new ones and are long enough to find (dates, names) are scrubbed too.
    values = sorted(set(values) | {old for old in renamed if len(old) >= 4 and old not in renamed.values()},
                    key=len, reverse=True)
    return new, values
