"""rnassess cohort: teaching cases on a real Dask LocalCluster and on a real scheduler + workers started here, the
feature tables against the ground truth, a broken manifest, --resume and a changed input."""
import csv
import json
import os
import re
import subprocess
import sys
import time

import pytest
import SimpleITK as sitk
from conftest import ROOT, refdata
from RNAssessmentLib.faces import cli
from RNAssessmentLib.output import cohort_table as T

pytest.importorskip("dask.distributed", reason="the cohort extra (dask[distributed]) is part of the test extra")
# One xdist worker runs the whole module: its cases are assessed once and shared by the tests below.
pytestmark = pytest.mark.xdist_group("cohort")

#: One RN and one PD phantom (the cheapest pair with features of both directions), one real-MRI implant (the
#: demo's ``--real-mri`` case with an across-tentorium focus) and a broken manifest.
PHANTOMS = ("falx_cingulate_rn", "tentorium_pd")
REAL = ("brats_tentorium_rn",)
CASES = PHANTOMS + REAL


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), Table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775; 15/148 -> 0.0624-0.1605
    for k, n, lo, hi in ((81, 263, 0.2553, 0.3662), (0, 10, 0.0, 0.2775), (15, 148, 0.0624, 0.1605)):
        w = T.wilson(k, n)
        assert w["low"] == pytest.approx(lo, abs=5e-4) and w["high"] == pytest.approx(hi, abs=5e-4)
    assert T.wilson(0, 0) is None


def test_performance_tables_by_hand():
    def case(name, outcome, *kinds, status="ok"):
        return {"case": name, "status": status, "outcome": outcome,
                "features": T.case_features([{"kind": k} for k in kinds])}
    cases = [case("a", "RN", "noncontiguous_across_boundary"), case("b", "RN", "mixed_response", "concentric_growth"),
             case("c", "PD", "concentric_growth"), case("d", "PD", "noncontiguous_across_boundary"),
             case("e", "mixed", "open_ring"), case("f", None), case("g", "RN", status="failed")]
    p = T.performance(cases)
    assert p["n_in_tables"] == 4
    assert p["left_out"] == {"failed": ["g"], "mixed": ["e"], "no_outcome": ["f"]}
    across = p["features"]["across_boundary"]
    assert across["cases"] == {"tp": ["a"], "fn": ["b"], "fp": ["d"], "tn": ["c"]}
    # A PD-favouring feature points to RN when absent.
    cg = p["features"]["concentric_growth"]
    assert cg["cases"] == {"tp": ["a"], "fn": ["b"], "fp": ["d"], "tn": ["c"]}
    comb = p["features"]["combined_rule"]          # b has an RN feature but also growth as a whole
    assert comb["cases"] == {"tp": ["a"], "fn": ["b"], "fp": ["d"], "tn": ["c"]}
    assert comb["sensitivity"]["value"] == 0.5 and comb["specificity"]["value"] == 0.5


def test_forest_plot_labels_are_whole_and_fit_their_margin():
    """Labels were cut to 44 characters and clipped at the figure's left edge ("on-contiguous…", "…feature and n"):
    each is now every word of its title, in lines of at most FOREST_LABEL_CHARS characters."""
    import re
    cases = [{"case": "a", "status": "ok", "outcome": "RN",
              "features": T.case_features([{"kind": "noncontiguous_across_boundary"}])},
             {"case": "b", "status": "ok", "outcome": "PD", "features": T.case_features([{"kind": "open_ring"}])}]
    perf = T.performance(cases)
    svg = T.forest_plot(perf)
    labels = re.findall(r'<text x="292" y="[0-9.]+" font-size="12" text-anchor="end">(.*?)</text>', svg)
    titles = [f["title"] for f in perf["features"].values()]
    assert T.COMBINED_TITLE in titles and len(T.COMBINED_TITLE) > T.FOREST_LABEL_CHARS
    lines = [re.findall(r"<tspan[^>]*>(.*?)</tspan>", x) for x in labels]
    assert [" ".join(ls) for ls in lines] == titles
    assert all(len(line) <= T.FOREST_LABEL_CHARS for ls in lines for line in ls)
    assert 7 * T.FOREST_LABEL_CHARS <= 300 - 8          # at 12 px, at most 7 px a character: inside the margin


