"""Comparing an assessment with an exhaustive ground truth (teaching phantoms and real-MRI implants)."""
import re

from RNAssessmentLib.analysis.findings import CHANGE_KINDS as CHANGE
WITH_BOUNDARY = ("noncontiguous_across_boundary", "boundary_enhancement", "open_ring")
#: The kinds a design gives a focus that lies apart from the treated lesion: such a component is a lesion of its own.
APART = ("noncontiguous_across_boundary", "noncontiguous_focus")


def designed_places(components: dict, expected) -> list[tuple]:
    """(treated?, side, compartment) of each designed lesion, sorted, from a phantom design's ``within`` words:
    'left'/'right' a side, 'cerebellum' infratentorial, anything else in the parenchyma supratentorial. ``components``:
    component name → its ``within`` list (any timepoint). A component with no side word (the splenium) has None."""
    apart = {e["component"] for e in expected if e.get("kind") in APART and e.get("component")}

    def place(within):
        side = "left" if "left" in within else "right" if "right" in within else None
        return side, "infratentorial" if "cerebellum" in within else "supratentorial"
    treated = [place(w) for n, w in components.items() if n not in apart]
    return sorted([(True, *treated[0])] + [(False, *place(components[n])) for n in apart], key=str)


def designed_lesions(timepoints, expected) -> list[tuple]:
    """The lesions a design builds, each as (treated?, the timepoints it is present at), sorted. ``timepoints``:
    [(label, names of the components drawn at it)]. The components at the SRS timepoint and those the design places
    touching them are the treated lesion; each component the design places apart (a focus: the truth names it with
    an APART kind) is a lesion of its own, present at the timepoints it is drawn at."""
    present: dict = {}
    for label, names in timepoints:
        for name in names:
            present.setdefault(name, []).append(label)
    apart = {e["component"] for e in expected if e.get("kind") in APART and e.get("component")}
    treated = sorted({t for name, ts in present.items() if name not in apart for t in ts})
    return sorted([(True, tuple(treated))] + [(False, tuple(present[n])) for n in apart])


def lesion_problems(assessment, timepoints, expected, *, treated_either=()) -> list:
    """How the assessment's lesions differ from the designed ones (:func:`designed_lesions`), and any focus called
    new at a timepoint after it was first seen, or any finding that names no lesion. ``treated_either``: follow-ups
    where the design leaves the treated lesion's visibility open (a remnant thinner than the resolution can show,
    on a follow-up without a segmentation): there it may be present or not."""
    either = set(treated_either)

    def key(treated, present):
        return (treated, tuple(t for t in present if not (treated and t in either)))
    found = sorted(key(les.treated, tuple(t for t, a in les.at.items() if a.present)) for les in assessment.lesions)
    want = sorted(key(t, p) for t, p in designed_lesions(timepoints, expected))
    problems = [] if found == want else [f"lesions {found}, designed {want}"]
    first_seen = {les.id: les.first_seen for les in assessment.lesions}
    for f in assessment.findings:
        if not f.lesions:
            problems.append(f"{f.kind} names no lesion")
        elif f.kind in APART and f.description.startswith("New ") != (first_seen[f.lesions[0]] == f.timepoint):
            problems.append(f"{f.description[:60]}: {f.lesions[0]} first seen at {first_seen[f.lesions[0]]}")
    return problems


def truth_problems(assessment, expected) -> list:
    """What differs: boundary kinds exactly (kind, timepoint, boundary), change kinds per interval exactly or
    within the listed acceptable answers. An entry ``{"kind": None, "timepoint", "either_way": kind}`` (a design
    on a threshold) accepts that kind at that timepoint or its absence."""
    def key(d):
        return (d["kind"], d.get("timepoint"), d.get("boundary") if d["kind"] in WITH_BOUNDARY else None)
    found = [f.to_dict() for f in assessment.findings]
    either = {(e["either_way"], e.get("timepoint"), None) for e in expected if e.get("either_way")}
    # A focus's one finding holds at each of its timepoints (a design states each timepoint it lies across at).
    got = {key({**f, "timepoint": t}) for f in found if f["kind"] not in CHANGE
           for t in (f.get("timepoints") or [f.get("timepoint")])} - either
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
    problems += _sentence_problems(assessment)
    return problems


def _sentence_problems(assessment) -> list:
    """Every lesion volume a sentence quotes is the lesion table's (cm³, 2 decimals): "L1 0.61 → 0.06 cm³" in a
    change, "New 0.12 cm³ enhancing focus L2", "first seen at t1 (...) (0.12 cm³), 0.70 cm³ at t2"."""
    table = {les.id: les for les in assessment.lesions}

    def cc(les, label):
        at = les.at.get(label)
        return f"{(at.volume_mm3 if at else 0.0) / 1000:.2f}"
    problems = []
    for f in assessment.findings:
        d = f.description or ""
        if f.from_:
            for lid, a, b in re.findall(r"(L\d+) ([0-9.]+) → ([0-9.]+) cm³", d):
                if (a, b) != (cc(table[lid], f.from_), cc(table[lid], f.to)):
                    problems.append(f"{lid} {a} → {b} cm³ in '{d[:50]}', table {cc(table[lid], f.from_)} → "
                                    f"{cc(table[lid], f.to)}")
        elif f.kind in APART and f.lesions:
            les = table[f.lesions[0]]
            m = re.match(r"New ([0-9.]+) cm³", d) or re.search(r", ([0-9.]+) cm³ at ", d)
            if m and m.group(1) != cc(les, f.timepoint):
                problems.append(f"{les.id} {m.group(1)} cm³ in '{d[:50]}', table {cc(les, f.timepoint)}")
    return problems
