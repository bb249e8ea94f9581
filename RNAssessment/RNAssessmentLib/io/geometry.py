"""Image geometry: the one place where RAS and LPS meet, plus grid comparisons and resampling.

Frames
------
* Every ``SimpleITK.Image`` in this package is in **LPS** (ITK's patient frame, DICOM's patient frame):
  +x = patient Left, +y = Posterior, +z = Superior, millimetres.
* 3D Slicer (MRML, ``.seg.vtm`` files, ``centroid_ras`` in findings) uses **RAS**: +x = patient Right,
  +y = Anterior, +z = Superior. RAS = diag(-1, -1, 1) · LPS.
* ``ras_from_lps`` / ``lps_from_ras`` below are the only functions that flip axes. Every other module calls them.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk

#: diag(-1, -1, 1): maps LPS to RAS and back (it is its own inverse).
LPS_RAS_FLIP = np.diag([-1.0, -1.0, 1.0])


def ras_from_lps(points_lps) -> np.ndarray:
    """Points (…, 3) in LPS mm → RAS mm."""
    return np.asarray(points_lps, dtype=float) * np.array([-1.0, -1.0, 1.0])


def lps_from_ras(points_ras) -> np.ndarray:
    """Points (…, 3) in RAS mm → LPS mm."""
    return np.asarray(points_ras, dtype=float) * np.array([-1.0, -1.0, 1.0])


def ras_from_lps_matrix(matrix_lps: np.ndarray) -> np.ndarray:
    """A 4×4 matrix whose output is LPS (e.g. IJK→LPS) → the same matrix with RAS output (IJK→RAS)."""
    flip = np.eye(4)
    flip[:3, :3] = LPS_RAS_FLIP
    return flip @ np.asarray(matrix_lps, dtype=float)


def lps_from_ras_matrix(matrix_ras: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ras_from_lps_matrix` (the flip is its own inverse)."""
    return ras_from_lps_matrix(matrix_ras)


def lps_transform_from_ras(matrix_ras: np.ndarray) -> np.ndarray:
    """A 4×4 point transform RAS → RAS (a Slicer transform) as the same transform LPS → LPS."""
    flip = np.eye(4)
    flip[:3, :3] = LPS_RAS_FLIP
    return flip @ np.asarray(matrix_ras, dtype=float) @ flip


def ijk_to_lps(image: sitk.Image) -> np.ndarray:
    """4×4 homogeneous matrix mapping voxel index (i, j, k) to LPS mm."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    m = np.eye(4)
    m[:3, :3] = direction * spacing[np.newaxis, :]
    m[:3, 3] = image.GetOrigin()
    return m


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """4×4 matrix mapping voxel index (i, j, k) to RAS mm (what MRML calls IJKToRAS)."""
    return ras_from_lps_matrix(ijk_to_lps(image))


def set_geometry_from_ijk_to_lps(image: sitk.Image, matrix: np.ndarray) -> sitk.Image:
    """Set origin/spacing/direction of ``image`` from a 4×4 IJK→LPS matrix (columns may be scaled)."""
    m = np.asarray(matrix, dtype=float)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError("IJK-to-LPS matrix has a zero-length axis")
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (m[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(v) for v in m[:3, 3]])
    return image


def index_to_lps(image: sitk.Image, ijk) -> np.ndarray:
    """Continuous voxel indices (N, 3) in (i, j, k) order → LPS points (N, 3)."""
    ijk = np.atleast_2d(np.asarray(ijk, dtype=float))
    m = ijk_to_lps(image)
    return ijk @ m[:3, :3].T + m[:3, 3]


def lps_to_index(image: sitk.Image, points_lps) -> np.ndarray:
    """LPS points (N, 3) → continuous voxel indices (i, j, k)."""
    pts = np.atleast_2d(np.asarray(points_lps, dtype=float))
    m = ijk_to_lps(image)
    return (pts - m[:3, 3]) @ np.linalg.inv(m[:3, :3]).T


def linear_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix of a linear SimpleITK transform (x -> A (x - c) + c + t), in the points' own coordinates."""
    tf = transform.Downcast() if hasattr(transform, "Downcast") else transform
    if tf.GetName() == "CompositeTransform":
        m = np.eye(4)
        for n in range(tf.GetNumberOfTransforms()):
            m = linear_matrix(tf.GetNthTransform(n)) @ m
        return m
    if tf.GetName() in ("IdentityTransform", "Transform") and not tf.GetParameters():
        return np.eye(4)           # sitk.Transform(): the identity, with no parameters (and no GetMatrix)
    if not tf.IsLinear():
        raise ValueError(f"{tf.GetName()} is not linear")
    if not hasattr(tf, "GetMatrix"):
        # A linear transform without a matrix of its own (translation, scale ...): read it off four points.
        origin = np.array(tf.TransformPoint((0.0, 0.0, 0.0)))
        m = np.eye(4)
        m[:3, 3] = origin
        for i in range(3):
            m[:3, i] = np.array(tf.TransformPoint(tuple(float(v) for v in np.eye(3)[i]))) - origin
        return m
    a = np.array(tf.GetMatrix()).reshape(3, 3)
    c = np.array(tf.GetCenter()) if hasattr(tf, "GetCenter") else np.zeros(3)
    t = np.array(tf.GetTranslation())
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = t + c - a @ c
    return m


