"""Comparing an assessment with an exhaustive ground truth (teaching phantoms and real-MRI implants)."""

from RNAssessmentLib.analysis.findings import CHANGE_KINDS as CHANGE
WITH_BOUNDARY = ("noncontiguous_across_boundary", "boundary_enhancement", "open_ring")


def truth_problems(assessment, expected) -> list:
    """What differs: boundary kinds exactly (kind, timepoint, boundary), change kinds per interval exactly or
    within the listed acceptable answers. An entry ``{"kind": None, "timepoint", "either_way": kind}`` (a design
    on a threshold) accepts that kind at that timepoint or its absence."""
    def key(d):
        return (d["kind"], d.get("timepoint"), d.get("boundary") if d["kind"] in WITH_BOUNDARY else None)
    found = [f.to_dict() for f in assessment.findings]
    either = {(e["either_way"], e.get("timepoint"), None) for e in expected if e.get("either_way")}
    got = {key(f) for f in found if f["kind"] not in CHANGE} - either
    exp = {key(e) for e in expected if e["kind"] and e["kind"] not in CHANGE}
    problems = [f"extra {x}" for x in sorted(got - exp, key=str)] + [f"missing {x}" for x in sorted(exp - got, key=str)]
    g_iv: dict = {}
    for f in found:
        if f["kind"] in CHANGE:
            g_iv.setdefault((f["from"], f["to"]), set()).add(f["kind"])
    e_iv: dict = {}
    ok_iv: dict = {}
    for e in expected:
        if e.get("acceptable"):
            ok_iv[(e["from"], e["to"])] = [set(a) for a in e["acceptable"]]
        elif e["kind"] in CHANGE:
            e_iv.setdefault((e["from"], e["to"]), set()).add(e["kind"])
    for iv in set(g_iv) | set(e_iv) | set(ok_iv):
        g = g_iv.get(iv, set())
        good = g in ok_iv[iv] if iv in ok_iv else g == e_iv.get(iv, set())
        if not good:
            problems.append(f"change {iv}: found {sorted(g)}, truth {ok_iv.get(iv) or sorted(e_iv.get(iv, set()))}")
    return problems
