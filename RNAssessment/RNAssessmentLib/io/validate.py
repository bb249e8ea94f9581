"""One validation step for every image that enters the core (command line, Slicer panel, cohort alike).

Two kinds of check, each failing with a ``ValueError`` that names the input, says what is wrong and what to do:

* **file integrity** (:func:`check_file`), before the file is decoded: a compressed stream that ends early, NRRD /
  NIfTI / MetaImage data shorter than its header announces, DICOM pixel data shorter than rows x columns x frames.
  ITK would read such files without complaint and fill the missing part with zeros.
* **image sanity** (:func:`check_image`), on what was read: 3D, one value per voxel, positive finite spacing,
  orthonormal direction, finite values (NaN/Inf refused; masks say which voxels), intensities that vary, a size
  within :data:`MAX_VOXELS`.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np
import SimpleITK as sitk

#: The largest image accepted (voxels). 120 million float32 voxels are 480 MB; the analysis keeps a few such
#: arrays, so a bigger image would exceed the 2 GB this tool is designed to stay under. A 512 x 512 x 400
#: head CT is 105 million.
MAX_VOXELS = 120_000_000

_NRRD_TYPES = {
    "signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1, "uint8_t": 1,
    "short": 2, "short int": 2, "signed short": 2, "signed short int": 2, "int16": 2, "int16_t": 2,
    "ushort": 2, "unsigned short": 2, "unsigned short int": 2, "uint16": 2, "uint16_t": 2,
    "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4, "unsigned int": 4, "uint32": 4,
    "uint32_t": 4, "longlong": 8, "long long": 8, "long long int": 8, "signed long long": 8,
    "signed long long int": 8, "int64": 8, "int64_t": 8, "ulonglong": 8, "unsigned long long": 8,
    "unsigned long long int": 8, "uint64": 8, "uint64_t": 8, "float": 4, "double": 8,
}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}
_NIFTI_BITPIX_OK = {8, 16, 32, 64, 128, 24}


def _fail(what: str, problem: str, todo: str) -> ValueError:
    return ValueError(f"{what}: {problem}; {todo}")


def _gunzip_all(data: bytes, what: str) -> bytes:
    """Decompress every gzip member; a stream that ends early or fails its CRC is an error."""
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise _fail(what, f"the compressed data is incomplete or corrupt ({exc})",
                    "the file was truncated or damaged in transfer: copy it again from its source") from None


def _check_size(what: str, have: int, need: int) -> None:
    if have < need:
        raise _fail(what, f"the header announces {need} bytes of voxel data but the file holds {have}",
                    "the file is truncated: copy it again from its source")


def _check_nifti(raw: bytes, what: str) -> None:
    if len(raw) < 348:
        raise _fail(what, f"only {len(raw)} bytes, shorter than a NIfTI header (348)", "the file is truncated")
    for order in ("<", ">"):
        if struct.unpack(order + "i", raw[:4])[0] == 348:
            break
    else:
        if struct.unpack("<i", raw[:4])[0] == 540 or struct.unpack(">i", raw[:4])[0] == 540:
            return          # NIfTI-2: ITK checks it; not produced by the tools this project meets
        raise _fail(what, "not a NIfTI-1 header (sizeof_hdr is not 348)", "check that this is the image you meant")
    dims = struct.unpack(order + "8h", raw[40:56])
    pixdim = struct.unpack(order + "8f", raw[76:108])
    bitpix = struct.unpack(order + "h", raw[72:74])[0]
    vox_offset = struct.unpack(order + "f", raw[108:112])[0]
    nd = dims[0]
    if not 1 <= nd <= 7 or any(d < 0 for d in dims[1:nd + 1]):
        raise _fail(what, f"the NIfTI header gives {nd} dimensions of sizes {list(dims[1:nd + 1])}",
                    "the header is damaged: copy the file again")
    nd_space = min(max(dims[0], 0), 3)
    if any(not np.isfinite(v) or v == 0 for v in pixdim[1:nd_space + 1]):
        raise _fail(what, f"the NIfTI header gives voxel sizes {[round(v, 4) for v in pixdim[1:nd_space + 1]]} mm "
                    "(pixdim): a zero or missing voxel size would silently be read as 1 mm",
                    "fix the header (the voxel size in mm) or export the image again")
    if bitpix not in _NIFTI_BITPIX_OK:
        raise _fail(what, f"the NIfTI header gives {bitpix} bits per voxel", "the header is damaged")
    magic = raw[344:348]
    if magic == b"ni1\x00":
        return              # .hdr/.img pair: ITK reads the .img and reports a short one
    n_vox = int(np.prod([max(d, 1) for d in dims[1:nd + 1]], dtype=np.int64))
    start = int(max(vox_offset, 352))
    need = start + n_vox * bitpix // 8
    _check_size(what, len(raw), need)
    # ITK's NIfTI reader turns NaN into 0 without a word: non-finite floats are caught here, in the file.
    datatype = struct.unpack(order + "h", raw[70:72])[0]
    if datatype in (16, 64):
        values = np.frombuffer(raw, dtype=np.dtype(order + ("f4" if datatype == 16 else "f8")), count=n_vox,
                               offset=start)
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            kinds = ("NaN " if np.isnan(values).any() else "") + ("Inf" if np.isinf(values).any() else "")
            raise _fail(what, f"{bad:,} of {values.size:,} voxels are {kinds.strip()}",
                        "the image is damaged or the output of a failed computation: use the scanner's image "
                        "(a mask holds 0 outside and a label inside)")


def _nrrd_header(raw: bytes, what: str) -> tuple[dict, int]:
    end = raw.find(b"\n\n")
    end_crlf = raw.find(b"\r\n\r\n")
    if end < 0 and end_crlf < 0:
        head, start = raw, len(raw)          # a detached header (.nhdr) may end with the file
    elif end < 0 or (0 <= end_crlf < end):
        head, start = raw[:end_crlf], end_crlf + 4
    else:
        head, start = raw[:end], end + 2
    fields = {}
    for line in head.decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line or ":=" in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip().lower()] = v.strip()
    return fields, start


def _check_nrrd(path: str, raw: bytes, what: str) -> None:
    if not raw.startswith(b"NRRD"):
        raise _fail(what, "no NRRD magic at the start of the file", "check that this is the image you meant")
    fields, start = _nrrd_header(raw, what)
    try:
        sizes = [int(s) for s in fields["sizes"].split()]
        vtype = fields["type"].lower()
    except (KeyError, ValueError):
        raise _fail(what, "the NRRD header lacks valid 'sizes' or 'type'", "the header is damaged") from None
    if any(s <= 0 for s in sizes):
        raise _fail(what, f"the NRRD header gives sizes {sizes}", "an image needs at least one voxel per axis")
    if vtype not in _NRRD_TYPES:
        return              # block / exotic types: ITK reports them
    need = int(np.prod(sizes, dtype=np.int64)) * _NRRD_TYPES[vtype]
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if data_file.upper().startswith("LIST") or "%" in data_file:
            return
        dpath = os.path.join(os.path.dirname(path), data_file)
        if not os.path.isfile(dpath):
            raise _fail(what, f"its data file '{data_file}' is missing", "copy the .raw/.raw.gz beside the header")
        with open(dpath, "rb") as f:
            body = f.read()
    else:
        body = raw[start:]
    enc = fields.get("encoding", "raw").lower()
    skip = int(fields.get("byte skip", fields.get("byteskip", "0")) or 0)
    if enc in ("gzip", "gz"):
        body = _gunzip_all(body, what)
    elif enc in ("bzip2", "bz2"):
        import bz2
        try:
            body = bz2.decompress(body)
        except (OSError, ValueError, EOFError) as exc:
            raise _fail(what, f"the compressed data is incomplete or corrupt ({exc})", "copy the file again") from None
    elif enc not in ("raw",):
        return              # ascii / hex: ITK parses the text and reports short data
    _check_size(what, len(body) - max(skip, 0), need)


def _check_meta(path: str, raw: bytes, what: str) -> None:
    text = raw[:4096].decode("latin-1", "replace")
    fields = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip()
            if k.strip() == "ElementDataFile":
                break
    if fields.get("CompressedData", "False").lower() == "true":
        return              # ITK checks the zlib stream itself
    try:
        sizes = [int(s) for s in fields["DimSize"].split()]
        esize = _META_TYPES[fields["ElementType"]] * int(fields.get("ElementNumberOfChannels", "1"))
        data_file = fields["ElementDataFile"]
    except (KeyError, ValueError):
        raise _fail(what, "the MetaImage header lacks DimSize, ElementType or ElementDataFile",
                    "the header is damaged") from None
    need = int(np.prod(sizes, dtype=np.int64)) * esize
    if data_file == "LOCAL":
        marker = raw.find(b"ElementDataFile")
        start = raw.find(b"\n", marker) + 1
        _check_size(what, len(raw) - start, need)
    elif data_file.upper() != "LIST":
        dpath = os.path.join(os.path.dirname(path), data_file)
        if not os.path.isfile(dpath):
            raise _fail(what, f"its data file '{data_file}' is missing", "copy the .raw beside the .mhd")
        _check_size(what, os.path.getsize(dpath), need)


_MAGIC = ((b"\x89PNG", "a PNG picture"), (b"\xff\xd8\xff", "a JPEG picture"), (b"%PDF", "a PDF document"),
          (b"PK\x03\x04", "a ZIP archive"), (b"NRRD", "an NRRD image"), (b"GIF8", "a GIF picture"),
          (b"<", "a text or HTML file"), (b"{", "a JSON text"))


def _looks_like(raw: bytes) -> str:
    if len(raw) > 132 and raw[128:132] == b"DICM":
        return "a DICOM file"
    for magic, words in _MAGIC:
        if raw.startswith(magic):
            return words
    return "no image format this tool knows"


def dicom_read_problem(path: str, exc: Exception) -> str:
    """Why pydicom could not read ``path``, in words (never its advice to force the reading)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if size == 0:
        return "an empty file (0 bytes)"
    if type(exc).__name__ == "InvalidDicomError":
        return f"not a DICOM file (it starts like {_looks_like(head)})"
    text = str(exc).split(" Use force=True")[0].strip()
    return f"not a readable DICOM file ({text})"


