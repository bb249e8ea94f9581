"""Teaching phantoms: an anatomically structured synthetic head, an SRS dose model and the paper's scenarios.

Frames
------
Anatomy is defined analytically in an **atlas frame** (LPS mm, origin at the brain centre: +x = patient Left,
+y = Posterior, +z = Superior). Each image is rendered through a rigid *pose* mapping its own LPS frame to the
atlas frame, so head tilt and misalignment between timepoints have exact ground truth. The SRS-time image is the
planning frame: the dose grid, the treated lesion, boundaries and all ground-truth change maps live there.

What is modelled (1 mm): two hemispheres with cortex (≈2.5 mm) over white matter, CSF-filled sulci (central,
Sylvian, cingulate, frontal, intraparietal, occipito-temporal, parieto-occipital), the interhemispheric fissure
with the falx, the corpus callosum (genu, body, splenium), lateral ventricles, caudate nuclei, the tentorium over a cerebellum,
a brainstem, skull and scalp. Post-contrast T1 intensities with Rician noise, a smooth bias field and partial
volume. Lesions are irregular ring- or solid-enhancing blobs restricted to the anatomical compartment they grow in.

Dose model: planned on the SRS image, target = treated lesion + 1 mm; prescription at the target margin, up to
125 % inside; outside, a double exponential in the distance d (mm) from the margin that ignores anatomy
(SRS: 0.8·e^(−d/6.5) + 0.2·e^(−d/25): ≈53 % at 5 mm, ≈31 % at 10 mm).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import functools

import numpy as np
import SimpleITK as sitk

from ..io import geometry as geo
from . import design

# Tissue labels of the atlas.
BACKGROUND, SCALP, SKULL, CSF, GM, WM, VENTRICLE, FALX, TENTORIUM, CC, CAUDATE, CEREBELLUM_GM, CEREBELLUM_WM, \
    BRAINSTEM = range(14)
LABEL_NAMES = {BACKGROUND: "background", SCALP: "scalp", SKULL: "skull", CSF: "csf", GM: "grey matter",
               WM: "white matter", VENTRICLE: "ventricle", FALX: "falx", TENTORIUM: "tentorium",
               CC: "corpus callosum", CAUDATE: "caudate", CEREBELLUM_GM: "cerebellar cortex",
               CEREBELLUM_WM: "cerebellar white matter", BRAINSTEM: "brainstem"}
PARENCHYMA = (GM, WM, CC, CAUDATE, CEREBELLUM_GM, CEREBELLUM_WM, BRAINSTEM)

# Mean post-contrast T1 signal per tissue (arbitrary units, WM ≈ 800).
T1C = {BACKGROUND: 0.0, SCALP: 950.0, SKULL: 120.0, CSF: 170.0, GM: 560.0, WM: 800.0, VENTRICLE: 160.0,
       FALX: 330.0, TENTORIUM: 330.0, CC: 830.0, CAUDATE: 620.0, CEREBELLUM_GM: 540.0, CEREBELLUM_WM: 760.0,
       BRAINSTEM: 740.0}
ENHANCING = 1250.0       # enhancing rim / solid enhancement
NECROSIS = 330.0         # non-enhancing necrotic core
EDEMA_FACTOR = 0.86      # vasogenic oedema darkens white matter on T1

#: Atlas grid: 1 mm, covering the head.
ATLAS_SIZE = (140, 170, 136)
ATLAS_ORIGIN = (-69.5, -84.5, -67.5)


# ----------------------------------------------------------------------------------------------------------------
# Anatomy (atlas frame)
# ----------------------------------------------------------------------------------------------------------------

def cc_centre_z(y):
    """Height (z, mm) of the corpus callosum's mid-line at antero-posterior position y."""
    return 17.0 - 0.006 * np.asarray(y, dtype=float) ** 2


