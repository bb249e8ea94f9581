"""rnassess review: an assessed teaching case served by trame-slicer and driven in headless Chromium.

The scene half (reading an assessment back, the MRML nodes) runs on slicer-core without a server; the browser half
starts ``rnassess review`` as a user would (its own process, loopback, a free port, a token) and checks what the
page shows against findings.json and the MRML slice nodes the server reports.
"""
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import ROOT

pytestmark = pytest.mark.xdist_group("review")

REQUIRED = bool(os.environ.get("RNASSESS_REQUIRE_REVIEW"))
TOKEN = "review-test-token-0123456789"


def _need(module):
    import importlib.util
    if importlib.util.find_spec(module) is None:
        if REQUIRED:
            pytest.fail(f"RNASSESS_REQUIRE_REVIEW is set but '{module}' is not installed (pip install \".[test]\")")
        pytest.skip(f"{module} not installed")


def _tree_digest(*folders) -> dict:
    """{path: (size, mtime_ns, sha1)} of every file under the folders: what 'read only' must leave as it was."""
    out = {}
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                p = os.path.join(root, name)
                st = os.stat(p)
                with open(p, "rb") as f:
                    out[p] = (st.st_size, st.st_mtime_ns, hashlib.sha1(f.read()).hexdigest())
    return out


def _assess(case_dir, out, *extra):
    from RNAssessmentLib.faces.cli import main
    assert main(["assess", os.path.join(case_dir, "case.json"), "--out", out, "--no-pdf", *extra]) == 0
    return out


@pytest.fixture(scope="session")
def assessed(tmp_path_factory):
    """Two teaching twins written and assessed as `rnassess demo` lays them out (<case>/assessment)."""
    from RNAssessmentLib.teaching.demo import write_demo
    base = tmp_path_factory.mktemp("review")
    manifests = write_demo(str(base / "demo"), ["falx_cingulate_rn", "falx_cingulate_pd"], log=lambda *_: None)
    dirs = {}
    for m in manifests:
        case_dir = os.path.dirname(m)
        dirs[os.path.basename(case_dir)] = _assess(case_dir, os.path.join(case_dir, "assessment"))
    return {"root": str(base / "demo"), "rn": dirs["falx_cingulate_rn"], "pd": dirs["falx_cingulate_pd"],
            "base": str(base)}


# ------------------------------------------------------------------------------------------------------------------
# Reading an assessment back and its scene (slicer-core, no server)
# ------------------------------------------------------------------------------------------------------------------

def test_findings_json_names_the_images_it_was_assessed_from(assessed):
    with open(os.path.join(assessed["rn"], "findings.json"), encoding="utf-8") as f:
        d = json.load(f)
    assert d["inputs"] == {"manifest": os.path.join(os.path.dirname(assessed["rn"]), "case.json")}


def test_find_assessments_single_and_folder_of_several(assessed):
    from RNAssessmentLib.faces.review import find_assessments
    assert find_assessments(assessed["rn"]) == [("falx_cingulate_rn", assessed["rn"])]
    assert find_assessments(assessed["root"]) == [("falx_cingulate_pd", assessed["pd"]),
                                                  ("falx_cingulate_rn", assessed["rn"])]


