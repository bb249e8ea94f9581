"""The teaching scenarios and real-MRI templates are data (Resources/Teaching/*.json): each entry must be a
coherent design, since every teaching and validation test derives its expected answers from it."""
import json

import pytest
from RNAssessmentLib.analysis.findings import FINDING_KINDS
from RNAssessmentLib.teaching import realmri as R
from RNAssessmentLib.teaching import scenarios as S

BOUNDARIES = {"falx", "tentorium", "ventricles", "csf"}


def test_every_scenario_has_its_twin_and_a_coherent_truth():
    scns = S.scenario_list()
    names = [s.name for s in scns]
    assert len(names) == len(set(names)) == 16
    for s in scns:
        twin = s.name[:-2] + ("pd" if s.name.endswith("rn") else "rn")
        assert twin in names and s.counterpart == s.name[-2:].upper(), s.name
        labels = [t.label for t in s.timepoints]
        assert [t.days for t in s.timepoints] == sorted(t.days for t in s.timepoints) and s.timepoints[0].days == 0
        for e in s.expected:
            assert e["kind"] in FINDING_KINDS, (s.name, e)
            if "timepoint" in e:
                tp = next(t for t in s.timepoints if t.label == e["timepoint"])
                assert e.get("component") is None or e["component"] in tp.components, (s.name, e)
                assert e.get("boundary") is None or e["boundary"] in BOUNDARIES, (s.name, e)
            else:
                assert labels.index(e["from"]) < labels.index(e["to"]), (s.name, e)
        if s.counterpart == "PD":      # a PD twin is never designed with an RN sign
            assert not [e for e in s.expected if e["kind"] in ("noncontiguous_across_boundary", "open_ring",
                                                                 "mixed_response")], s.name


def test_misalignment_is_a_pose_the_aligned_scenarios_drop():
    for a, b in zip(S.scenario_list(True), S.scenario_list(False)):
        for ta, tb in zip(a.timepoints, b.timepoints):
            assert ta.components == tb.components and not any(tb.pose)
    assert sum(any(t.pose) for s in S.scenario_list(True) for t in s.timepoints) == 4


@pytest.mark.parametrize("table", ["templates", "validation"])
def test_every_template_part_lies_on_one_side_and_its_truth_names_its_steps(table):
    tpls = R.templates() if table == "templates" else R.validation_templates()
    for t in tpls:
        labels = [st.label for st in t.steps]
        for b in t.boundary_truth:
            assert b["kind"] in FINDING_KINDS and b["timepoint"] in labels, (t.name, b)
            assert b.get("component") is None or b["component"] in next(
                st for st in t.steps if st.label == b["timepoint"]).parts, (t.name, b)
        for st in t.steps:
            for name, p in st.parts.items():
                assert len(p.centre) == len(p.radii) == 3 and min(p.radii) > 0 and p.side in (-1, 0, 1), (t.name, name)
                for kind, part, reach in st.enhance:
                    assert kind in BOUNDARIES and part in st.parts and reach > 0, (t.name, st.label)
        if t.counterpart == "PD":
            assert not [b for b in t.boundary_truth if b["kind"] in ("noncontiguous_across_boundary", "open_ring")]


def test_the_tables_carry_their_design_notes():
    with open(R.TEMPLATES_JSON, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["about"] and any(d.get("design_notes") for d in doc["templates"] + doc["validation"])
    with open(S.SCENARIOS_JSON, encoding="utf-8") as f:
        assert sum(bool(d.get("design_notes")) for d in json.load(f)["scenarios"]) >= 8