def cc_half_thickness(y):
    y = np.asarray(y, dtype=float)
    splenium = np.clip((y - 18.0) / 8.0, 0, 1) * 2.5
    genu = np.clip((-y - 22.0) / 6.0, 0, 1) * 1.5
    return 2.5 + splenium + genu


def cc_top_z(y):
    return cc_centre_z(y) + cc_half_thickness(y)


def tentorium_z(x):
    """Height of the tentorium cerebelli (posterior fossa roof) as a function of x, mm."""
    return -12.0 - 0.2 * np.abs(np.asarray(x, dtype=float))


def central_sulcus_y(z):
    """Antero-posterior position of the central sulcus at height z (runs down and forward)."""
    return -5.0 + 0.4 * (np.asarray(z, dtype=float) - 30.0)


def sylvian_z(y):
    return 0.12 * np.asarray(y, dtype=float)


TEMPORAL_SULCUS_X = 40.0   # |x| of a para-sagittal sulcus on the temporal lobe's inferior surface


def _grid(size=ATLAS_SIZE, origin=ATLAS_ORIGIN, spacing=1.0) -> sitk.Image:
    img = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    img.SetOrigin(origin)
    img.SetSpacing((spacing,) * 3)
    return img


def _coords(grid: sitk.Image):
    """x, y, z arrays (i, j, k order) of the voxel centres of an axis-aligned grid."""
    size = grid.GetSize()
    o, s = grid.GetOrigin(), grid.GetSpacing()
    ax = [(o[d] + s[d] * np.arange(size[d])).astype(np.float32) for d in range(3)]
    return np.meshgrid(*ax, indexing="ij")


def _dist_outside(mask: np.ndarray, grid: sitk.Image) -> np.ndarray:
    """Unsigned distance (mm) from each voxel to the nearest voxel of ``mask`` (0 inside)."""
    img = geo.image_from_array(mask.astype(np.uint8), grid)
    d = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.clip(geo.array_view(d), 0, None)


