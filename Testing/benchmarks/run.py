"""Benchmarks (not tests): each figure is printed as a ratio to a peer measured in the same run on this machine.

    pip install ".[bench]" && python Testing/benchmarks/run.py [dvh] [isodose] [case] [boundaries] [change] [realmri] [cohort] [import] [review]

* dvh      – all ROIs of the dicompyler example plan: RNAssessment vs ``dicompylercore.dvhcalc.get_dvh``, plus each
             one's agreement with the TPS DVHs embedded in the RTDOSE (volume and mean dose).
* isodose  – 5 isodose surfaces on the SlicerRT prostate dose vs SlicerRT's classic pipeline rebuilt from VTK
             filters (image marching cubes → decimation → smoothing → normals).
* case       – full assessment of one 1 mm teaching case vs just reading its files.
* boundaries – one follow-up analysed inside the lesion/dose box vs the same on the whole head.
* change     – registration + change analysis of a 3-timepoint case vs one plain full-resolution registration.
* realmri    – on the 240x240x155 BraTS MRI (Testing/Data/real-mri) with an implanted case: the atlas step (fit
               and automatic boundaries) and a whole 2-timepoint assessment, each in a fresh process, vs a plain
               read of the same files in a fresh process; time and peak resident memory.
               Targets (issue 10): atlas step <= 15 s, whole case <= 30 s on 2 cores, peak memory < 2 GB.
* cohort     – the 16 teaching cases through ``rnassess cohort`` with 1 and 2 workers and assessed directly one
               after another: speed-up of the second worker (target >= 1.7x) and runner overhead (< 5 %).
* import     – header scan of a 5,000-file DICOM export vs ``pydicom.dcmread`` of the same headers.
* review     – ``rnassess review`` of an assessed 240x240x155 two-timepoint case (BraTS implant): time from starting
               the server to the first rendered views in headless Chromium, and the server's peak resident memory,
               vs a plain read of the case's files in a fresh process. Needs the review extra and Chromium.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "Testing", "Data")


def best_of(fn, repeat=3):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_dvh():
    import pydicom
    import pydicom.dicomio
    # dicompyler-core 0.5.6 imports pydicom 1.x's read_file, which pydicom 3 renamed dcmread.
    if not hasattr(pydicom.dicomio, "read_file"):
        pydicom.dicomio.read_file = pydicom.dcmread
    from dicompylercore import dvhcalc
    from RNAssessmentLib.analysis.dose import structure_stats
    from RNAssessmentLib.io.rtdose import embedded_dvhs, read_rtdose
    from RNAssessmentLib.io.structures import read_rtstruct

    rtdose = os.path.join(DATA, "dicompyler-example", "rtdose.dcm")
    rtss = os.path.join(DATA, "dicompyler-example", "rtss.dcm")
    tps = embedded_dvhs(rtdose)

    def ours():
        dose, _ = read_rtdose(rtdose)
        return {r.number: structure_stats(dose, r) for r in read_rtstruct(rtss) if not r.is_empty}

    def theirs():
        out = {}
        for r in read_rtstruct(rtss):
            if r.is_empty:
                continue
            d = dvhcalc.get_dvh(rtss, rtdose, r.number)
            out[r.number] = d
        return out

    t_ours, res_ours = best_of(ours)
    t_theirs, res_theirs = best_of(theirs, repeat=1)
    print(f"dvh: all {len(res_ours)} ROIs of the dicompyler plan: RNAssessment {t_ours:.2f} s, dicompyler-core "
          f"{t_theirs:.2f} s -> {t_theirs / t_ours:.1f}x faster")
    print(f"{'ROI':18s} {'TPS cc':>9s} {'ours':>9s} {'dcmplr':>9s} | {'TPS Gy':>7s} {'ours':>7s} {'dcmplr':>7s}")
    err = {"ours": [], "dicompyler": []}
    for num, st in res_ours.items():
        if num not in tps:
            continue
        ref = tps[num]
        v_tps = ref["volume_total_cc"]
        m_tps = np.trapezoid(ref["volume_cc"], ref["dose_gy"]) / v_tps
        dp = res_theirs[num]
        name = st.name
        print(f"{name:18s} {v_tps:9.3f} {st.volume_cc:9.3f} {dp.volume:9.3f} | {m_tps:7.3f} {st.mean_gy:7.3f} "
              f"{dp.mean:7.3f}")
        err["ours"].append((abs(st.volume_cc / v_tps - 1), abs(st.mean_gy - m_tps)))
        err["dicompyler"].append((abs(dp.volume / v_tps - 1), abs(dp.mean - m_tps)))
    for k, v in err.items():
        a = np.array(v)
        print(f"dvh: {k:10s} vs TPS: median |volume error| {100 * np.median(a[:, 0]):.2f} %, median |mean dose "
              f"error| {np.median(a[:, 1]):.3f} Gy")


def bench_isodose():
    import SimpleITK as sitk
    import vtk
    from RNAssessmentLib.analysis.dose import _vtk_image_index_space, isodose_set
    from RNAssessmentLib.io import geometry as geo
    from RNAssessmentLib.io.geometry import to_vtk_matrix
    from RNAssessmentLib.io.images import read_image

    dose = read_image(os.path.join(DATA, "slicerrt-eclipse-prostate", "EclipseProstate_Dose.nrrd"))
    levels = [45.0, 40.0, 30.0, 20.0, 5.0]
    t_ours, iso = best_of(lambda: isodose_set(dose, levels, 46.0))

    def classic():
        vimg = _vtk_image_index_space(sitk.Cast(dose, sitk.sitkFloat32), pad=0)
        out = []
        for lv in levels:
            mc = vtk.vtkImageMarchingCubes()
            mc.SetInputData(vimg)
            mc.SetValue(0, lv)
            dec = vtk.vtkDecimatePro()
            dec.SetInputConnection(mc.GetOutputPort())
            dec.SetTargetReduction(0.6)
            sm = vtk.vtkWindowedSincPolyDataFilter()
            sm.SetInputConnection(dec.GetOutputPort())
            sm.SetNumberOfIterations(2)
            sm.SetPassBand(0.1)
            tf = vtk.vtkTransform()
            tf.SetMatrix(to_vtk_matrix(geo.ijk_to_lps(dose)))
            tp = vtk.vtkTransformPolyDataFilter()
            tp.SetInputConnection(sm.GetOutputPort())
            tp.SetTransform(tf)
            nm = vtk.vtkPolyDataNormals()
            nm.SetInputConnection(tp.GetOutputPort())
            nm.Update()
            out.append(nm.GetOutput())
        return out
    t_classic, _ = best_of(classic)
    print(f"isodose: 5 levels on the prostate dose ({dose.GetSize()}): RNAssessment {t_ours:.3f} s (target < 0.3 s), "
          f"classic marching-cubes pipeline {t_classic:.3f} s -> ratio {t_classic / t_ours:.2f}")
    print("isodose: enclosed volumes " + ", ".join(f"{i.level_gy:g} Gy {i.volume_cc:.1f} cc" for i in iso))


def bench_case():
    import tempfile

    from RNAssessmentLib.pipeline.assess import assess_case
    from RNAssessmentLib.io.case import load_manifest
    from RNAssessmentLib.teaching.demo import write_scenario
    from RNAssessmentLib.teaching.scenarios import get_scenario

    with tempfile.TemporaryDirectory() as d:
        manifest = write_scenario(get_scenario("falx_cingulate_rn"), d)
        t_read, case = best_of(lambda: load_manifest(manifest))
        t_assess, _ = best_of(lambda: assess_case(case, log_callback=lambda m: None))
    print(f"case: assessment of a 3-timepoint 1 mm case {t_assess:.2f} s; reading its files {t_read:.2f} s -> "
          f"ratio {t_assess / t_read:.2f}")


def bench_boundaries():
    from RNAssessmentLib.analysis import boundaries as B
    from RNAssessmentLib.anatomy import brain as anat_brain
    from RNAssessmentLib.teaching import phantom as P
    from RNAssessmentLib.teaching.scenarios import get_scenario

    r = P.render_scenario(get_scenario("falx_cingulate_rn", misalign=False))
    tp = r["timepoints"][1]
    brain = anat_brain.brain_mask(r["timepoints"][0].t1c)
    run = lambda box=None: B.analyse_followup(tp.label, tp.t1c, r["treated_lesion"], r["boundaries"],  # noqa: E731
                                              brain=brain, dose=r["dose"], box=box)
    t_box, _ = best_of(run)
    whole = B.Box(slices=tuple(slice(0, n) for n in tp.t1c.GetSize()),
                  grid=sitk_whole(r["treated_lesion"]))
    t_whole, _ = best_of(lambda: run(whole), repeat=1)
    print(f"boundaries: one follow-up of a 1 mm head {tp.t1c.GetSize()}: {t_box:.2f} s in the lesion/dose box "
          f"(target < 2 s); the same on the whole head {t_whole:.2f} s -> {t_whole / t_box:.1f}x. The box grows with "
          "the lesion and the >= 5 Gy region (+30 mm), not with the head.")


def sitk_whole(img):
    import SimpleITK as sitk
    return sitk.Cast(img, sitk.sitkUInt8) * 0


def bench_change():
    import SimpleITK as sitk
    from RNAssessmentLib.analysis import change as C
    from RNAssessmentLib.analysis.registration import register_followup, stable_region
    from RNAssessmentLib.anatomy import brain as anat_brain
    from RNAssessmentLib.io import geometry as geo
    from RNAssessmentLib.teaching import phantom as P
    from RNAssessmentLib.teaching.scenarios import get_scenario

    r = P.render_scenario(get_scenario("temporal_mixed_rn"))
    t0 = r["timepoints"][0]

    def ours():
        brain = anat_brain.brain_mask(t0.t1c)
        stable = stable_region(brain, [r["treated_lesion"]])
        masks = {t0.label: geo.array_view(t0.lesion) > 0}
        for tp in r["timepoints"][1:]:
            reg = register_followup(t0.t1c, tp.t1c, stable, planning_brain=brain, followup_brain=anat_brain.brain_mask(tp.t1c))
            masks[tp.label] = geo.array_view(sitk.Resample(tp.lesion, t0.t1c, reg.transform,
                                                           sitk.sitkNearestNeighbor)) > 0
        return C.analyse_changes(masks, t0.t1c)

    def plain():
        tp = r["timepoints"][1]
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(48)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(0.1, 11)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-3, 150, 0.5)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetInitialTransform(sitk.CenteredTransformInitializer(
            sitk.Cast(t0.t1c, sitk.sitkFloat32), sitk.Cast(tp.t1c, sitk.sitkFloat32), sitk.Euler3DTransform()))
        return reg.Execute(sitk.Cast(t0.t1c, sitk.sitkFloat32), sitk.Cast(tp.t1c, sitk.sitkFloat32))
    t_ours, _ = best_of(ours, repeat=1)
    t_plain, _ = best_of(plain, repeat=1)
    print(f"change: registration + change for a 3-timepoint 1 mm case {t_ours:.1f} s (target < 15 s); one plain "
          f"full-resolution registration {t_plain:.1f} s -> ratio {t_ours / t_plain:.2f}")


_CHILD = r"""
import json, resource, sys, time
import SimpleITK as sitk
from RNAssessmentLib.io.case import load_manifest
manifest, what = sys.argv[1], sys.argv[2]
t = time.perf_counter()
case = load_manifest(manifest)
if what == "atlas":
    import numpy as np
    from RNAssessmentLib.anatomy import atlas, barriers, brain, midline
    from RNAssessmentLib.io import geometry as geo
    t0 = case.timepoints[0]
    t = time.perf_counter()
    fit = atlas.fit_atlas(t0.t1c, exclude=case.treated_lesion)
    model = brain.tissue_model(geo.array_view(t0.t1c).astype(np.float32), geo.array_view(fit.brain) > 0)
    plane = midline.midsagittal_plane(t0.t1c, exclude=case.treated_lesion, brain=fit.brain)
    barriers.automatic_boundaries(t0.t1c, fit, model, plane, lesion=case.treated_lesion)
