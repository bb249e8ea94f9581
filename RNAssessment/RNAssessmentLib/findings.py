"""Typed results: findings and the assessment they belong to, serialised to ``findings.json``.

``findings.json`` (a contract, extend but do not rename)::

    {"case": id, "findings": [{"kind", "timepoint"?, "from"?, "to"?, "boundary"?, "centroid_ras", "volume_mm3",
                               "gap_mm"?, "geodesic_mm"?, "boundary_enhancing"?, "dose": {"mean_gy", "max_gy"},
                               "evidence": {...}}],
     "summary": {...}}

Coordinates in findings are **RAS** mm (what a Slicer user reads in the slice views); see geometry.py.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from . import DISCLAIMER, __version__

FINDING_KINDS = ("noncontiguous_across_boundary", "noncontiguous_focus", "contiguous_extension",
                 "boundary_enhancement", "open_ring", "mixed_response", "concentric_growth", "regression")
#: Which way each kind points (mission.md): shown grouped in the report.
FAVOURS = {"noncontiguous_across_boundary": "RN", "noncontiguous_focus": "neutral", "open_ring": "RN",
           "mixed_response": "RN",
           "boundary_enhancement": "PD", "contiguous_extension": "PD", "concentric_growth": "PD",
           "regression": "neutral"}


@dataclasses.dataclass
class Finding:
    kind: str
    centroid_ras: tuple
    volume_mm3: float
    dose: dict
    evidence: dict = dataclasses.field(default_factory=dict)
    timepoint: str | None = None
    from_: str | None = None
    to: str | None = None
    boundary: str | None = None
    gap_mm: float | None = None
    geodesic_mm: float | None = None
    boundary_enhancing: bool | None = None
    grew_mm3: float | None = None
    regressed_mm3: float | None = None
    portions: list | None = None

    def __post_init__(self):
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind '{self.kind}'")

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        for k, v in dataclasses.asdict(self).items():
            if k == "kind" or v is None:
                continue
            d["from" if k == "from_" else k] = _clean(v)
        d["favours"] = FAVOURS[self.kind]
        return d


def _clean(v):
    """JSON-safe copy: tuples → lists, numpy scalars → floats, NaN → None, floats rounded to 0.01."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 3)
    return v


@dataclasses.dataclass
class Assessment:
    case_id: str
    findings: list
    summary: dict
    warnings: list = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {"case": self.case_id, "findings": [f.to_dict() for f in self.findings],
                "summary": _clean(self.summary), "warnings": list(self.warnings),
                "disclaimer": DISCLAIMER, "software": f"RNAssessment {__version__}"}

    def write(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