@functools.lru_cache(maxsize=1)
def atlas() -> tuple[sitk.Image, dict]:
    """The anatomical label image in the atlas frame, plus helper maps (distance maps, compartments)."""
    grid = _grid()
    x, y, z = _coords(grid)
    ax = np.abs(x)

    q = (x / 62.0) ** 2 + (y / 78.0) ** 2 + ((z - 5.0) / 55.0) ** 2
    envelope = (q <= 1.0) & (z >= -46.0)
    depth = (1.0 - np.sqrt(np.minimum(q, 1.0))) * 55.0        # ≈ depth below the brain surface, mm
    qh = (x / 75.0) ** 2 + (y / 91.0) ** 2 + ((z - 5.0) / 66.0) ** 2
    head = (qh <= 1.0) & (z >= -62.0)
    qs = (x / 70.0) ** 2 + (y / 86.0) ** 2 + ((z - 5.0) / 61.0) ** 2
    skull = (qs <= 1.0) & (z >= -58.0) & head
    qcsf = (x / 64.0) ** 2 + (y / 80.0) ** 2 + ((z - 5.0) / 57.0) ** 2
    csf_shell = (qcsf <= 1.0) & (z >= -48.0)

    lab = np.full(grid.GetSize(), BACKGROUND, np.uint8)
    lab[head] = SCALP
    lab[skull] = SKULL
    lab[csf_shell] = CSF

    zt = tentorium_z(x)
    posterior_fossa = (y >= 22.0) & (z < zt + 1.5)
    cerebrum = envelope & ~posterior_fossa
    zc, hc = cc_centre_z(y), cc_half_thickness(y)
    cc = (np.abs(y) <= 31.0) & (np.abs(z - zc) <= hc) & (ax <= 14.0) & cerebrum
    zct = zc + hc
    ventricle = (((ax - 8.0) / 6.0) ** 2 + (y / 22.0) ** 2 + ((z - 9.0) / 5.5) ** 2 <= 1.0) & (ax >= 1.0) \
        & (z < zc - hc + 0.5)
    caudate = (((ax - 16.0) / 5.0) ** 2 + ((y + 12.0) / 9.0) ** 2 + ((z - 9.0) / 6.0) ** 2 <= 1.0) & ~ventricle

    # CSF spaces inside the brain envelope.
    fissure = cerebrum & (ax <= 1.5) & ((z > zct + 1.0) | (np.abs(y) > 31.0))
    callosal_sulcus = cerebrum & (ax <= 14.0) & (np.abs(y) <= 31.0) & (z > zct) & (z <= zct + 1.0)
    sulci = np.zeros_like(envelope)
    cs = np.abs(y - central_sulcus_y(z)) <= 1.5
    sulci |= cs & (ax > 2.5) & (z > 5.0) & (depth <= 20.0)
    sulci |= (np.abs(z - sylvian_z(y)) <= 1.5) & (ax > 30.0) & (y > -35.0) & (y < 25.0) & (depth <= 25.0)
    sulci |= (np.abs(ax - 22.0) <= 1.0) & (y < -15.0) & (z > 25.0) & (depth <= 15.0)
    sulci |= (np.abs(z - (zct + 11.0)) <= 1.0) & (ax >= 1.5) & (ax <= 13.0) & (np.abs(y) <= 32.0)
    sulci |= (np.abs(y - (45.0 - 0.3 * (z - 10.0))) <= 1.0) & (ax >= 1.5) & (ax <= 15.0) & (z > zt + 1.5)
    sulci |= (np.abs(ax - 28.0) <= 1.0) & (y > 10.0) & (y < 45.0) & (z > 25.0) & (depth <= 15.0)
    sulci |= (np.abs(ax - TEMPORAL_SULCUS_X) <= 1.0) & (z < -6.0) & (z > -35.0) & (y > -40.0) & (y < -12.0)
    for yc in (-40.0, -60.0):
        sulci |= (np.abs(y - yc) <= 1.0) & (ax > 3.0) & (z > -10.0) & (depth <= 12.0)
    sulci |= (np.abs(y - 62.0) <= 1.0) & (ax > 3.0) & (z > zt + 1.5) & (depth <= 12.0)
    sulci &= cerebrum

    falx_bottom = np.where(np.abs(y) <= 31.0, zct + 4.0, np.where(y < -31.0, -20.0, zt))
    falx = fissure & (ax <= 0.5) & (z > falx_bottom)
    tent = (np.abs(z - zt) <= 0.5) & (y >= 22.0) & envelope
    tent_csf = (np.abs(z - zt) <= 1.5) & (y >= 22.0) & envelope
    cerebellum = ((x / 50.0) ** 2 + ((y - 48.0) / 27.0) ** 2 + ((z + 28.0) / 18.0) ** 2 <= 1.0) \
        & (z < zt - 1.5) & envelope
    cerebellum &= ~((np.abs(z + 28.0) <= 0.8) & (ax > 8.0))          # horizontal fissure
    brainstem = (x ** 2 + (y - 18.0) ** 2 <= 11.0 ** 2) & (z < 2.0) & (z > -46.0) & ~cerebellum

    csf_inside = fissure | callosal_sulcus | sulci | tent_csf | (envelope & posterior_fossa)
    parenchyma_cerebrum = cerebrum & ~csf_inside & ~ventricle
    lab[envelope] = CSF
    lab[parenchyma_cerebrum] = WM
    lab[brainstem & envelope] = BRAINSTEM
    lab[cerebellum] = CEREBELLUM_WM

    # Cortex: parenchyma within 2.5 mm of CSF or of the brain's outer surface.
    outside = ~envelope | (lab == CSF)
    d_csf = _dist_outside(outside, grid)
    lab[(lab == WM) & (d_csf <= 2.5)] = GM
    lab[(lab == CEREBELLUM_WM) & (d_csf <= 3.5)] = CEREBELLUM_GM
    lab[cc] = CC
    lab[caudate & cerebrum] = CAUDATE
    lab[ventricle & cerebrum] = VENTRICLE
    lab[falx] = FALX
    lab[tent] = TENTORIUM

    img = geo.image_from_array(lab, grid)
    return img, {}


