"""The bad-input corpus: small damaged or wrong inputs, each with the error it must produce.

    python Testing/data/bad/make_corpus.py OUT_FOLDER      # writes the corpus and OUT_FOLDER/corpus.json

Generated (never committed): a valid small case (48 x 48 x 32 post-contrast T1, lesion, dose) and, for each entry,
a copy with one thing wrong. ``corpus.json`` lists ``{"name", "argv", "expect"}``: the ``rnassess`` arguments and a
regular expression the one-line error must match; every entry must end with exit code 2 and no traceback.
Real DICOM RT files are mutated from Testing/Data (the dicompyler example plan).
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import SimpleITK as sitk

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "Data"))


def _image(arr, spacing=(1.5, 1.5, 2.0)):
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(arr).transpose(2, 1, 0)))
    img.SetSpacing(spacing)
    img.SetOrigin((-36.0, -36.0, -32.0))
    return img


def _base_arrays():
    rng = np.random.default_rng(7)
    i, j, k = np.meshgrid(np.arange(48), np.arange(48), np.arange(32), indexing="ij")
    head = ((i - 24) / 20.0) ** 2 + ((j - 24) / 21.0) ** 2 + ((k - 16) / 14.0) ** 2 <= 1.0
    t1 = np.where(head, 500.0, 0.0) + rng.normal(0, 10, head.shape) * head
    lesion = ((i - 30) ** 2 + (j - 24) ** 2 + ((k - 16) * 4 / 3) ** 2) <= 16
    t1[lesion] = 900.0
    dose = 20.0 * np.exp(-(((i - 30) * 1.5) ** 2 + ((j - 24) * 1.5) ** 2 + ((k - 16) * 2.0) ** 2) / (2 * 8.0 ** 2))
    return t1.astype(np.float32), lesion.astype(np.uint8), dose.astype(np.float32)


def _manifest(**over):
    spec = {"id": "bad", "timepoints": [{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                        {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii.gz"}],
            "registered": True, "dose": {"path": "dose.nrrd", "prescription_gy": 20, "fractions": 1}}
    spec.update(over)
    return spec


def _write_case(folder, spec=None, **images):
    os.makedirs(folder, exist_ok=True)
    t1, lesion, dose = _base_arrays()
    files = {"t0.nii.gz": _image(t1), "t1.nii.gz": _image(t1), "lesion.nrrd": _image(lesion),
             "dose.nrrd": _image(dose)}
    files.update(images)
    for name, img in files.items():
        if img is not None:
            sitk.WriteImage(img, os.path.join(folder, name), name.endswith((".gz", "gzip.nrrd")))
    text = spec if isinstance(spec, bytes) else spec.encode() if isinstance(spec, str) else \
        json.dumps(spec or _manifest(), ensure_ascii=False).encode("utf-8")
    with open(os.path.join(folder, "case.json"), "wb") as f:
        f.write(text)
    return os.path.join(folder, "case.json")


def _truncate(path, keep=0.6):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


def _flip(path, at=0.5):
    data = bytearray(open(path, "rb").read())
    pos = int(len(data) * at)
    data[pos] ^= 0xFF
    data[pos + 1] ^= 0x5A
    open(path, "wb").write(bytes(data))


def _nrrd_text(path, sizes, directions, data: bytes, dtype="float"):
    head = (f"NRRD0004\ntype: {dtype}\ndimension: 3\nspace: left-posterior-superior\nsizes: {' '.join(map(str, sizes))}\n"
            f"space directions: {' '.join('(' + ','.join(map(str, d)) + ')' for d in directions)}\n"
            "kinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n")
    open(path, "wb").write(head.encode() + data)


def make_corpus(out: str) -> list[dict]:
    out = os.path.abspath(out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    entries: list[dict] = []
    t1, lesion, dose = _base_arrays()

    def case(name, expect, spec=None, mutate=None, argv_extra=(), **images):
        folder = os.path.join(out, name)
        m = _write_case(folder, spec, **images)
        if mutate:
            mutate(folder)
        entries.append({"name": name, "argv": ["assess", m, "--out", os.path.join(folder, "out"), "--no-pdf",
                                               *argv_extra], "expect": expect})

    # -- damaged files ------------------------------------------------------------------------------------------
    case("truncated_nii_gz", r"t0\.nii\.gz.*(incomplete|truncated)",
         mutate=lambda f: _truncate(os.path.join(f, "t0.nii.gz")))
    case("bitflip_nii_gz", r"t0\.nii\.gz.*(incomplete|corrupt)", mutate=lambda f: _flip(os.path.join(f, "t0.nii.gz")))
    case("truncated_nii", r"t0\.nii'.*(holds|truncated)",
         spec=_manifest(timepoints=[{"label": "t0", "t1c": "t0.nii", "lesion": "lesion.nrrd"}]),
         mutate=lambda f: (sitk.WriteImage(_image(t1), os.path.join(f, "t0.nii")), _truncate(os.path.join(f, "t0.nii"))))
    case("truncated_nrrd_raw", r"lesion\.nrrd.*(holds|truncated)", mutate=lambda f: (
        sitk.WriteImage(_image(lesion), os.path.join(f, "lesion.nrrd"), False), _truncate(os.path.join(f, "lesion.nrrd"))))
    case("truncated_nrrd_gzip", r"lesion\.nrrd.*(incomplete|truncated)", mutate=lambda f: (
        sitk.WriteImage(_image(lesion), os.path.join(f, "lesion.nrrd"), True),
        _truncate(os.path.join(f, "lesion.nrrd"), 0.9)))
    case("bitflip_nrrd_gzip", r"dose\.nrrd.*(incomplete|corrupt|unreadable)", mutate=lambda f: (
        sitk.WriteImage(_image(dose), os.path.join(f, "dose.nrrd"), True), _flip(os.path.join(f, "dose.nrrd"), 0.7)))

    def seg(folder, damage):
        from RNAssessmentLib.io.structures import write_seg_nrrd
        p = os.path.join(folder, "boundaries.seg.nrrd")
        write_seg_nrrd(p, {"falx": _image((np.abs(np.arange(48) - 24) < 1)[:, None, None]
                                          * np.ones((48, 48, 32), np.uint8))})
        damage(p)
    case("truncated_seg_nrrd", r"boundaries\.seg\.nrrd.*(incomplete|truncated|holds)",
         spec=_manifest(boundaries="boundaries.seg.nrrd"), mutate=lambda f: seg(f, lambda p: _truncate(p, 0.8)))
    case("bitflip_seg_nrrd", r"boundaries\.seg\.nrrd.*(incomplete|corrupt|unreadable|header)",
         spec=_manifest(boundaries="boundaries.seg.nrrd"), mutate=lambda f: seg(f, lambda p: _flip(p, 0.9)))

    # -- wrong values and geometry ------------------------------------------------------------------------------
    nan = t1.copy()
    nan[10:20] = np.nan
    case("nan_t1c", r"t0\.nii\.gz.*NaN", **{"t0.nii.gz": _image(nan)})
    inf = t1.copy()
    inf[5, 5, 5] = np.inf
    case("inf_t1c", r"t1\.nii\.gz.*Inf", **{"t1.nii.gz": _image(inf)})
    case("nan_mask", r"lesion\.nrrd.*NaN.*mask", **{"lesion.nrrd": _image(np.where(lesion > 0, np.nan, 0).astype(np.float32))})
    case("image_2d", r"t0\.nii\.gz.*3D.*2D", **{"t0.nii.gz": sitk.GetImageFromArray(t1[:, :, 10].T.copy())})
    four = sitk.JoinSeries([_image(t1), _image(t1)])
    case("image_4d", r"t0\.nii\.gz.*4D", **{"t0.nii.gz": four})
    case("constant_image", r"t1\.nii\.gz.*every voxel has the value", **{"t1.nii.gz": _image(np.zeros_like(t1))})
    case("zero_spacing", r"t0\.nrrd.*zero voxel size",
         spec=_manifest(timepoints=[{"label": "t0", "t1c": "t0.nrrd", "lesion": "lesion.nrrd"}]),
         mutate=lambda f: _nrrd_text(os.path.join(f, "t0.nrrd"), (48, 48, 32),
                                     ((1.5, 0, 0), (0, 0, 0), (0, 0, 2)), t1.transpose(2, 1, 0).tobytes()))
    case("skewed_direction", r"t0\.nrrd.*(orthonormal|skew)",
         spec=_manifest(timepoints=[{"label": "t0", "t1c": "t0.nrrd", "lesion": "lesion.nrrd"}]),
         mutate=lambda f: _nrrd_text(os.path.join(f, "t0.nrrd"), (48, 48, 32),
                                     ((1.5, 0, 0), (0.9, 1.2, 0), (0, 0, 2)), t1.transpose(2, 1, 0).tobytes()))
    case("empty_mask", r"treated lesion|lesion.*empty", **{"lesion.nrrd": _image(np.zeros_like(lesion))})
    case("full_mask", r"lesion\.nrrd.*every voxel", **{"lesion.nrrd": _image(np.ones_like(lesion))})
    other = _image(lesion)
    other.SetOrigin((0.0, 0.0, 0.0))
    case("mask_other_grid", r"lesion\.nrrd.*different grid", **{"lesion.nrrd": other})
    case("dose_far_away", r"dose.*(does not overlap|overlap)", mutate=lambda f: sitk.WriteImage(
        (lambda d: (d.SetOrigin((900.0, 900.0, 900.0)), d)[1])(_image(dose)), os.path.join(f, "dose.nrrd")))

    # -- masks that pass a "> 0" reading and give a wrong answer (issue 35) --------------------------------------
    ringing = np.where(lesion > 0, 1.0, 0.0).astype(np.float32) + np.float32(0.02) * \
        np.sin(np.arange(lesion.size, dtype=np.float32)).reshape(lesion.shape)
    case("mask_negative_ringing", r"lesion\.nrrd.*negative values", **{"lesion.nrrd": _image(ringing)})
    labels = (lesion * 2).astype(np.uint8)
    labels[:4] = 1
    labels[-4:] = 3
    case("mask_several_labels", r"lesion\.nrrd.*label map of 3 labels.*\"label\"", **{"lesion.nrrd": _image(labels)})
    case("mask_is_an_image", r"lesion\.nrrd.*different values.*an image, not a mask", **{"lesion.nrrd": _image(t1)})
    case("t1c_is_a_mask", r"t0\.nii\.gz.*only 2 different values.*swapped",
         **{"t0.nii.gz": _image(lesion.astype(np.float32))})
    head_mask = np.zeros_like(lesion)
    head_mask[4:44, 4:44, 2:30] = 1
    case("mask_size_of_head", r"lesion\.nrrd.*size of a head", **{"lesion.nrrd": _image(head_mask)})
    case("mask_label_missing", r"lesion\.nrrd.*no voxel has the label 7",
         spec=_manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz",
                                     "lesion": {"path": "lesion.nrrd", "label": 7}},
                                    {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii.gz"}]))
    # -- timepoints -----------------------------------------------------------------------------------------------
    case("followup_before_srs", r"timepoint 't1' \(2023-09-02\) is dated before.*\"prior\": true",
         spec=_manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                    {"label": "t1", "date": "2023-09-02", "t1c": "t1.nii.gz"}]))
    case("followup_before_dose", r"timepoint 't1' \(2024-01-12\) is dated before the dose \(2024-01-20\)",
         spec=_manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                    {"label": "t1", "date": "2024-01-12", "t1c": "t1.nii.gz"}],
                        dose={"path": "dose.nrrd", "prescription_gy": 20, "fractions": 1, "date": "2024-01-20"}))
    case("two_on_one_date", r"'t1', 't2' share the date 2024-06-10",
         spec=_manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                    {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii.gz"},
                                    {"label": "t2", "date": "2024-06-10", "t1c": "t1.nii.gz"}]))
    case("empty_followup_mask_with_enhancement", r"timepoint 't1' is empty, but the automatic segmentation finds "
         r".*\"lesion\": null",
         spec=_manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                    {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii.gz", "lesion": "empty.nrrd"}]),
         **{"empty.nrrd": _image(np.zeros_like(lesion))})

    # -- DICOM series -------------------------------------------------------------------------------------------
    def dicom_series(folder, damage):
        from RNAssessmentLib.io.dicom_write import StudyInfo, write_mr_series
        files = write_mr_series(_image(t1), os.path.join(folder, "t1_dicom"), StudyInfo("BAD^CASE", "BAD1", "20240610"),
                                description="T1 post", series_number=1, frame_of_reference_uid="1.2.3.4",
                                contrast_agent="gadolinium")
        damage(sorted(files))
        names = sorted(os.path.join("t1_dicom", x) for x in os.listdir(os.path.join(folder, "t1_dicom")))
        spec = _manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                     {"label": "t1", "date": "2024-06-10",
                                      "t1c": {"dicom_series": "1.2.3", "files": names}}])
        with open(os.path.join(folder, "case.json"), "w", encoding="utf-8") as f:
            json.dump(spec, f)
    case("dicom_missing_slice", r"DICOM series.*slice positions are uneven.*--allow-uneven-slices",
         mutate=lambda f: dicom_series(f, lambda files: os.remove(files[len(files) // 2])))
    case("dicom_truncated_slice", r"DICOM series.*slice.*(bytes|truncated)",
         mutate=lambda f: dicom_series(f, lambda files: _truncate(files[3], 0.7)))

    # -- manifests ----------------------------------------------------------------------------------------------
    case("manifest_wrong_type", r"'timepoints' must be a list", spec=_manifest(timepoints="t0.nii.gz"))
    case("manifest_unknown_key", r"unknown key.*treated_lesions", spec=_manifest(treated_lesions="lesion.nrrd"))
    case("manifest_missing_t1c", r"timepoint 1.*missing 't1c'",
         spec=_manifest(timepoints=[{"label": "t0", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"}, {"label": "t1"}]))
    case("manifest_other_date_format", r"date '03/04/2024'.*ISO",
         spec=_manifest(timepoints=[{"label": "t0", "date": "03/04/2024", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"}]))
    case("manifest_prescription_string", r"'prescription_gy' must be",
         spec=_manifest(dose={"path": "dose.nrrd", "prescription_gy": "20 Gy"}))
    case("manifest_not_json", r"not valid JSON", spec="{ timepoints: [")
    case("manifest_not_utf8", r"not UTF-8", spec=b'{"id": "\xff\xfe"}')
    case("manifest_is_a_list", r"expected a JSON object", spec=[1, 2])
    case("path_is_a_folder", r"t0\.nii\.gz.*folder", mutate=lambda f: (os.remove(os.path.join(f, "t0.nii.gz")),
                                                                         os.makedirs(os.path.join(f, "t0.nii.gz"))))

    def loop(folder):
        p = os.path.join(folder, "t0.nii.gz")
        os.remove(p)
        os.symlink("t0.nii.gz", p)
    case("symlink_loop", r"t0\.nii\.gz.*symbolic link that loops", mutate=loop)
    case("png_named_nii_gz", r"t1\.nii\.gz.*not gzip-compressed.*PNG picture", mutate=lambda f: open(
        os.path.join(f, "t1.nii.gz"), "wb").write(b"\x89PNG\r\n\x1a\n" + bytes(200)))

    def zero_pixdim(folder):
        import struct
        sitk.WriteImage(_image(t1), os.path.join(folder, "t1.nii"))
        raw = bytearray(open(os.path.join(folder, "t1.nii"), "rb").read())
        raw[80:84] = struct.pack("<f", 0.0)
        open(os.path.join(folder, "t1.nii"), "wb").write(bytes(raw))
    case("nifti_zero_pixdim", r"t1\.nii'.*voxel sizes \[0\.0, .*silently be read as 1 mm",
         spec=_manifest(timepoints=[{"label": "t0", "date": "2024-01-10", "t1c": "t0.nii.gz", "lesion": "lesion.nrrd"},
                                    {"label": "t1", "date": "2024-06-10", "t1c": "t1.nii"}]), mutate=zero_pixdim)
    case("levels_not_numbers", r"--levels: 'abc' is not a dose", argv_extra=("--levels", "20,abc"))

    # -- outputs ------------------------------------------------------------------------------------------------
    def out_is_file(folder):
        open(os.path.join(folder, "out"), "w").write("not a folder")
    case("out_is_a_file", r"existing file, not a folder", mutate=out_is_file)

    def out_loop(folder):
        os.symlink("out", os.path.join(folder, "out"))
    case("out_is_a_symlink_loop", r"--out .*(loops|symbolic link)", mutate=out_loop)
    folder = os.path.join(out, "out_is_empty")
    m = _write_case(folder)
    entries.append({"name": "out_is_empty", "argv": ["assess", m, "--out", "", "--no-pdf"],
                    "expect": r"--out is empty"})
    folder = os.path.join(out, "folder_without_case")
    os.makedirs(os.path.join(folder, "notes"))
    open(os.path.join(folder, "notes", "readme.txt"), "w").write("no case here")
    entries.append({"name": "folder_without_case", "argv": ["assess", folder, "--out", os.path.join(out, "o_nc"),
                                                            "--no-pdf"],
                    "expect": r"no case\.json and no DICOM file"})
    folder = os.path.join(out, "out_is_the_case_folder")
    m = _write_case(folder)
    entries.append({"name": "out_is_the_case_folder", "argv": ["assess", m, "--out", folder, "--no-pdf"],
                    "expect": r"holds the input"})

    # -- DICOM RT (real files, damaged) -------------------------------------------------------------------------
    rt = os.path.join(DATA, "dicompyler-example")
    if os.path.isdir(rt):
        d = os.path.join(out, "rt")
        os.makedirs(d)
        for name, keep in (("rtdose_truncated.dcm", 0.7), ("rtstruct_truncated.dcm", 0.5)):
            src = os.path.join(rt, "rtdose.dcm" if "dose" in name else "rtss.dcm")
            shutil.copy(src, os.path.join(d, name))
            _truncate(os.path.join(d, name), keep)
        entries.append({"name": "rtdose_truncated", "argv": [
            "dvh", "--dose", os.path.join(d, "rtdose_truncated.dcm"), "--structures", os.path.join(rt, "rtss.dcm"),
            "--out", os.path.join(d, "o1", "dvh.csv")], "expect": r"rtdose_truncated\.dcm"})
        open(os.path.join(d, "rtstruct_empty.dcm"), "wb").close()
        entries.append({"name": "rtstruct_empty", "argv": [
            "dvh", "--dose", os.path.join(rt, "rtdose.dcm"), "--structures", os.path.join(d, "rtstruct_empty.dcm"),
            "--out", os.path.join(d, "o3", "dvh.csv")], "expect": r"rtstruct_empty\.dcm': an empty file \(0 bytes\)"})
        entries.append({"name": "rtstruct_truncated", "argv": [
            "dvh", "--dose", os.path.join(rt, "rtdose.dcm"), "--structures", os.path.join(d, "rtstruct_truncated.dcm"),
            "--out", os.path.join(d, "o2", "dvh.csv")], "expect": r"rtstruct_truncated\.dcm"})
    vtm = os.path.join(DATA, "slicerrt-eclipse-prostate")
    if os.path.isdir(vtm):
        d = os.path.join(out, "vtm")
        shutil.copytree(vtm, d)
        blocks = sorted(os.listdir(os.path.join(d, "EclipseProstate_Structures.seg")))
        _truncate(os.path.join(d, "EclipseProstate_Structures.seg", blocks[1]), 0.5)
        dose_file = next(f for f in os.listdir(d) if "Dose" in f and f.endswith((".nrrd", ".dcm", ".nii.gz")))
        entries.append({"name": "seg_vtm_truncated_block", "argv": [
            "dvh", "--dose", os.path.join(d, dose_file), "--structures",
            os.path.join(d, "EclipseProstate_Structures.seg.vtm"), "--prescription", "70",
            "--out", os.path.join(d, "o", "dvh.csv")], "expect": r"seg\.vtm.*block file"})
    with open(os.path.join(out, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=1)
    return entries


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "RNAssessment"))
    print(f"{len(make_corpus(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')))} entries")