def test_review_scene_matches_the_assessment_and_the_truth(assessed):
    """The nodes the review adds: every isodose level in its own colour, one marker per finding at its centroid,
    the findings segments, and follow-ups placed by the registration so linked views show the same anatomy
    (checked against the phantom's true transforms: the follow-up lesion lands where it is in the planning
    frame)."""
    _need("slicer")
    import slicer
    import vtk

    from RNAssessmentLib.output import palette
    from RNAssessmentLib.io import geometry as geo
    from RNAssessmentLib.mrml import bridge as mb
    from RNAssessmentLib.faces.review import load_review_case
    from RNAssessmentLib.faces.slicer_case import add_review_nodes
    case_dir = os.path.dirname(assessed["rn"])
    before = _tree_digest(case_dir)
    rc = load_review_case(assessed["rn"], log=lambda *_: None)
    scene = slicer.vtkMRMLScene()
    steps = []
    nodes = add_review_nodes(scene, rc, lambda f, m: steps.append((f, m)))
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] == 1.0

    with open(os.path.join(assessed["rn"], "findings.json"), encoding="utf-8") as f:
        d = json.load(f)
    levels = [x["level_gy"] for x in d["summary"]["isodose"]]
    assert sorted(nodes["isodose"]) == sorted(levels)
    colours = palette.isodose_colours(levels, d["summary"]["dose"]["prescription_gy"])
    for lv, model in nodes["isodose"].items():
        disp = model.GetDisplayNode()
        assert np.allclose(disp.GetColor(), colours[lv], atol=1e-6)
        assert not disp.GetScalarVisibility() and disp.GetVisibility2D()
        # translucent in 3D: the lesion shows through all the nested shells (0.5 each had hidden it)
        assert disp.GetOpacity() <= 0.2
        assert model.GetPolyData().GetNumberOfPoints() > 100
    # Markers at the centroids findings.json gives (RAS), readable: every finding number once ("F1"), and no two
    # markers closer than 10 mm (their labels would print over each other: "21"); findings that close share one
    # marker "F1, F2" at their mean centroid.
    markers = nodes["markers"]
    placed = []
    for i in range(markers.GetNumberOfControlPoints()):
        p = [0.0, 0.0, 0.0]
        markers.GetNthControlPointPosition(i, p)
        numbers = [int(x.strip()[1:]) for x in markers.GetNthControlPointLabel(i).split(",")]
        cents = np.array([d["findings"][n - 1]["centroid_ras"] for n in numbers])
        assert np.allclose(p, cents.mean(axis=0), atol=1e-3)
        placed.append((np.asarray(p), numbers))
    assert sorted(n for _, ns in placed for n in ns) == list(range(1, len(d["findings"]) + 1))
    for i, (p, _) in enumerate(placed):
        for q, _ in placed[:i]:
            assert np.linalg.norm(p - q) >= 10.0, (p, q)
    names = set(mb.segment_names(nodes["findings"]))
    assert {"t1 across falx", "t2 across falx", "t1-t2 grew", "t1-t2 regressed"} <= names
    assert set(mb.segment_names(nodes["boundaries"])) == {"falx", "tentorium", "ventricles", "csf"}
    # Follow-ups sit under their registration: the t1 lesion's centroid, mapped to the planning frame through the
    # transform node, lands where the true (phantom) transform puts it.
    t1_node = nodes["volumes"][1]
    tnode = t1_node.GetParentTransformNode()
    assert tnode is not None and nodes["volumes"][0].GetParentTransformNode() is None
    t1 = rc.case.timepoints[1]
    c_t1_lps = geo.centroid_lps(t1.lesion)
    to_world = vtk.vtkGeneralTransform()
    tnode.GetTransformToWorld(to_world)
    world = to_world.TransformPoint(*geo.ras_from_lps(c_t1_lps))
    truth = sitk.ReadTransform(os.path.join(case_dir, "truth", "transform_t1.tfm"))     # planning → t1 (LPS)
    expected_lps = np.asarray(truth.GetInverse().TransformPoint(tuple(c_t1_lps)))
    err = np.linalg.norm(geo.lps_from_ras(world) - expected_lps)
    assert err < 1.5, f"t1 placed {err:.2f} mm from where the true transform puts it"
    # The transform moved something (the phantom follow-ups are misaligned by several mm on purpose).
    assert np.linalg.norm(geo.lps_from_ras(world) - c_t1_lps) > 2.0
    # Each timepoint's view fills the findings of its own scan only (issue 38): the focus first seen at t1 is an
    # outline on the SRS scan, a fill on t1's; the t1-t2 grown portion a fill on t2's only, the regressed one on
    # t1's only. The timepoints are those of the design (t0 SRS, t1, t2), not read from the code under test.
    from RNAssessmentLib.faces.slicer_case import fill_findings_by_timepoint
    labels = [t["label"] for t in d["summary"]["timepoints"]]
    assert labels == ["t0", "t1", "t2"]
    slices = mb.compare_layout(scene, nodes["volumes"])
    views = fill_findings_by_timepoint(scene, nodes["findings"], labels, slices)
    seg = nodes["findings"].GetSegmentation()
    sid = {seg.GetNthSegment(k).GetName(): seg.GetNthSegmentID(k) for k in range(seg.GetNumberOfSegments())}
    expect = {"t1 across falx": "t1", "t2 across falx": "t2", "t1-t2 grew": "t2", "t1-t2 regressed": "t1"}
    assert len(views) == 3
    for view, slice_node, label in zip(views, slices, labels):
        assert list(view.GetViewNodeIDs()) == [slice_node.GetID()] and not view.GetVisibility3D()
        for name, shown_at in expect.items():
            assert view.GetSegmentVisibility2DFill(sid[name]) == (label == shown_at), (name, label)
            assert view.GetSegmentVisibility2DOutline(sid[name])
    assert not nodes["findings"].GetDisplayNode().GetVisibility2D()       # 2D is left to the per-view nodes
    # An orientation change updates the same display nodes in place (replacing them under the segmentation
    # displayable manager crashed the review server).
    again = fill_findings_by_timepoint(scene, nodes["findings"], labels, slices)
    assert nodes["findings"].GetNumberOfDisplayNodes() == 4 and [v.GetID() for v in again] == \
        [v.GetID() for v in views]
    assert fill_findings_by_timepoint(scene, nodes["findings"], labels[:2], slices[:2])[1].GetID() == views[1].GetID()
    assert nodes["findings"].GetNumberOfDisplayNodes() == 3 and scene.GetNodeByID(views[2].GetID()) is None
    again = again[:2]
    mb.remove_view_displays(scene, nodes["findings"])
    assert all(scene.GetNodeByID(v.GetID()) is None for v in again)
    # Every node of the case sits in its folder: removing the folder (a case switch) leaves none behind.
    ids = [n.GetID() for n in nodes["nodes"]]
    mb.remove_folder(scene, nodes["folder"])
    assert not [i for i in ids if scene.GetNodeByID(i) is not None]
    assert _tree_digest(case_dir) == before, "reviewing wrote into the case or assessment folder"


