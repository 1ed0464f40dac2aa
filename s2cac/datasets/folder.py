"""Import a cohort from two folders: CT images and calcium label maps, paired by case id.

An entry of the images folder is an image file (NIfTI, MHA/MHD, NRRD) or a folder holding one DICOM series;
its case id is its name without the file ending and without an optional ``image_suffix`` (e.g. nnU-Net's
``_0000``, orCaScore's ``CTI``). Label maps are named the same way (``label_suffix``). Ids are sanitised
(characters other than letters, digits, ``_``, ``.``, ``-`` become ``_``); two entries giving the same id, and
entries that resolve outside their folder (links out), are refused.

Labels may be remapped onto the per-artery convention (1 LM, 2 LAD, 3 LCX, 4 RCA) with ``label_map``; the
preset ``orcascore`` maps orCaScore's 1 (LAD including the left main), 2 (LCX), 3 (RCA) to 2, 3, 4. Every label
must lie on its image's grid; images are converted to int16/int32 HU NIfTI and labels to uint8 NIfTI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from s2cac.datasets.common import (
    DatasetImportError,
    cohort_writer,
    reference_scores,
    sanitize_case_id,
    unique_ids,
    write_summary,
)
from s2cac.io.images import IMAGE_SUFFIXES, read_ct, read_label_map

#: Named label mappings (source value -> our value; 0 stays 0).
LABEL_PRESETS = {"orcascore": {1: 2, 2: 3, 3: 4}}


def _strip(name: str) -> str | None:
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def list_entries(folder: str | Path, suffix: str = "", what: str = "image") -> dict[str, Path]:
    """Case id -> file or DICOM folder, for every entry of ``folder``.

    Hidden entries, ``.raw``/``.zraw`` data files of MetaImage headers and other files are ignored.

    Raises:
        DatasetImportError: missing folder, an entry that leaves the folder, or two entries with one id.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetImportError(f"{folder}: {what} folder not found")
    root = folder.resolve()
    found: dict[str, Path] = {}
    sources: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        stem = entry.name if entry.is_dir() else _strip(entry.name)
        if stem is None:
            continue
        if not entry.resolve().is_relative_to(root):
            raise DatasetImportError(f"{entry}: points outside {folder} (to {entry.resolve()}); refused")
        if suffix:
            if not stem.endswith(suffix):
                continue
            stem = stem[: -len(suffix)]
        cid = sanitize_case_id(stem, f"{entry}: ")
        sources[entry.name] = cid
        found.setdefault(cid, entry)
    unique_ids(sources, f"{folder} ({what}s)")
    return found


def resolve_label_map(label_map: dict | str | None) -> dict[int, int] | None:
    """``label_map`` from the config: None, a preset name, or {source value: our value}."""
    if label_map is None:
        return None
    if isinstance(label_map, str):
        if label_map not in LABEL_PRESETS:
            raise ValueError(f"label_map: unknown preset {label_map!r}; choose one of {sorted(LABEL_PRESETS)}")
        return dict(LABEL_PRESETS[label_map])
    out = {}
    for k, v in dict(label_map).items():
        try:
            src, dst = int(k), int(v)
        except (TypeError, ValueError):
            raise ValueError(f"label_map: {k!r}: {v!r} is not an integer pair") from None
        if src < 0 or not 0 <= dst <= 255:
            raise ValueError(f"label_map: {k!r}: {v!r} out of range (source >= 0, target 0..255)")
        out[src] = dst
    return out


def apply_label_map(label: np.ndarray, mapping: dict[int, int] | None, path: Path) -> np.ndarray:
    """Map label values; a non-zero value that the mapping does not name is an error naming the file."""
    if mapping is None:
        if label.max(initial=0) > 255:
            raise DatasetImportError(f"{path}: label values above 255; give a label_map")
        return label.astype(np.uint8, copy=False)
    lut_size = int(max(label.max(initial=0), max(mapping, default=0))) + 1
    lut = np.full(lut_size, -1, np.int64)
    lut[0] = 0
    for src, dst in mapping.items():
        lut[src] = dst
    out = lut[label]
    if out.min(initial=0) < 0:
        unknown = sorted(int(v) for v in np.unique(label[out < 0]))
        raise DatasetImportError(f"{path}: label value(s) {unknown} are not in label_map {mapping}")
    return out.astype(np.uint8)


def import_folder(
    images: str | Path,
    labels: str | Path,
    out_dir: str | Path,
    *,
    image_suffix: str = "",
    label_suffix: str = "",
    label_map: dict | str | None = None,
    missing_label: str = "error",
    geometry_tol: float = 1e-3,
    progress: bool = True,
) -> dict:
    """Pair, check and convert a folder cohort into ``out_dir`` (images/, labels/, cases.tsv, import log).

    Args:
        images, labels: the two folders.
        image_suffix, label_suffix: name endings (before the file ending) removed to get the case id.
        label_map: None, a preset name (``orcascore``) or {source value: our value}.
        missing_label: ``error`` (default) or ``skip`` for an image without a label map.
        geometry_tol: tolerance of the label-on-image check (mm, direction cosines).

    Returns:
        The summary: cases, negatives, skipped images.

    Raises:
        DatasetImportError: unpaired files, unsafe or duplicate ids, unreadable files, geometry mismatches, label
            values outside ``label_map``; nothing is written then.
    """
    if missing_label not in ("error", "skip"):
        raise ValueError(f"missing_label must be error or skip, got {missing_label!r}")
    mapping = resolve_label_map(label_map)
    imgs = list_entries(images, image_suffix, "image")
    labs = list_entries(labels, label_suffix, "label map")
    if not imgs:
        raise DatasetImportError(f"{images}: no images ({', '.join(IMAGE_SUFFIXES)} files or DICOM folders)")
    orphans = sorted(set(labs) - set(imgs))
    if orphans:
        raise DatasetImportError(f"{labels}: label map(s) without an image in {images}: {', '.join(orphans)}")
    unlabeled = sorted(set(imgs) - set(labs))
    if unlabeled and missing_label == "error":
        raise DatasetImportError(
            f"{images}: image(s) without a label map in {labels}: {', '.join(unlabeled[:10])}"
            + (" ..." if len(unlabeled) > 10 else "")
            + " (missing annotation files; set missing_label: skip to leave them out)"
        )
    n_neg = 0
    with cohort_writer(out_dir) as writer:
        todo = [c for c in sorted(imgs) if c in labs]
        for i, cid in enumerate(todo, 1):
            try:
                hu, geom = read_ct(imgs[cid])
                lab, _ = read_label_map(labs[cid], geom, geometry_tol)
            except (ValueError, FileNotFoundError) as err:
                raise DatasetImportError(f"case {cid}: {err}") from err
            lab = apply_label_map(lab, mapping, labs[cid])
            extra = reference_scores(hu, lab, geom.spacing_zyx)
            extra["source"] = str(imgs[cid])
            writer.add(cid, hu, lab, geom, extra)
            n_neg += extra["negative"] == "yes"
            if progress:
                print(f"[folder] {i}/{len(todo)} {cid}: agatston {extra['agatston']:.1f}", file=sys.stderr, flush=True)
        summary = {"cases": len(writer.rows), "negatives": n_neg, "images_without_label_skipped": len(unlabeled)}
    write_summary(Path(out_dir), summary, [f"image without a label map, skipped: {c}" for c in unlabeled])
    return summary
