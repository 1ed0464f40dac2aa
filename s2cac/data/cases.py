"""Case sheets: the table that names every scan of a dataset, and its validation.

A case sheet is a tab-separated file with at least the columns ``case_id``, ``image`` and ``label`` (paths
relative to the sheet's folder, or absolute), plus ``risk_category`` and ``negative`` (``yes``/``no``) for
stratified splits. Other columns are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("case_id", "image", "label")
# Identifiers become file names (nnU-Net identifiers, output names): keep them to a safe alphabet.
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_YES = {"yes", "true", "1", "y"}
_NO = {"no", "false", "0", "n", ""}


class CaseSheetError(ValueError):
    """A case sheet or one of the files it names is unusable; the message names the file and the problem."""


def validate_case_id(case_id: str, where: str = "") -> str:
    """Return ``case_id`` if it is safe as a file name, else raise :class:`CaseSheetError`.

    Safe means: letters, digits, ``_``, ``.`` and ``-`` only, starting with a letter or digit, no ``..``; so an
    id can never escape its folder (``../x``, ``/abs``) nor carry shell metacharacters.
    """
    text = str(case_id)
    if not _CASE_ID.match(text) or ".." in text:
        raise CaseSheetError(
            f"{where}invalid case id {text!r}: use letters, digits, '_', '.' and '-' only "
            "(no path separators, no '..', at most 128 characters)"
        )
    return text


def parse_yes_no(value: object, where: str) -> bool:
    """Parse a yes/no cell (yes/no, true/false, 1/0)."""
    text = str(value).strip().lower()
    if text in ("nan", "none"):
        text = ""
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise CaseSheetError(f"{where}expected yes or no, got {value!r}")


def load_case_sheet(path: str | Path) -> pd.DataFrame:
    """Read and check a case sheet; image/label (and optional heart_region) paths are returned absolute.

    Args:
        path: the ``cases.tsv`` file.

    Returns:
        The table, one row per case, ``negative`` parsed to bool when present.

    Raises:
        CaseSheetError: missing file or columns, duplicate or unsafe case ids, bad yes/no values.
    """
    path = Path(path)
    if not path.is_file():
        raise CaseSheetError(f"{path}: case sheet not found")
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as err:
        raise CaseSheetError(f"{path}: empty file; a case sheet needs a header line (case_id, image, label)") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CaseSheetError(f"{path}: not a readable tab-separated table ({err})") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CaseSheetError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    if df.empty:
        raise CaseSheetError(f"{path}: no cases")
    for i, cid in enumerate(df["case_id"]):
        validate_case_id(cid, where=f"{path}, row {i + 2}: ")
    dup = df["case_id"][df["case_id"].duplicated()].unique()
    if len(dup):
        raise CaseSheetError(f"{path}: duplicate case id(s): {', '.join(map(str, dup))}")
    base = path.parent
    for col in ("image", "label", "heart_region"):  # heart_region: optional mask of the threshold-only method
        if col in df.columns:
            df[col] = [str((base / p).resolve()) if p else "" for p in df[col]]
    if "negative" in df.columns:
        df["negative"] = [
            parse_yes_no(v, f"{path}, case {cid}, column negative: ")
            for cid, v in zip(df["case_id"], df["negative"], strict=True)
        ]
    return df.reset_index(drop=True)


def check_sheet_files(sheet: pd.DataFrame) -> None:
    """Cheap check of a loaded sheet (no image is read): every case names an existing image and label file.

    Raises:
        CaseSheetError: naming the first case whose file is missing.
    """
    for _, row in sheet.iterrows():
        for what in ("image", "label"):
            if not row[what]:
                raise CaseSheetError(f"case {row['case_id']}: no {what} file given")
            if not Path(row[what]).exists():
                raise CaseSheetError(f"case {row['case_id']}: {what} file not found: {row[what]}")


@dataclass(frozen=True)
class CaseCheck:
    """What was verified for one case."""

    case_id: str
    shape_zyx: tuple[int, int, int]
    spacing_zyx: tuple[float, float, float]
    label_values: tuple[int, ...]


def _read(path: str, what: str, case_id: str):
    import SimpleITK as sitk

    if not path:
        raise CaseSheetError(f"case {case_id}: no {what} file given")
    if not Path(path).is_file():
        raise CaseSheetError(f"case {case_id}: {what} file not found: {path}")
    from s2cac.io.verify import TruncatedImageError, verify_image_file

    try:
        verify_image_file(path)
    except TruncatedImageError as err:
        raise CaseSheetError(f"case {case_id}: cannot read {what} {path}: {err.reason}") from err
    try:
        return sitk.ReadImage(path)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unknown reader error"
        raise CaseSheetError(f"case {case_id}: cannot read {what} {path}: {first}") from err


def check_case(row: pd.Series, *, allowed_labels: set[int] | None = None) -> CaseCheck:
    """Read one case's image and label and check that they belong together.

    Raises:
        CaseSheetError: unreadable file, non-3D image, geometry mismatch, labels that are not non-negative
            integers (or outside ``allowed_labels``).
    """
    import SimpleITK as sitk

    cid = row["case_id"]
    img = _read(row["image"], "image", cid)
    lab = _read(row["label"], "label", cid)
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise CaseSheetError(f"case {cid}: image {row['image']} is not a 3D single-channel volume")
    from s2cac.io.images import Geometry

    diff = Geometry.from_sitk(img).compare(Geometry.from_sitk(lab))
    if diff:
        raise CaseSheetError(
            f"case {cid}: label {row['label']} does not match image {row['image']}: " + "; ".join(diff)
        )
    arr = sitk.GetArrayViewFromImage(lab)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise CaseSheetError(f"case {cid}: label {row['label']} holds non-integer values")
    values = tuple(int(v) for v in np.unique(arr))
    if values and values[0] < 0:
        raise CaseSheetError(f"case {cid}: label {row['label']} holds negative values {values}")
    if allowed_labels is not None and not set(values) <= allowed_labels:
        raise CaseSheetError(
            f"case {cid}: label {row['label']} holds values {sorted(set(values) - allowed_labels)} "
            f"outside the allowed {sorted(allowed_labels)}"
        )
    sx, sy, sz = img.GetSpacing()
    nx, ny, nz = img.GetSize()
    return CaseCheck(cid, (nz, ny, nx), (sz, sy, sx), values)


def check_cases(sheet: pd.DataFrame, *, allowed_labels: set[int] | None = None) -> list[CaseCheck]:
    """Check every case of a loaded sheet (see :func:`check_case`); stops at the first bad case."""
    return [check_case(row, allowed_labels=allowed_labels) for _, row in sheet.iterrows()]
