"""The config's ``dataset`` section -> download/verification and import (what the workflow's rules call).

Option defaults live here and in the importers' signatures (one source); the schema only checks types.
"""

from __future__ import annotations

from pathlib import Path

from s2cac.datasets.download import DownloadSpec, fetch

SOURCES = ("coca", "folder")


def data_root(dataset: dict) -> Path:
    """Where downloads go and placed data is looked for: ``dataset.root`` or ``resources/<name>``."""
    return Path(dataset.get("root") or Path("resources") / dataset["name"])


def _coca_options(dataset: dict) -> dict:
    opts = dict(dataset.get("coca") or {})
    unknown = set(opts) - {"part", "skip_bad_cases", "pixel_centre", "area_tolerance", "limit"}
    if unknown:
        raise ValueError(f"dataset.coca: unknown key(s) {sorted(unknown)}")
    return opts


def _folder_paths(dataset: dict) -> tuple[Path, Path]:
    opts = dataset.get("folder") or {}
    if not opts.get("images") or not opts.get("labels"):
        raise ValueError("dataset.folder: `images` and `labels` (the two folders) are required with source: folder")
    root = data_root(dataset)

    def where(p: str) -> Path:  # relative paths: under the data root when they exist there
        path = Path(p)
        return root / path if not path.is_absolute() and (root / path).exists() else path

    return where(opts["images"]), where(opts["labels"])


def fetch_dataset(dataset: dict, *, progress: bool = True) -> dict:
    """Download every ``dataset.download`` entry into the data root, then verify what the importer needs.

    Returns:
        The manifest: ``root``, ``downloads`` (file, bytes, sha256, unpacked folder per entry) and ``layout``
        (what was found: COCA counts, or the folder cohort's two folders with their entry counts).

    Raises:
        DownloadError: a failed download or a bad archive.
        CocaError / DatasetImportError: the data is not where the importer expects it (with instructions).
    """
    from s2cac.datasets.common import DatasetImportError

    source = dataset["source"]
    if source not in SOURCES:
        raise ValueError(f"dataset.source {source!r} has no download step; expected one of {SOURCES}")
    root = data_root(dataset)
    records = [
        fetch(DownloadSpec.from_dict(e, f"dataset.download[{i}]"), root, progress=progress)
        for i, e in enumerate(dataset.get("download") or [])
    ]
    if source == "coca":
        from s2cac.datasets.coca import verify_layout

        layout = verify_layout(root, _coca_options(dataset).get("part", "gated"))
    else:
        from s2cac.datasets.folder import list_entries

        images, labels = _folder_paths(dataset)
        opts = dataset.get("folder") or {}
        n_img = len(list_entries(images, opts.get("image_suffix", ""), "image"))
        n_lab = len(list_entries(labels, opts.get("label_suffix", ""), "label map"))
        if not n_img:
            raise DatasetImportError(f"{images}: no images found")
        layout = {"images": str(images), "labels": str(labels), "n_images": n_img, "n_labels": n_lab}
    return {"source": source, "root": str(root), "downloads": records, "layout": layout}


def import_dataset(dataset: dict, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Run the importer of ``dataset.source`` into ``out_dir`` (cases.tsv, images/, labels/, import log).

    Returns:
        The importer's summary.
    """
    source = dataset["source"]
    if source == "coca":
        from s2cac.datasets.coca import import_gated, import_nongated

        opts = _coca_options(dataset)
        part = opts.pop("part", "gated")
        common = {"skip_bad_cases": opts.get("skip_bad_cases", False), "limit": opts.get("limit")}
        if part == "nongated":
            return import_nongated(data_root(dataset), out_dir, progress=progress, **common)
        extra = {}
        if "pixel_centre" in opts:
            extra["centre_offset"] = float(opts["pixel_centre"])
        if "area_tolerance" in opts:
            extra["area_rtol"] = float(opts["area_tolerance"])
        return import_gated(data_root(dataset), out_dir, progress=progress, **common, **extra)
    if source == "folder":
        from s2cac.datasets.folder import import_folder

        images, labels = _folder_paths(dataset)
        opts = {k: v for k, v in (dataset.get("folder") or {}).items() if k not in ("images", "labels")}
        return import_folder(images, labels, out_dir, progress=progress, **opts)
    raise ValueError(f"dataset.source {source!r} is not imported by s2cac.datasets; expected one of {SOURCES}")
