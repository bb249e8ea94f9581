"""Teaching cases on real MRI: the paper's eight scenarios and their PD twins implanted into real post-contrast T1.

The phantoms are kinder than patients; these cases are not. A real SRS-time image (``Testing/Data/real-mri``,
or the cropped case bundled in ``Resources/TeachingData``) receives implanted lesions, new foci, growth and
regression, meningeal/ependymal enhancement, head motion between timepoints and an SRS dose — with ground truth.

Frames and anatomy
------------------
Every scenario is written in a local frame (e1, e2, e3; mm, origin O) attached to an **anchor** of the real
anatomy, chosen by hand on each image and described by its kind:

* ``falx``: O on the falx above the corpus callosum; e1 = the falx normal towards the patient's right (the
  falx plane was traced on the image: the bright dural line, fitted by a plane);
* ``tentorium``: O on the tentorium; e1 = its normal pointing down (towards the cerebellum);
* ``sulcus``: O in a sulcus; e1 = the sulcus normal (principal axes of the CSF-dark voxels within 5 mm),
  oriented along a given hint;
* ``ventricle``: O on the lateral wall of a lateral ventricle; e1 = into the ventricle.

Which side of a boundary a component lies on is the sign of its e1 coordinate (and CSF voxels of the real image
are never lesion). The anatomy used for that is the image's own (CSF-dark voxels, a flood-filled ventricle, the
traced falx), never the atlas that the analysis uses, so the analysis is not graded against itself.

Ground truth comes from the design (:mod:`.design`), never from the analysis: the boundary findings a template
states (each "across" checked geometrically on the image), contiguous extension and change derived from the
designed parts, the acquisition of each timepoint (its voxels, the head's pose) and the method's documented
thresholds; a design that sits on a threshold lists every answer then right.

Rendering
---------
Each timepoint is an acquisition on the real image's grid, moved by a rigid pose (head motion). Lesions are
evaluated at sub-voxel points of that grid (2 × 2 × 2 for 1 mm images; along the slice for thick slices, so a
5.5 mm slice averages what lies across it), blurred by σ = 0.8 mm (real edges are soft) and blended into the real
intensities: enhancing rim 1.75 × the local normal white matter, necrotic core 0.45 ×, a vasogenic oedema rim
darkened by 12 %, and the image's own noise level added back where the anatomy was interpolated.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os

import numpy as np
import SimpleITK as sitk

from ..anatomy.atlas import fit_atlas, is_skull_stripped
from ..anatomy.brain import kmeans_1d
from ..io import geometry as geo
from ..io.case import Case, Dose, Timepoint, save_case
from . import design
from .scenarios import TEACHING_DIR, read_table, tuples
from .phantom import (
    SRS_DATE,
    Blob,
    _blob_extent,
    image_to_image_transform,
    pose_transform,
    srs_dose,
)

RIM_FACTOR = 1.75
CORE_FACTOR = 0.45
OEDEMA_FACTOR = 0.88
BLUR_MM = 0.8

# ----------------------------------------------------------------------------------------------------------------
# Real images and their anchors
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Anchor:
    kind: str                       # falx | tentorium | sulcus | ventricle
    ijk: tuple                      # a voxel of the real T1c near which the scenario is placed
    hint: tuple = (1.0, 0.0, 0.0)   # LPS direction e1 should roughly follow (sulcus: which side is "other")
    note: str = ""


@dataclasses.dataclass(frozen=True)
class BaseMRI:
    name: str
    folder: str                     # relative to the real-MRI data folder
    t1c: str
    extra: dict                     # other sequences of the same session (same frame)
    falx_plane: tuple               # (normal LPS, point LPS): the falx traced on the image, fitted by a plane
    anchors: dict
    thick: bool                     # thick-slice acquisition (follow-up masks are drawn on it)
    licence: str
    motion: tuple = ((0, 0, 0, 0, 0, 0), (3.0, -2.0, 4.0, 5.0, -4.0, 3.0), (-2.0, 2.5, -3.0, -4.0, 5.0, -2.0))


BASES = {
    "brats": BaseMRI(
        name="brats", folder="brats-glioma", t1c="t1c.nii.gz", extra={"t2": "t2w.nii.gz", "flair": "t2f.nii.gz"},
        falx_plane=((0.9991, 0.0399, 0.0148), (121.99, -107.16, 116.03)),
        anchors={"falx": Anchor("falx", (122, 130, 108), note="falx above the body of the corpus callosum"),
                 "falx_posterior": Anchor("falx", (122, 160, 100), note="falx above the splenium"),
                 "tentorium": Anchor("tentorium", (158, 176, 45), hint=(0.0, 0.25, -1.0),
                                     note="left tentorium between occipital lobe and cerebellum"),
                 "convexity": Anchor("sulcus", (168, 140, 95), hint=(0.0, -1.0, 0.0),
                                     note="left lateral convexity sulcus"),
                 "sylvian": Anchor("sulcus", (160, 110, 64), hint=(1.0, 0.0, 0.0),
                                   note="left Sylvian fissure / insular cistern"),
                 "ventricle": Anchor("ventricle", (141, 112, 84), hint=(-1.0, 0.0, 0.0),
                                     note="lateral wall of the left frontal horn, caudate head"),
                 "temporal": Anchor("sulcus", (174, 129, 59), hint=(1.0, 0.0, 0.0),
                                    note="left temporal sulcus")},
        thick=False,
        licence="BraTS example case shipped by BrainLesion/BraTS toolkit (Apache-2.0); see LICENSE-Apache-2.0.txt",
        motion=((0, 0, 0, 0, 0, 0), (4.0, -3.0, 5.0, 6.0, -5.0, 4.0), (-3.0, 4.0, -4.0, -5.0, 6.0, -3.0))),
    "tcga": BaseMRI(
        name="tcga", folder="tcga-fg-6692", t1c="t1c.nii.gz", extra={"t2": "t2.nii.gz", "flair": "flair.nii.gz"},
        falx_plane=((0.9981, -0.0396, -0.0462), (4.48, -20.41, 53.01)),
        anchors={"falx": Anchor("falx", (124, 98, 19), note="falx above the body of the corpus callosum"),
                 "falx_posterior": Anchor("falx", (126, 70, 16), note="falx above the splenium"),
                 "tentorium": Anchor("tentorium", (150, 55, 5), hint=(0.0, 0.2, -1.0),
                                     note="left tentorium between occipital lobe and cerebellum"),
                 "convexity": Anchor("sulcus", (166, 72, 20), hint=(0.0, -1.0, 0.0),
                                     note="left convexity sulcus near the central sulcus"),
                 "sylvian": Anchor("sulcus", (168, 118, 14), hint=(0.0, 0.0, 1.0), note="left Sylvian fissure"),
                 "ventricle": Anchor("ventricle", (140, 123, 15), hint=(-1.0, 0.0, 0.0),
                                     note="lateral wall of the left frontal horn, caudate head"),
                 "temporal": Anchor("sulcus", (184, 97, 10), hint=(1.0, 0.0, 0.0), note="left temporal sulcus")},
        thick=True,
        licence="TCGA-LGG (The Cancer Imaging Archive, CC BY 3.0), shipped by BrainLesion/preprocessing (Apache-2.0)",
        motion=((0, 0, 0, 0, 0, 0), (1.5, -1.0, 2.0, 3.0, -2.0, 1.0), (-1.0, 1.5, -2.0, -2.5, 3.0, -1.5))),
}


@dataclasses.dataclass
class BaseImages:
    t1c: sitk.Image                  # float32, LPS
    extra: dict                      # name → sitk.Image
    csf: np.ndarray                  # (i, j, k) CSF-dark voxels of the brain (the image's own)
    brain: np.ndarray                # (i, j, k) head/brain foreground (not CSF outside)
    noise_sigma: float


def load_base(base: BaseMRI, data_dir: str) -> BaseImages:
    folder = os.path.join(data_dir, base.folder)
    t1c = sitk.Cast(sitk.ReadImage(os.path.join(folder, base.t1c)), sitk.sitkFloat32)
    extra = {k: sitk.ReadImage(os.path.join(folder, v)) for k, v in base.extra.items()
             if os.path.exists(os.path.join(folder, v))}
    arr = geo.array_view(t1c)
    fg = arr > 0.1 * np.percentile(arr[arr > 0], 99)
    if not is_skull_stripped(t1c):
        # A raw head: scalp, skull and orbit are dark or bright too; the brain comes from the atlas fit (lesions
        # are only ever placed well inside it, so its exact edge does not matter here).
        fg &= geo.array_view(fit_atlas(t1c, deformable=False).brain) > 0
    vals = arr[fg]
    c = np.sort(kmeans_1d(vals, 3)[0])
    csf = fg & (arr < 0.5 * (c[0] + c[1]))
    if "t2" in extra and geo.same_grid(extra["t2"], t1c):
        # On a T2 of the same grid, thin sulci partial-volumed on T1 are still clearly bright.
        t2 = geo.array_view(sitk.Cast(extra["t2"], sitk.sitkFloat32))
        t2v = t2[fg]
        c2 = np.sort(kmeans_1d(t2v, 3)[0])
        csf |= fg & (t2 > c2[1] + 0.35 * (c2[2] - c2[1])) & (arr < c[1])
    if "flair" in extra and geo.same_grid(extra["flair"], t1c):
        # CSF is dark on FLAIR; oedema and necrosis around a tumour are T1-dark and T2-bright too, but FLAIR-bright:
        # no sulcus, no ventricle.
        fl = geo.array_view(sitk.Cast(extra["flair"], sitk.sitkFloat32))
        fv = fl[fg]
        cf = np.sort(kmeans_1d(fv, 3)[0])
        csf &= ~(fl > 0.5 * (cf[1] + cf[2]))
    # Noise: robust spread of the difference between the image and its 1 mm smoothed self, in the tissue.
    sm = geo.array_view(sitk.SmoothingRecursiveGaussian(t1c, 1.0))
    tissue = fg & ~csf
    resid = (arr - sm)[tissue]
    noise = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    return BaseImages(t1c=t1c, extra=extra, csf=csf, brain=fg, noise_sigma=noise)


# ----------------------------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Frame:
    origin: np.ndarray                # LPS mm
    axes: np.ndarray                  # rows e1, e2, e3 (LPS unit vectors)
    kind: str
    note: str

    def to_lps(self, local) -> np.ndarray:
        return self.origin + np.asarray(local, float) @ self.axes

    def to_local(self, pts_lps: np.ndarray) -> np.ndarray:
        return (np.asarray(pts_lps, float) - self.origin) @ self.axes.T


def _complete(e1, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    e1 = np.asarray(e1, float)
    e1 /= np.linalg.norm(e1)
    up = np.asarray(up, float)
    if abs(up @ e1) > 0.9:
        up = np.array([0.0, -1.0, 0.0])          # anterior when e1 is vertical
    e3 = up - (up @ e1) * e1
    e3 /= np.linalg.norm(e3)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3])


#: The ventricle's body survives an opening of this radius (mm, within the slices); the sulci and cisterns that
#: CSF-dark voxels join to it through one thick slice or a one-voxel bridge do not.
VENTRICLE_OPENING_MM = 2.5


def _ventricle_at(images: BaseImages, seed_ijk) -> np.ndarray:
    """The ventricle ``seed_ijk`` lies in: the CSF-dark region connected to it within 25 mm, without the sulci and
    cisterns that region reaches through thin bridges (opened by :data:`VENTRICLE_OPENING_MM` within the slices,
    the part holding the seed kept, and grown back into the CSF-dark voxels within that radius + one voxel).

    Connected CSF alone leaked (both real MRIs): into the insular sulcus 13 mm lateral to the caudate on the clinical
    exam (through the next 5.5 mm slice), into the perisylvian sulci and basal cisterns on the 1 mm one. The
    ependymal enhancement the PD twin implants along "the ventricle" then lay in a sulcus, where the analysis
    rightly read it as enhancing sulcal CSF, against a truth that said ventricle."""
    t1c = images.t1c
    near = np.zeros(images.csf.shape, bool)
    r = [int(np.ceil(25.0 / s)) for s in t1c.GetSpacing()]
    sl = tuple(slice(max(c - rr, 0), c + rr + 1) for c, rr in zip(seed_ijk, r))
    near[sl] = True
    region = images.csf & near
    radius = [int(round(VENTRICLE_OPENING_MM / s)) if thin else 0
              for s, thin in zip(t1c.GetSpacing(), geo.thin_axes(t1c))]
    body = geo.array_view(sitk.BinaryMorphologicalOpening(geo.image_from_array(region.astype(np.uint8), t1c),
                                                          radius)) > 0
    cc = geo.array_view(sitk.ConnectedComponent(geo.image_from_array(body.astype(np.uint8), t1c), False))
    lab = cc[tuple(seed_ijk)]
    if lab == 0:
        # The seed was placed by hand on one image, next to the wall; CSF thresholds move the wall by a voxel. Take
        # the largest part reaching within 6 mm of it (physical distance: slices may be 5 mm apart).
        idx = np.argwhere(cc > 0)
        d = np.linalg.norm((idx - np.asarray(seed_ijk)) * np.asarray(t1c.GetSpacing()), axis=1)
        if not len(idx) or d.min() > 6.0:
            raise ValueError(f"ventricle seed {seed_ijk} is not in a ventricle (no CSF body within 6 mm)")
        near_labels = np.unique(cc[tuple(idx[d <= 6.0].T)])
        lab = near_labels[np.argmax([(cc == v).sum() for v in near_labels])]
    grown = sitk.BinaryDilate(geo.image_from_array((cc == lab).astype(np.uint8), t1c),
                              [v + 1 if v else 0 for v in radius])
    return region & (geo.array_view(grown) > 0)


def _sulci(images: BaseImages) -> np.ndarray:
    """CSF-dark voxels 2.5 - 22 mm deep in the brain, without the big CSF spaces (ventricles, cysts: > 5 cm³)."""
    t1c = images.t1c
    brain = geo.array_view(sitk.BinaryFillhole(geo.image_from_array(images.brain.astype(np.uint8), t1c))) > 0
    depth = geo.array_view(sitk.SignedMaurerDistanceMap(geo.image_from_array(brain.astype(np.uint8), t1c),
                                                        insideIsPositive=True, squaredDistance=False,
                                                        useImageSpacing=True))
    m = images.csf & (depth > 2.5) & (depth < 22.0)
    cc = geo.array_view(sitk.ConnectedComponent(geo.image_from_array(m.astype(np.uint8), t1c)))
    counts = np.bincount(cc.ravel())
    big = np.nonzero(counts * geo.voxel_volume_mm3(t1c) > 5000.0)[0]
    return m & ~np.isin(cc, big[big > 0])


def frame_for(anchor: Anchor, base: BaseMRI, images: BaseImages) -> Frame:
    t1c = images.t1c
    p = geo.index_to_lps(t1c, [anchor.ijk])[0]
    if anchor.kind == "falx":
        n, q = np.array(base.falx_plane[0]), np.array(base.falx_plane[1])
        n /= np.linalg.norm(n)
        o = p - ((p - q) @ n) * n
        e1 = -n if n[0] > 0 else n                      # towards the patient's right (LPS -x)
        return Frame(o, _complete(e1), "falx", anchor.note)
    if anchor.kind == "tentorium":
        return Frame(p, _complete(anchor.hint, up=(0.0, -1.0, 0.0)), "tentorium", anchor.note)
    if anchor.kind == "sulcus":
        # The most voluminous sulcus (CSF-dark, away from the brain surface and the ventricles) within 15 mm of
        # the hand-picked point: thin sulci, invisible at this resolution, would make a boundary no one can see.
        region = _sulci(images)
        idx = np.argwhere(region)
        pts = geo.index_to_lps(t1c, idx)
        sel = np.linalg.norm(pts - p, axis=1) <= 15.0
        if not sel.any():
            raise ValueError(f"no sulcus (CSF) within 15 mm of {anchor.ijk}")
        cc = geo.array_view(sitk.ConnectedComponent(geo.image_from_array(region.astype(np.uint8), t1c)))
        labs, counts = np.unique(cc[tuple(idx[sel].T)], return_counts=True)
        best = labs[np.argmax(counts)]
        members = np.argwhere(cc == best)
        mp = geo.index_to_lps(t1c, members)
        mp = mp[np.linalg.norm(mp - p, axis=1) <= 15.0]
        c = mp.mean(0)
        c = mp[np.argmin(np.linalg.norm(mp - c, axis=1))]           # a CSF voxel near the cluster's centre
        local = mp[np.linalg.norm(mp - c, axis=1) <= 6.0]
        _, _, vt = np.linalg.svd(local - local.mean(0), full_matrices=False)
        e1 = vt[2] if vt[2] @ np.asarray(anchor.hint) >= 0 else -vt[2]
        return Frame(c, _complete(e1), "sulcus", anchor.note)
    if anchor.kind == "ventricle":
        vent = _ventricle_at(images, anchor.ijk)
        d = geo.array_view(sitk.SignedMaurerDistanceMap(geo.image_from_array(vent.astype(np.uint8), t1c),
                                                        insideIsPositive=False, squaredDistance=False,
                                                        useImageSpacing=True))
        idx = np.argwhere(np.abs(d) <= 0.8 * max(t1c.GetSpacing()))
        pts = geo.index_to_lps(t1c, idx)
        # The wall point nearest to the anchor within 45 degrees of the hint (from the caudate into the ventricle:
        # the lateral wall), not a farther wall nor a CSF space connected behind the anchor.
        hint = np.asarray(anchor.hint, float)
        dist = np.linalg.norm(pts - p, axis=1)
        ahead = (pts - p) @ hint >= 0.7 * dist
        if not ahead.any():
            raise ValueError(f"no ventricular wall ahead of the anchor {anchor.ijk} along {anchor.hint}")
        w = pts[ahead][np.argmin(dist[ahead])]
        around = pts[np.linalg.norm(pts - w, axis=1) <= 5.0]
        _, _, vt = np.linalg.svd(around - around.mean(0))
        e1 = vt[2] if vt[2] @ hint >= 0 else -vt[2]
        if e1 @ hint / np.linalg.norm(hint) < np.cos(np.radians(35.0)):
            # A wall's normal from a staircase of thick slices is noise: take the hand-placed direction.
            e1 = hint / np.linalg.norm(hint)
        return Frame(w, _complete(e1), "ventricle", anchor.note)
    raise ValueError(f"unknown anchor kind '{anchor.kind}'")


# ----------------------------------------------------------------------------------------------------------------
# Scenario templates (local frame, mm)
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Part:
    """A lesion component in the anchor's frame: an irregular ellipsoid (radii along e1, e2, e3).

    ``side``: -1 keeps it at e1 ≤ −margin (the treated side), +1 at e1 ≥ +margin, 0 anywhere. ``ring``: enhancing
    rim (mm) around a necrotic core, 0 = solid. ``spare``: its enhancement stays this far from the boundary (open
    ring). ``cavity``: radius of a resection cavity (CSF) at its centre; the part is the shell around it.
    ``thick_e1``: on thick-slice images, its radius along e1 at least this (its face towards the boundary stays
    where it was): a flat part thinner than a slice, lying across thick slices, half fills no voxel and its truth
    on the planning grid keeps a sliver (the clinical tentorium_rn focus, 4 mm thick on 5.5 mm slices: 22 of
    ~350 mm³, its follow-up mask a slice away from that sliver)."""
    centre: tuple
    radii: tuple
    ring: float = 0.0
    side: int = 0
    margin: float = 1.5
    spare: float = 0.0
    cavity: float = 0.0
    seed: int = 0
    irregularity: float = 0.12
    thick_e1: float = 0.0


@dataclasses.dataclass(frozen=True)
class Step:
    label: str
    days: int
    parts: dict
    enhance: tuple = ()            # ((boundary kind, part name, reach mm), ...): the boundary itself enhances


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    title: str
    paper: int
    counterpart: str
    anchor: str
    prescription_gy: float
    fractions: int
    steps: tuple
    boundary_truth: tuple          # ({"kind", "timepoint", "boundary"?, "component"?}, ...): exhaustive for these
    description: str
    dose_falloff_mm: tuple = (6.5, 25.0)
    thick_margin: float = 1.5      # side margin on thick-slice images (horizontal boundaries need two slices)
    bases: tuple = ("brats", "tcga")   # the real images it is implanted into


#: The templates as data: the eight scenarios and their PD twins, and the validation templates, each with its
#: design notes, steps (parts) and boundary truth.
TEMPLATES_JSON = os.path.join(TEACHING_DIR, "realmri_templates.json")


def _template(d: dict) -> Template:
    steps = tuple(Step(label=s["label"], days=s["days"], parts={k: Part(**tuples(p)) for k, p in s["parts"].items()},
                       enhance=tuples(s.get("enhance", []))) for s in d["steps"])
    kw = {k: (tuples(v) if isinstance(v, list) else v) for k, v in d.items()
          if k not in ("design_notes", "steps", "boundary_truth")}
    return Template(steps=steps, boundary_truth=tuple(dict(b) for b in d["boundary_truth"]), **kw)


def templates() -> list[Template]:
    """The eight scenarios and their PD twins, in anchor frames (see the module docstring; :data:`TEMPLATES_JSON`)."""
    return [_template(d) for d in read_table(TEMPLATES_JSON)["templates"]]


def validation_templates() -> list[Template]:
    """Implanted cases that check the method rather than teach a scenario (issue 34), each built with its truth
    (:data:`TEMPLATES_JSON`):

    * on the clinical exam's 5.5 mm slices (~1 mm pixels): one side of a 5.5 cm³ lesion grows 6 mm in the slice
      plane while the opposite side regresses 5 mm (a mixed response), its PD twin grows 4 mm all round (growth as a
      whole); the same lesion moved 3 mm through the slices (below the slice thickness: no call) or 12 mm (beyond
      it: a mixed response);
    * on both images, a nodule abutting the falx, the tentorium or a ventricle grows from 0.5 to 2.1 cm³ against a
      normal boundary (no boundary enhancement) or with the boundary thickened and enhancing next to it (boundary
      enhancement), as growth as a whole.
    """
    return [_template(d) for d in read_table(TEMPLATES_JSON)["validation"]]


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------

def _eval_grid(frame: Frame, half_mm: float, spacing: float = 0.6) -> sitk.Image:
    n = int(np.ceil(2 * half_mm / spacing))
    g = sitk.Image([n, n, n], sitk.sitkUInt8)
    g.SetSpacing((spacing,) * 3)
    g.SetOrigin(tuple(frame.origin - half_mm + spacing / 2))
    return g


def _coords(grid: sitk.Image) -> np.ndarray:
    size = grid.GetSize()
    o, s = np.array(grid.GetOrigin()), np.array(grid.GetSpacing())
    ax = [(o[d] + s[d] * np.arange(size[d])).astype(np.float32) for d in range(3)]
    return np.stack(np.meshgrid(*ax, indexing="ij"), axis=-1)      # (i, j, k, 3) LPS


def _dist(mask: np.ndarray, grid: sitk.Image) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    d = sitk.SignedMaurerDistanceMap(geo.image_from_array(mask.astype(np.uint8), grid), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    return np.clip(geo.array_view(d), 0, None)


@dataclasses.dataclass
class Scene:
    """The anatomy one template needs, on its evaluation grid (LPS, isotropic)."""
    frame: Frame
    grid: sitk.Image
    local: np.ndarray               # (i, j, k, 3) frame coordinates of the grid points
    tissue: np.ndarray              # brain, not CSF
    csf: np.ndarray
    ventricle: np.ndarray | None
    boundary_dist: np.ndarray       # distance (mm) to the anchor's boundary (the plane, or the ventricle / CSF)
    nawm: float
    csf_level: float


def make_scene(template: Template, base: BaseMRI, images: BaseImages, half_mm: float = 40.0) -> Scene:
    anchor = base.anchors[template.anchor]
    frame = frame_for(anchor, base, images)
    grid = _eval_grid(frame, half_mm)
    local = frame.to_local(_coords(grid).reshape(-1, 3)).reshape(tuple(grid.GetSize()) + (3,)).astype(np.float32)
    csf = geo.mask_on_grid(images.csf, images.t1c, grid)
    brain = geo.mask_on_grid(images.brain, images.t1c, grid)
    ventricle = None
    if anchor.kind == "ventricle":
        ventricle = geo.mask_on_grid(_ventricle_at(images, anchor.ijk), images.t1c, grid)
    if frame.kind in ("falx", "tentorium"):
        bdist = np.abs(local[..., 0])
    elif ventricle is not None:
        bdist = _dist(ventricle, grid)
    else:
        bdist = _dist(csf, grid)
    # Local tissue levels: k-means of the real intensities within 30 mm of the anchor.
    arr = geo.array_view(images.t1c)
    idx = np.argwhere(images.brain)
    pts = geo.index_to_lps(images.t1c, idx)
    near = np.linalg.norm(pts - frame.origin, axis=1) <= 30.0
    vals = arr[tuple(idx[near].T)]
    c = np.sort(kmeans_1d(vals, 3, sample=100_000)[0])
    nawm = float(np.median(vals[np.abs(vals - c[2]) < np.abs(vals - c[1])]))
    return Scene(frame=frame, grid=grid, local=local, tissue=brain & ~csf, csf=csf, ventricle=ventricle,
                 boundary_dist=bdist, nawm=nawm, csf_level=float(c[0]))


@dataclasses.dataclass
class StepMaps:
    extent: dict                    # part name → bool (grid)
    enhancing: dict                 # part name → bool (grid): its enhancing voxels
    rim: np.ndarray
    cavity: np.ndarray
    boundary: np.ndarray            # enhancing boundary (meninges / ependyma)


def part_extent(part: Part, scene: Scene, margin: float, thick: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """(extent, enhancing, cavity) of one part on the scene grid."""
    lx, ly, lz = (scene.local[..., d] for d in range(3))
    centre = np.array(part.centre, float)
    radii = tuple(part.radii)
    if part.side and margin > part.margin:
        # Thick slices: a part kept farther from the boundary moves out with its margin, keeping its size.
        centre[0] += part.side * (margin - part.margin)
    if thick and part.thick_e1 > radii[0]:
        centre[0] += (part.side or 1) * (part.thick_e1 - radii[0])
        radii = (part.thick_e1,) + radii[1:]
    blob = Blob(centre=tuple(centre), radii=radii, seed=part.seed, irregularity=part.irregularity)
    inside = _blob_extent(blob, lx, ly, lz)
    if part.side:
        inside &= part.side * lx >= margin
    # Tissue only, but a lesion fills its own volume: CSF specks inside it are not kept out.
    ext = inside & scene.tissue
    if ext.any():
        ext = (geo.array_view(sitk.BinaryFillhole(geo.image_from_array(ext.astype(np.uint8), scene.grid))) > 0) \
            & inside
    cav = np.zeros_like(ext)
    if part.cavity:
        c = centre
        cav = ((lx - c[0]) ** 2 + (ly - c[1]) ** 2 + (lz - c[2]) ** 2) <= part.cavity ** 2
        cav &= scene.tissue | scene.csf
        ext &= ~cav
    if part.cavity and part.ring:
        rim = ext & (_dist(cav, scene.grid) <= part.ring)
    elif part.ring:
        rim = ext & (_dist(~ext, scene.grid) <= part.ring)
    else:
        rim = ext.copy()
    if part.spare:
        rim &= scene.boundary_dist > part.spare
    return ext, rim, cav


#: Thickness of implanted ependymal enhancement (the layer of the ventricle next to its wall). Tumour spreading
#: along the ependyma is a thick, often nodular layer; a 1.5 mm layer averaged through 5.5 mm slices stays below
#: the enhancement threshold over most of its length (the TCGA exam showed 4 % of it), and is not what the PD twin
#: is meant to show.
EPENDYMAL_LAYER_MM = 2.5


def step_maps(step: Step, template: Template, scene: Scene, thick: bool) -> StepMaps:
    margin_default = template.thick_margin if thick else 1.5
    extent, enhancing = {}, {}
    rim, cav = np.zeros(scene.tissue.shape, bool), np.zeros(scene.tissue.shape, bool)
    for name, part in step.parts.items():
        margin = max(part.margin, margin_default)
        e, r, c = part_extent(part, scene, margin, thick)
        if not e.any():
            raise ValueError(f"{template.name}: part '{name}' at {step.label} is empty on this image")
        extent[name] = e
        enhancing[name] = r
        rim |= r
        cav |= c
    benh = np.zeros_like(rim)
    lx = scene.local[..., 0]
    for kind, name, reach in step.enhance:
        near = _dist(extent[name], scene.grid) <= reach
        if kind in ("falx", "tentorium"):
            # A thickened enhancing fold; on thick slices as thick as the gap kept around it, so it still bridges.
            b = (np.abs(lx) <= max(1.25, margin_default - 0.25)) & (scene.tissue | scene.csf)
        elif kind == "csf":
            b = scene.csf & (~scene.ventricle if scene.ventricle is not None else True)
        elif kind == "ventricles":
            b = scene.ventricle & (_dist(~scene.ventricle, scene.grid) <= EPENDYMAL_LAYER_MM)
        else:
            raise ValueError(f"unknown boundary kind '{kind}'")
        benh |= b & near
    all_ext = np.any(np.stack(list(extent.values())), axis=0)
    benh &= ~all_ext
    return StepMaps(extent=extent, enhancing=enhancing, rim=rim, cavity=cav, boundary=benh)


def _acquisition_grid(t1c: sitk.Image, thick: bool) -> tuple[sitk.Image, int]:
    """The grid the maps are sampled on before averaging: along the slice for thick slices."""
    sp = np.array(t1c.GetSpacing())
    if not thick:
        return t1c, 1
    n = int(np.ceil(sp[2] / 1.1))
    fine = sitk.Image([t1c.GetSize()[0], t1c.GetSize()[1], t1c.GetSize()[2] * n], sitk.sitkFloat32)
    fine.SetSpacing((sp[0], sp[1], sp[2] / n))
    fine.SetDirection(t1c.GetDirection())
    first = geo.index_to_lps(t1c, [[0.0, 0.0, -0.5 + 0.5 / n]])[0]
    fine.SetOrigin(tuple(first))
    return fine, n


def _sample(frac: np.ndarray, scene: Scene, t1c: sitk.Image, pose_tf: sitk.Transform, thick: bool) -> np.ndarray:
    """A fraction map of the scene grid (blurred by the acquisition's point spread) as the acquisition sees it."""
    img = sitk.SmoothingRecursiveGaussian(geo.image_from_array(frac.astype(np.float32), scene.grid), BLUR_MM)
    fine, n = _acquisition_grid(t1c, thick)
    out = geo.array_view(sitk.Resample(img, fine, pose_tf, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
    if n > 1:
        ni, nj, nk = out.shape
        out = out.reshape(ni, nj, nk // n, n).mean(axis=3)
    return out


def true_boundary(scene: Scene, kind: str) -> np.ndarray:
    """The anchor's boundary on the scene grid: the fold (1 mm either side of the plane), the ventricle, the CSF."""
    if kind in ("falx", "tentorium"):
        return np.abs(scene.local[..., 0]) <= 1.0
    if kind == "ventricles":
        return scene.ventricle if scene.ventricle is not None else np.zeros(scene.csf.shape, bool)
    return scene.csf


#: Least volume (mm³) of a focus the truth calls across a boundary: of its true shape on this image, and of what
#: the planning slices keep of it.
MIN_FOCUS_MM3 = 100.0


def check_truth_geometry(template: Template, scene: Scene, thick: bool, minimum: float = 0.5) -> dict:
    """Every focus the truth calls *across* a boundary is across it on this image (at least ``minimum`` of the
    segments to the treated lesion pass through the true boundary; the analysis needs 0.3): the anatomy of a real
    image, not the template, decides. Returns {(timepoint, component): fraction}; raises when one falls short."""
    treated = np.any(np.stack(list(step_maps(template.steps[0], template, scene, thick).extent.values())), axis=0)
    out = {}
    for e in template.boundary_truth:
        if e["kind"] != "noncontiguous_across_boundary":
            continue
        step = next(s for s in template.steps if s.label == e["timepoint"])
        comp = step_maps(step, template, scene, thick).extent[e["component"]]
        volume = float(comp.sum()) * float(np.prod(scene.grid.GetSpacing()))
        if volume < MIN_FOCUS_MM3:
            raise ValueError(f"{template.name}: the focus '{e['component']}' at {e['timepoint']} keeps only "
                             f"{volume:.0f} mm³ outside the CSF on this image (at least {MIN_FOCUS_MM3:g} mm³ "
                             "wanted)")
        frac = design.crossing_fraction(comp, treated, true_boundary(scene, e["boundary"]), scene.grid)
        out[(e["timepoint"], e["component"])] = frac
        if frac < minimum:
            raise ValueError(f"{template.name}: the focus '{e['component']}' at {e['timepoint']} is not across the "
                             f"{e['boundary']} on this image (only {frac:.0%} of the segments to the treated lesion "
                             f"cross it; the truth needs {minimum:.0%})")
    return out


def render_template(template: Template, base: BaseMRI, images: BaseImages, seed: int = 0) -> dict:
    """All timepoints of one template on one real image, with ground truth (see the module docstring)."""
    scene = make_scene(template, base, images)
    check_truth_geometry(template, scene, base.thick)
    t1c = images.t1c
    rng = np.random.default_rng(seed)
    rim_val = RIM_FACTOR * scene.nawm
    core_val = CORE_FACTOR * scene.nawm
    # Heterogeneous enhancement: ± 6 % smooth texture.
    tex = geo.array_view(sitk.SmoothingRecursiveGaussian(geo.image_from_array(
        rng.normal(size=scene.tissue.shape).astype(np.float32), scene.grid), 1.5))
    tex = 1.0 + 0.06 * tex / max(float(tex.std()), 1e-6)
    planning_pose = base.motion[0]
    out_tps = []
    designed = {}
    names = list(dict.fromkeys(n for step in template.steps for n in step.parts))     # order of appearance
    for n_tp, step in enumerate(template.steps):
        maps = step_maps(step, template, scene, base.thick)
        designed[step.label] = maps
        pose = base.motion[min(n_tp, len(base.motion) - 1)]
        to_anatomy = pose_transform(pose)
        thick = base.thick
        ext_all = np.any(np.stack(list(maps.extent.values())), axis=0)
        f_ext = _sample(ext_all, scene, t1c, to_anatomy, thick)
        f_rim = np.minimum(_sample(maps.rim * tex, scene, t1c, to_anatomy, thick), f_ext * tex.max())
        f_cav = _sample(maps.cavity, scene, t1c, to_anatomy, thick)
        f_bnd = _sample(maps.boundary, scene, t1c, to_anatomy, thick)
        oed = np.clip(1.0 - _dist(ext_all, scene.grid) / 6.0, 0.0, 1.0) * scene.tissue
        f_oed = _sample(oed, scene, t1c, to_anatomy, thick)
        anat = geo.array_view(sitk.Resample(t1c, t1c, to_anatomy, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        keep = np.clip(1.0 - f_ext - f_cav - f_bnd, 0.0, 1.0)
        img = anat * (1.0 - (1.0 - OEDEMA_FACTOR) * f_oed) * keep
        img += f_rim * rim_val + np.clip(f_ext - np.minimum(f_rim / max(tex.max(), 1e-6), f_ext), 0, None) * core_val
        img += f_bnd * rim_val + f_cav * scene.csf_level
        implant = np.clip(f_ext + f_cav + f_bnd, 0.0, 1.0)
        moved = any(abs(v) > 1e-9 for v in pose)
        sigma = images.noise_sigma
        noise = rng.normal(0.0, 1.0, img.shape).astype(np.float32) * sigma * (implant + (0.6 if moved else 0.0))
        img = np.clip(img + noise * (anat > 0), 0, None)
        acq = geo.image_from_array(img.astype(np.float32), t1c)
        lesion = geo.image_from_array((f_ext >= 0.5).astype(np.uint8), t1c)
        comp = np.zeros(t1c.GetSize(), np.uint8)
        for name, e in maps.extent.items():
            on_plan = _sample(e, scene, t1c, pose_transform(planning_pose), False) if not base.thick else \
                _sample(e, scene, t1c, pose_transform(planning_pose), True)
            comp[(on_plan >= 0.5) & (comp == 0)] = names.index(name) + 1
        out_tps.append({"label": step.label, "date": SRS_DATE + _dt.timedelta(days=step.days), "t1c": acq,
                        "lesion": lesion, "components_planning": geo.image_from_array(comp, t1c),
                        "component_names": {i + 1: n for i, n in enumerate(names)},
                        "boundary_enhancing": sorted({k for k, _, _ in step.enhance}),
                        "transform_to_planning": image_to_image_transform(pose, planning_pose), "pose": pose})
    treated = out_tps[0]["lesion"]
    target = geo.image_from_array(np.any(np.stack(list(step_maps(template.steps[0], template, scene,
                                                                  base.thick).extent.values())), axis=0)
                                  .astype(np.uint8), scene.grid)
    dose = _dose(target, template, scene)
    return {"template": template, "base": base, "scene": scene, "timepoints": out_tps, "treated_lesion": treated,
            "dose": dose, "design": designed, "planning": t1c}


def _dose(target: sitk.Image, template: Template, scene: Scene) -> sitk.Image:
    """SRS-like dose (see phantom.srs_dose) on a 1.5 mm grid of ± 70 mm around the target, then a 2 mm dose grid."""
    big = _eval_grid(scene.frame, 70.0, 1.5)
    tgt = sitk.Resample(target, big, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return srs_dose(tgt, template.prescription_gy, template.dose_falloff_mm)


# ----------------------------------------------------------------------------------------------------------------
# Ground truth and writing
# ----------------------------------------------------------------------------------------------------------------



def acquisition(image: sitk.Image, pose, registered: bool) -> design.Acquisition:
    """A timepoint acquired on ``image``'s grid with the head in ``pose``: its voxel axes in the planning frame (the
    pose maps the acquisition's points into the anatomy, whose frame the planning image shares)."""
    rotation = geo.linear_matrix(pose_transform(pose))[:3, :3]
    axes = (rotation @ np.asarray(image.GetDirection(), float).reshape(3, 3)).T
    return design.Acquisition(tuple(float(v) for v in image.GetSpacing()), tuple(map(tuple, axes)), registered)


def design_truth(rendered: dict) -> tuple[list[dict], dict]:
    """The expected findings of a rendered template, from its design (teaching/design.py): the boundary findings
    it states, contiguous extension and change derived from the designed parts, each timepoint's acquisition and
    registration. Returns (expected, design evidence for truth.json)."""
    template, scene = rendered["template"], rendered["scene"]
    tps_r = rendered["timepoints"]
    moved = [any(abs(v) > 1e-9 for v in t["pose"]) for t in tps_r]
    registered_case = not any(moved)
    axes = np.asarray(scene.frame.axes, float)
    timepoints = {label: {n: design.Part(maps.extent[n], maps.enhancing[n], axes) for n in maps.extent}
                  for label, maps in rendered["design"].items()}
    boundary = {label: maps.boundary for label, maps in rendered["design"].items()}
    first = next(iter(timepoints))
    treated = np.any([p.extent for p in timepoints[first].values()], axis=0)
    # Where the design keeps lesions out: CSF and outside the brain, and the margin kept along a fold.
    blocked = ~scene.tissue
    if scene.frame.kind in ("falx", "tentorium"):
        margin = template.thick_margin if rendered["base"].thick else 1.5
        blocked = blocked | (np.abs(scene.local[..., 0]) <= margin)
    grid, timepoints, (treated, boundary, blocked) = design.cropped(scene.grid, timepoints, treated, boundary,
                                                                     blocked)
    planning = rendered["planning"]
    acquisitions = {t["label"]: acquisition(planning, t["pose"], n > 0 and not registered_case)
                    for n, t in enumerate(tps_r)}
    new_foci: dict = {}
    for e in template.boundary_truth:
        if e["kind"] in ("noncontiguous_across_boundary", "noncontiguous_focus") and e.get("component"):
            new_foci.setdefault(e["timepoint"], set()).add(e["component"])
    change, evidence = design.change_truth(grid, timepoints, acquisitions, new_foci,
                                           counterpart=template.counterpart, blocked=blocked)
    extension = design.extension_truth(grid, timepoints, treated, new_foci, planning.GetSpacing(),
                                       np.asarray(planning.GetDirection(), float).reshape(3, 3).T, boundary)
    stated = [dict(e) for e in template.boundary_truth]
    _check_stated_extension(template, stated, extension)
    expected = [e for e in stated if e["kind"] != "contiguous_extension"] + extension + change
    return expected, {"change": evidence, "extension": extension}


def _check_stated_extension(template: Template, stated: list, derived: list) -> None:
    """A template's stated contiguous extensions must be what its design gives (or within its tolerance)."""
    said = {e["timepoint"] for e in stated if e["kind"] == "contiguous_extension"}
    sure = {e["timepoint"] for e in derived if e["kind"] == "contiguous_extension"}
    maybe = {e["timepoint"] for e in derived if e["kind"] is None}
    if not (sure <= said <= sure | maybe):
        raise ValueError(f"{template.name}: contiguous extension stated at {sorted(said)} but designed at "
                         f"{sorted(sure)} (within tolerance: {sorted(maybe)})")


def case_name(template: Template, base: BaseMRI) -> str:
    return f"{base.name}_{template.name}"


def write_case(template: Template, base: BaseMRI, images: BaseImages, out_dir: str, seed: int = 0) -> str:
    """Render and write one real-MRI case (manifest, images, dose, ``truth/``); returns the manifest path."""
    r = render_template(template, base, images, seed=seed)
    tps_r = r["timepoints"]
    planning = images.t1c
    moved = [any(abs(v) > 1e-9 for v in t["pose"]) for t in tps_r]
    tps = []
    for n, t in enumerate(tps_r):
        # Thick-slice cases come with the radiologist's lesion masks at every timepoint (drawn on their own slices);
        # 1 mm cases only with the treated lesion: the follow-ups' enhancement is found automatically.
        lesion = t["lesion"] if (n == 0 or base.thick) else None
        extra = dict(images.extra) if n == 0 else {}
        tps.append(Timepoint(label=t["label"], date=t["date"], t1c=sitk.Cast(t["t1c"], sitk.sitkInt16),
                             lesion=lesion, extra=extra))
    case = Case(id=case_name(template, base), timepoints=tps, treated_lesion=r["treated_lesion"],
                dose=Dose(image=r["dose"], prescription_gy=template.prescription_gy, fractions=template.fractions,
                          date=SRS_DATE),
                registered=not any(moved),
                metadata={"title": template.title, "paper_scenario": template.paper,
                          "counterpart": template.counterpart, "description": template.description,
                          "synthetic": True, "real_mri": base.name, "anchor": base.anchors[template.anchor].note,
                          "patient_name": f"DEMO^REAL^{template.name.upper()}",
                          "patient_id": f"RNA-R{template.paper:02d}-{base.name.upper()}-{template.counterpart}"})
    case_dir = os.path.join(out_dir, case.id)
    os.makedirs(os.path.join(case_dir, "truth"), exist_ok=True)
    manifest = save_case(case, case_dir, ext=".nii.gz")
    # Ground truth: from the design (the boundary findings it states, extension and change derived from the parts).
    truth_dir = os.path.join(case_dir, "truth")
    for t in tps_r:
        sitk.WriteImage(t["components_planning"], os.path.join(truth_dir, f"components_{t['label']}.nrrd"), True)
        sitk.WriteTransform(t["transform_to_planning"], os.path.join(truth_dir, f"transform_{t['label']}.tfm"))
    names = tps_r[0]["component_names"]
    ids = {v: k for k, v in names.items()}
    for e in template.boundary_truth:
        if e["kind"] == "noncontiguous_across_boundary" and e.get("component"):
            comp = geo.array_view(next(t for t in tps_r if t["label"] == e["timepoint"])["components_planning"])
            kept = float((comp == ids[e["component"]]).sum() * geo.voxel_volume_mm3(planning))
            if kept < MIN_FOCUS_MM3:
                # As check_truth_geometry asks of the true shape: what the planning slices keep of it.
                raise ValueError(f"{template.name}: the focus '{e['component']}' at {e['timepoint']} keeps only "
                                 f"{kept:.0f} mm³ on the planning grid's slices (at least {MIN_FOCUS_MM3:g} mm³ "
                                 "wanted): too thin for this image's slices")
    expected, design_evidence = design_truth(r)
    truth = {"scenario": template.name, "case": case.id, "title": template.title, "paper_scenario": template.paper,
             "counterpart": template.counterpart, "real_mri": base.name, "licence": base.licence,
             "anchor": {"kind": r["scene"].frame.kind, "note": r["scene"].frame.note,
                        "origin_lps": r["scene"].frame.origin.tolist(), "axes_lps": r["scene"].frame.axes.tolist()},
             "expected": expected, "exhaustive": True, "design": design_evidence,
             "timepoints": {t["label"]: {"date": t["date"].isoformat(),
                                         "days_since_srs": (t["date"] - SRS_DATE).days, "pose": list(t["pose"]),
                                         "components": {names[int(v)]: float((geo.array_view(
                                             t["components_planning"]) == v).sum() * geo.voxel_volume_mm3(planning))
                                             for v in np.unique(geo.array_view(t["components_planning"])) if v},
                                         "boundary_enhancing": t["boundary_enhancing"]} for t in tps_r}}
    with open(os.path.join(truth_dir, "truth.json"), "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=2)
    return manifest


#: The real-MRI cases ``rnassess demo --real-mri`` adds to the teaching set: RN cases with their PD twins that give
#: exactly their ground truth (test_real_mri runs them by default and asserts it; a case that stops matching
#: leaves this list, it is never excused here).
DEMO_CASES = ("brats_falx_cingulate_rn", "brats_falx_cingulate_pd", "brats_tentorium_rn", "brats_tentorium_pd")


def case_names(bases=("brats", "tcga"), validation: bool = False) -> list[str]:
    tpls = templates() + (validation_templates() if validation else [])
    return [case_name(t, BASES[b]) for b in bases for t in tpls if b in t.bases]


def seed_of(template: Template) -> int:
    """The noise seed of a template's implant: its place in the list of teaching or validation templates."""
    names = [t.name for t in templates()]
    if template.name in names:
        return names.index(template.name)
    return 100 + [t.name for t in validation_templates()].index(template.name)


def check_data_dir(data_dir: str, bases=("brats", "tcga")) -> None:
    """A clear error unless ``data_dir`` holds the post-contrast T1 of each base image named."""
    for b in bases:
        path = os.path.join(data_dir, BASES[b].folder, BASES[b].t1c)
        if not os.path.isfile(path):
            raise ValueError(f"real-MRI data '{data_dir}': {os.path.join(BASES[b].folder, BASES[b].t1c)} not found "
                             f"(give the folder that holds {', '.join(BASES[x].folder for x in BASES)}/, e.g. "
                             f"Testing/Data/real-mri)")


def write_real_cases(data_dir: str, out_dir: str, bases=("brats", "tcga"), names=None, log=print) -> list[str]:
    """Write every template (or those named: template or case names) on each real image; returns manifest
    paths. ``data_dir``: the folder holding the real images (``Testing/Data/real-mri``)."""
    names = list(names or [])
    known = set(case_names(bases)) | {t.name for t in templates()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown real-MRI case {', '.join(repr(n) for n in unknown)}; known: "
                         f"{', '.join(case_names(bases))}")
    selected = [(b, i, t) for b in bases for i, t in enumerate(templates())
                if not names or t.name in names or case_name(t, BASES[b]) in names]
    check_data_dir(data_dir, list(dict.fromkeys(b for b, _, _ in selected)))
    out, images = [], {}
    for b, i, tpl in selected:
        base = BASES[b]
        if b not in images:
            images = {b: load_base(base, data_dir)}      # one base image in memory at a time
        log(f"[real-mri] writing {case_name(tpl, base)} ({tpl.counterpart}, paper scenario {tpl.paper})")
        out.append(write_case(tpl, base, images[b], out_dir, seed=i))
    return out
