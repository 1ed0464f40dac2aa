"""Scoring from image files and writing the score table (CSV or JSON); no pandas, so the CLI stays light."""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from s2cac.io.images import read_ct, read_label_map
from s2cac.scoring.agatston import ScoreResult, score_mask

BASE_COLUMNS = ("label", "agatston", "volume_mm3", "n_lesions", "risk_category")


def score_files(image: str | Path, mask: str | Path, *, geometry_tol: float = 1e-3, **options: Any) -> ScoreResult:
    """Read a CT image (file or DICOM folder) and its label map, check them, and score the mask.

    Args:
        image: CT in HU (anything SimpleITK reads, or a DICOM series folder).
        mask: label map in the image's geometry (0 = background).
        geometry_tol: tolerance (mm, direction cosines) for the mask/image geometry check.
        **options: keyword options of :func:`s2cac.scoring.score_mask` (threshold_hu, connectivity, ...).
    """
    hu, geometry = read_ct(image, copy=False)
    labels, _ = read_label_map(mask, reference=geometry, tol=geometry_tol, copy=False)
    return score_mask(hu, labels, geometry.spacing_zyx, **options)


def score_rows(result: ScoreResult, with_mass: bool) -> list[dict[str, Any]]:
    """One dict per label and one for ``total``, columns as :data:`BASE_COLUMNS` (+ ``mass_mg``)."""
    rows = []
    for item in result.rows():
        row = asdict(item)
        if not with_mass:
            row.pop("mass_mg")
        rows.append(row)
    return rows


def write_scores(result: ScoreResult, out: str | Path | None, *, as_json: bool = False, meta: dict | None = None):
    """Write the score table as CSV (or JSON with ``meta``) to ``out`` (atomically), or to stdout when None."""
    with_mass = result.total.mass_mg is not None
    rows = score_rows(result, with_mass)
    columns = ["label", "agatston", "volume_mm3", *(["mass_mg"] if with_mass else []), "n_lesions", "risk_category"]
    if out is None:
        _write_table(sys.stdout, rows, columns, as_json, meta)
        return
    from s2cac.atomic import atomic_path

    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        _write_table(stream, rows, columns, as_json, meta)


def _write_table(stream: IO[str], rows: list[dict], columns: list[str], as_json: bool, meta: dict | None) -> None:
    if as_json:
        import json  # only when asked for

        json.dump({**(meta or {}), "scores": [{c: r[c] for c in columns} for r in rows]}, stream, indent=2)
        stream.write("\n")
    else:
        writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: _fmt(r[c]) for c in columns})


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
