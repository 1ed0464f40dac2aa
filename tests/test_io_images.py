"""Reading CT images, DICOM series and label maps: geometry, HU conversion and clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from s2cac.io import Geometry, read_ct, read_image, read_label_map


def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    spacing_zyx=(2.5, 0.7, 0.7),
    *,
    slope: float = 1.0,
    intercept: float = -1024.0,
    z_positions=None,
    x_shift_per_slice: float = 0.0,
    prefix: str = "IM",
    **extra,
) -> list[Path]:
    """Write ``hu`` (z, y, x) as a CT DICOM series, one file per slice, in shuffled file-name order; ``extra``
    sets further attributes on every slice (e.g. ``ImageType``, ``Modality``, ``SeriesDescription``, ``KVP``)."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    nz, ny, nx = hu.shape
    z_positions = [-50.0 + k * spacing_zyx[0] for k in range(nz)] if z_positions is None else z_positions
    names = [f"{prefix}{i:04d}.dcm" for i in range(nz)]
    random.Random(3).shuffle(names)  # file order does not follow slice order
    paths = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.Modality = "CT"
        ds.PatientID = "TEST"
        ds.InstanceNumber = nz - k  # reversed, so neither names nor numbers give the order
        ds.ImagePositionPatient = [f"{-20.0 + k * x_shift_per_slice:.3f}", "-30.0", f"{z_positions[k]:.3f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = [f"{spacing_zyx[1]:g}", f"{spacing_zyx[2]:g}"]
        ds.SliceThickness = f"{spacing_zyx[0]:g}"
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        stored = np.rint((hu[k].astype(np.float64) - intercept) / slope)
        assert stored.min() >= 0 and stored.max() < 65536
        ds.PixelData = stored.astype(np.uint16).tobytes()
        for key, value in extra.items():
            setattr(ds, key, value)
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _hu_volume(shape=(5, 12, 10), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 1500, size=shape).astype(np.int16)
    hu[:, 0, 0] = -1024
    return hu


def write_nifti(path: Path, array: np.ndarray, spacing_zyx=(3.0, 0.5, 0.5), origin=(1.0, 2.0, 3.0), direction=None):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(spacing_zyx)))
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize(("slope", "intercept"), [(1.0, -1024.0), (2.0, -2048.0)])
def test_dicom_series_ordered_and_rescaled(tmp_path: Path, slope: float, intercept: float) -> None:
    hu = _hu_volume()
    if slope == 2.0:
        hu = (hu // 2) * 2  # representable with slope 2
    write_dicom_series(tmp_path / "series", hu, slope=slope, intercept=intercept)
    array, geom = read_ct(tmp_path / "series")
    assert np.issubdtype(array.dtype, np.integer)
    np.testing.assert_array_equal(array, hu)
    assert geom.spacing_zyx == pytest.approx((2.5, 0.7, 0.7))
    assert geom.size == hu.shape
    assert geom.origin == pytest.approx((-20.0, -30.0, -50.0))


def test_dicom_uneven_spacing_refused(tmp_path: Path) -> None:
    hu = _hu_volume()
    write_dicom_series(tmp_path / "s", hu, z_positions=[0.0, 2.5, 5.0, 10.0, 12.5])  # a missing slice
    with pytest.raises(ValueError, match="uneven slice spacing"):
        read_ct(tmp_path / "s")


def test_dicom_gantry_tilt_refused(tmp_path: Path) -> None:
    write_dicom_series(tmp_path / "s", _hu_volume(), x_shift_per_slice=0.8)
    with pytest.raises(ValueError, match="not along the slice normal|not axial"):
        read_ct(tmp_path / "s")


def test_unreadable_dicom_folder(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(ValueError, match="no readable DICOM series"):
        read_image(tmp_path / "junk")


def test_truncated_dicom_slice(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path / "s", _hu_volume())
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=str(tmp_path / "s")):
        read_ct(tmp_path / "s")


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        read_image(tmp_path / "nope.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ValueError, match="bad.nii.gz: cannot read image"):
        read_image(bad)


def test_nifti_geometry_and_compare(tmp_path: Path) -> None:
    hu = _hu_volume()
    read_arr, geom = read_ct(write_nifti(tmp_path / "ct.nii.gz", hu))
    np.testing.assert_array_equal(read_arr, hu)
    assert geom.spacing_zyx == pytest.approx((3.0, 0.5, 0.5))
    assert geom.compare(geom) == []
    other = Geometry((2.0, 0.5, 0.5), (1.0, 2.0, 9.0), geom.direction, (4, 12, 10))
    diffs = geom.compare(other)
    assert len(diffs) == 3
    assert any(d.startswith("size") for d in diffs) and any(d.startswith("spacing") for d in diffs)
    assert any(d.startswith("origin") for d in diffs)


def test_flipped_axes_accepted_oblique_refused(tmp_path: Path) -> None:
    hu = _hu_volume()
    _, geom = read_ct(write_nifti(tmp_path / "lps.nii.gz", hu, direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)))
    assert geom.is_axial
    c, s = np.cos(0.3), np.sin(0.3)
    path = write_nifti(tmp_path / "obl.nii.gz", hu, direction=(1, 0, 0, 0, c, -s, 0, s, c))
    with pytest.raises(ValueError, match="not axial"):
        read_ct(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.random.default_rng(0).random((3, 6, 6)).astype(np.float32), "non-integer"),
        (np.random.default_rng(0).integers(0, 2, (3, 6, 6)).astype(np.float32), "normalised"),
        (np.random.default_rng(0).integers(0, 256, (3, 6, 6)).astype(np.uint8), "no negative value"),
    ],
)
def test_non_hu_images_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = write_nifti(tmp_path / "x.nii.gz", array)
    with pytest.raises(ValueError, match=message):
        read_ct(path)