def test_a_folder_that_is_not_an_assessment_is_refused_clearly(tmp_path, assessed):
    from RNAssessmentLib.faces.review import NotAnAssessment, find_assessments, load_review_case
    with pytest.raises(NotAnAssessment, match="is not an assessment: no RNAssessment findings.json"):
        find_assessments(str(tmp_path))
    (tmp_path / "findings.json").write_text(json.dumps({"something": 1}))
    with pytest.raises(NotAnAssessment, match="not an RNAssessment findings.json"):
        find_assessments(str(tmp_path))
    with pytest.raises(NotAnAssessment, match="is not a folder"):
        find_assessments(str(tmp_path / "nowhere"))
    # The case moved away after the assessment: said, with what to do.
    moved = tmp_path / "moved"
    shutil.copytree(os.path.dirname(assessed["pd"]), moved)
    with open(moved / "assessment" / "findings.json", encoding="utf-8") as f:
        d = json.load(f)
    d["inputs"]["manifest"] = str(tmp_path / "gone" / "case.json")
    (moved / "assessment" / "findings.json").write_text(json.dumps(d))
    with pytest.raises(NotAnAssessment, match="which is no longer there"):
        load_review_case(str(moved / "assessment"), log=lambda *_: None)


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "RNAssessment"))
    return subprocess.run([sys.executable, "-m", "RNAssessmentLib.faces.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_refuses_network_without_token_and_non_assessments(tmp_path, assessed):
    r = _cli("review", assessed["rn"], "--host", "0.0.0.0")
    assert r.returncode == 2 and "give --token" in r.stderr and "serving" not in r.stdout
    r = _cli("review", assessed["rn"], "--host", "0.0.0.0", "--token", "short")
    assert r.returncode == 2 and "at least 16 characters" in r.stderr
    r = _cli("review", str(tmp_path))
    assert r.returncode == 2 and "is not an assessment" in r.stderr
    r = _cli("review", assessed["rn"], "--port", "70000")
    assert r.returncode == 2 and "--port 70000" in r.stderr


def test_serving_rules_for_hosts_and_tokens():
    from RNAssessmentLib.faces.review_app import _host_name, check_serving, is_loopback
    assert check_serving("127.0.0.1", None) is None and check_serving("::1", None) is None
    assert check_serving("localhost", None) is None
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(ValueError, match="give --token"):
            check_serving(host, None)
    made = check_serving("0.0.0.0", None, generate=True)
    assert len(made) >= 16 and made != check_serving("0.0.0.0", None, generate=True)
    assert check_serving("0.0.0.0", TOKEN) == TOKEN
    assert [_host_name(h) for h in ("localhost:8080", "127.0.0.1", "[::1]:80", "evil.example:80")] == \
        ["localhost", "127.0.0.1", "[::1]", "evil.example"]


# ------------------------------------------------------------------------------------------------------------------
# The web app in a real browser
# ------------------------------------------------------------------------------------------------------------------

class Server:
    """``rnassess review`` in its own process on loopback (free port), stopped at the end (and by itself when
    idle)."""

    def __init__(self, folder, *args):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "RNAssessment"),
                   VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow")
        self.t0 = time.time()
        # stderr into a file: a pipe nobody reads would block the server once full.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "RNAssessmentLib.faces.cli", "review", folder, "--port", "0",
                                      "--idle-timeout", "120", *args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.url = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"serving \d+ case\(s\) at (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        # Keep reading what the server prints, so its stdout pipe never fills.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        if self.url is None:
            self.stop()
            self.log.seek(0)
            pytest.fail(f"rnassess review did not start: {self.log.read()[-3000:]}")
        self.base = self.url.split("?")[0].rstrip("/")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _png(data: bytes, mode: str = "L") -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode), dtype=float)


