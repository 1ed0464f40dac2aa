"""What every importer shares: safe case ids, NIfTI writing, reference scores, the cohort folder and its sheet."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from s2cac.atomic import atomic_dir, atomic_write_text
from s2cac.data.cases import validate_case_id
from s2cac.io.images import Geometry, write_image

#: Label values of the per-artery label maps (the synthetic cohort's too) and their column suffixes.
ARTERIES = {1: "lm", 2: "lad", 3: "lcx", 4: "rca"}


class DatasetImportError(ValueError):
    """An input of an importer is unusable; the message names the file and the problem."""


def sanitize_case_id(name: str, where: str = "") -> str:
    """A safe case id from a file or folder name: characters other than letters, digits, ``_``, ``.``, ``-``
    become ``_``; leading dots/underscores/dashes are dropped. Raises when nothing usable remains."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name).strip())
    text = re.sub(r"\.{2,}", "_", text).lstrip("._-")
    if not text:
        raise DatasetImportError(f"{where}cannot make a case id from {name!r}")
    return validate_case_id(text[:128], where)


def unique_ids(names: dict[str, str], what: str) -> None:
    """Refuse two sources mapped to the same case id (``names``: source -> id)."""
    seen: dict[str, str] = {}
    for src, cid in names.items():
        if cid in seen:
            raise DatasetImportError(f"{what}: {seen[cid]!r} and {src!r} both give case id {cid!r}; rename one")
        seen[cid] = src


def reference_scores(hu: np.ndarray, label: np.ndarray, spacing_zyx: tuple[float, float, float]) -> dict:
    """Reference Agatston of a label map: ``agatston`` (total), ``agatston_<artery>`` per label of
    :data:`ARTERIES`, ``risk_category`` and ``negative`` (no labelled voxel)."""
    from s2cac.scoring import risk_category, score_mask

    result = score_mask(hu, label, spacing_zyx)
    row = {"agatston": round(result.total.agatston, 3)}
    for value, name in ARTERIES.items():
        s = result.per_label.get(value)
        row[f"agatston_{name}"] = round(s.agatston, 3) if s is not None else 0.0
    row["risk_category"] = risk_category(row["agatston"])
    row["negative"] = "no" if np.any(label) else "yes"
    return row


class CohortWriter:
    """Collects the cases of one import; made by :func:`cohort_writer`."""

    def __init__(self, out_dir: Path, images: Path, labels: Path) -> None:
        self.out_dir, self._images, self._labels = out_dir, images, labels
        self.rows: list[dict] = []

    def add(self, case_id: str, hu: np.ndarray, label: np.ndarray | None, geometry: Geometry, extra: dict) -> dict:
        """Write one case; ``label`` None makes a score-only case (empty ``label`` column)."""
        write_image(hu, geometry, self._images / f"{case_id}.nii.gz")
        row = {"case_id": case_id, "image": f"images/{case_id}.nii.gz", "label": ""}
        if label is not None:
            write_image(label.astype(np.uint8, copy=False), geometry, self._labels / f"{case_id}.nii.gz")
            row["label"] = f"labels/{case_id}.nii.gz"
        row.update(extra)
        self.rows.append(row)
        return row


@contextmanager
def cohort_writer(out_dir: str | Path) -> Iterator[CohortWriter]:
    """Write ``out_dir/images/`` and ``labels/`` (each appearing at once, on success), then ``cases.tsv``
    (paths relative to ``out_dir``, sorted by case id).

    On an exception nothing new is left behind and an earlier import stays as it was.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir / "images") as images, atomic_dir(out_dir / "labels") as labels:
        writer = CohortWriter(out_dir, images, labels)
        yield writer
        if not writer.rows:
            raise DatasetImportError(f"{out_dir}: no case was imported")
    sheet = pd.DataFrame(writer.rows).sort_values("case_id", kind="stable")
    atomic_write_text(out_dir / "cases.tsv", sheet.to_csv(sep="\t", index=False, lineterminator="\n"))


def write_summary(out_dir: Path, summary: dict, lines: list[str]) -> None:
    """``import_summary.json`` and a readable ``import_log.txt`` (problems first, then the summary)."""
    atomic_write_text(out_dir / "import_summary.json", json.dumps(summary, indent=2) + "\n")
    text = "\n".join(lines + ["", "summary:"] + [f"  {k}: {v}" for k, v in summary.items()]) + "\n"
    atomic_write_text(out_dir / "import_log.txt", text)
    print("[import] " + ", ".join(f"{k} {v}" for k, v in summary.items() if not isinstance(v, dict)), file=sys.stderr)