def check_file(path: str | os.PathLike, what: str = "image") -> None:
    """Integrity of an image file before ITK decodes it (see the module docstring). Unknown formats pass: ITK
    then reads or refuses them."""
    path = os.fspath(path)
    label = f"{what} '{path}'"
    low = path.lower()
    if not (low.endswith((".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".gz"))):
        return
    with open(path, "rb") as f:
        raw = f.read()
    if low.endswith(".gz"):
        if raw[:2] != b"\x1f\x8b":
            raise _fail(label, f"not gzip-compressed data although its name ends in .gz (it starts like "
                        f"{_looks_like(raw)})", "give the image file itself, or name it for what it is")
        raw = _gunzip_all(raw, label)
        low = low[:-3]
    if low.endswith(".nii"):
        _check_nifti(raw, label)
    elif low.endswith((".nrrd", ".nhdr")):
        _check_nrrd(path, raw, label)
    elif low.endswith((".mha", ".mhd")):
        _check_meta(path, raw, label)


def check_dicom_pixels(ds, path: str, what: str = "DICOM file") -> None:
    """Pixel data as long as rows x columns x frames x samples x bits (uncompressed transfer syntaxes)."""
    if "PixelData" not in ds:
        raise _fail(f"{what} '{path}'", "no pixel data", "export the object with its pixel data")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and getattr(ts, "is_compressed", False):
        return
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if rows <= 0 or cols <= 0 or bits <= 0:
        raise _fail(f"{what} '{path}'", f"Rows {rows}, Columns {cols}, BitsAllocated {bits}",
                    "the header is damaged: export the object again")
    need = rows * cols * frames * samples * bits // 8
    _check_size(f"{what} '{path}'", len(ds.PixelData), need)


def check_image(img: sitk.Image, what: str, *, mask: bool = False) -> sitk.Image:
    """Sanity of an image as read (see the module docstring). Returns it unchanged."""
    if img.GetDimension() != 3:
        extra = " (a time series or multi-volume: export the one volume you mean)" if img.GetDimension() == 4 \
            else " (a single slice: give the whole volume)" if img.GetDimension() == 2 else ""
        raise _fail(what, f"expected a 3D image, got {img.GetDimension()}D{extra}", "give a 3D volume")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise _fail(what, f"expected one value per voxel, got {img.GetNumberOfComponentsPerPixel()} components "
                    "(colour or vector image)", "give a scalar (greyscale) volume")
    size = img.GetSize()
    if min(size) < 2:
        raise _fail(what, f"{size[0]} x {size[1]} x {size[2]} voxels: a single slice, not a volume",
                    "give the whole 3D series")
    n = int(np.prod(size, dtype=np.int64))
    if n > MAX_VOXELS:
        raise _fail(what, f"{size[0]} x {size[1]} x {size[2]} = {n:,} voxels, above the {MAX_VOXELS:,} this tool "
                    "accepts", "crop the volume to the head or resample it to a coarser grid")
    sp = np.array(img.GetSpacing(), float)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise _fail(what, f"voxel spacing {sp.tolist()} mm", "every spacing must be a positive number of mm; "
                    "fix the header (e.g. in 3D Slicer's Volumes module)")
    if not np.all(np.isfinite(img.GetOrigin())):
        raise _fail(what, f"origin {list(img.GetOrigin())}", "fix the header: the origin must be finite")
    d = np.array(img.GetDirection(), float).reshape(3, 3)
    if not np.all(np.isfinite(d)) or np.abs(d.T @ d - np.eye(3)).max() > 1e-3:
        raise _fail(what, f"the direction matrix {np.round(d, 4).tolist()} is not orthonormal (skewed or scaled "
                    "axes)", "resample the image onto an orthogonal grid before using it")
    view = sitk.GetArrayViewFromImage(img)
    if view.dtype.kind == "f":
        finite = np.isfinite(view)
        if not finite.all():
            bad = int(view.size - np.count_nonzero(finite))
            kinds = ("NaN" if np.isnan(view).any() else "") + (" Inf" if np.isinf(view).any() else "")
            if mask:
                raise _fail(what, f"{bad:,} voxels are {kinds.strip()} (not 0 or a label)",
                            "a mask holds 0 outside and a label inside: re-export the segmentation")
            raise _fail(what, f"{bad:,} of {view.size:,} voxels are {kinds.strip()}",
                        "the image is damaged or the output of a failed computation: use the scanner's image")
    if not mask:
        lo, hi = float(view.min()), float(view.max())
        if not hi > lo:
            raise _fail(what, f"every voxel has the value {lo:g}", "this is no image: check the file")
    return img


def check_grey_levels(img: sitk.Image, what: str) -> None:
    """An MR image has many grey levels; two or three are a mask or a label map in an image's place (a T1 and its
    lesion mask swapped in a manifest read as a 1.5 litre lesion)."""
    view = sitk.GetArrayViewFromImage(img)
    sample = view.ravel()[:: max(1, view.size // 2_000_000)]
    levels = np.unique(sample)
    if len(levels) <= 3:
        raise _fail(what, f"only {len(levels)} different values ({', '.join(f'{v:g}' for v in levels)}): a mask or "
                    "label map, not an MR image", "check that the image and its mask are not swapped")


#: A dose volume's maximum, relative to the prescription, outside which the volume is not that plan's dose in Gy:
#: SRS prescribes to the 50-90 % isodose line, so the maximum is 1.1-2 × the prescription; below 0.5 × the
#: prescription never reached the target, above 3 × it is another unit (cGy is 100 ×) or another image.
DOSE_MAX_RANGE = (0.5, 3.0)


def check_dose_values(img: sitk.Image, prescription_gy, what: str, *, from_rt_import: bool = False) -> None:
    """A dose volume and its prescription belong together (see :data:`DOSE_MAX_RANGE`).

    ``from_rt_import``: the volume came through a DICOM-RT import (SlicerRT's mark, or our RTDOSE reader with its
    DoseGridScaling and units): its unit is known, only the prescription is checked against it."""
    if prescription_gy is None or not np.isfinite(prescription_gy) or prescription_gy <= 0:
        raise _fail(what, f"no prescription (got {prescription_gy})",
                    "enter the prescribed dose in Gy (the isodose lines and dose evidence are relative to it)")
    view = sitk.GetArrayViewFromImage(img)
    lo, hi = float(view.min()), float(view.max())
    if hi <= 0:
        raise _fail(what, f"no voxel above 0 Gy (maximum {hi:g})", "choose the plan's dose volume")
    if lo < -0.01 * hi:
        raise _fail(what, f"negative values down to {lo:g}: not a dose", "choose the plan's dose volume "
                    "(RTDOSE), not an image")
    ratio = hi / float(prescription_gy)
    if DOSE_MAX_RANGE[0] <= ratio <= DOSE_MAX_RANGE[1]:
        return
    origin = "" if from_rt_import else " and is not marked as RT dose (DICOM-RT import)"
    unit = " (in cGy? divide by 100)" if 50 <= ratio <= 300 else ""
    raise _fail(what, f"its maximum {hi:g}{unit} is {ratio:.2g} × the {prescription_gy:g} Gy prescription{origin}; "
                f"a plan's maximum lies between {DOSE_MAX_RANGE[0]:g} and {DOSE_MAX_RANGE[1]:g} × its prescription",
                "check the prescription, or load the RTDOSE through DICOM so its scaling and unit are applied")
