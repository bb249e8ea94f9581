"""Bad input never ends in a traceback, a half-written output or a changed input.

* The corpus (Testing/data/bad/make_corpus.py): each damaged or wrong input exits with code 2 and the one-line
  message the corpus names; no input file changes.
* Fuzz: seeded mutations (truncation, bit flips, byte runs, header edits) of real files from Testing/Data and of
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
from conftest import ROOT, refdata
from RNAssessmentLib.faces import cli

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
           ("rtdose", "rtdose.dcm", refdata("dicompyler-example", "rtdose.dcm")),
           ("rtstruct", "rtss.dcm", refdata("dicompyler-example", "rtss.dcm"))]
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
    from RNAssessmentLib.pipeline import assess
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
    return subprocess.Popen([sys.executable, "-m", "RNAssessmentLib.faces.cli", "assess", manifest, "--out", out,
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


# ---------------------------------------------------------------------------------------------------------------
# Inputs that pass a careless reading and would give a wrong clinical answer (issue 35): what is accepted, how
# ---------------------------------------------------------------------------------------------------------------

def test_a_probability_map_is_thresholded_at_half_and_said_a_prior_scan_listed_an_unreached_level_said(tmp_path):
    """A follow-up lesion given as a probability map in [0, 1] (a smooth edge around the true lesion) is read as
    the voxels at 0.5 or more, not everything above 0 (that had made the lesion 5x its size and RANO-BM PD), and
    findings.json says so. A 0/255 label map is binary as it is. A scan dated before SRS and marked "prior" is
    listed, not analysed. An isodose level above the dose's maximum is said to have no surface."""
    t1, lesion, dose = make_corpus._base_arrays()
    i, j, k = np.meshgrid(np.arange(48), np.arange(48), np.arange(32), indexing="ij")
    d = np.sqrt(((i - 30) * 1.5) ** 2 + ((j - 24) * 1.5) ** 2 + ((k - 16) * 2.0) ** 2)
    prob = np.clip(1.0 - (d - 4.0) / 8.0, 0.0, 1.0).astype(np.float32)      # 1 inside 4 mm, 0 beyond 12 mm
    spec = make_corpus._manifest(timepoints=[
        {"label": "pre", "date": "2023-10-01", "t1c": "t0.nii.gz", "prior": True},
        {"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion255.nrrd"},
        {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii.gz", "lesion": "prob.nii.gz"}])
    m = make_corpus._write_case(str(tmp_path / "case"), spec, **{
        "prob.nii.gz": make_corpus._image(prob), "lesion255.nrrd": make_corpus._image(lesion * 255)})
    out = tmp_path / "out"
    assert cli.main(["assess", m, "--out", str(out), "--no-pdf", "--levels", "30,20,10"]) == 0
    doc = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    vox = 1.5 * 1.5 * 2.0
    tps = {t["label"]: t for t in doc["summary"]["timepoints"]}
    assert list(tps) == ["t0", "t1"]
    assert tps["t0"]["lesion_volume_mm3"] == pytest.approx(lesion.sum() * vox)            # 0/255: binary
    assert tps["t1"]["lesion_volume_mm3"] == pytest.approx((prob >= 0.5).sum() * vox)   # thresholded at 0.5
    assert tps["t1"]["lesion_volume_mm3"] < 0.4 * (prob > 0).sum() * vox
    assert any("probability map" in w and "thresholded at 0.5" in w for w in doc["warnings"]), doc["warnings"]
    assert [p["label"] for p in doc["summary"]["prior_timepoints"]] == ["pre"]
    assert doc["summary"]["prior_timepoints"][0]["days_since_srs"] < 0
    assert any("30 Gy is above the dose's maximum" in w for w in doc["warnings"]), doc["warnings"]


def test_an_empty_followup_mask_stands_when_the_manifest_says_lesion_null_and_no_cr_otherwise(tmp_path, capsys):
    """The corpus refuses an empty follow-up mask where the image shows enhancement (it would be RANO-BM CR);
    "lesion": null lets the automatic segmentation find the lesion instead: no CR."""
    spec = make_corpus._manifest(timepoints=[
        {"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
        {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii.gz", "lesion": None}])
    m = make_corpus._write_case(str(tmp_path / "case"), spec)
    out = tmp_path / "out"
    assert cli.main(["assess", m, "--out", str(out), "--no-pdf"]) == 0
    course = json.loads((out / "findings.json").read_text(encoding="utf-8"))["summary"]["time_course"]
    assert course[1]["volume_mm3"] > 0 and course[1]["rano_bm"] != "CR"


def test_a_dicom_series_missing_a_slice_is_used_only_when_allowed_and_then_said(tmp_path, capsys):
    """A DICOM series with a slice missing is refused (corpus); with --allow-uneven-slices it is stacked as
    acquired and findings.json and the report say so."""
    corpus_dir = tmp_path / "c"
    entries = {e["name"]: e for e in make_corpus.make_corpus(str(corpus_dir))}
    argv = list(entries["dicom_missing_slice"]["argv"])
    assert cli.main(argv) == 2
    assert "slice positions are uneven" in capsys.readouterr().err
    assert cli.main(argv + ["--allow-uneven-slices"]) == 0
    out = argv[argv.index("--out") + 1]
    warnings = json.loads(open(os.path.join(out, "findings.json"), encoding="utf-8").read())["warnings"]
    assert any("slice positions are uneven" in w and "--allow-uneven-slices" in w for w in warnings), warnings
    assert "slice positions are uneven" in open(os.path.join(out, "report.html"), encoding="utf-8").read()


def test_a_rerun_keeps_the_users_files_follows_a_symlinked_out_and_honours_the_umask(tmp_path):
    """Only the files a run wrote (listed in its marker) are replaced by the next run: a note and a folder of
    screenshots the user put into the output folder stay. --out that is a symbolic link to a folder: the outputs
    go there and the link stays a link. The output folder's permissions follow the umask."""
    m = make_corpus._write_case(str(tmp_path / "case"))
    target = tmp_path / "real_out"
    target.mkdir()
    link = tmp_path / "out"
    link.symlink_to(target, target_is_directory=True)
    old = os.umask(0o022)
    try:
        assert cli.main(["assess", m, "--out", str(link), "--no-pdf"]) == 0
        assert link.is_symlink() and (target / "findings.json").is_file()
        assert oct(target.stat().st_mode & 0o777) == oct(0o755)
        listed = (target / ".rnassess-output").read_text(encoding="utf-8").splitlines()
        assert "findings.json" in listed and "report.html" in listed
        (target / "notes.txt").write_text("my notes", encoding="utf-8")
        (target / "my_screens").mkdir()
        (target / "my_screens" / "shot.png").write_bytes(b"\x89PNG user")
        os.umask(0o077)
        assert cli.main(["assess", m, "--out", str(link), "--no-pdf"]) == 0
    finally:
        os.umask(old)
    assert (target / "notes.txt").read_text(encoding="utf-8") == "my notes"
    assert (target / "my_screens" / "shot.png").read_bytes() == b"\x89PNG user"
    assert oct(target.stat().st_mode & 0o777) == oct(0o700)
    assert link.is_symlink() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]


def test_an_internal_error_never_writes_into_a_previous_complete_output(tmp_path, monkeypatch, capsys):
    """The traceback of a failed run goes beside a previous run's complete outputs, which stay byte-identical."""
    from RNAssessmentLib.pipeline import assess
    m = make_corpus._write_case(str(tmp_path / "case"))
    out = tmp_path / "out"
    assert cli.main(["assess", m, "--out", str(out), "--no-pdf"]) == 0
    before = _digest(str(out))

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(assess, "assess_case", broken)
    assert cli.main(["assess", m, "--out", str(out), "--no-pdf"]) == 3
    assert _digest(str(out)) == before
    log = tmp_path / "out.rnassess-error.log"
    assert "a bug" in log.read_text(encoding="utf-8") and str(log) in capsys.readouterr().err


def test_an_unwritable_output_folder_is_refused_before_any_work_by_a_non_root_user(tmp_path):
    """Run as a user who may not write there (the tests' own user, or nobody when they run as root: a forked
    process that drops to uid 65534, this interpreter and its modules already loaded): exit 2 naming the folder,
    before the case is even read (no temporary folder, no error log, no outputs)."""
    import io
    from contextlib import redirect_stderr

    locked = tmp_path / "locked"
    locked.mkdir()
    m = make_corpus._write_case(str(tmp_path / "case"))
    for p in (tmp_path, tmp_path / "case", *(tmp_path / "case").iterdir()):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(locked, 0o555)
    argv = ["assess", m, "--out", str(locked / "out"), "--no-pdf"]
    # The same command once here, refused at the same check (an existing file as --out), loads every module it
    # needs while this process can still read them.
    (tmp_path / "a_file").write_text("x")
    with redirect_stderr(io.StringIO()):
        assert cli.main(["assess", m, "--out", str(tmp_path / "a_file"), "--no-pdf"]) == 2
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # the child: another user, the same checks
        os.close(read_end)
        code = 99
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            err = io.StringIO()
            with redirect_stderr(err):
                code = cli.main(argv)
            os.write(write_end, err.getvalue().encode("utf-8", "replace"))
        except BaseException as exc:               # say what went wrong in the child, then leave
            os.write(write_end, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        err = f.read().decode("utf-8")
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 2, err[-2000:]
    assert err.count("\n") == 1, err                      # the one error line: nothing was read or logged before
    assert "cannot write in" in err and str(locked) in err
    assert os.listdir(locked) == []


def test_the_review_guard_redirects_only_to_its_own_paths_locks_out_guessers_and_needs_a_host(tmp_path,
                                                                                             monkeypatch):
    """The review server's guard (review_app._guard) on a bare aiohttp app: GET //evil.example/?token=… redirects
    to a path of this server, not to another host; wrong tokens are locked out after a few (429 with
    Retry-After); a request without a Host header gets a plain 400, no traceback. The token can come from a file or
    the environment, never needing the command line."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from RNAssessmentLib.faces import review_app as RA
    token = "t" * 24

    async def ok(_request):
        return web.Response(text="ok")

    async def scenario():
        app = web.Application(middlewares=[RA._guard(token, True)])
        app.router.add_get("/{tail:.*}", ok)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
            writer.write(f"GET //evil.example/?token={token} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
            await writer.drain()
            head = (await reader.read()).decode(errors="replace").split("\r\n\r\n")[0].splitlines()
            writer.close()
            location = next(h.split(":", 1)[1].strip() for h in head if h.lower().startswith("location:"))
            assert " 303 " in head[0] and location == "/evil.example/", head
            r = await client.get("/", headers={"Host": "localhost"}, cookies={RA.TOKEN_COOKIE: token})
            assert r.status == 200
            statuses = []
            for _ in range(RA.WRONG_TOKENS_ALLOWED + 2):
                r = await client.get("/?token=wrong-token-xxxxxxxx", headers={"Host": "localhost"},
                                     allow_redirects=False)
                statuses.append(r.status)
            assert statuses[:RA.WRONG_TOKENS_ALLOWED] == [403] * RA.WRONG_TOKENS_ALLOWED
            assert statuses[-1] == 429 and "Retry-After" in r.headers
            # ... and while locked out, even the right token waits.
            r = await client.get(f"/?token={token}", headers={"Host": "localhost"}, allow_redirects=False)
            assert r.status == 429
            reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            reply = (await reader.read()).decode(errors="replace")
            writer.close()
            assert reply.startswith("HTTP/1.") and " 400 " in reply.splitlines()[0] and "Traceback" not in reply
    asyncio.run(scenario())
    (tmp_path / "token").write_text(token + "\n", encoding="utf-8")
    assert RA.token_from(None, str(tmp_path / "token")) == token
    monkeypatch.setenv("RNASSESS_REVIEW_TOKEN", "e" * 20)
    assert RA.token_from(None, None) == "e" * 20
    with pytest.raises(ValueError, match="either with --token or with --token-file"):
        RA.token_from(token, str(tmp_path / "token"))