@pytest.fixture(scope="session")
def browser_session(assessed):
    _need("trame_slicer")
    from RNAssessmentLib.output.browser import Headless, find_chromium
    if find_chromium() is None:
        if REQUIRED or os.environ.get("RNASSESS_REQUIRE_BROWSER"):
            pytest.fail("no Chromium found (Debian's chromium)")
        pytest.skip("no Chromium")
    digest = _tree_digest(assessed["root"])
    server = Server(assessed["root"], "--token", TOKEN, "--max-sessions", "2")
    b = Headless(width=1600, height=1000, timeout_s=90)
    try:
        yield {"server": server, "browser": b, "digest": digest}
    finally:
        b.close()
        server.stop()


def _wait(b, expression, timeout=90.0, what=""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = b.evaluate(expression)
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what or expression}")


def _state(b) -> dict:
    return json.loads(b.evaluate("fetch('/rnassess/state').then(r => r.text())"))


def _view_images(b, settle=1.5, mode="L"):
    """PNG of every view (slice views left to right, then 3D), once the views are on the page and the picture has
    stopped changing (while a case loads the views can be off the page for a moment: no views twice is no answer,
    as it once was on a loaded machine)."""
    prev = None
    for _ in range(40):
        time.sleep(settle / 3)
        shots = b.element_screenshots(".review-views img")
        digest = [hashlib.sha1(s).hexdigest() for s in shots]
        if shots and digest == prev:
            return [_png(s, mode) for s in shots]
        prev = digest
    assert shots, "no view images on the page"
    return [_png(s, mode) for s in shots]


