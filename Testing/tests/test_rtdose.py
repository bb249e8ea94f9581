"""DICOM RTDOSE reading: scaling, frame offsets, endianness, single frame, units, and the errors."""
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import refdata
from pydicom.data import get_testdata_file
from RNAssessmentLib.io import geometry as geo
from RNAssessmentLib.io.rtdose import embedded_dvhs, read_rtdose, write_rtdose


def test_dicompyler_rtdose_applies_grid_scaling_and_geometry():
    img, info = read_rtdose(refdata("dicompyler-example", "rtdose.dcm"))
    assert img.GetSize() == (194, 129, 98)
    assert np.allclose(img.GetSpacing(), (2.5, 2.5, 3.0))
    assert np.allclose(img.GetOrigin(), (-228.6541915, -419.2444776, -122.4407))
    # README: max 14.68 Gy after DoseGridScaling 1.4e-5 (raw values would be ~1e6).
    assert info.max_gy == pytest.approx(14.68, abs=0.01)
    assert info.dose_units == "GY"
    ds = pydicom.dcmread(refdata("dicompyler-example", "rtdose.dcm"))
    raw = ds.pixel_array[40, 60, 100] * float(ds.DoseGridScaling)
    assert img.GetPixel(100, 60, 40) == pytest.approx(raw, rel=1e-6)


def test_relative_dose_needs_a_prescription():
    path = get_testdata_file("rtdose.dcm")
    with pytest.raises(ValueError, match="RELATIVE.*prescription"):
        read_rtdose(path)
    img, info = read_rtdose(path, prescription_gy=20.0)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(float) * float(ds.DoseGridScaling) * 20.0
    assert np.allclose(sitk.GetArrayFromImage(img), expected, rtol=1e-6)
    assert info.warnings and "prescription 20" in info.warnings[0]


def test_big_endian_and_rle_give_the_same_dose_as_little_endian():
    ref, _ = read_rtdose(get_testdata_file("rtdose.dcm"), 1.0)
    for name in ("rtdose_expb.dcm", "rtdose_rle.dcm"):
        img, _ = read_rtdose(get_testdata_file(name), 1.0)
        assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref)), name
        assert geo.same_grid(img, ref)


def test_single_frame_files_use_only_the_first_offset():
    one, _ = read_rtdose(get_testdata_file("rtdose_1frame.dcm"), 1.0)
    ref, _ = read_rtdose(get_testdata_file("rtdose.dcm"), 1.0)
    assert one.GetSize() == (10, 10, 1)
    assert np.allclose(one.GetOrigin(), ref.GetOrigin())
    assert np.array_equal(sitk.GetArrayFromImage(one)[0], sitk.GetArrayFromImage(ref)[0])
    be, _ = read_rtdose(get_testdata_file("rtdose_expb_1frame.dcm"), 1.0)
    assert np.array_equal(sitk.GetArrayFromImage(be), sitk.GetArrayFromImage(one))


def _rewrite(tmp_path, src, change):
    ds = pydicom.dcmread(src)
    change(ds)
    out = tmp_path / "changed.dcm"
    ds.save_as(out)
    return str(out)


def test_absolute_and_decreasing_frame_offsets(tmp_path):
    src = get_testdata_file("rtdose.dcm")
    ref, _ = read_rtdose(src, 1.0)
    z0 = float(pydicom.dcmread(src).ImagePositionPatient[2])

    def absolute(ds):
        ds.GridFrameOffsetVector = [z0 + 5.0 * k for k in range(15)]
    img, _ = read_rtdose(_rewrite(tmp_path, src, absolute), 1.0)
    assert geo.same_grid(img, ref)

    def decreasing(ds):
        ds.GridFrameOffsetVector = [-5.0 * k for k in range(15)]
    img, _ = read_rtdose(_rewrite(tmp_path, src, decreasing), 1.0)
    # Frame k now lies 5k mm *below* the first: same spacing, third axis flipped, same first voxel.
    assert np.allclose(img.GetSpacing(), ref.GetSpacing())
    assert np.allclose(img.TransformIndexToPhysicalPoint((0, 0, 3)),
                       np.array(ref.GetOrigin()) - [0, 0, 15.0])


@pytest.mark.parametrize("change, message", [
    (lambda ds: delattr(ds, "DoseGridScaling"), "no DoseGridScaling"),
    (lambda ds: setattr(ds, "Modality", "CT"), "expected RTDOSE"),
    (lambda ds: setattr(ds, "DoseUnits", "CGY"), "unsupported DoseUnits"),
    (lambda ds: setattr(ds, "GridFrameOffsetVector", [0, 5, 10, 20] + [25 + 5 * k for k in range(11)]),
     "non-uniform frame spacing"),
])
def test_bad_rtdose_files_fail_with_a_clear_message(tmp_path, change, message):
    path = _rewrite(tmp_path, get_testdata_file("rtdose.dcm"), change)
    with pytest.raises(ValueError, match=message) as exc:
        read_rtdose(path, 1.0)
    assert path in str(exc.value)


def test_non_dicom_file_is_named_in_the_error(tmp_path):
    p = tmp_path / "notdicom.dcm"
    p.write_text("hello")
    with pytest.raises(ValueError, match="notdicom.dcm.*not a DICOM file"):
        read_rtdose(p)


def test_written_rtdose_reads_back_with_the_same_dose_and_geometry(tmp_path):
    img = sitk.Image([12, 9, 7], sitk.sitkFloat32)
    img.SetSpacing((2.0, 2.5, 3.0))
    img.SetOrigin((-10.0, 4.0, 33.0))
    arr = np.random.default_rng(1).uniform(0, 25, size=(7, 9, 12)).astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.5, 3.0))
    img.SetOrigin((-10.0, 4.0, 33.0))
    write_rtdose(img, tmp_path / "d.dcm", patient_name="TEST^ONE")
    back, info = read_rtdose(tmp_path / "d.dcm")
    assert geo.same_grid(back, img)
    # uint32 quantisation over 25 Gy: step 25 / 4.29e9 Gy.
    assert np.allclose(sitk.GetArrayFromImage(back), arr, atol=1e-6)
    assert info.patient["PatientName"] == "TEST^ONE"


def test_embedded_tps_dvh_of_the_tumor_bed():
    dvhs = embedded_dvhs(refdata("dicompyler-example", "rtdose.dcm"))
    tb = dvhs[9]                          # ROI 9 = Tumor Bed
    assert tb["volume_total_cc"] == pytest.approx(12.809, abs=1e-3)
    mean = np.trapezoid(tb["volume_cc"], tb["dose_gy"]) / tb["volume_total_cc"]
    assert mean == pytest.approx(14.286, abs=0.005)   # dataset README: TPS mean 14.286 Gy
