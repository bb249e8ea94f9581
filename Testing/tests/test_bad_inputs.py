"""Bad input never ends in a traceback, a half-written output or a changed input.

* The corpus (Testing/data/bad/make_corpus.py): each damaged or wrong input exits with code 2 and the one-line
  message the corpus names; no input file changes.
* Fuzz: seeded mutations (truncation, bit flips, byte runs, header edits) of real files from ../shared/data and of
  the corpus' valid case go through every reader; the only outcomes allowed are a result or ``ValueError`` (the
  documented error), within a per-input time limit, with the input unchanged.
* Outputs: an internal error exits 3 with the traceback in a log; a run killed (SIGKILL) at several points leaves
  the previous outputs byte-identical; a second run on a locked ``--out`` is refused.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, shared
from RNAssessmentLib import cli

spec = importlib.util.spec_from_file_location("make_corpus", os.path.join(ROOT, "Testing", "data", "bad",
                                                                          "make_corpus.py"))
make_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_corpus)

#: Fuzzed inputs per reader family (x 5 families); the README reports the total.
FUZZ_PER_FAMILY = int(os.environ.get("RNASSESS_FUZZ_PER_FAMILY", "400"))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad")
    return out, make_corpus.make_corpus(str(out))


def _digest(folder):
    out = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p) and not os.path.exists(p):
                out[p] = "link"
                continue
            if os.path.isfile(p):
                out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_corpus_is_large_and_covers_every_reader(corpus):
    _, entries = corpus
    names = {e["name"] for e in entries}
    assert len(entries) >= 30
    for needed in ("truncated_nii_gz", "truncated_nrrd_gzip", "truncated_seg_nrrd", "rtdose_truncated",
                   "rtstruct_truncated", "seg_vtm_truncated_block", "nan_t1c", "image_4d", "zero_spacing",
                   "skewed_direction", "symlink_loop", "manifest_unknown_key", "out_is_a_file"):
        assert needed in names


def test_every_bad_input_exits_2_with_its_message(corpus, capsys):
    out, entries = corpus
    failures = []
    for e in entries:
        case_dir = os.path.dirname(e["argv"][1]) if e["argv"][0] == "assess" else None
        before = _digest(case_dir) if case_dir else None
        code = cli.main(e["argv"])
        err = capsys.readouterr().err
        line = err.strip().splitlines()[-1] if err.strip() else ""
        if code != 2 or not re.search(e["expect"], line) or "Traceback" in err:
            failures.append((e["name"], code, line[:300]))
        if case_dir and _digest(case_dir) != before:
            failures.append((e["name"], "an input file changed"))
    assert not failures, failures


def test_non_ascii_names_and_paths_are_read(tmp_path):
    from RNAssessmentLib.io.case import load_manifest
    folder = tmp_path / "Müller Ångström" / "病例"
    m = make_corpus._write_case(str(folder), make_corpus._manifest(id="Zoë-Ł", timepoints=[
        {"label": "Basis ü", "date": "20240110", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
        {"label": "Kontrolle é", "date": "2024-06-10", "t1c": "t1.nii.gz"}]))
    case = load_manifest(m)
    assert case.id == "Zoë-Ł" and [t.label for t in case.timepoints] == ["Basis ü", "Kontrolle é"]
    assert str(case.timepoints[0].date) == "2024-01-10"          # the DICOM date form is read too


# ---------------------------------------------------------------------------------------------------------------
# Fuzz
# ---------------------------------------------------------------------------------------------------------------

def _mutations(data: bytes, rng: np.random.Generator, n: int):
    """Seeded mutations: truncation, bit flips, byte runs, a header number edited, a block duplicated."""
    for _ in range(n):
        b = bytearray(data)
        kind = rng.integers(0, 5)
        if kind == 0:
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 1:
            for _ in range(int(rng.integers(1, 8))):
                p = int(rng.integers(0, len(b)))
                b[p] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:
            p = int(rng.integers(0, len(b)))
            b[p:p + int(rng.integers(1, 64))] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        elif kind == 3:
            head = min(len(b), 1024)
            digits = [m.start() for m in re.finditer(rb"\d", bytes(b[:head]))]
            if digits:
                p = digits[int(rng.integers(0, len(digits)))]
                b[p] = ord(str(int(rng.integers(0, 10))))
        else:
            p, q = sorted(int(x) for x in rng.integers(0, len(b), 2))
            b = b[:q] + b[p:q] + b[q:]
        yield bytes(b)


def _readers():
    from RNAssessmentLib.io.case import load_manifest
    from RNAssessmentLib.io.images import read_image
    from RNAssessmentLib.io.rtdose import read_rtdose
    from RNAssessmentLib.io.structures import read_rtstruct, read_seg_nrrd
    return {"image": read_image, "rtdose": lambda p: read_rtdose(p, 20.0), "rtstruct": read_rtstruct,
            "seg_nrrd": read_seg_nrrd, "manifest": load_manifest}


@pytest.fixture(scope="session")
def fuzz_sources(tmp_path_factory):
    """(family, file name, original bytes, folder): real files and the corpus' valid case."""
    d = tmp_path_factory.mktemp("fuzzsrc")
    m = make_corpus._write_case(str(d / "case"))
    from RNAssessmentLib.io.structures import write_seg_nrrd
    t1, lesion, _ = make_corpus._base_arrays()
    write_seg_nrrd(str(d / "case" / "b.seg.nrrd"), {"ventricles": make_corpus._image(lesion)})
    src = [("image", "t0.nii.gz", d / "case" / "t0.nii.gz"), ("image", "lesion.nrrd", d / "case" / "lesion.nrrd"),
           ("seg_nrrd", "b.seg.nrrd", d / "case" / "b.seg.nrrd"), ("manifest", "case.json", m),
           ("rtdose", "rtdose.dcm", shared("dicompyler-example", "rtdose.dcm")),
           ("rtstruct", "rtss.dcm", shared("dicompyler-example", "rtss.dcm"))]
    return [(fam, name, open(p, "rb").read(), str(d / "case")) for fam, name, p in src]


