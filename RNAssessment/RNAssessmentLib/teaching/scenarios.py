"""The eight teaching scenarios of the case series (mission.md) and their PD counterparts, as phantom specs.

Coordinates are atlas-frame LPS mm (+x = patient Left). Each scenario lists its expected findings (ground truth):

* ``noncontiguous_across_boundary`` — timepoint, boundary kind, component name;
* ``contiguous_extension`` — a component that is new but connected to the treated lesion;
* ``boundary_enhancement`` — timepoint, boundary kind (enhancing falx/tentorium/pia/ependyma: a PD warning); the
  enhancement of the boundary reaches 7 mm along it beyond the lesion's margin, as meningeal spread does;
* ``open_ring`` — timepoint, boundary kind the non-enhancing side of the rim faces;
* ``mixed_response`` — interval (from, to) where one portion grew ≥ the minimum while another regressed.

The lists are exhaustive for these kinds: a kind not listed for a timepoint/interval must not be found there.
"""
from __future__ import annotations

import functools
import json
import os

from .phantom import Blob, Scenario, TimepointSpec

#: Where the teaching tables live (data read by the generators, shipped with the package).
TEACHING_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Teaching")
#: The scenarios as data: each with its design notes, timepoints (components as blobs) and expected findings.
SCENARIOS_JSON = os.path.join(TEACHING_DIR, "scenarios.json")


def tuples(x):
    """JSON lists as the tuples the specs hold (recursively); dicts and scalars as they are."""
    if isinstance(x, list):
        return tuple(tuples(v) for v in x)
    if isinstance(x, dict):
        return {k: tuples(v) for k, v in x.items()}
    return x


@functools.lru_cache(maxsize=None)
def read_table(path: str) -> dict:
    """A teaching table (JSON), read once per process; callers build new objects from it and never change it."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _timepoint(d: dict, misalign: bool) -> TimepointSpec:
    pose = tuple(d.get("pose", (0,) * 6))
    if d.get("misaligned") and not misalign:
        pose = (0,) * 6
    return TimepointSpec(label=d["label"], days=d["days"],
                         components={k: Blob(**tuples(b)) for k, b in d["components"].items()},
                         enhancing_boundaries=tuples(d.get("enhancing_boundaries", [])), pose=pose)


def _scenario(d: dict, misalign: bool) -> Scenario:
    kw = {k: (tuples(v) if isinstance(v, list) else v) for k, v in d.items()
          if k not in ("design_notes", "timepoints", "expected")}
    return Scenario(timepoints=[_timepoint(t, misalign) for t in d["timepoints"]],
                    expected=[dict(e) for e in d["expected"]], **kw)


def scenario_list(misalign: bool = True) -> list[Scenario]:
    """All scenarios (:data:`SCENARIOS_JSON`). ``misalign`` gives two RN cases rigidly misaligned follow-ups (as if
    from other scanners)."""
    return [_scenario(d, misalign) for d in read_table(SCENARIOS_JSON)["scenarios"]]


def get_scenario(name: str, misalign: bool = True) -> Scenario:
    for s in scenario_list(misalign):
        if s.name == name:
            return s
    raise KeyError(f"unknown scenario '{name}'; known: {', '.join(s.name for s in scenario_list())}")
