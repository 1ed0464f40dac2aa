"""s2cac.io.verify: truncated, damaged and non-finite NIfTI files are refused before ITK reads them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from s2cac.io import read_ct, read_label_map
from s2cac.io.verify import TruncatedImageError, verify_image_file

SHAPE = (10, 24, 20)


def _hu(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, SHAPE).astype(np.int16)


def _write(arr: np.ndarray, path: Path, compress: bool | None = None) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path), path.name.endswith(".gz") if compress is None else compress)
    return path


def _cut(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii"])
@pytest.mark.parametrize("fraction", [0.6, 0.97])
def test_truncated_nifti_refused_where_itk_fills_zeros(tmp_path: Path, name: str, fraction: float) -> None:
    path = _write(_hu(), tmp_path / name)
    _cut(path, fraction)
    # the reason for this module: ITK itself reads the cut file without complaint
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path))).shape == SHAPE
    with pytest.raises(ValueError, match=rf"{name}: cannot read image: truncated"):
        read_ct(path)
    with pytest.raises(ValueError, match="truncated"):
        read_label_map(path)


def test_truncated_hdr_img_pair(tmp_path: Path) -> None:
    _write(_hu(), tmp_path / "ct.hdr")
    _cut(tmp_path / "ct.img", 0.5)
    for given in ("ct.hdr", "ct.img"):
        with pytest.raises(TruncatedImageError, match=r"ct\.img: truncated: holds 4800 of the 9600 bytes.*50 %"):
            verify_image_file(tmp_path / given)
    (tmp_path / "ct.img").unlink()
    with pytest.raises(TruncatedImageError, match=r"data \(\.img\) file of this NIfTI pair is missing"):
        verify_image_file(tmp_path / "ct.hdr")


def test_gzip_cut_after_the_data_and_damaged_stream(tmp_path: Path) -> None:
    path = _write(_hu(), tmp_path / "ct.nii.gz")
    data = path.read_bytes()
    path.write_bytes(data[:-4])  # every voxel present, the gzip trailer (CRC, length) cut off
    with pytest.raises(TruncatedImageError, match="compressed stream ends before its end-of-stream marker"):
        verify_image_file(path)
    raw = gzip.decompress(data)
    path.write_bytes(gzip.compress(raw[: len(raw) - 100]))  # a complete stream with too little data
    with pytest.raises(TruncatedImageError, match=r"holds 9500 of the 9600 bytes"):
        verify_image_file(path)
    damaged = bytearray(data)
    damaged[-6] ^= 0xFF  # CRC-32 of the trailer
    path.write_bytes(bytes(damaged))
    with pytest.raises(TruncatedImageError, match="damaged compressed data"):
        verify_image_file(path)


def test_uncompressed_file_named_nii_gz_and_multi_member_gzip_accepted(tmp_path: Path) -> None:
    hu = _hu(1)
    plain = _write(hu, tmp_path / "plain.nii.gz", compress=False)
    assert np.array_equal(read_ct(plain)[0], hu)
    raw = gzip.decompress(_write(hu, tmp_path / "a.nii.gz").read_bytes())
    multi = tmp_path / "multi.nii.gz"
    multi.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))  # e.g. written by bgzip
    assert np.array_equal(read_ct(multi)[0], hu)


@pytest.mark.parametrize("name", ["f.nii.gz", "f.nii"])
def test_non_finite_voxels_refused_with_their_count(tmp_path: Path, name: str) -> None:
    arr = _hu().astype(np.float32)
    arr[0, 0, :3] = np.nan
    arr[5, 5, 5] = np.inf
    arr[9, 1, 1] = -np.inf
    path = _write(arr, tmp_path / name)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()  # ITK hides them
    with pytest.raises(ValueError, match="5 NaN or infinite voxel"):
        read_ct(path)
    with pytest.raises(ValueError, match="5 NaN or infinite voxel"):
        read_label_map(path)


def test_nifti2_header_and_bad_headers(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    hu = _hu(2)
    path = tmp_path / "two.nii"
    nib.save(nib.Nifti2Image(hu.transpose(2, 1, 0), np.eye(4)), str(path))
    verify_image_file(path)
    _cut(path, 0.5)
    with pytest.raises(TruncatedImageError, match="truncated: holds"):
        verify_image_file(path)
    short = tmp_path / "short.nii"
    short.write_bytes(struct.pack("<i", 348) + b"\0" * 100)
    with pytest.raises(TruncatedImageError, match="file ends inside the NIfTI header"):
        verify_image_file(short)
    foreign = tmp_path / "foreign.nii"
    foreign.write_bytes(b"\0" * 400)
    with pytest.raises(TruncatedImageError, match="not a NIfTI header"):
        verify_image_file(foreign)


def test_other_formats_are_left_to_their_readers(tmp_path: Path) -> None:
    for name in ("ct.mha", "ct.nrrd"):
        path = _write(_hu(), tmp_path / name, compress=True)
        verify_image_file(path)  # not NIfTI: nothing to do here
        _cut(path, 0.6)
        with pytest.raises(ValueError, match=rf"{name}: cannot read image"):
            read_ct(path)  # ITK's MetaImage and NRRD readers raise on short data themselves
