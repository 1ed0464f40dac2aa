"""Reading CT images and label maps as (z, y, x) arrays with their geometry, and writing them back.

Light on purpose (SimpleITK + numpy only): ``s2cac score`` and inference use it, and neither may pay for torch.

- :func:`read_image`: anything SimpleITK reads (NIfTI, MHA/MHD, NRRD, ...) or a folder holding one DICOM series.
  DICOM slices are ordered by their position along the slice normal; rescale slope/intercept are applied.
  Localizer (scout) and non-CT series beside the scan in the same folder are passed over
  (:func:`pick_dicom_series`).
- :func:`read_ct`: :func:`read_image` plus checks that the intensities are integer HU (returned as int16/int32).
- :func:`read_label_map`: :func:`read_image` plus checks for non-negative integer labels and, optionally, the
  geometry of a reference image.
- :func:`write_image`: a (z, y, x) array with a :class:`Geometry`, compressed, atomically (the one image writer).

Scans that are not axial (a direction that is not a signed axis permutation keeping z as the slice axis,
e.g. oblique or sagittal stacks, or a tilted gantry) and DICOM series with uneven slice spacing are refused
with a message: per-slice Agatston scoring would be silently wrong on them. Resample to an axial, evenly
spaced grid first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from s2cac.atomic import atomic_path

#: File endings of the image formats s2cac finds in folders (besides DICOM series folders).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
# Directions within this tolerance of a signed identity are axial (cosines are unitless).
DIRECTION_TOL = 1e-3
# DICOM slice gaps may differ from their median by max(SLICE_GAP_ABS_TOL mm, SLICE_GAP_REL_TOL x median).
SLICE_GAP_ABS_TOL = 0.02
SLICE_GAP_REL_TOL = 0.01


@dataclass(frozen=True)
class Geometry:
    """Where a (z, y, x) array lies in patient space.

    Attributes:
        spacing_zyx: voxel spacing (z, y, x), mm.
        origin: physical position of voxel (0, 0, 0), ITK (x, y, z) order, mm.
        direction: ITK direction cosines, 9 values row-major (columns are the x, y, z index axes).
        size: array shape (z, y, x), voxels.
    """

    spacing_zyx: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    size: tuple[int, int, int]

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Geometry:
        """Geometry of a 3D SimpleITK image."""
        sx, sy, sz = image.GetSpacing()
        nx, ny, nz = image.GetSize()
        return cls((sz, sy, sx), tuple(image.GetOrigin()), tuple(image.GetDirection()), (nz, ny, nx))

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this geometry on ``image`` (in place) and return it."""
        dz, dy, dx = self.spacing_zyx
        image.SetSpacing((dx, dy, dz))
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def compare(self, other: Geometry, tol: float = 1e-3) -> list[str]:
        """What differs between two geometries; empty when they match.

        Args:
            other: the geometry to compare with.
            tol: tolerance for spacing and origin (mm) and direction cosines.

        Returns:
            One human-readable line per differing property (size, spacing, origin, direction).
        """
        diffs = []
        if tuple(self.size) != tuple(other.size):
            diffs.append(f"size (z, y, x) {tuple(self.size)} vs {tuple(other.size)}")
        for name, a, b in (
            ("spacing (z, y, x) mm", self.spacing_zyx, other.spacing_zyx),
            ("origin (x, y, z) mm", self.origin, other.origin),
            ("direction", self.direction, other.direction),
        ):
            if len(a) != len(b) or not np.allclose(a, b, rtol=0, atol=tol):
                diffs.append(f"{name} {_fmt(a)} vs {_fmt(b)}")
        return diffs

    @property
    def is_axial(self) -> bool:
        """True when the index axes are the patient axes up to sign (slices are axial)."""
        d = np.abs(np.asarray(self.direction, dtype=float).reshape(3, 3))
        return bool(np.allclose(d, np.eye(3), atol=DIRECTION_TOL))


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


class _ImageView(np.ndarray):
    """A read-only numpy view of a SimpleITK image's buffer that keeps the image alive."""

    _sitk_image: sitk.Image | None = None


