"""``rnassess cohort``: one assessment per case on Dask distributed, then one table and page for the cohort.

SOURCE is a folder searched for ``case.json`` manifests (folders named ``assessment`` and the output folder are
not searched), or a CSV with one row per case: ``manifest`` (relative to the CSV or absolute), and optionally
``outcome`` (RN, PD, mixed), ``outcome_source`` (pathology, follow-up, ...), ``outcome_date`` and ``case`` (a name;
default: the manifest's folder).

Each case runs as one Dask task (:func:`run_case`) that writes what ``rnassess assess`` writes into
``OUT/cases/<case>/`` and returns a few numbers, so no worker holds more than one case and the client holds no
images. Without ``scheduler`` a ``LocalCluster`` with one single-threaded worker process per core (at most one per
case) is started and stopped; with ``scheduler`` (``tcp://host:8786``) the cases go to that cluster, whose workers
must have rnassessment installed and see the same paths.

A failing case is recorded with its error and the others go on. ``OUT/cohort-state.json`` keeps, per case, a
content hash of its manifest, every input file and the options, and the program version: with ``resume`` a case
whose hash and version are unchanged and whose last run succeeded is not run again. The state is written after
every case, so an interrupted cohort resumes where it stopped.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import sys
import time

from .. import __version__
from ..output import cohort_table

STATE_FILE = "cohort-state.json"
OUTCOME_NAMES = {"rn": "RN", "pd": "PD", "mixed": "mixed"}
# The local cluster's settings for a cohort of 10-60 s tasks that allocate and free large arrays.
# * Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand freed memory back to the OS). Setting it
#   turns off glibc's dynamic mmap threshold, so every array above 128 kB is mapped and unmapped afresh: measured on
#   5 teaching cases assessed one after another, 10x the page faults, 4x the system time and +22 % wall time (96 s
#   vs 78 s). The workers keep glibc's default (None unsets it; a value the user exports still wins).
# * Its housekeeping, slowed: at Dask's defaults an idle worker and its scheduler/nanny use about a tenth of a core
#   (2.1 s of CPU per 20 s of a sleeping task; 0.9 s with these). The sampling profiler (every 10 ms) and the system
#   monitor feed the dashboard we do not start, the 20 ms tick only warns of a blocked event loop; the memory limit is
#   still checked every second.
LOCAL_CLUSTER_CONFIG = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


@dataclasses.dataclass
class CohortCase:
    case: str
    manifest: str
    outcome: str | None = None
    outcome_source: str | None = None
    outcome_date: str | None = None


def _unique_names(entries: list[CohortCase]) -> None:
    seen: dict = {}
    for e in entries:
        seen[e.case] = seen.get(e.case, 0) + 1
    if any(n > 1 for n in seen.values()):
        dup = sorted(k for k, n in seen.items() if n > 1)
        raise ValueError(f"two cases are named {', '.join(dup)}: give each a unique 'case' column in the CSV")


def discover(source: str, out_dir: str | None = None) -> list[CohortCase]:
    """The cases of a SOURCE folder or CSV (see the module docstring)."""
    source = os.path.abspath(source)
    if not os.path.exists(source):
        raise ValueError(f"cohort source '{source}' does not exist: give a folder of cases or a CSV")
    if os.path.isfile(source):
        if not source.lower().endswith(".csv"):
            raise ValueError(f"cohort source '{source}' is a file but not a .csv: give a folder of cases or a CSV")
        return _from_csv(source)
    skip = os.path.abspath(out_dir) if out_dir else None
    found = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d != "assessment" and not d.startswith(".")
                         and os.path.abspath(os.path.join(root, d)) != skip)
        if "case.json" in files:
            rel = os.path.relpath(root, source)
            name = os.path.basename(source) if rel == "." else rel.replace(os.sep, "-")
            found.append(CohortCase(case=name, manifest=os.path.join(root, "case.json")))
    if not found:
        raise ValueError(f"no case.json under '{source}': a cohort folder holds one folder per case with its manifest")
    _unique_names(found)
    return found


def _from_csv(path: str) -> list[CohortCase]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "manifest" not in reader.fieldnames:
            raise ValueError(f"{path}: the CSV needs a 'manifest' column (and optionally outcome, outcome_source, "
                             f"outcome_date, case); found columns {reader.fieldnames}")
        rows = list(reader)
    out = []
    for i, row in enumerate(rows, 2):
        man = (row.get("manifest") or "").strip()
        if not man:
            raise ValueError(f"{path} line {i}: empty manifest")
        man = man if os.path.isabs(man) else os.path.join(os.path.dirname(path), man)
        raw = (row.get("outcome") or "").strip()
        outcome = OUTCOME_NAMES.get(raw.lower()) if raw else None
        if raw and outcome is None:
            raise ValueError(f"{path} line {i}: outcome '{raw}' is not one of RN, PD, mixed (or empty)")
        name = (row.get("case") or "").strip() or os.path.basename(os.path.dirname(os.path.abspath(man)))
        out.append(CohortCase(case=name, manifest=os.path.abspath(man), outcome=outcome,
                              outcome_source=(row.get("outcome_source") or "").strip() or None,
                              outcome_date=(row.get("outcome_date") or "").strip() or None))
    if not out:
        raise ValueError(f"{path}: no rows")
    _unique_names(out)
    return out


def input_hash(manifest: str, options: dict) -> str:
    """sha256 over the manifest, every input file it names (contents) and the options; a manifest that does not
    load hashes its own bytes only (its run will fail and report why)."""
    h = hashlib.sha256()
    h.update(json.dumps(options, sort_keys=True).encode())
    try:
        with open(manifest, "rb") as f:
            h.update(f.read())
    except OSError as exc:
        h.update(repr(exc).encode())
        return h.hexdigest()
    try:
        from ..io.case import load_manifest
        paths = sorted(load_manifest(manifest).input_paths())
    except Exception as exc:                        # reported when the case runs
        h.update(repr(exc).encode())
        return h.hexdigest()
    for p in paths:
        h.update(os.path.relpath(p, os.path.dirname(manifest)).encode())
        if os.path.isdir(p):
            files = sorted(os.path.join(r, n) for r, _, ns in os.walk(p) for n in ns)
        else:
            files = [p]
        for fp in files:
            with open(fp, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def run_case(manifest: str, out: str, options: dict) -> dict:
    """One case, in a worker: assess and write to ``out``; returns status, error, paths and duration."""
    t0 = time.time()
    try:
        import SimpleITK as sitk
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(options.get("threads") or 1))
        from ..analysis.dose import parse_levels
        from ..io.case import load_manifest
        from .assess import assess_to_folder
        case = load_manifest(manifest)
        levels = parse_levels(options["levels"], case.dose.prescription_gy if case.dose else None) \
            if options.get("levels") else None
        paths, assessment = assess_to_folder(case, out, levels=levels, deidentify=bool(options.get("deidentify")),
                                             pdf=bool(options.get("pdf")), log_callback=lambda m: None)
        return {"status": "ok", "error": None, "findings": paths["findings"], "report": paths.get("report"),
                "n_findings": len(assessment.findings), "duration_s": round(time.time() - t0, 2)}
    except Exception as exc:                        # recorded, the cohort goes on
        kind = "bad input" if isinstance(exc, ValueError) else "internal error"
        return {"status": "failed", "error": f"{kind}: {type(exc).__name__}: {exc}", "findings": None,
                "report": None, "duration_s": round(time.time() - t0, 2)}


class Progress:
    """A progress bar on stderr (redrawn in place on a terminal, a line per case in a log)."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.failed, self.skipped = total, 0, 0, 0
        self.stream = stream or sys.stderr
        self.t0 = time.time()

    def update(self, name: str, status: str) -> None:
        self.done += 1
        self.failed += status == "failed"
        self.skipped += status == "unchanged"
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[cohort] [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"({self.failed} failed, {self.skipped} unchanged) {time.time() - self.t0:.0f} s  {name}: {status}")
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stream.write(("\r" + line + " " * 10) if tty else line + "\n")
        if tty and self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _load_state(path: str) -> dict:
    if not os.path.isfile(path):
        return {"cases": {}}
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        return state if isinstance(state.get("cases"), dict) else {"cases": {}}
    except (OSError, ValueError):
        return {"cases": {}}                        # unreadable state: every case runs again