def array_view(image: sitk.Image) -> np.ndarray:
    """Voxel array in (i, j, k) index order, i.e. ``array[i, j, k]`` is voxel (i, j, k).

    SimpleITK's own ``GetArrayFromImage`` returns (k, j, i); code here works in (i, j, k) so that index
    arithmetic matches :func:`ijk_to_lps` without mental transposes. Returns a copy, Fortran-ordered (the transposed
    copy, not copied again into C order: that second copy, a cache-unfriendly transpose of the whole volume, took
    3 s of a 33 s real-MRI case); :func:`image_from_array` turns it back into an image without copying it again.
    """
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def image_from_array(array_ijk: np.ndarray, reference: sitk.Image | None = None, *,
                     ijk_to_lps_matrix: np.ndarray | None = None) -> sitk.Image:
    """(i, j, k) array → SimpleITK image with the geometry of ``reference`` or of a 4×4 IJK→LPS matrix."""
    arr = np.asarray(array_ijk)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    if reference is not None:
        if tuple(reference.GetSize()) != arr.shape:
            raise ValueError(f"array shape {arr.shape} does not match the reference grid {reference.GetSize()}")
        img.CopyInformation(reference)
    elif ijk_to_lps_matrix is not None:
        set_geometry_from_ijk_to_lps(img, ijk_to_lps_matrix)
    return img


def corners_lps(image: sitk.Image) -> np.ndarray:
    """The 8 outer corners (voxel edges, not centres) of the image in LPS, shape (8, 3)."""
    return index_to_lps(image, box_corners(-0.5 * np.ones(3), np.array(image.GetSize(), dtype=float) - 0.5))


def bounds_lps(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS bounding box (min, max) of the image's extent, mm."""
    c = corners_lps(image)
    return c.min(axis=0), c.max(axis=0)


def overlap_fraction(image: sitk.Image, other: sitk.Image) -> float:
    """Fraction of ``image``'s axis-aligned LPS box that lies inside ``other``'s box (0 … 1)."""
    a0, a1 = bounds_lps(image)
    b0, b1 = bounds_lps(other)
    inter = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None)
    vol = np.prod(a1 - a0)
    return float(np.prod(inter) / vol) if vol > 0 else 0.0


def same_grid(a: sitk.Image, b: sitk.Image, tol_mm: float = 1e-3) -> bool:
    """True when both images sample exactly the same voxel centres (size, origin, spacing, direction)."""
    if tuple(a.GetSize()) != tuple(b.GetSize()):
        return False
    return bool(np.allclose(ijk_to_lps(a), ijk_to_lps(b), atol=tol_mm))