def parenchyma(labels: np.ndarray) -> np.ndarray:
    return np.isin(labels, PARENCHYMA)


def boundary_masks(labels: np.ndarray, grid: sitk.Image) -> dict[str, np.ndarray]:
    """The four boundary kinds as binary (i, j, k) masks: falx, tentorium, ventricles, csf (sulci/cisterns)."""
    brain = parenchyma(labels) | np.isin(labels, (CSF, VENTRICLE, FALX, TENTORIUM))
    # Only CSF that lies against parenchyma counts as a sulcal/cisternal boundary (not the outer CSF shell).
    near_parenchyma = _dist_outside(parenchyma(labels), grid) <= 3.0
    return {"falx": labels == FALX, "tentorium": labels == TENTORIUM, "ventricles": labels == VENTRICLE,
            "csf": (labels == CSF) & near_parenchyma & brain}


# ----------------------------------------------------------------------------------------------------------------
# Lesions
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Blob:
    """An irregular ellipsoidal lesion component in the atlas frame.

    ``ring``: enhancing rim thickness (mm) around a necrotic core; 0 = solid enhancement.
    ``within``: names of compartments (see :func:`compartment`) the component is confined to.
    ``spare``: ((boundary kind, mm), …): enhancement within that distance of the boundary is absent (open ring).
    """
    centre: tuple
    radii: tuple
    ring: float = 0.0
    within: tuple = ("parenchyma",)
    spare: tuple = ()
    seed: int = 0
    irregularity: float = 0.12


def compartment(name: str, labels: np.ndarray, x, y, z) -> np.ndarray:
    """Named anatomical regions that confine lesion growth (atlas frame)."""
    zt = tentorium_z(x)
    table = {
        "parenchyma": lambda: parenchyma(labels),
        "left": lambda: x > 1.5,
        "right": lambda: x < -1.5,
        "supratentorial": lambda: z > zt + 1.5,
        "cerebellum": lambda: np.isin(labels, (CEREBELLUM_GM, CEREBELLUM_WM)),
        "anterior_to_central": lambda: y < central_sulcus_y(z) - 1.5,
        "posterior_to_central": lambda: y > central_sulcus_y(z) + 1.5,
        "above_sylvian": lambda: z > sylvian_z(y) + 1.5,
        "below_sylvian": lambda: z < sylvian_z(y) - 1.5,
        "medial_temporal": lambda: np.abs(x) < TEMPORAL_SULCUS_X - 1.0,
        "lateral_temporal": lambda: np.abs(x) > TEMPORAL_SULCUS_X + 1.0,
        "corpus_callosum": lambda: labels == CC,
        "not_cc": lambda: labels != CC,
        "below_cingulate_sulcus": lambda: z < cc_top_z(y) + 10.0,
    }
    if name not in table:
        raise KeyError(f"unknown compartment '{name}'")
    return table[name]()