def _save_state(path: str, state: dict) -> None:
    from ..output.atomic import write_file_atomically

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
    write_file_atomically(path, write)


def _client(scheduler: str | None, workers: int | None, n_cases: int, threads_per_worker: int | None = None):
    """(client, cluster or None, threads per worker)."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ValueError("rnassess cohort runs on Dask distributed, which is not installed: "
                         "pip install 'rnassessment[cohort]' (or pip install \".[cohort]\" in the source folder)") \
            from exc
    # Dask's own messages at warning level and above only (its start/stop chatter would bury the progress bar).
    import logging
    dask.config.set({"logging": {"distributed": "warning"}})
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None, 1
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at '{scheduler}': {exc}") from exc
    cores = os.cpu_count() or 1
    n = max(1, min(workers or cores, n_cases))
    threads = threads_per_worker or max(1, cores // n)
    # Dask's nanny starts workers with OMP/MKL/OpenBLAS at one thread; a worker given ``threads`` cores (ITK's
    # threads are set per task in run_case) may use them in numpy too, as a direct `assess` does.
    config = {f"distributed.nanny.pre-spawn-environ.{k}": str(threads)
              for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    config.update(LOCAL_CLUSTER_CONFIG)
    memory = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        memory = int(0.8 * total / n)
    except (ValueError, OSError, AttributeError):
        pass
    # The scheduler always runs an HTTP server (health routes); dashboard_address=None would put it on
    # port 8787 of every interface. Keep it on loopback, on a free port, without the dashboard.
    # The settings hold for this cluster only (its scheduler, nanny and workers read them when they start).
    with dask.config.set(config):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                               worker_dashboard_address="127.0.0.1:0", memory_limit=memory or "auto")
    return Client(cluster), cluster, threads


def run_cohort(source: str, out: str, *, scheduler: str | None = None, workers: int | None = None,
               resume: bool = False, levels: str | None = None, deidentify: bool = False, pdf: bool = True,
               title: str | None = None, threads_per_worker: int | None = None, log=print) -> dict:
    """Assess every case of SOURCE into ``out/cases/`` and write the cohort table and page; returns
    {"paths": ..., "ran": [...], "unchanged": [...], "failed": [...]}. ``threads_per_worker`` (local cluster):
    the cores each worker's case may use (default: the machine's cores shared among the workers)."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out '{out}' is an existing file, not a folder")
    entries = discover(source, out)
    os.makedirs(out, exist_ok=True)
    state_path = os.path.join(out, STATE_FILE)
    state = _load_state(state_path) if resume else {"cases": {}}
    options = {"levels": levels, "deidentify": deidentify, "pdf": pdf}
    todo, results = [], {}
    for e in entries:
        key = input_hash(e.manifest, options)
        prev = state["cases"].get(e.case)
        if resume and prev and prev.get("hash") == key and prev.get("version") == __version__ \
                and prev.get("status") == "ok" and prev.get("findings") and os.path.isfile(prev["findings"]):
            results[e.case] = dict(prev, status="ok", unchanged=True)
        else:
            todo.append((e, key))
    progress = Progress(len(entries))
    for name in results:
        progress.update(name, "unchanged")
    ran, failed = [], []
    if todo:
        log(f"[cohort] {len(todo)} of {len(entries)} cases to assess"
            + (f" on {scheduler}" if scheduler else ""))
        client, cluster, threads = _client(scheduler, workers, len(todo), threads_per_worker)
        try:
            from dask.distributed import as_completed
            futures = {}
            for e, key in todo:
                opts = dict(options, threads=threads)
                fut = client.submit(run_case, e.manifest, os.path.join(out, "cases", e.case), opts,
                                    key=f"rnassess-{e.case}-{key[:12]}", pure=False)
                futures[fut] = (e, key)
            for fut in as_completed(futures):
                e, key = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:            # a worker died (memory limit, signal): the case failed
                    r = {"status": "failed", "error": f"worker lost: {type(exc).__name__}: {exc}",
                         "findings": None, "report": None, "duration_s": None}
                state["cases"][e.case] = dict(r, hash=key, version=__version__, manifest=e.manifest)
                _save_state(state_path, state)
                results[e.case] = r
                (ran if r["status"] == "ok" else failed).append(e.case)
                progress.update(e.case, r["status"] if r["status"] == "ok" else "failed")
                if r["status"] != "ok":
                    log(f"[cohort] {e.case} failed: {r['error']}")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    state["version"] = __version__
    state["cases"] = {k: v for k, v in state["cases"].items() if k in {e.case for e in entries}}
    _save_state(state_path, state)
    records = []
    for e in entries:
        r = results[e.case]
        records.append({"case": e.case, "status": r["status"], "error": r.get("error"), "outcome": e.outcome,
                        "outcome_source": e.outcome_source, "outcome_date": e.outcome_date,
                        "findings": r.get("findings"), "report": r.get("report"), "duration_s": r.get("duration_s")})
    paths = cohort_table.write_cohort(out, records, title=title or f"Cohort: {os.path.basename(os.path.abspath(source))}")
    return {"paths": paths, "ran": sorted(ran), "failed": sorted(failed),
            "unchanged": sorted(k for k, v in results.items() if v.get("unchanged"))}