def test_float_image_with_integer_values_accepted(tmp_path: Path) -> None:
    hu = _hu_volume()
    array, _ = read_ct(write_nifti(tmp_path / "f.nii.gz", hu.astype(np.float32)))
    assert array.dtype == np.int16
    np.testing.assert_array_equal(array, hu)


def test_label_maps(tmp_path: Path) -> None:
    hu = _hu_volume()
    _, geom = read_ct(write_nifti(tmp_path / "ct.nii.gz", hu))
    labels = np.zeros(hu.shape, np.int16)
    labels[1, 2:4, 2:4] = 3
    arr, _ = read_label_map(write_nifti(tmp_path / "ok.nii.gz", labels), geom)
    assert arr.dtype == np.uint8 and arr.max() == 3
    with pytest.raises(ValueError, match="negative labels"):
        read_label_map(write_nifti(tmp_path / "neg.nii.gz", labels - 1))
    with pytest.raises(ValueError, match="non-integer"):
        read_label_map(write_nifti(tmp_path / "frac.nii.gz", labels.astype(np.float32) * 0.5))
    shifted = write_nifti(tmp_path / "shift.nii.gz", labels, spacing_zyx=(2.5, 0.5, 0.5), origin=(1.0, 2.0, 5.0))
    with pytest.raises(ValueError, match=r"geometry differs.*spacing.*origin"):
        read_label_map(shifted, geom)


def test_pydicom_can_read_what_the_helper_writes(tmp_path: Path) -> None:
    paths = write_dicom_series(tmp_path / "s", _hu_volume((2, 4, 4)))
    ds = pydicom.dcmread(paths[0])
    assert ds.Modality == "CT" and float(ds.RescaleIntercept) == -1024.0


LOCALIZER = {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"], "SeriesDescription": "Topogram 0.6 T20s"}


def test_localizer_and_dose_report_beside_the_scan_are_passed_over(tmp_path: Path) -> None:
    """A PACS export: the scan, its scout (ImageType LOCALIZER) and a non-CT secondary capture in one folder."""
    from s2cac.inference.scan_qc import read_scan_info
    from s2cac.io.images import pick_dicom_series

    hu = _hu_volume((5, 12, 10))
    folder = tmp_path / "exam"
    write_dicom_series(folder, hu, prefix="CA", SeriesDescription="CaScore 3.0", KVP="120")
    write_dicom_series(folder, _hu_volume((2, 16, 16), seed=1), prefix="LO", KVP="100", **LOCALIZER)
    write_dicom_series(folder, _hu_volume((1, 8, 8), seed=2), prefix="DO", Modality="OT", SeriesDescription="Dose")
    chosen, found = pick_dicom_series(folder)
    assert len(found) == 3 and chosen.description == "CaScore 3.0" and len(chosen.files) == 5
    array, geom = read_ct(folder)
    np.testing.assert_array_equal(array, hu)
    assert geom.size == (5, 12, 10)
    assert read_scan_info(folder, geom.spacing_zyx, geom.size).kvp == 120.0  # the scan's header, not the scout's


def test_two_candidate_series_are_refused_with_their_descriptions(tmp_path: Path) -> None:
    folder = tmp_path / "exam"
    write_dicom_series(folder, _hu_volume(), prefix="A", SeriesDescription="CaScore 3.0 Qr36")
    write_dicom_series(folder, _hu_volume(seed=1), prefix="B", SeriesDescription="CaScore 1.5 Qr36")
    write_dicom_series(folder, _hu_volume((2, 16, 16), seed=1), prefix="LO", **LOCALIZER)
    with pytest.raises(ValueError, match=r"holds 3 DICOM series and 2 could be the scan") as err:
        read_ct(folder)
    assert "'CaScore 3.0 Qr36'" in str(err.value) and "'CaScore 1.5 Qr36'" in str(err.value)
    assert "LOCALIZER" in str(err.value) and str(folder) in str(err.value)


def test_only_localizers_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "scouts"
    write_dicom_series(folder, _hu_volume((1, 16, 16)), prefix="LA", **LOCALIZER)
    write_dicom_series(folder, _hu_volume((1, 16, 16), seed=1), prefix="LB", **LOCALIZER)
    with pytest.raises(ValueError, match="none is a CT volume"):
        read_ct(folder)


def test_truncated_slice_is_found_beside_a_localizer(tmp_path: Path) -> None:
    folder = tmp_path / "exam"
    paths = write_dicom_series(folder, _hu_volume(), prefix="CA")
    write_dicom_series(folder, _hu_volume((2, 16, 16), seed=1), prefix="LO", **LOCALIZER)
    paths[2].write_bytes(paths[2].read_bytes()[:400])
    with pytest.raises(ValueError, match=r"unreadable or not part of the series: " + paths[2].name):
        read_ct(folder)