def _blob_extent(blob: Blob, x, y, z) -> np.ndarray:
    c = np.array(blob.centre, dtype=np.float32)
    r = np.array(blob.radii, dtype=np.float32)
    dx, dy, dz = (x - c[0]) / r[0], (y - c[1]) / r[1], (z - c[2]) / r[2]
    # The bumps scale the radius by (1 ± irregularity) at most: only points within the box that bounds that are
    # evaluated (the same mask, a few per cent of a scene's points to evaluate).
    lim = 1.001 / (1.0 - max(blob.irregularity, 0.0)) if blob.irregularity < 1.0 else np.inf
    near = (np.abs(dx) <= lim) & (np.abs(dy) <= lim) & (np.abs(dz) <= lim)
    dx, dy, dz = dx[near], dy[near], dz[near]
    rho = np.sqrt(dx * dx + dy * dy + dz * dz)
    if blob.irregularity > 0:
        rng = np.random.default_rng(blob.seed)
        bump = np.zeros_like(rho)
        inv = 1.0 / np.maximum(rho, 1e-6)
        for _ in range(4):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            phase = rng.uniform(0, 2 * np.pi)
            freq = rng.integers(1, 4)
            bump += np.cos(freq * np.arccos(np.clip((dx * v[0] + dy * v[1] + dz * v[2]) * inv, -1, 1)) + phase)
        rho = rho * (1.0 + blob.irregularity / 4.0 * bump)
    out = np.zeros(np.shape(x), bool)
    out[near] = rho <= 1.0
    return out


@dataclasses.dataclass
class TimepointSpec:
    label: str
    days: int                                   # days after SRS
    components: dict                            # component name → Blob (absent component = resolved)
    enhancing_boundaries: tuple = ()            # ((kind, component, mm), …) boundary enhancing near a component
    pose: tuple = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # rigid misalignment: rotations (deg, about x,y,z), shift (mm)


@dataclasses.dataclass
class Scenario:
    name: str
    title: str
    paper: int                                  # scenario number in the mission text
    counterpart: str                            # "RN" or "PD"
    prescription_gy: float
    fractions: int
    timepoints: list
    expected: list                              # expected findings (ground truth, see module docstring)
    cavity: tuple | None = None                 # (centre, radius) of a resection cavity (CSF)
    dose_falloff_mm: tuple = (6.5, 25.0)
    description: str = ""
    head_tilt: tuple = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _rot(deg_x, deg_y, deg_z) -> np.ndarray:
    ax, ay, az = np.radians([deg_x, deg_y, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def pose_transform(pose) -> sitk.AffineTransform:
    """Rigid transform mapping an image's LPS points to atlas points (rotation about the brain centre)."""
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(_rot(*pose[:3]).ravel()))
    t.SetTranslation(tuple(float(v) for v in pose[3:]))
    return t


def image_to_image_transform(pose_moving, pose_fixed) -> sitk.AffineTransform:
    """Transform mapping points of the *fixed* image frame to the *moving* image frame (ITK resampling order)."""
    mf = np.eye(4)
    mf[:3, :3], mf[:3, 3] = _rot(*pose_fixed[:3]), pose_fixed[3:]
    mm = np.eye(4)
    mm[:3, :3], mm[:3, 3] = _rot(*pose_moving[:3]), pose_moving[3:]
    m = np.linalg.inv(mm) @ mf
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(m[:3, :3].ravel()))
    t.SetTranslation(tuple(m[:3, 3]))
    return t


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class RenderedTimepoint:
    label: str
    date: _dt.date
    t1c: sitk.Image                 # the image as the scanner gave it (its own pose)
    lesion: sitk.Image              # lesion mask (extent: enhancement + enclosed necrosis), same grid
    enhancement: sitk.Image         # enhancing voxels (incl. enhancing boundary), same grid
    components_planning: sitk.Image  # component labels in the planning (SRS-image) frame
    component_names: dict           # label value → component name
    boundary_enhancing: dict        # kind → bool
    transform_to_planning: sitk.Transform  # maps planning-frame points into this image's frame


def _bias_field(x, y, z, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.06, 0.06, size=5)
    return (1.0 + a[0] * x / 60 + a[1] * y / 75 + a[2] * z / 55 + a[3] * (x / 60) ** 2
            + a[4] * (y / 75) * (z / 55)).astype(np.float32)