def test_every_cohort_column_is_documented_in_the_readme():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("### Cohort", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_0-9]+)`", section))
    assert set(T.COLUMNS) <= documented, sorted(set(T.COLUMNS) - documented)


def _worker_settings():
    import dask
    return (dask.config.get("distributed.worker.profile.enabled"), dask.config.get("distributed.admin.tick.interval"),
            os.environ.get("OMP_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_"))


def test_local_cluster_workers_get_the_cohort_settings_and_the_caller_keeps_its_own(monkeypatch):
    import dask
    from RNAssessmentLib.pipeline import cohort
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    before = dask.config.get("distributed")
    before = json.dumps(before, sort_keys=True, default=str)
    client, cluster, threads = cohort._client(None, 1, 3, threads_per_worker=2)
    try:
        assert threads == 2 and cluster is not None
        (settings,) = client.run(_worker_settings).values()
        # the profiler off and the tick slowed (LOCAL_CLUSTER_CONFIG); numpy's threads = the cores given the worker;
        # glibc's malloc at its default (Dask's nanny would set MALLOC_TRIM_THRESHOLD_, +22 % time per case)
        assert settings == (False, cohort.LOCAL_CLUSTER_CONFIG["distributed.admin.tick.interval"], "2", None)
    finally:
        client.close()
        cluster.close()
    # the settings were scoped to the cluster's start: this process's Dask configuration is as it was
    assert json.dumps(dask.config.get("distributed"), sort_keys=True, default=str) == before


def _run(argv):
    code = cli.main(argv)
    return code


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def cohort_source(tmp_path_factory):
    src = str(tmp_path_factory.mktemp("cohort_src"))
    assert _run(["demo", "--out", src, "--no-assess", "--real-mri", refdata("real-mri"),
                 *sum((["--scenario", n] for n in CASES), [])]) == 0
    os.makedirs(os.path.join(src, "broken"))
    with open(os.path.join(src, "broken", "case.json"), "w") as f:
        f.write('{"timepoints": [')                 # truncated manifest
    with open(os.path.join(src, "outcomes.csv")) as f:
        rows = list(csv.DictReader(f))
    rows.append({"case": "broken", "manifest": "broken/case.json", "outcome": "PD", "outcome_source": "follow-up"})
    with open(os.path.join(src, "source.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return src


@pytest.fixture(scope="session")
def local_run(cohort_source, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cohort_local"))
    # The broken case fails, the others are assessed: a partial failure, its own exit code for a scheduled run.
    assert _run(["cohort", os.path.join(cohort_source, "source.csv"), "--out", out, "--workers", "2",
                 "--no-pdf"]) == cli.EXIT_SOME_FAILED == 4
    return out


def test_cohort_tables_are_what_the_ground_truth_gives(cohort_source, local_run):
    doc = json.load(open(os.path.join(local_run, "cohort.json")))
    status = {c["case"]: c for c in doc["cases"]}
    assert status["broken"]["status"] == "failed" and "not valid JSON" in status["broken"]["error"]
    assert all(status[n]["status"] == "ok" for n in CASES)
    # The same tables from the truth files alone.
    truth_cases = []
    for n in CASES:
        truth = json.load(open(os.path.join(cohort_source, n, "truth", "truth.json")))
        truth_cases.append({"case": n, "status": "ok", "outcome": truth["counterpart"],
                            "features": T.case_features([e for e in truth["expected"] if e.get("kind")])})
    truth_cases.append({"case": "broken", "status": "failed", "outcome": "PD", "features": None})
    expected = T.performance(truth_cases)
    got = doc["performance"]
    assert {k: v["cases"] for k, v in got["features"].items()} == \
        {k: v["cases"] for k, v in expected["features"].items()}
    assert got["left_out"]["failed"] == ["broken"]
    # Both RN cases (phantom and real-MRI implant) are found by the across-boundary feature and the combined
    # rule; the PD twin by neither.
    assert got["features"]["across_boundary"]["cases"]["tp"] == ["brats_tentorium_rn", "falx_cingulate_rn"]
    assert got["features"]["combined_rule"]["cases"] == {"tp": ["brats_tentorium_rn", "falx_cingulate_rn"],
                                                         "fn": [], "fp": [], "tn": ["tentorium_pd"]}
    # cohort.csv: one case row per case, one finding row per finding of findings.json, numbers as written there.
    rows = _rows(os.path.join(local_run, "cohort.csv"))
    assert list(rows[0]) == T.COLUMNS
    for n in CASES:
        findings = json.load(open(os.path.join(local_run, "cases", n, "findings.json")))["findings"]
        mine = [r for r in rows if r["case"] == n and r["row_type"] == "finding"]
        assert [r["kind"] for r in mine] == [f["kind"] for f in findings]
        for r, f in zip(mine, findings):
            assert float(r["volume_mm3"]) == pytest.approx(f["volume_mm3"], abs=1e-3)
            if f.get("gap_mm") is not None:
                assert float(r["gap_mm"]) == pytest.approx(f["gap_mm"], abs=1e-3)
    assert [r for r in rows if r["case"] == "broken"][0]["status"] == "failed"
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(os.path.join(local_run, "cohort.parquet")).num_rows == len(rows)
    # The page links every completed case's report and shows its first key image.
    page = open(os.path.join(local_run, "cohort.html"), encoding="utf-8").read()
    for n in CASES:
        assert f'href="cases/{n}/report.html"' in page
    assert page.count("data:image/png") >= 2 and "Wilson" in page and "Decision support" in page
    # Each thumbnail is the case's first finding on its own scan (issue 38), never on a scan that predates it.
    for n in CASES:
        first = json.load(open(os.path.join(local_run, "cases", n, "findings.json")))["findings"][0]
        block = page.split(f'id="case-{n}"', 1)[1].split('<div class="case', 1)[0]
        label = re.search(r'aria-label="([^"]*)"', block).group(1)
        assert label.startswith(f"F1 {first.get('timepoint') or first['to']} ·"), (n, label)


def test_resume_reruns_nothing_then_only_the_changed_case(cohort_source, local_run):
    src = os.path.join(cohort_source, "source.csv")
    before = {n: os.path.getmtime(os.path.join(local_run, "cases", n, "findings.json")) for n in CASES}
    from RNAssessmentLib.pipeline.cohort import run_cohort
    r = run_cohort(src, local_run, resume=True, pdf=False, workers=1, log=lambda m: None)
    assert r["ran"] == [] and r["unchanged"] == sorted(CASES) and r["failed"] == ["broken"]
    assert {n: os.path.getmtime(os.path.join(local_run, "cases", n, "findings.json")) for n in CASES} == before
    # One voxel in a corner of the last follow-up changes (far from the lesion): that case runs again, alone.
    man = json.load(open(os.path.join(cohort_source, CASES[1], "case.json")))
    path = os.path.join(cohort_source, CASES[1], man["timepoints"][-1]["t1c"])
    img = sitk.ReadImage(path)
    img[0, 0, 0] = img[0, 0, 0] + 1
    sitk.WriteImage(img, path)
    r = run_cohort(src, local_run, resume=True, pdf=False, workers=1, log=lambda m: None)
    assert r["ran"] == [CASES[1]] and r["unchanged"] == sorted(c for c in CASES if c != CASES[1])


def _scheduler_address(sched_file, timeout):
    """The scheduler writes its file in more than one step: wait until it is whole JSON with an address."""
    deadline = time.time() + timeout
    while True:
        try:
            with open(sched_file) as f:
                return json.load(f)["address"]
        except (OSError, ValueError, KeyError):
            if time.time() > deadline:
                raise AssertionError(f"dask scheduler did not write {sched_file} within {timeout} s")
            time.sleep(0.2)


def test_distributed_run_equals_the_local_cluster_run(cohort_source, local_run, tmp_path):
    """A scheduler and two workers started here (loopback; they stop by themselves if the test dies)."""
    sched_file = str(tmp_path / "scheduler.json")
    # Workers started as the README says (the mmap threshold undoes what the nanny's MALLOC_TRIM_THRESHOLD_ costs).
    env = dict(os.environ, PYTHONUNBUFFERED="1", MALLOC_MMAP_THRESHOLD_="33554432")
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", sched_file, "--idle-timeout", "300"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    try:
        address = _scheduler_address(sched_file, timeout=60)
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                           "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--death-timeout", "30",
                                           "--host", "127.0.0.1"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        from dask.distributed import Client
        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=90)
        out = str(tmp_path / "dist")
        # The two phantoms: the broken case and the real-MRI one are covered above (this checks the cluster).
        src = str(tmp_path / "two.csv")
        rows = [r for r in _rows(os.path.join(cohort_source, "source.csv")) if r["case"] in PHANTOMS]
        for r in rows:
            r["manifest"] = os.path.join(cohort_source, r["manifest"])
        with open(src, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        assert _run(["cohort", src, "--out", out, "--scheduler", address, "--no-pdf"]) == 0
        with Client(address, timeout="30s") as c:
            ran_on = {w_["host"] for w_ in c.scheduler_info()["workers"].values()}
        assert ran_on == {"127.0.0.1"}
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    skip = {"duration_s"}
    dist = [{k: v for k, v in r.items() if k not in skip} for r in _rows(os.path.join(out, "cohort.csv"))]
    local = [{k: v for k, v in r.items() if k not in skip} for r in _rows(os.path.join(local_run, "cohort.csv"))
             if r["case"] in PHANTOMS]
    assert dist == local
    assert json.load(open(os.path.join(out, "cohort.json")))["performance"]["features"]["combined_rule"]["table"] \
        == {"tp": 1, "fn": 0, "fp": 0, "tn": 1}


def test_cohort_bad_input_is_a_clear_error(tmp_path, capsys):
    assert _run(["cohort", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _run(["cohort", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no case.json" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("manifest,outcome\nx/case.json,maybe\n")
    assert _run(["cohort", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not one of RN, PD, mixed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