def _array_of(image: sitk.Image, copy: bool) -> np.ndarray:
    if copy:
        return sitk.GetArrayFromImage(image)
    view = sitk.GetArrayViewFromImage(image).view(_ImageView)
    view._sitk_image = image  # the view does not own the buffer: keep the image referenced
    return view


def read_image(path: str | Path, *, copy: bool = True) -> tuple[np.ndarray, Geometry]:
    """Read a 3D image file or a folder holding one DICOM series.

    Args:
        path: an image file SimpleITK reads, or a folder of DICOM files of one series.
        copy: False returns a read-only view of SimpleITK's buffer (saves a copy of the volume).

    Returns:
        The (z, y, x) array (file's pixel type; DICOM rescale applied) and its :class:`Geometry`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable, truncated or corrupt file (see :mod:`s2cac.io.verify`), NaN/infinite voxels, not
            3D, no or several DICOM series, not axial, uneven spacing.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    image = _read_dicom_folder(path) if path.is_dir() else _read_file(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{path}: expected a 3D single-channel image, got {image.GetDimension()}D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s)"
        )
    geometry = Geometry.from_sitk(image)
    if not geometry.is_axial:
        raise ValueError(
            f"{path}: slices are not axial (direction {_fmt(geometry.direction)}); oblique, tilted or "
            "non-axial stacks are refused because per-slice Agatston scoring would be wrong: resample to an "
            "axial grid first"
        )
    return _array_of(image, copy), geometry


def _read_file(path: Path) -> sitk.Image:
    from s2cac.io.verify import TruncatedImageError, verify_image_file

    try:
        verify_image_file(path)  # ITK reads a truncated NIfTI file without error, filling the rest with zeros
    except TruncatedImageError as err:
        raise ValueError(f"{path}: cannot read image: {err.reason}") from err
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot read image: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    # ITK messages start with a file:line banner; the reason is usually the last line.
    return lines[-1] if lines else type(err).__name__


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series of a folder, described from its first file's header."""

    uid: str
    files: tuple[str, ...]
    description: str
    image_type: str
    modality: str

    @property
    def is_volume_candidate(self) -> bool:
        """False for what a scanner stores beside the CT volume: localizers (scouts, ImageType LOCALIZER) and
        non-CT objects (secondary captures of dose reports and the like); True when the header does not say."""
        return "LOCALIZER" not in self.image_type.upper() and self.modality.upper() in ("", "CT")

    def summary(self) -> str:
        what = ", ".join(x for x in (repr(self.description) if self.description else "", self.modality,
                                      self.image_type.replace("\\", "/")) if x)  # fmt: skip
        return f"{self.uid} ({len(self.files)} file(s){', ' + what if what else ''})"


def dicom_series(folder: str | Path) -> list[DicomSeries]:
    """The DICOM series GDCM finds in ``folder`` (not recursive), each with its files and header facts."""
    folder = Path(folder)
    found = []
    for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)):
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        tags: dict[str, str] = {}
        if files:
            try:
                reader = sitk.ImageFileReader()
                reader.SetFileName(files[0])
                reader.ReadImageInformation()
                tags = {k: reader.GetMetaData(k).strip() for k in ("0008|103e", "0008|0008", "0008|0060")
                        if reader.HasMetaDataKey(k)}  # fmt: skip
            except RuntimeError:
                tags = {}
        found.append(
            DicomSeries(uid, files, tags.get("0008|103e", ""), tags.get("0008|0008", ""), tags.get("0008|0060", ""))
        )
    return found


def pick_dicom_series(folder: str | Path) -> tuple[DicomSeries, list[DicomSeries]]:
    """The CT volume series of ``folder`` and every series found there.

    A folder exported from a PACS often holds, beside the scan, its localizer (scout) images and a dose report;
    those are passed over (:attr:`DicomSeries.is_volume_candidate`). Exactly one series must remain.

    Raises:
        ValueError: no DICOM series, or several candidate series (each listed with its description).
    """
    folder = Path(folder)
    series = dicom_series(folder)
    if not series:
        raise ValueError(f"{folder}: no readable DICOM series in this folder")
    candidates = [s for s in series if s.is_volume_candidate] if len(series) > 1 else series
    if len(candidates) != 1:
        listed = "; ".join(s.summary() for s in series)
        why = "none is a CT volume" if not candidates else f"{len(candidates)} could be the scan"
        raise ValueError(
            f"{folder}: holds {len(series)} DICOM series and {why} (localizers and non-CT series are passed over): "
            f"{listed}; give a folder with one series"
        )
    return candidates[0], series