def describe_grid(image: sitk.Image) -> str:
    """Short human-readable description for error messages."""
    sp = ", ".join(f"{s:g}" for s in image.GetSpacing())
    org = ", ".join(f"{o:.1f}" for o in image.GetOrigin())
    return f"{image.GetSize()} voxels of ({sp}) mm at LPS origin ({org})"


def resample(image: sitk.Image, reference: sitk.Image, *, linear: bool = True,
             transform: sitk.Transform | None = None, default: float = 0.0) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid (LPS physical space), optionally through ``transform``.

    ``transform`` maps points of the reference frame to the image frame (ITK's resampling convention).
    """
    interp = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.Resample(image, reference, transform or sitk.Transform(), interp, default, image.GetPixelID())


def mask_on_grid(mask_ijk: np.ndarray, source: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """A boolean (i, j, k) mask on ``source``'s grid, sampled (nearest neighbour, same physical space) onto
    ``grid``: a boolean (i, j, k) array of ``grid``'s size."""
    return array_view(resample(image_from_array(mask_ijk.astype(np.uint8), source), grid, linear=False)) > 0


#: Spacing (mm) up to which an axis is "thin": a structure one or two voxels across is resolved along it, so a
#: one-voxel erosion or a 1-2 voxel sulcus means the same along it as in-plane. Thicker axes (the 5-7 mm slices of
#: clinical follow-ups) move surfaces by whole slices and smear thin CSF over a slab.
THIN_SLICE_MM = 2.0


def thin_axes(image: sitk.Image) -> list[bool]:
    """Per axis (i, j, k): is its spacing at most ``THIN_SLICE_MM``."""
    return [s <= THIN_SLICE_MM for s in image.GetSpacing()]


def axes_lps(image: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    """The image's grid axes (i, j, k) as LPS unit vectors (rows). With ``transform`` (a linear map from another
    frame's points to this image's points, as ITK resampling uses), the axes as seen in that other frame."""
    axes = np.array(image.GetDirection(), dtype=float).reshape(3, 3).T
    if transform is not None:
        a = linear_matrix(transform)[:3, :3]
        axes = np.linalg.solve(a, axes.T).T
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes


def voxel_extent_along_mm(spacing_mm, axes, directions) -> np.ndarray:
    """How far one voxel reaches along each unit direction (…, 3): its box (``spacing_mm`` along the rows of
    ``axes``) projected onto the direction, Σ_i s_i |n · a_i|. The in-plane pixel within the slice plane, the slice
    thickness along the slice normal, their projection in between; the same frame for axes and directions."""
    n = np.asarray(directions, dtype=float)
    return np.abs(n @ np.asarray(axes, dtype=float).T) @ np.asarray(spacing_mm, dtype=float)


#: The array layout every image is analysed in: axis i runs to the patient's left, j posterior, k superior (the
#: nearest of the 48 axis orders and flips; an oblique grid keeps its obliquity). How an image's array is stored
#: (a sagittal acquisition's A-S-L, a NIfTI's flipped R-A-S) must not change a result: the steps that look along an
#: array axis (the mid-sagittal plane, the folds' sheets, the change grouping) then see the same arrays.
CANONICAL_ORIENTATION = "LPS"


def orientation_code(image: sitk.Image) -> str:
    """ITK's three-letter code of an image's axis order and directions ('LPS' for the canonical layout)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def reorient(image: sitk.Image, code: str = CANONICAL_ORIENTATION) -> sitk.Image:
    """The same image (same voxels, same physical geometry) with its array stored in the layout ``code``: axes
    permuted and flipped, never resampled. Unchanged when it already is."""
    if orientation_code(image) == code:
        return image
    return sitk.DICOMOrient(image, code)


#: What a grid is held to in the canonical layout: direction cosines to 5 decimals, origin to 1 µm, spacing to
#: 1e-6 mm.
#: A NIfTI header keeps its axes as a float32 quaternion, so the same image stored in two axis orders reads back
#: with directions ~1e-8 and origins ~3e-6 mm apart; the analysis (the atlas fit on the clinical exam's 5.5 mm
#: slabs) could land 2.4 mm apart from that alone. Held to these steps both are one grid. A step straddled by such
#: a difference stays possible (1-2 % for the differences above). A voxel r mm from the origin moves by at most
#: 0.87 µm + r x 3e-5 (7 µm at 250 mm), under a hundredth of a 1 mm voxel.
GRID_DIRECTION_DECIMALS = 5
GRID_ORIGIN_DECIMALS = 3
GRID_SPACING_DECIMALS = 6


def held_grid(image: sitk.Image) -> sitk.Image:
    """``image`` with its geometry held to :data:`GRID_DIRECTION_DECIMALS`, :data:`GRID_ORIGIN_DECIMALS` (mm) and
    :data:`GRID_SPACING_DECIMALS` (mm) decimals (the same voxels; an oblique direction made orthonormal again after
    rounding). Rounded to decimals, a value written with fewer (-68.2) is kept to the bit. Unchanged (the same
    object) when it already is held."""
    d = np.asarray(image.GetDirection(), float).reshape(3, 3)
    held_d = np.round(d, GRID_DIRECTION_DECIMALS)
    if not np.array_equal(held_d, d):
        u, _, vt = np.linalg.svd(held_d)
        held_d = u @ vt
    o = np.asarray(image.GetOrigin(), float)
    held_o = np.round(o, GRID_ORIGIN_DECIMALS)
    sp = np.asarray(image.GetSpacing(), float)
    held_sp = np.round(sp, GRID_SPACING_DECIMALS)
    if np.array_equal(held_d, d) and np.array_equal(held_o, o) and np.array_equal(held_sp, sp):
        return image
    out = sitk.Image(image)
    out.SetDirection(tuple(float(v) for v in held_d.ravel()))
    out.SetOrigin(tuple(float(v) for v in held_o))
    out.SetSpacing(tuple(float(v) for v in held_sp))
    return out


def canonical(image: sitk.Image) -> sitk.Image:
    """The image in the canonical array layout (:func:`reorient`), its grid held (:func:`held_grid`): what every
    image of a case is analysed on."""
    return held_grid(reorient(image))


def voxel_volume_mm3(image: sitk.Image) -> float:
    """Volume of one voxel in mm³ (|det| of the scaled direction matrix)."""
    return float(abs(np.linalg.det(ijk_to_lps(image)[:3, :3])))


def _factors(factor) -> np.ndarray:
    """A split factor per axis (one int for all three, or three)."""
    f = np.broadcast_to(np.asarray(factor, dtype=int), (3,)).copy()
    if (f < 1).any():
        raise ValueError(f"split factors must be at least 1, not {tuple(f)}")
    return f


def refined_grid(reference: sitk.Image, factor, pixel_type=sitk.sitkUInt8) -> sitk.Image:
    """An empty grid that splits each voxel of ``reference`` into sub-voxels, ``factor`` along each axis (one int
    for all three, or one per axis), same direction, same extent."""
    f = _factors(factor)
    spacing = np.array(reference.GetSpacing()) / f
    size = [int(s) * int(k) for s, k in zip(reference.GetSize(), f)]
    # The first sub-voxel centre sits half a sub-voxel inside the reference voxel's lower edge.
    first = -0.5 + 0.5 / f
    origin = index_to_lps(reference, [first])[0]
    out = sitk.Image(size, pixel_type)
    out.SetSpacing([float(s) for s in spacing])
    out.SetDirection(reference.GetDirection())
    out.SetOrigin([float(o) for o in origin])
    return out


def block_mean(array_ijk: np.ndarray, factor) -> np.ndarray:
    """Average non-overlapping blocks of an (i, j, k) array, ``factor`` voxels along each axis (one int for all
    three, or one per axis): the inverse of :func:`refined_grid`. float32."""
    f = _factors(factor)
    if (f == 1).all():
        return array_ijk.astype(np.float32)
    ni, nj, nk = (s // k for s, k in zip(array_ijk.shape, f))
    a = array_ijk[: ni * f[0], : nj * f[1], : nk * f[2]].reshape(ni, f[0], nj, f[1], nk, f[2])
    # Sum in float64 (exact for counts), then divide: the mean of a 0/1 array is a coverage fraction.
    return (a.sum(axis=(1, 3, 5), dtype=np.float64) / float(f.prod())).astype(np.float32)


def centroid_ras(mask_ijk: np.ndarray, grid: sitk.Image) -> list:
    """The centre of a mask's voxels (an (i, j, k) array on ``grid``) in RAS mm, as a list (findings' evidence)."""
    return ras_from_lps(index_to_lps(grid, np.argwhere(mask_ijk).mean(0, keepdims=True)))[0].tolist()


def box_corners(lo, hi) -> np.ndarray:
    """The eight corners (8, 3) of the axis-aligned box from ``lo`` to ``hi`` (any one frame)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return np.array([[(lo, hi)[(n >> axis) & 1][axis] for axis in range(3)] for n in range(8)])


def grid_covering(reference: sitk.Image, points_lps, margin_vox: int = 1, clip: bool = True):
    """The index box of ``reference`` that covers the LPS points (+``margin_vox``), as (empty uint8 sub-grid with
    the reference's spacing and directions, first index (i0, j0, k0)); None when ``clip`` leaves nothing (the
    points lie outside the grid). With ``clip`` the box stays inside the reference; without, it follows the points
    beyond it."""
    idx = lps_to_index(reference, points_lps)
    size = np.array(reference.GetSize())
    i0 = np.floor(idx.min(0)).astype(int) - margin_vox
    i1 = np.ceil(idx.max(0)).astype(int) + margin_vox
    if clip:
        i0, i1 = np.maximum(i0, 0), np.minimum(i1, size - 1)
    if np.any(i1 < i0) or np.any(i0 > size - 1) or np.any(i1 < 0):
        return None
    sub = sitk.Image([int(v) for v in (i1 - i0 + 1)], sitk.sitkUInt8)
    sub.SetSpacing(reference.GetSpacing())
    sub.SetDirection(reference.GetDirection())
    sub.SetOrigin(tuple(float(v) for v in index_to_lps(reference, [i0])[0]))
    return sub, tuple(int(v) for v in i0)


def crop_box(mask_ijk: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice] | None:
    """Index box (slices) around the non-zero voxels of an (i, j, k) array, grown by ``margin`` voxels."""
    nz = np.nonzero(mask_ijk)
    if len(nz[0]) == 0:
        return None
    return tuple(slice(max(int(a.min()) - margin, 0), min(int(a.max()) + margin + 1, s))
                 for a, s in zip(nz, mask_ijk.shape))


def centroid_lps(mask: sitk.Image) -> np.ndarray:
    """Centroid of the non-zero voxels of a mask, LPS mm. Raises ValueError on an empty mask."""
    arr = array_view(mask)
    idx = np.argwhere(arr > 0)
    if idx.size == 0:
        raise ValueError("empty mask has no centroid")
    return index_to_lps(mask, idx.mean(axis=0, keepdims=True))[0]


def to_vtk_matrix(m: np.ndarray) -> vtk.vtkMatrix4x4:
    """4×4 numpy array → vtkMatrix4x4."""
    vm = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            vm.SetElement(r, c, float(m[r, c]))
    return vm


def from_vtk_matrix(vm: vtk.vtkMatrix4x4) -> np.ndarray:
    """vtkMatrix4x4 → 4×4 numpy array."""
    return np.array([[vm.GetElement(r, c) for c in range(4)] for r in range(4)])


def slice_grid(center_lps, orientation: str, fov_mm: float = 70.0, pixel_mm: float = 0.35) -> sitk.Image:
    """A one-slice LPS grid through ``center_lps``: i to the patient's left (+x), j down the screen (posterior for
    axial, inferior for coronal)."""
    n = int(round(fov_mm / pixel_mm))
    if orientation == "axial":
        ei, ej, ek = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    elif orientation == "coronal":
        ei, ej, ek = (1, 0, 0), (0, 0, -1), (0, 1, 0)
    elif orientation == "sagittal":
        ei, ej, ek = (0, -1, 0), (0, 0, -1), (1, 0, 0)
    else:
        raise ValueError(f"unknown orientation '{orientation}'")
    d = np.column_stack([ei, ej, ek]).astype(float)
    img = sitk.Image(n, n, 1, sitk.sitkUInt8)
    img.SetSpacing((pixel_mm, pixel_mm, pixel_mm))
    img.SetDirection(tuple(d.ravel()))
    half = (n - 1) / 2.0 * pixel_mm
    img.SetOrigin(tuple(np.asarray(center_lps, float) - half * d[:, 0] - half * d[:, 1]))
    return img


def sample_plane(image: sitk.Image, grid: sitk.Image, linear: bool = True) -> np.ndarray:
    """``image`` sampled on a one-slice grid (see :func:`slice_grid`), as an (i, j) float array."""
    out = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear if linear else sitk.sitkNearestNeighbor,
                        0.0, sitk.sitkFloat32)
    return array_view(out)[:, :, 0]        # (i, j)


