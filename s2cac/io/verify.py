"""Checks that an image file was read whole before any voxel of it is trusted.

ITK's NIfTI reader fills the part of a truncated file (a cut download or copy) with zeros and reports no
error, and it may turn non-finite float voxels into numbers: a scan cut at 60 % would be scored as if its
lower slices held no calcium. :func:`verify_image_file` therefore reads NIfTI files (``.nii``, ``.nii.gz``,
``.hdr``/``.img``, ``.img.gz``; NIfTI-1 and NIfTI-2) itself first:

- a gzip file must hold a complete compressed stream (end-of-stream marker, CRC-32 and length trailer);
- the voxel data must be as long as the header says (dimensions x bytes per voxel after ``vox_offset``);
- float data must hold no NaN or infinite voxel (refused with their count).

Other formats (MHA/MHD, NRRD, DICOM) are checked by their readers, which raise on short data.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

# NIfTI datatype code -> numpy dtype of one voxel (component) as stored; complex/RGB types included for size.
_NIFTI_DTYPES = {
    2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 32: np.complex64, 64: np.float64, 128: np.uint8,
    256: np.int8, 512: np.uint16, 768: np.uint32, 1024: np.int64, 1280: np.uint64, 1536: np.float64,
    1792: np.complex128, 2304: np.uint8,
}  # fmt: skip
_FLOAT_CODES = {16, 64, 32, 1792}  # float32, float64, complex64, complex128 (float128 is refused by ITK anyway)
_CHUNK = 1 << 22


class TruncatedImageError(ValueError):
    """The image file is incomplete or damaged; the message names the file and what is missing.

    Attributes:
        path: the file.
        reason: what is wrong, without the file name.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def is_nifti(path: str | Path) -> bool:
    """True for the NIfTI file endings this module verifies."""
    name = Path(path).name.lower()
    return name.endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz"))


def verify_image_file(path: str | Path) -> None:
    """Refuse an incomplete or damaged NIfTI file (see the module docstring); other formats pass unchanged.

    Raises:
        TruncatedImageError: compressed stream incomplete or corrupt, fewer data bytes than the header needs,
            NaN or infinite float voxels, or an unreadable NIfTI header.
    """
    path = Path(path)
    if not is_nifti(path) or not path.is_file():
        return
    name = path.name.lower()
    if name.endswith((".hdr", ".hdr.gz", ".img", ".img.gz")):
        header_file, data_file = _pair(path)
        header = _read_head(header_file, 540)
        info = _parse_header(header, header_file)
        _check_data(data_file, info, offset=0)
    else:
        header = _read_head(path, 540)
        info = _parse_header(header, path)
        _check_data(path, info, offset=info["vox_offset"])


def _pair(path: Path) -> tuple[Path, Path]:
    """(header file, data file) of an Analyze-style NIfTI pair, either of which was given."""
    low = path.name.lower()
    suffix = next(s for s in (".hdr.gz", ".img.gz", ".hdr", ".img") if low.endswith(s))
    stem = path.name[: -len(suffix)]
    candidates = {
        "hdr": [path.with_name(stem + s) for s in (".hdr", ".hdr.gz", ".HDR")],
        "img": [path.with_name(stem + s) for s in (".img", ".img.gz", ".IMG")],
    }
    found = {k: next((p for p in v if p.is_file()), None) for k, v in candidates.items()}
    if found["hdr"] is None or found["img"] is None:
        missing = "header (.hdr)" if found["hdr"] is None else "data (.img)"
        raise TruncatedImageError(path, f"the {missing} file of this NIfTI pair is missing")
    return found["hdr"], found["img"]