elif what == "assess":
    from RNAssessmentLib.pipeline.assess import assess_case
    t = time.perf_counter()
    assess_case(case, log_callback=lambda m: None)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run_child(script, *args):
    """Run ``script`` in a fresh interpreter; its last stdout line is JSON."""
    import json
    import subprocess
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _in_child(manifest, what):
    return _run_child(_CHILD, manifest, what)


def _realmri_two_timepoint_case(folder: str) -> tuple[str, str]:
    """The falx case implanted in the 240x240x155 BraTS MRI, cut to the SRS time and one follow-up:
    (manifest path, image size)."""
    import json

    from RNAssessmentLib.teaching import realmri as R
    base = R.BASES["brats"]
    images = R.load_base(base, os.path.join(DATA, "real-mri"))
    tpl = next(t for t in R.templates() if t.name == "falx_cingulate_rn")
    manifest = R.write_case(tpl, base, images, folder, seed=0)
    with open(manifest, encoding="utf-8") as f:
        spec = json.load(f)
    spec["timepoints"] = spec["timepoints"][:2]              # SRS time and one follow-up
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    return manifest, "x".join(map(str, images.t1c.GetSize()))


def bench_realmri():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        manifest, size = _realmri_two_timepoint_case(d)
        read = _in_child(manifest, "read")
        atlas = _in_child(manifest, "atlas")
        whole = _in_child(manifest, "assess")
    print(f"realmri: {size} BraTS case, 2 timepoints. Plain read of its files {read['seconds']:.1f} s, "
          f"{read['peak_mb']:.0f} MB peak.")
    print(f"  atlas step (fit + automatic boundaries) {atlas['seconds']:.1f} s (target <= 15 s) -> "
          f"{atlas['seconds'] / read['seconds']:.1f}x the read; peak {atlas['peak_mb']:.0f} MB")
    print(f"  whole assessment {whole['seconds']:.1f} s (target <= 30 s) -> {whole['seconds'] / read['seconds']:.1f}x "
          f"the read; peak {whole['peak_mb']:.0f} MB (target < 2048 MB) = {whole['peak_mb'] / read['peak_mb']:.1f}x "
          "the read's")