def test_fuzzed_inputs_give_a_result_or_the_documented_error(fuzz_sources, tmp_path):
    """Thousands of mutated files through every reader: ValueError or a result, nothing else; each within 10 s
    (a 48 x 48 x 32 image or a 1 MB DICOM file reads in milliseconds: 10 s is a hang, not a slow machine)."""
    import shutil
    readers = _readers()
    rng = np.random.default_rng(20261124)
    counts, bad = {}, []
    work = tmp_path / "case"
    shutil.copytree(fuzz_sources[0][3], work)
    for fam, name, data, _ in fuzz_sources:
        n = FUZZ_PER_FAMILY if fam != "image" else FUZZ_PER_FAMILY // 2
        for i, mutated in enumerate(_mutations(data, rng, n)):
            target = work / name if fam in ("image", "seg_nrrd", "manifest") else tmp_path / name
            target.write_bytes(mutated)
            t = time.monotonic()
            try:
                readers[fam](str(target))
            except ValueError:
                pass
            except Exception as exc:                 # noqa: BLE001 - the point of the test
                bad.append((fam, name, i, f"{type(exc).__name__}: {str(exc)[:200]}"))
            if time.monotonic() - t > 10.0:
                bad.append((fam, name, i, "took more than 10 s"))
            if target.read_bytes() != mutated:
                bad.append((fam, name, i, "the reader changed its input"))
            counts[fam] = counts.get(fam, 0) + 1
        (work / name).write_bytes(data) if fam in ("image", "seg_nrrd", "manifest") else None
    assert sum(counts.values()) >= 5 * FUZZ_PER_FAMILY - FUZZ_PER_FAMILY
    assert not bad, bad[:10]


# ---------------------------------------------------------------------------------------------------------------
# Outputs: internal errors, kills, locks
# ---------------------------------------------------------------------------------------------------------------

def test_internal_error_exits_3_with_a_log(tmp_path, monkeypatch, capsys):
    from RNAssessmentLib import assess
    m = make_corpus._write_case(str(tmp_path / "case"))

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(assess, "assess_case", broken)
    out = tmp_path / "out"
    code = cli.main(["assess", m, "--out", str(out), "--no-pdf"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert "internal error" in err[-1] and "'bad'" in err[-1] and "ZeroDivisionError" in err[-1]
    log = out / "rnassess-error.log"
    assert "Traceback" in log.read_text() and "a bug" in log.read_text()
    assert not (out / "findings.json").exists()


def _run_assess(manifest, out):
    return subprocess.Popen([sys.executable, "-m", "RNAssessmentLib.cli", "assess", manifest, "--out", out,
                             "--no-pdf"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace")      # VTK's log is UTF-8 whatever the locale


def test_killed_runs_leave_previous_outputs_byte_identical(tmp_path):
    m = make_corpus._write_case(str(tmp_path / "case"))
    out = str(tmp_path / "out")
    first = _run_assess(m, out)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    before = _digest(out)
    assert any(p.endswith("findings.json") for p in before) and any(p.endswith("report.html") for p in before)
    # Measured once: how long a run takes here; kills spread over it (early, middle, during writing).
    t = time.monotonic()
    probe = _run_assess(m, str(tmp_path / "probe"))
    probe.communicate(timeout=600)
    duration = time.monotonic() - t
    # Same inputs, byte-identical outputs (no timings or dates of the run in them): so a kill that lands after the
    # swap, while the process exits, leaves outputs equal to the previous ones too.
    rel = {os.path.relpath(k, out): v for k, v in before.items()}
    assert {os.path.relpath(k, str(tmp_path / "probe")): v for k, v in _digest(str(tmp_path / "probe")).items()} == rel
    killed = 0
    for frac in (0.1, 0.5, 0.8, 0.95):
        p = _run_assess(m, out)
        time.sleep(duration * frac)
        if p.poll() is not None:
            # The run finished before the kill (a busy machine runs faster or slower than the probe): its outputs
            # are the new previous outputs.
            assert p.returncode == 0
            before = _digest(out)
            continue
        p.send_signal(signal.SIGKILL)
        p.wait()
        killed += 1
        # The next run repairs what a kill between the two renames could leave; the lock left behind is stale.
        assert _digest(out) == before or not os.path.exists(out)
        from RNAssessmentLib.output.atomic import OutputFolder
        folder = OutputFolder(out)
        folder._recover()
        assert _digest(out) == before, f"kill at {frac:.0%} of the run changed the previous outputs"
    assert killed >= 2
    assert not [f for f in os.listdir(tmp_path) if f.startswith((".out.tmp-", ".out.old-"))]


def test_a_second_run_on_a_locked_out_is_refused(tmp_path, capsys):
    m = make_corpus._write_case(str(tmp_path / "case"))
    out = tmp_path / "out"
    lock = tmp_path / ".out.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(str(holder.pid))
        code = cli.main(["assess", m, "--out", str(out), "--no-pdf"])
        assert code == 2
        assert "being written by another rnassess run" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # A lock left by a dead process is taken over.
    assert cli.main(["assess", m, "--out", str(out), "--no-pdf"]) == 0
    assert json.loads((out / "findings.json").read_text())["findings"] is not None
    assert not lock.exists()