def test_token_is_required_and_moves_into_a_cookie(browser_session):
    base = browser_session["server"].base
    for url in (f"{base}/", f"{base}/?token=wrong-token-0123456789", f"{base}/rnassess/state"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url, timeout=10)
        assert e.value.code == 403, url

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(f"{base}/?token={TOKEN}", timeout=10)
    assert e.value.code == 303 and e.value.headers["Location"] == "/"
    cookie = e.value.headers["Set-Cookie"]
    assert TOKEN in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # A Host header that is not a loopback name (DNS rebinding) is refused even with the token.
    req = urllib.request.Request(f"{base}/?token={TOKEN}", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


def test_review_in_the_browser(browser_session, assessed):
    """Open the URL the server printed; the views render, differ between timepoints; the legend lists the case's
    levels; hiding a level changes the views; a finding click centres every slice view on it; no console errors;
    nothing in the case folders written."""
    b, server = browser_session["browser"], browser_session["server"]
    b.open(server.url)
    assert "token" not in b.evaluate("window.location.href")          # moved into the cookie
    _wait(b, "window.trame && window.trame.state && window.trame.state.get('loaded')", what="the case to load")
    st = _state(b)
    assert st["loaded"] and not st["error"]
    names = b.evaluate("window.trame.state.get('case_names')")
    assert names == ["falx_cingulate_pd", "falx_cingulate_rn"]
    if st["case"] != "falx_cingulate_rn":                               # the server starts on the picker's first
        b.evaluate("window.trame.state.set('case_name', 'falx_cingulate_rn')")
        _wait(b, "fetch('/rnassess/state').then(r => r.json()).then(j => j.loaded && j.case === 'falx_cingulate_rn')",
              what="the RN case to load")
        _wait(b, "window.trame.state.get('case_title').startsWith('falx_cingulate_rn')", what="the page to follow")
    with open(os.path.join(assessed["rn"], "findings.json"), encoding="utf-8") as f:
        d = json.load(f)
    # Legend: the case's isodose levels, highest first, in the page.
    levels = sorted((x["level_gy"] for x in d["summary"]["isodose"]), reverse=True)
    legend = b.evaluate("Array.from(document.querySelectorAll('.iso-label')).map(e => e.textContent.trim())")
    assert legend == [f"{lv:g} Gy" for lv in levels]
    views = _view_images(b)
    assert len(views) == len(d["summary"]["timepoints"]) + 1            # one slice view per timepoint, and 3D
    for i, v in enumerate(views):
        assert v.shape[0] > 200 and v.shape[1] > 200, f"view {i} is {v.shape}"
        assert v.std() > 10, f"view {i} is blank (std {v.std():.1f})"
    slices = views[:-1]
    for i in range(len(slices) - 1):
        a, c = slices[i], slices[i + 1]
        h, w = min(a.shape[0], c.shape[0]), min(a.shape[1], c.shape[1])
        assert np.abs(a[:h, :w] - c[:h, :w]).mean() > 2, f"timepoints {i} and {i + 1} look the same"
    # The 3D view shows the isodose surfaces: coloured pixels, not only the background gradient.
    shot3d = b.element_screenshots(".review-views img")[-1]
    from PIL import Image
    rgb = np.asarray(Image.open(io.BytesIO(shot3d)).convert("RGB"), dtype=float)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    assert (saturation > 80).mean() > 0.005, "no coloured surface in the 3D view"

    # Hide the lowest level: the server hides that model and the slice views change.
    lowest = len(levels) - 1
    b.evaluate(f"document.querySelectorAll('.iso-toggle input')[{lowest}].click()")
    _wait(b, f"fetch('/rnassess/state').then(r => r.json()).then(j => j.isodose_shown['{levels[-1]:g}'] === false)",
          what="the level to be hidden")
    hidden = _view_images(b)
    changed = [np.abs(x - y).mean() for x, y in zip(views[:-1], hidden[:-1])]
    assert max(changed) > 0.05, f"hiding {levels[-1]:g} Gy changed no slice view ({changed})"
    assert all(v for k, v in _state(b)["isodose_shown"].items() if k != f"{levels[-1]:g}")
    b.evaluate(f"document.querySelectorAll('.iso-toggle input')[{lowest}].click()")
    _wait(b, f"fetch('/rnassess/state').then(r => r.json()).then(j => j.isodose_shown['{levels[-1]:g}'] === true)",
          what="the level to be shown again")

    # Click each finding: every slice view's centre moves to its centroid (read back from the MRML slice nodes).
    items = b.evaluate("Array.from(document.querySelectorAll('.finding-item')).length")
    assert items == len(d["findings"])
    # Each finding titled in words, with every timepoint it holds at: F1, the focus across the falx at t1 and t2
    # (one observation, one finding), never the identifier "noncontiguous across boundary".
    first = b.evaluate("document.querySelectorAll('.finding-item')[0].textContent")
    assert "Non-contiguous enhancement across a boundary (t1, t2)" in first, first
    assert "noncontiguous" not in b.evaluate("document.body.innerText")
    whole = min(_state(b)["slice_fov_mm"].values())
    for k in (2, 1):
        b.evaluate(f"document.querySelectorAll('.finding-item')[{k - 1}].click()")
        _wait(b, f"fetch('/rnassess/state').then(r => r.json()).then(j => j.active_finding === {k})",
              what=f"finding {k} to be active")
        st = _state(b)
        target = np.asarray(d["findings"][k - 1]["centroid_ras"])
        assert len(st["slice_centres_ras"]) == len(d["summary"]["timepoints"])
        for tag, centre in st["slice_centres_ras"].items():
            assert np.linalg.norm(np.asarray(centre) - target) < 0.5, (tag, centre, target)
        assert len(set(round(v, 3) for v in st["slice_offsets"].values())) == 1      # linked: one offset
        # ... and zoomed to it: four times the diameter of a sphere of its volume, at least 40 mm across (the
        # whole head was shown before the first click)
        size = (6.0 * d["findings"][k - 1]["volume_mm3"] / np.pi) ** (1.0 / 3.0)
        for tag, fov in st["slice_fov_mm"].items():
            assert fov == pytest.approx(max(40.0, 4.0 * size), rel=1e-6) and fov < 0.5 * whole, (tag, fov, whole)
    # Reading aids in every slice view: the caption (timepoint, day), the letters of the radiological convention,
    # Slicer's scale bar, and each isodose label beside its own line — in the view's (lossless) image the level's
    # colour within 3 px of the label's anchor, and the label's text in that colour inside its box — no two
    # labels overlapping. Read at the zoom of the last click, as a reader would.
    st = _state(b)
    colours = {float(x["level"]): np.array([int(x["colour"][k:k + 2], 16) for k in (1, 3, 5)], float)
               for x in b.evaluate("window.trame.state.get('iso_levels')")}
    shots = _view_images(b, mode="RGB")[:-1]
    n_labels = 0
    for i, tp in enumerate(d["summary"]["timepoints"]):
        ann = st["annotations"][f"RNA{i + 1}"]
        assert ann["caption"] == f"{tp['label']} · day {tp['days_since_srs']}", ann["caption"]
        assert ann["letters"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
        img = shots[i]
        h, w = img.shape[:2]
        scale = w / ann["size"][0]
        ys, xs = np.mgrid[0:h, 0:w]
        # The scale bar: a round length whose pixels are that many mm at the view's zoom (the field of view read
        # back from the slice node), drawn white where the state says (above the page's slice slider).
        bar = ann["scale_bar"]
        mm_per_px = st["slice_fov_mm"][f"RNA{i + 1}"] / min(ann["size"])
        assert bar["mm"] in (1, 2, 5, 10, 20, 50, 100) and bar["px"] * mm_per_px == pytest.approx(bar["mm"], rel=0.01)
        assert 0.08 * ann["size"][0] <= bar["px"] <= 0.2 * ann["size"][0]
        (x0, y0), (x1, _) = bar["from_px"], bar["to_px"]
        row = img[int(round(h - y0 * scale)) - 1:int(round(h - y0 * scale)) + 2,
                  int(x0 * scale) + 2:int(x1 * scale) - 1]
        assert (row.min(axis=2) > 200).any(axis=0).mean() > 0.9, "the scale bar is not drawn where it is said to be"
        for j, lab in enumerate(ann["isodose_labels"]):
            off = np.linalg.norm(img - colours[lab["level"]], axis=2) < 30
            ax, ay = lab["anchor"]
            near = np.hypot(xs - ax * scale, ys - (h - ay * scale)) <= 3
            assert off[near].any(), f"{tp['label']}: no {lab['level']:g} Gy line at its label's anchor"
            bx, by, bw, bh = (v * scale for v in lab["box"])
            inside = (xs >= bx) & (xs <= bx + bw) & (ys >= h - by - bh) & (ys <= h - by)
            assert off[inside].mean() > 0.05, f"{tp['label']}: the {lab['level']:g} Gy label is not drawn in its box"
            assert np.hypot(*(np.clip([ax, ay], [lab["box"][0], lab["box"][1]],
                                      [lab["box"][0] + lab["box"][2], lab["box"][1] + lab["box"][3]])
                              - np.array([ax, ay]))) <= 5.0, lab           # the box touches its line
            for other in ann["isodose_labels"][:j]:
                a, c = lab["box"], other["box"]
                assert a[0] + a[2] <= c[0] or c[0] + c[2] <= a[0] or a[1] + a[3] <= c[1] or c[1] + c[3] <= a[1]
        n_labels += len(ann["isodose_labels"])
    assert n_labels >= len(d["summary"]["timepoints"]), "an isodose label in every view"
    # Axial offset = the centroid's S coordinate.
    assert abs(next(iter(st["slice_offsets"].values())) - d["findings"][0]["centroid_ras"][2]) < 0.5
    # Each view fills the findings of its own scan only (issue 38): none of the follow-ups' findings is a fill on
    # the SRS scan (view 1); "t1 across falx" is filled on t1's (view 2) and not on t2's.
    filled = _state(b)["filled"]
    srs, first, second = (filled[t] for t in sorted(filled))           # the views' tags end in 1, 2, 3
    # On the SRS scan only what it shows: the portions that regressed since it ("t0-t2 regressed").
    assert len(filled) == 3 and srs and all(n.startswith("t0-") and n.endswith(" regressed") for n in srs)
    assert "t1 across falx" in first
    assert "t1 across falx" not in second and "t2 across falx" in second
    # The lesion list: L1 the treated lesion, L2 the focus first seen at t1; a click centres the views on L2 where
    # it was last seen (findings.json's centroid).
    lesions = {x["id"]: x for x in d["lesions"]}
    titles = b.evaluate("Array.from(document.querySelectorAll('.lesion-item')).map(e => e.textContent)")
    assert len(titles) == 2 and "L1 treated lesion" in titles[0] and "L2 new focus (first seen t1)" in titles[1]
    b.evaluate("document.querySelectorAll('.lesion-item')[1].click()")
    _wait(b, "fetch('/rnassess/state').then(r => r.json()).then(j => j.active_lesion === 'L2')", what="L2 active")
    last = lesions["L2"]["timepoints"][-1]
    target = np.asarray(last["centroid_ras"])
    for tag, centre in _state(b)["slice_centres_ras"].items():
        assert np.linalg.norm(np.asarray(centre) - target) < 0.5, (tag, centre, target)
    size = max(last["longest_diameter_mm"], (6.0 * last["volume_mm3"] / np.pi) ** (1.0 / 3.0))
    assert all(fov == pytest.approx(max(40.0, 4.0 * size), rel=1e-6) for fov in _state(b)["slice_fov_mm"].values())
    if os.environ.get("RNASSESS_SCREENSHOTS"):
        b.screenshot(os.path.join(os.environ["RNASSESS_SCREENSHOTS"], "review_falx.png"), full_page=False)
    # Coronal: the letters follow the view (patient's right on the left, superior at the top).
    b.evaluate("window.trame.state.set('orientation', 'Coronal')")
    _wait(b, "fetch('/rnassess/state').then(r => r.json()).then(j => j.orientation === 'Coronal' && "
             "Object.values(j.annotations).every(a => a.letters.top === 'S'))", what="coronal letters")
    assert all(a["letters"] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
               for a in _state(b)["annotations"].values())
    b.evaluate("window.trame.state.set('orientation', 'Axial')")
    _wait(b, "fetch('/rnassess/state').then(r => r.json()).then(j => j.orientation === 'Axial' && "
             "Object.values(j.annotations).every(a => a.letters.top === 'A'))", what="axial again")
    assert b.errors() == [], b.errors()
    assert _tree_digest(assessed["root"]) == browser_session["digest"], "the review wrote into the case folders"


def test_case_picker_switches_case(browser_session, assessed):
    b = browser_session["browser"]
    b.open(browser_session["server"].url)                # on its own: the tests may run in any order
    _wait(b, "window.trame && window.trame.state && window.trame.state.get('loaded')", what="a case")
    current = _state(b)["case"]
    before = _view_images(b)
    other = "falx_cingulate_pd" if current == "falx_cingulate_rn" else "falx_cingulate_rn"
    b.evaluate(f"window.trame.state.set('case_name', '{other}')")
    _wait(b, f"fetch('/rnassess/state').then(r => r.json()).then(j => j.loaded && j.case === '{other}')",
          what=f"{other} to load")
    with open(os.path.join(assessed["pd" if other.endswith("pd") else "rn"], "findings.json"),
              encoding="utf-8") as f:
        d = json.load(f)
    # The page follows (state pushed over the websocket, after the server says it has loaded).
    _wait(b, f"document.querySelectorAll('.finding-item').length === {len(d['findings'])}",
          what="the page to list the other case's findings")
    assert b.evaluate("window.trame.state.get('case_title')").startswith(other)
    after = _view_images(b)
    assert max(np.abs(x[:200, :200] - y[:200, :200]).mean() for x, y in zip(before[:-1], after[:-1])) > 1
    assert b.errors() == [], b.errors()


def test_each_browser_has_its_own_review(browser_session, assessed):
    """Two readers, two browsers (own profiles, own cookies) on the one URL the server printed: each gets its own
    review (a session of its own on its own port), so one switching case or clicking a finding leaves the other's
    case, selection and views as they were; a reload returns to one's own review; a third reader beyond
    --max-sessions 2 gets a clear refusal, never someone else's session."""
    from RNAssessmentLib.output.browser import Headless
    b1, server = browser_session["browser"], browser_session["server"]
    b1.open(server.url)
    _wait(b1, "window.trame && window.trame.state && window.trame.state.get('loaded')", what="reader 1's case")
    own1 = b1.evaluate("window.location.port")
    case1 = _state(b1)["case"]
    other = "falx_cingulate_pd" if case1 == "falx_cingulate_rn" else "falx_cingulate_rn"
    active1 = _state(b1)["active_finding"]
    with Headless(width=1280, height=900, timeout_s=90) as b2:
        b2.open(server.url)
        _wait(b2, "window.trame && window.trame.state && window.trame.state.get('loaded')", what="reader 2's case")
        assert b2.evaluate("window.location.port") != own1
        b2.evaluate(f"window.trame.state.set('case_name', '{other}')")
        _wait(b2, f"fetch('/rnassess/state').then(r => r.json()).then(j => j.loaded && j.case === '{other}')",
              what="reader 2's case switch")
        b2.evaluate("document.querySelectorAll('.finding-item')[0].click()")
        _wait(b2, "fetch('/rnassess/state').then(r => r.json()).then(j => j.active_finding === 1)",
              what="reader 2's selection")
        time.sleep(1.0)
        st1 = _state(b1)
        assert st1["case"] == case1 and st1["active_finding"] == active1, st1
        assert b1.evaluate("window.trame.state.get('case_name')") == case1
        # The front knows both sessions; a third reader (no session cookie) is refused, with the reason.
        opener = urllib.request.build_opener()
        opener.addheaders = [("Cookie", f"rnassess_review={TOKEN}")]
        sessions = json.loads(opener.open(f"{server.base}/rnassess/sessions", timeout=10).read())
        assert len(sessions["sessions"]) == 2 and sessions["max_sessions"] == 2
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(f"{server.base}/", timeout=30)
        assert e.value.code == 503 and "--max-sessions 2" in e.value.read().decode()
        assert b2.errors() == [], b2.errors()
    # A reload (the printed URL again) returns reader 1 to its own review, as it left it.
    b1.open(server.url)
    _wait(b1, "window.trame && window.trame.state && window.trame.state.get('loaded')", what="reader 1 again")
    assert b1.evaluate("window.location.port") == own1 and _state(b1)["case"] == case1
    assert b1.errors() == [], b1.errors()