_DIRECT = r"""
import json, os, sys, time
t = time.perf_counter()                     # the imports count, as they do in a cohort worker's first case
from RNAssessmentLib.pipeline.assess import assess_to_folder
from RNAssessmentLib.io.case import load_manifest
out, manifests = sys.argv[1], sys.argv[2:]
for m in manifests:
    assess_to_folder(load_manifest(m), os.path.join(out, os.path.basename(os.path.dirname(m))), pdf=False,
                     log_callback=lambda msg: None)
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def _direct(manifests, out):
    """The cases assessed one after another in one fresh process (what ``rnassess assess`` runs, without a
    process start per case): seconds."""
    return _run_child(_DIRECT, out, *manifests)["seconds"]


def bench_cohort():
    """The teaching cases (written once by ``rnassess demo --no-assess`` into RNASSESS_BENCH_DEMO, default a temp
    folder) through ``rnassess cohort`` with 1 and with 2 workers, and the same cases assessed one after another in
    a fresh process (``assess_to_folder``, what ``rnassess assess`` runs), before and after the cohort runs (their
    spread is the machine's own noise): the speed-up of the second worker (2 cores: target >= 1.7x) and the
    runner's overhead per case vs calling assess directly (target < 5 %). No PDF."""
    import tempfile

    from RNAssessmentLib.faces.cli import main as cli_main
    from RNAssessmentLib.pipeline.cohort import discover, run_cohort
    demo = os.environ.get("RNASSESS_BENCH_DEMO") or os.path.join(tempfile.mkdtemp(), "demo")
    if not os.path.isdir(demo):
        cli_main(["demo", "--out", demo, "--no-assess"])
    cases = discover(demo)
    work = tempfile.mkdtemp()
    manifests = [c.manifest for c in cases]
    direct = [_direct(manifests, os.path.join(work, "direct0"))]
    t = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        r = run_cohort(demo, os.path.join(work, f"w{n}"), workers=n, pdf=False, log=lambda m: None)
        t[n] = time.perf_counter() - t0
        assert not r["failed"], r["failed"]
    # What a cohort does besides assessing: hash every input, keep the state, write cohort.csv/.json and the page
    # with one key image per case. A --resume of the 1-worker run does exactly that and assesses nothing.
    t0 = time.perf_counter()
    r = run_cohort(demo, os.path.join(work, "w1"), workers=1, pdf=False, resume=True, log=lambda m: None)
    table = time.perf_counter() - t0
    assert len(r["unchanged"]) == len(cases), r
    direct.append(_direct(manifests, os.path.join(work, "direct1")))
    d = sum(direct) / 2
    print(f"cohort: {len(cases)} teaching cases; direct assess one after another in one process "
          f"{direct[0]:.0f} s before and {direct[1]:.0f} s after the cohort runs (mean {d:.0f} s, "
          f"{d / len(cases):.1f} s per case; their spread, {100 * abs(direct[1] - direct[0]) / d:.1f} %, is the "
          f"machine's noise)")
    print(f"  1 worker {t[1]:.0f} s: {100 * (t[1] / d - 1):+.1f} % vs direct "
          f"({(t[1] - d) / len(cases):+.2f} s per case, cluster start and stop included); of which the cohort's "
          f"own outputs (input hashes, state, table and page with a key image per case, timed as a --resume) "
          f"{table:.1f} s; the runner itself (cluster, dispatch, workers) "
          f"{100 * ((t[1] - table) / d - 1):+.1f} % ({(t[1] - table - d) / len(cases):+.2f} s per case)")
    print(f"  2 workers {t[2]:.0f} s: speed-up {t[1] / t[2]:.2f}x over 1 worker")
    # The runner's own scaling, apart from the threads one case already uses: one core per worker in both runs.
    s = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        r = run_cohort(demo, os.path.join(work, f"s{n}"), workers=n, pdf=False, threads_per_worker=1,
                       log=lambda m: None)
        s[n] = time.perf_counter() - t0
        assert not r["failed"], r["failed"]
    print(f"  one thread per worker: 1 worker {s[1]:.0f} s, 2 workers {s[2]:.0f} s: speed-up {s[1] / s[2]:.2f}x "
          f"(a single case on both cores runs {s[1] / t[1]:.2f}x faster than on one)")


def bench_import():
    """Header scan of a 5,000-file DICOM export (10 MR studies x 5 series x 100 slices of 256x256, written once
    into a temp folder) by ``rnassess import``'s indexer vs ``pydicom.dcmread(stop_before_pixels=True)`` of the
    same files. Best of 3, warm file cache for both."""
    import tempfile

    import pydicom
    import SimpleITK as sitk
    from RNAssessmentLib.io import dicom_index as dx
    from RNAssessmentLib.io import dicom_write as dw
    root = tempfile.mkdtemp()
    img = sitk.GetImageFromArray((np.arange(100 * 256 * 256) % 1000).reshape(100, 256, 256).astype(np.float32))
    kinds = [("T1 MPRAGE post Gd", "Gadobutrol"), ("T1 MPRAGE", ""), ("AX FLAIR", ""), ("T2 TSE", ""),
             ("DWI trace", "")]
    for n in range(10):
        study = dw.StudyInfo(patient_name="BENCH^IMPORT", patient_id="B1", date=f"2024{n + 1:02d}01")
        frame = pydicom.uid.generate_uid()
        for k, (desc, agent) in enumerate(kinds):
            dw.write_mr_series(img, os.path.join(root, f"st{n}", f"se{k}"), study, description=desc,
                               series_number=k + 1, frame_of_reference_uid=frame, contrast_agent=agent)
    files = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    t_index, idx = best_of(lambda: dx.scan(root))
    t_pydicom, _ = best_of(lambda: [pydicom.dcmread(f, stop_before_pixels=True) for f in files])
    print(f"import: {len(files)} files; index {t_index:.2f} s vs pydicom.dcmread headers {t_pydicom:.2f} s "
          f"(ratio {t_index / t_pydicom:.2f}; {idx.files} indexed, {len(files) / t_index:.0f} files/s)")


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (its review sessions)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def bench_review():
    import hashlib
    import re
    import subprocess
    import tempfile

    from RNAssessmentLib.faces.cli import main as cli
    from RNAssessmentLib.output.browser import Headless

    with tempfile.TemporaryDirectory() as d:
        manifest, size = _realmri_two_timepoint_case(d)
        out = os.path.join(d, "assessment")
        assert cli(["assess", manifest, "--out", out, "--no-pdf"]) == 0
        read = _in_child(manifest, "read")
        env = dict(os.environ, VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow",
                   PYTHONPATH=os.path.join(ROOT, "RNAssessment"))
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "RNAssessmentLib.faces.cli", "review", out, "--port", "0",
                                 "--idle-timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=env)
        try:
            url = None
            for line in proc.stdout:
                m = re.search(r"at (http://\S+)", line)
                if m:
                    url = m.group(1)
                    break
            t_listen = time.perf_counter() - t0
            with Headless(width=1600, height=1000, timeout_s=120) as b:
                b.open(url)
                prev, first = None, None
                while time.perf_counter() - t0 < 180:
                    if b.evaluate("!!(window.trame && window.trame.state && window.trame.state.get('loaded'))"):
                        shots = b.element_screenshots(".review-views img")
                        digest = [hashlib.sha1(x).hexdigest() for x in shots]
                        if len(shots) == 3 and all(len(x) > 5000 for x in shots):
                            first = first or time.perf_counter() - t0
                            if digest == prev:
                                break
                        prev = digest
                    time.sleep(0.1)
                settled = time.perf_counter() - t0
            # The front and the browser's own session (a process it started): what serving one reader costs.
            sessions = _child_pids(proc.pid)
            peak = _peak_rss_mb(proc.pid) + sum(_peak_rss_mb(c) for c in sessions)
        finally:
            proc.terminate()
            proc.wait(15)
    print(f"review: {size} BraTS case, 2 timepoints. Plain read of its files "
          f"{read['seconds']:.1f} s, {read['peak_mb']:.0f} MB peak.")
    print(f"  server listening {t_listen:.1f} s; first rendered views in the browser {first:.1f} s after start "
          f"({first / read['seconds']:.1f}x the read), stable {settled:.1f} s; server peak memory (front and the "
          f"reader's session) {peak:.0f} MB "
          f"({peak / read['peak_mb']:.1f}x the read's)")


def main(argv):
    which = argv or ["dvh", "isodose", "case", "boundaries", "change", "realmri", "cohort", "import", "review"]
    table = {"dvh": bench_dvh, "isodose": bench_isodose, "case": bench_case, "boundaries": bench_boundaries,
             "change": bench_change, "realmri": bench_realmri, "cohort": bench_cohort, "import": bench_import,
             "review": bench_review}
    for name in which:
        table[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