def _read_dicom_folder(folder: Path) -> sitk.Image:
    chosen, series = pick_dicom_series(folder)
    files = list(chosen.files)
    # GDCM silently skips files it cannot parse (e.g. a truncated slice): refuse instead of losing a slice. Files
    # of the series passed over (localizers, dose reports) are accounted for.
    known = {str(Path(f)) for s in series for f in s.files}
    skipped = sorted({str(f) for f in _dicom_like_files(folder)} - known)
    if skipped:
        names = ", ".join(Path(f).name for f in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        raise ValueError(f"{folder}: {len(skipped)} DICOM file(s) unreadable or not part of the series: {names}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ValueError(f"{folder}: cannot read DICOM series: {_first_line(err)}") from err
    if len(files) > 1:
        _check_slice_positions(folder, reader, len(files), image)
    return image


def _dicom_like_files(folder: Path) -> list[Path]:
    """Files of ``folder`` that claim to be DICOM (``.dcm``/``.ima`` name or the DICM magic at byte 128)."""
    found = []
    for f in folder.iterdir():
        if not f.is_file() or f.name.startswith(".") or f.name.upper() == "DICOMDIR":
            continue
        if f.suffix.lower() in (".dcm", ".ima"):
            found.append(f)
            continue
        with open(f, "rb") as fh:
            head = fh.read(132)
        if head[128:132] == b"DICM":
            found.append(f)
    return found


def _check_slice_positions(folder: Path, reader: sitk.ImageSeriesReader, n: int, image: sitk.Image) -> None:
    """Refuse tilted (positions off the slice normal) or unevenly spaced DICOM series; set exact z spacing."""
    try:
        pos = np.array([[float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")] for i in range(n)])
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{folder}: a DICOM slice lacks a valid Image Position (Patient) (0020,0032)") from err
    steps = np.diff(pos, axis=0)
    normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    along = steps @ normal
    off_axis = np.linalg.norm(steps - along[:, None] * normal[None, :], axis=1)
    gap = float(np.median(along))
    if gap <= 0 or np.any(along <= 0):
        raise ValueError(f"{folder}: DICOM slices with duplicate positions (gaps {_fmt(tuple(np.unique(along)))} mm)")
    tol = max(SLICE_GAP_ABS_TOL, SLICE_GAP_REL_TOL * gap)
    if np.any(off_axis > tol):
        raise ValueError(
            f"{folder}: slice positions are not along the slice normal (gantry tilt or sheared stack, up to "
            f"{off_axis.max():.3g} mm off); resample to an axial grid first"
        )
    if np.any(np.abs(along - gap) > tol):
        raise ValueError(
            f"{folder}: uneven slice spacing (gaps from {along.min():.4g} to {along.max():.4g} mm, median "
            f"{gap:.4g} mm; missing or overlapping slices?); resample to even spacing first"
        )
    sx, sy, _ = image.GetSpacing()
    image.SetSpacing((sx, sy, float(np.mean(along))))


def check_hu(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Return ``array`` as integer HU (int16, or int32 if needed) or raise a ValueError naming ``path``.

    Refused: non-finite or non-integer values, and intensities that are clearly not HU: no negative value at
    all (CT shows air near -1000 HU; e.g. 0..255 or unrescaled 0..4095 data) or a range within [-1, 1]
    (normalised data).
    """
    if array.size == 0:
        raise ValueError(f"{path}: empty image")
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            raise ValueError(f"{path}: image holds {finite.size - np.count_nonzero(finite)} NaN or infinite voxel(s)")
        rounded = np.rint(array)
        if np.any(np.abs(array - rounded) > 1e-3):
            raise ValueError(f"{path}: image holds non-integer intensities; expected integer HU (CT)")
        array = rounded
    elif not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{path}: pixel type {array.dtype} is not a CT intensity; expected integer HU")
    lo = float(array.min())
    # int16 needs no max: it only matters for data without negative values (refused below) or for int32.
    hi = float(array.max()) if lo >= -1 or array.dtype != np.int16 else float(np.iinfo(np.int16).max)
    if lo >= -1 and hi <= 1:
        raise ValueError(f"{path}: intensities range {lo:g}..{hi:g}, which looks normalised, not HU")
    if lo >= 0:
        raise ValueError(
            f"{path}: intensities range {lo:g}..{hi:g} with no negative value; this does not look like CT in HU "
            "(air is about -1000 HU): unrescaled or 8-bit data?"
        )
    dtype = np.int16 if lo >= np.iinfo(np.int16).min and hi <= np.iinfo(np.int16).max else np.int32
    return array.astype(dtype, copy=False)


def check_label_map(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Return ``array`` as a non-negative integer label map (uint8/uint16/uint32) or raise a ValueError."""
    if array.size == 0:
        raise ValueError(f"{path}: empty label map")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.rint(array)):
            raise ValueError(f"{path}: label map holds non-integer values; expected integer labels (0 = background)")
    elif not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"{path}: pixel type {array.dtype} is not a label map")
    if array.dtype in (np.uint8, np.uint16):
        return array  # already a valid label map type: skip two passes over the volume
    lo, hi = array.min(), array.max()
    if lo < 0:
        raise ValueError(f"{path}: label map holds negative labels (min {lo:g}); labels must be >= 0")
    dtype = np.uint8 if hi < 256 else np.uint16 if hi < 65536 else np.uint32
    return array.astype(dtype, copy=False)


def read_ct(path: str | Path, *, check_intensities: bool = True, copy: bool = True) -> tuple[np.ndarray, Geometry]:
    """Read a CT image as integer HU (z, y, x) and its geometry; see :func:`check_hu` for what is refused.

    ``copy=False`` may return a read-only view (see :func:`read_image`).
    """
    array, geometry = read_image(path, copy=copy)
    if check_intensities:
        array = check_hu(array, path)
    return array, geometry


def read_label_map(
    path: str | Path, reference: Geometry | None = None, tol: float = 1e-3, *, copy: bool = True
) -> tuple[np.ndarray, Geometry]:
    """Read a label map (z, y, x), optionally requiring the geometry of a reference image.

    Args:
        path: label map file (or DICOM folder).
        reference: geometry the label map must have (e.g. its CT image's).
        tol: tolerance of :meth:`Geometry.compare` (mm, cosines).
        copy: False may return a read-only view (see :func:`read_image`).

    Raises:
        ValueError: negative or non-integer labels, or a geometry that differs (the message says how).
    """
    array, geometry = read_image(path, copy=copy)
    array = check_label_map(array, path)
    if reference is not None:
        diffs = geometry.compare(reference, tol)
        if diffs:
            raise ValueError(f"{path}: geometry differs from its image: " + "; ".join(diffs) + " (mask vs image)")
    return array, geometry


def write_image(array: np.ndarray, geometry: Geometry, path: str | Path, *, notes: str | None = None) -> None:
    """Write a (z, y, x) array with ``geometry``, compressed, through a temporary file and a rename.

    Args:
        array: the voxels (z, y, x), written with their dtype (e.g. int16 HU, uint8 labels).
        geometry: spacing, origin and direction (its ``size`` is the array's).
        path: the file; its ending chooses the format (``.nii.gz``, ``.mha``, ...).
        notes: text stored as ``ITK_FileNotes`` (NIfTI ``descrip``), e.g. the synthetic cohort's mark.
    """
    path = Path(path)
    image = geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    if notes is not None:
        image.SetMetaData("ITK_FileNotes", notes)
    suffix = next((s for s in IMAGE_SUFFIXES if path.name.endswith(s)), path.suffix)
    with atomic_path(path, suffix=suffix) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