def render_scenario(scn: Scenario, seed: int = 0) -> dict:
    """Render all timepoints of a scenario. Returns a dict with the images, masks, dose and ground truth."""
    atlas_img, _ = atlas()
    labels_atlas = geo.array_view(atlas_img)
    x, y, z = _coords(atlas_img)

    if scn.cavity is not None:
        (cx, cy, cz), cr = scn.cavity
        cav = ((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= cr * cr) & parenchyma(labels_atlas)
        labels_atlas = labels_atlas.copy()
        labels_atlas[cav] = CSF
    bnd_atlas = boundary_masks(labels_atlas, atlas_img)
    dist_bnd = {k: _dist_outside(v, atlas_img) for k, v in bnd_atlas.items()}
    dist_wall = _dist_outside(~bnd_atlas["ventricles"], atlas_img)      # depth inside the ventricles

    comp_cache: dict = {}

    def comp_mask(blob: Blob):
        key = blob
        if key not in comp_cache:
            m = _blob_extent(blob, x, y, z)
            for w in blob.within:
                m &= compartment(w, labels_atlas, x, y, z)
            comp_cache[key] = m
        return comp_cache[key]

    tilt = scn.head_tilt
    planning_pose = tilt
    out_tps = []
    names_all = list(dict.fromkeys(n for tp in scn.timepoints for n in tp.components))   # order of appearance
    designed: dict = {}                  # per timepoint: {component: design.Part} in the atlas frame
    designed_boundary: dict = {}         # per timepoint: the enhancing boundary implanted
    for n_tp, tp in enumerate(scn.timepoints):
        extent = np.zeros(labels_atlas.shape, bool)
        enh = np.zeros(labels_atlas.shape, bool)
        comp_lab = np.zeros(labels_atlas.shape, np.uint8)
        designed[tp.label] = {}
        designed_boundary[tp.label] = np.zeros(labels_atlas.shape, bool)
        for name, blob in tp.components.items():
            m = comp_mask(blob)
            if not m.any():
                raise ValueError(f"scenario {scn.name}: component '{name}' at {tp.label} is empty")
            extent |= m
            comp_lab[m] = names_all.index(name) + 1
            if blob.ring > 0:
                d_in = _dist_outside(~m, atlas_img)
                e = m & (d_in <= blob.ring)
            else:
                e = m.copy()
            for kind, mm in blob.spare:
                e &= dist_bnd[kind] > mm
            enh |= e
            designed[tp.label][name] = design.Part(m, e, np.eye(3))
        enhancing_bnd = {k: False for k in bnd_atlas}
        for kind, comp_name, mm in tp.enhancing_boundaries:
            near = _dist_outside(comp_mask(tp.components[comp_name]), atlas_img) <= mm
            b = bnd_atlas[kind] & near
            if kind == "ventricles":
                # Ependymal enhancement lines the wall; the ventricle's lumen stays CSF.
                b &= dist_wall <= 1.5
            enh |= b
            extent |= b
            enhancing_bnd[kind] = True
            designed_boundary[tp.label] |= b

        # Intensities in the atlas frame (noise and bias are added in the image's own frame below).
        lab_tp = labels_atlas
        inten = np.vectorize(T1C.get, otypes=[np.float32])(np.arange(14))[lab_tp]
        near_lesion = _dist_outside(extent, atlas_img) <= 6.0 if extent.any() else np.zeros_like(extent)
        wm_like = np.isin(lab_tp, (WM, CC, CEREBELLUM_WM))
        inten[near_lesion & wm_like & ~extent] *= EDEMA_FACTOR
        inten[extent] = NECROSIS
        inten[enh] = ENHANCING

        pose = tuple(np.add(tilt, tp.pose))
        grid = _grid()
        to_atlas = pose_transform(pose)
        inten_img = geo.image_from_array(inten, atlas_img)
        smooth = sitk.SmoothingRecursiveGaussian(inten_img, 0.5)  # partial volume of a 1 mm acquisition
        img = sitk.Resample(smooth, grid, to_atlas, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        arr = geo.array_view(img)
        gx, gy, gz = _coords(grid)
        rng = np.random.default_rng(seed * 1000 + n_tp)
        arr *= _bias_field(gx, gy, gz, seed * 1000 + n_tp)
        sigma = 22.0
        arr = np.sqrt((arr + rng.normal(0, sigma, arr.shape)) ** 2 + rng.normal(0, sigma, arr.shape) ** 2)
        t1c = geo.image_from_array(np.round(arr).astype(np.int16), grid)
        lesion = sitk.Resample(geo.image_from_array(extent.astype(np.uint8), atlas_img), grid, to_atlas,
                               sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        enh_img = sitk.Resample(geo.image_from_array(enh.astype(np.uint8), atlas_img), grid, to_atlas,
                                sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        planning_to_atlas = pose_transform(planning_pose)
        comp_planning = sitk.Resample(geo.image_from_array(comp_lab, atlas_img), grid, planning_to_atlas,
                                      sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        out_tps.append(RenderedTimepoint(
            label=tp.label, date=SRS_DATE + _dt.timedelta(days=tp.days), t1c=t1c, lesion=lesion,
            enhancement=enh_img, components_planning=comp_planning,
            component_names={i + 1: n for i, n in enumerate(names_all)}, boundary_enhancing=enhancing_bnd,
            transform_to_planning=image_to_image_transform(pose, planning_pose)))

    # Planning-frame anatomy: boundaries and treated lesion (the SRS-time image's own frame).
    planning_grid = _grid()
    p2a = pose_transform(planning_pose)
    boundaries = {k: sitk.Resample(geo.image_from_array(v.astype(np.uint8), atlas_img), planning_grid, p2a,
                                   sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8) for k, v in bnd_atlas.items()}
    treated = out_tps[0].lesion
    dose = srs_dose(treated, scn.prescription_gy, scn.dose_falloff_mm)
    labels_planning = sitk.Resample(geo.image_from_array(labels_atlas, atlas_img), planning_grid, p2a,
                                    sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    expected, evidence = design_truth(scn, designed, designed_boundary, atlas_img, ~parenchyma(labels_atlas))
    return {"scenario": scn, "timepoints": out_tps, "boundaries": boundaries, "treated_lesion": treated,
            "dose": dose, "labels_planning": labels_planning,
            "midsagittal_plane_lps": midsagittal_plane(planning_pose), "expected": expected, "design": evidence}


#: The finding kinds a scenario states and the design also derives (design.py): a statement is checked against it.
DERIVED_KINDS = ("contiguous_extension", "mixed_response", "regression", "concentric_growth", "eccentric_growth",
                 "change_indeterminate")


def design_truth(scn: Scenario, designed: dict, designed_boundary: dict, atlas_img: sitk.Image,
                 blocked: np.ndarray) -> tuple[list, dict]:
    """The scenario's expected findings: the boundary findings it states, and contiguous extension and change
    derived from its designed components (teaching/design.py) on 1 mm acquisitions, registered to the SRS image when
    any follow-up was misaligned; ``blocked``: where no lesion grows (not parenchyma: CSF, folds, ventricles). What
    the scenario states of the derived kinds (the paper's mixed responses, its contiguous extensions) must be what
    the design gives without doubt, else the design is wrong (raised). Returns (expected, design evidence)."""
    labels = [tp.label for tp in scn.timepoints]
    registered_case = all(tuple(tp.pose) == tuple(scn.timepoints[0].pose) for tp in scn.timepoints)
    acquisitions = {label: design.Acquisition((1.0, 1.0, 1.0), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
                                              n > 0 and not registered_case) for n, label in enumerate(labels)}
    # Directions of the atlas frame in the planning image's frame (image LPS point p ↦ atlas R p + t).
    to_planning = geo.linear_matrix(pose_transform(scn.head_tilt))[:3, :3].T
    new_foci: dict = {}
    for e in scn.expected:
        if e["kind"] in ("noncontiguous_across_boundary", "noncontiguous_focus") and e.get("component"):
            new_foci.setdefault(e["timepoint"], set()).add(e["component"])
    treated = np.any([p.extent for p in designed[labels[0]].values()], axis=0)
    grid, tps, (treated, boundary, blocked) = design.cropped(atlas_img, designed, treated, designed_boundary, blocked)
    change, evidence = design.change_truth(grid, tps, acquisitions, new_foci, counterpart=scn.counterpart,
                                           to_planning=to_planning, blocked=blocked)
    extension = design.extension_truth(grid, tps, treated, new_foci, (1.0, 1.0, 1.0), np.eye(3), boundary)
    derived = extension + change
    present = set(labels)
    for e in scn.expected:
        if e["kind"] not in DERIVED_KINDS or not {e.get("timepoint"), e.get("from"), e.get("to")} - {None} <= present:
            continue
        if e["kind"] == "contiguous_extension":
            sure = any(d["kind"] == e["kind"] and d.get("timepoint") == e["timepoint"] for d in derived)
        else:
            sure = any(d["kind"] == e["kind"] and (d["from"], d["to"]) == (e["from"], e["to"]) for d in derived)
        if not sure:
            near = [d for d in derived if d.get("timepoint", d.get("to")) in (e.get("timepoint"), e.get("to"))]
            raise ValueError(f"scenario {scn.name} states {e} but its design does not give it without doubt: {near}")
    stated = [dict(e) for e in scn.expected if e["kind"] not in DERIVED_KINDS and e.get("timepoint") in present]
    return stated + derived, {"change": evidence, "extension": extension}


def midsagittal_plane(pose) -> dict:
    """True mid-sagittal plane (atlas x = 0) in an image frame with the given pose: unit normal and a point, LPS."""
    t = pose_transform(pose)
    r = np.array(t.GetMatrix()).reshape(3, 3)
    trans = np.array(t.GetTranslation())
    # image point p maps to atlas a = R p + t; the plane a_x = 0 ⇔ (R^T e_x) · p = -t_x.
    normal = r.T @ np.array([1.0, 0.0, 0.0])
    point = normal * (-trans[0])
    return {"normal": normal.tolist(), "point": point.tolist()}


SRS_DATE = _dt.date(2024, 3, 4)


def srs_dose(target_mask: sitk.Image, prescription_gy: float, falloff_mm=(6.5, 25.0),
             spacing_mm: float = 2.0) -> sitk.Image:
    """Dose (Gy, float32) on its own grid (``spacing_mm``, offset from the MRI grid) around ``target_mask``.

    Prescription at the margin of target + 1 mm; up to 125 % inside; outside a double exponential falloff.
    """
    dist = sitk.SignedMaurerDistanceMap(sitk.Cast(target_mask > 0, sitk.sitkUInt8), insideIsPositive=False,
                                        squaredDistance=False, useImageSpacing=True)
    dist = dist - 1.0   # 1 mm planning margin
    d = geo.array_view(dist)
    inside_depth = np.clip(-d, 0, None)
    max_depth = max(float(inside_depth.max()), 1.0)
    l1, l2 = falloff_mm
    dd = np.clip(d, 0, None)
    f = np.where(d <= 0, 1.0 + 0.25 * inside_depth / max_depth, 0.8 * np.exp(-dd / l1) + 0.2 * np.exp(-dd / l2))
    fine = geo.image_from_array((prescription_gy * f).astype(np.float32), target_mask)
    lo, hi = geo.bounds_lps(target_mask)
    size = [int(np.floor((hi[a] - lo[a]) / spacing_mm)) - 1 for a in range(3)]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing((spacing_mm,) * 3)
    grid.SetDirection(target_mask.GetDirection())
    # Offset by a non-integer number of MRI voxels so the dose grid never coincides with the MRI grid.
    grid.SetOrigin(tuple(geo.index_to_lps(target_mask, [[1.3, 1.3, 1.3]])[0]))
    return sitk.Resample(fine, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