def _is_gzip(path: Path) -> bool:
    """By content, not name: ITK also reads a ``.nii.gz`` file that is not compressed."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _read_head(path: Path, n: int) -> bytes:
    try:
        with _open(path) as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise TruncatedImageError(path, f"damaged compressed header ({err})") from err


def _parse_header(head: bytes, path: Path) -> dict:
    """Dimensions, voxel type and data offset of a NIfTI-1 or NIfTI-2 header."""
    if len(head) < 348:
        raise TruncatedImageError(path, f"file ends inside the NIfTI header ({len(head)} bytes): truncated")
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size in (348, 540):
            break
    else:
        raise TruncatedImageError(path, "not a NIfTI header (sizeof_hdr is neither 348 nor 540)")
    if size == 348:
        dims = struct.unpack(endian + "8h", head[40:56])
        datatype, bitpix = struct.unpack(endian + "2h", head[70:74])
        vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
    else:
        if len(head) < 540:
            raise TruncatedImageError(path, "file ends inside the NIfTI-2 header: truncated")
        datatype, bitpix = struct.unpack(endian + "2h", head[12:16])
        dims = struct.unpack(endian + "8q", head[16:80])
        vox_offset = struct.unpack(endian + "q", head[168:176])[0]
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1 : ndim + 1]):
        raise TruncatedImageError(path, f"NIfTI header has invalid dimensions {dims[: ndim + 1]}")
    n_voxels = int(np.prod([int(d) for d in dims[1 : ndim + 1]], dtype=object))
    if bitpix <= 0 or bitpix % 8:
        raise TruncatedImageError(path, f"NIfTI header has an invalid bitpix {bitpix}")
    return {
        "n_bytes": n_voxels * bitpix // 8,
        "vox_offset": max(int(vox_offset), 0),
        "dtype": np.dtype(_NIFTI_DTYPES.get(datatype, np.uint8)).newbyteorder(endian),
        "float": datatype in _FLOAT_CODES,
        "shape": tuple(int(d) for d in dims[1 : ndim + 1]),
    }


def _check_data(path: Path, info: dict, offset: int) -> None:
    """Stream the data once: the compressed stream must be complete and hold ``offset + n_bytes`` bytes."""
    need = offset + info["n_bytes"]
    nonfinite = 0
    counter = _NonFiniteCounter(info["dtype"], offset, info["n_bytes"]) if info["float"] else None
    if _is_gzip(path):
        got = _stream_gzip(path, counter)
    else:
        got = path.stat().st_size
        if counter is not None and got >= need:
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    counter.feed(chunk)
    if got < need:
        raise TruncatedImageError(
            path,
            f"truncated: holds {got - offset} of the {info['n_bytes']} bytes of voxel data its header "
            f"announces (dimensions {info['shape']}, {100 * max(got - offset, 0) / info['n_bytes']:.0f} %); a cut "
            "download or copy? Copy the file again",
        )
    if counter is not None:
        nonfinite = counter.count
    if nonfinite:
        raise TruncatedImageError(path, f"{nonfinite} NaN or infinite voxel(s) in float data; fix them before use")


def _stream_gzip(path: Path, counter: _NonFiniteCounter | None) -> int:
    """Decompress every gzip member of ``path``; return the decompressed size (CRC and length verified)."""
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                total += len(chunk)
                if counter is not None:
                    counter.feed(chunk)
    except EOFError as err:
        raise TruncatedImageError(
            path,
            "truncated: the compressed stream ends before its end-of-stream marker; a cut download or "
            "copy? Copy the file again",
        ) from err
    except (OSError, zlib.error) as err:
        raise TruncatedImageError(path, f"damaged compressed data ({err}); copy the file again") from err
    return total


class _NonFiniteCounter:
    """Counts NaN/inf voxels in a byte stream whose voxel data start at ``offset`` and last ``n_bytes``."""

    def __init__(self, dtype: np.dtype, offset: int, n_bytes: int) -> None:
        self.dtype, self.skip, self.left, self.rest, self.count = dtype, offset, n_bytes, b"", 0

    def feed(self, chunk: bytes) -> None:
        if self.skip:
            cut = min(self.skip, len(chunk))
            chunk, self.skip = chunk[cut:], self.skip - cut
        chunk = chunk[: self.left]
        self.left -= len(chunk)
        data = self.rest + chunk
        usable = len(data) - len(data) % self.dtype.itemsize
        self.rest = data[usable:]
        if usable:
            values = np.frombuffer(data[:usable], dtype=self.dtype)
            self.count += int(values.size - np.count_nonzero(np.isfinite(values)))