def isotropic_grid(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An empty isotropic grid with ``image``'s orientation covering its extent (float32)."""
    size = np.array(image.GetSize()) * np.array(image.GetSpacing())
    n = np.maximum(np.ceil(size / spacing_mm).astype(int), 1)
    g = sitk.Image([int(v) for v in n], sitk.sitkFloat32)
    g.SetSpacing((spacing_mm,) * 3)
    g.SetDirection(image.GetDirection())
    first = index_to_lps(image, [[-0.5, -0.5, -0.5]])[0]
    d = np.array(image.GetDirection()).reshape(3, 3)
    g.SetOrigin(tuple(first + d @ np.full(3, spacing_mm / 2.0)))
    return g


def registration_method() -> sitk.ImageRegistrationMethod:
    """An ITK registration method that gives the same transform on every run.

    ITK's threaded metric splits its samples into work units that finish in any order, so two runs on the same
    images ended 1e-6 mm (follow-up) to 0.01 mm (atlas) apart; through the atlas fit that moved ventricle and fold
    masks by hundreds of voxels and flipped an open-ring finding on a real-MRI case from run to run. One work unit
    (and thread) makes the sums, and so every finding, reproducible; setting it on the method, not ITK's global
    default, leaves every other filter (and other callers in the process) threaded."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetNumberOfThreads(1)
    reg.SetNumberOfWorkUnits(1)
    return reg


# ----------------------------------------------------------------------------------------------------------------
# Labels on a 2D view (the report's slice figures, the review's slice views)
# ----------------------------------------------------------------------------------------------------------------

def boxes_overlap(a, b) -> bool:
    """Whether two boxes (x, y, w, h) overlap (touching edges do not)."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def place_label(points, size, free, *, gap=(2.0, 1.0), y_up: bool = False, tries: int = 120):
    """The first box (x, y, w, h) beside a line where ``free(box)`` holds, and the line point it stands at, or None.

    ``points``: the line's points (N, 2) in view coordinates; ``size``: the box's (w, h). Candidates are taken
    along the line, highest on the screen first (about ``tries`` of them); at each the box stands just outside the
    line (away from the middle of its points: the region it encloses) by ``gap`` (x, y), on the outer side first,
    then the inner. ``y_up``: y grows up the screen (VTK's display), else down (SVG, images)."""
    pts = np.asarray(points, float).reshape(-1, 2)
    if not len(pts):
        return None
    w, h = size
    gx, gy = gap
    middle = pts.mean(axis=0)
    order = np.argsort(-pts[:, 1] if y_up else pts[:, 1], kind="stable")
    for x, y in pts[order[:: max(1, len(order) // tries)]]:
        out = np.array([x, y]) - middle
        above = out[1] >= 0 if y_up else out[1] <= 0
        by = (y + gy if y_up else y - h - gy) if above else (y - h - gy if y_up else y + gy)
        outer, inner = (x + gx, x - w - gx) if out[0] >= 0 else (x - w - gx, x + gx)
        for bx in (outer, inner):
            if free((bx, by, w, h)):
                return (bx, by, w, h), (float(x), float(y))
    return None
