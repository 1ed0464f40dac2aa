"""Predict calcium masks and scores for a set of scans: case discovery, per-case isolation, outputs.

For each case (``<case>`` = file name without extension, or the DICOM series' folder name)::

    OUT/<case>_cac.nii.gz   uint8 mask, input geometry: network calcium AND HU >= threshold
    OUT/qc/<case>.png       slices with the most calcium, mask outlined (unless qc=False)
    OUT/scores.csv          one row per case (rewritten after every case), see :data:`CSV_COLUMNS`

Scan QC flags (:mod:`s2cac.inference.scan_qc`) go to the ``qc_flags`` column, the log line and the QC picture;
they never change a score.

A case that fails (unreadable file, not CT, bad name, ...) gets ``status=failed`` and its error in the CSV;
the other cases still run.

Predicting into a folder that already holds results merges ``scores.csv``: the rows of earlier cases are kept,
a case predicted again gets this run's row (and its mask and QC picture are replaced). A ``scores.csv`` that
was not written by ``s2cac predict`` is never replaced: the run is refused before anything is written.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from s2cac.hu import HUWindow
from s2cac.inference.lesions import DECISIONS
from s2cac.io.images import IMAGE_SUFFIXES
from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU

#: Arteries scored separately when the model predicts artery labels (dataset.json label names, any case).
ARTERIES = ("LM", "LAD", "LCX", "RCA")
#: Per-artery columns (empty for a binary calcium model); ``n_vessels`` = arteries with Agatston > 0.
ARTERY_COLUMNS = (*(f"{m}_{a}" for a in ARTERIES for m in ("agatston", "volume_mm3", "n_lesions")), "n_vessels")
CSV_COLUMNS = (
    "case", "status", "agatston", "volume_mm3", "mass_mg", "n_lesions", "risk_category", *ARTERY_COLUMNS,
    "qc_flags", "mask_voxels", "runtime_s", "input", "error",
)  # fmt: skip


@dataclass(frozen=True)
class CaseInput:
    """One scan to predict: ``name`` (unvalidated, from the file or folder name) and its ``path``."""

    name: str
    path: Path


@dataclass
class PredictOptions:
    """Options of :func:`predict_path` (see ``s2cac predict --help``)."""

    patch_size: tuple[int, int, int] | None = None
    device: str = "auto"
    step: float = 0.5
    tta: bool = False
    threshold_hu: float = CALCIUM_THRESHOLD_HU
    calcium_probability: float = 0.5  # the network's decision threshold (make_predictor)
    decision: str = "lesion"  # per candidate lesion or per voxel (s2cac.inference.lesions)
    qc: bool = True
    mass_calibration: float | None = None
    window: HUWindow | None = None  # None = the window the model was trained with

    def __post_init__(self) -> None:
        import math

        if not math.isfinite(self.threshold_hu):
            raise ValueError(f"threshold_hu must be a finite number of HU, got {self.threshold_hu}")
        if self.mass_calibration is not None and not (
            math.isfinite(self.mass_calibration) and self.mass_calibration > 0
        ):
            raise ValueError(f"mass_calibration must be a number > 0 (mg HA/cm^3 per HU), got {self.mass_calibration}")
        if not 0 < self.calcium_probability < 1:
            raise ValueError(f"calcium_probability must be in (0, 1), got {self.calcium_probability}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {self.decision!r}")
        if not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1] (a fraction of the patch), got {self.step}")


@dataclass
class CaseResult:
    """Outcome of one case; numeric fields are None when it failed."""

    case: str
    input: str
    status: str = "failed"
    agatston: float | None = None
    volume_mm3: float | None = None
    mass_mg: float | None = None
    n_lesions: int | None = None
    risk_category: str | None = None
    mask_voxels: int | None = None
    qc_flags: str = ""
    runtime_s: float = 0.0
    error: str = ""
    arteries: dict[str, float | int] = dataclasses.field(default_factory=dict)  # ARTERY_COLUMNS -> value

    def row(self) -> dict[str, str]:
        """CSV row (strings; empty for missing values)."""
        out = {}
        for col in CSV_COLUMNS:
            v = self.arteries.get(col) if col in ARTERY_COLUMNS else getattr(self, col)
            out[col] = "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
        return out


def _strip_suffix(name: str) -> str | None:
    low = name.lower()
    for suf in IMAGE_SUFFIXES:
        if low.endswith(suf):
            return name[: -len(suf)]
    return None


def find_cases(path: str | Path) -> list[CaseInput]:
    """The scans under ``path``: one image file; a folder of image files and/or DICOM series subfolders
    (one series per subfolder); or a folder that itself holds one DICOM series. Sorted by name.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: nothing to predict.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file():
        stem = _strip_suffix(path.name)
        return [CaseInput(stem if stem is not None else path.stem, path)]
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    cases = []
    for p in entries:
        if p.is_dir():
            cases.append(CaseInput(p.name, p))
        elif p.is_file() and (stem := _strip_suffix(p.name)):
            cases.append(CaseInput(stem, p))
    if not cases and any(p.is_file() for p in entries):
        cases = [CaseInput(path.name, path)]  # the folder is one DICOM series
    if not cases:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no DICOM series folders found")
    return sorted(cases, key=lambda c: c.name)


def case_output_paths(out_dir: Path, case: str) -> tuple[Path, Path]:
    """(mask path, QC png path) of a validated case name; refuses names that would leave ``out_dir``."""
    from s2cac.data.cases import validate_case_id

    validate_case_id(case, "case name from the input file name: ")
    mask = out_dir / f"{case}_cac.nii.gz"
    qc = out_dir / "qc" / f"{case}.png"
    root = out_dir.resolve()
    if mask.resolve().parent != root or qc.resolve().parent != root / "qc":
        raise ValueError(f"case name {case!r} would write outside {out_dir}")
    return mask, qc


def write_mask(mask: np.ndarray, geometry, path: Path) -> None:
    """Write a (z, y, x) mask as uint8 with ``geometry`` (s2cac.io.Geometry), atomically."""
    from s2cac.io.images import write_image

    write_image(np.asarray(mask, dtype=np.uint8), geometry, path)


def read_scores_csv(path: Path) -> list[dict[str, str]]:
    """The rows of an existing ``scores.csv`` written by ``s2cac predict`` (empty when there is none).

    Raises:
        ValueError: ``path`` exists but is not such a file (it is then never replaced).
    """
    if not path.exists():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = tuple(reader.fieldnames or ())
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read the earlier results ({err}); choose another output folder") from err
    if header != CSV_COLUMNS:
        raise ValueError(
            f"{path}: exists but was not written by s2cac predict (columns {list(header)[:4]}...); it is not "
            "replaced: choose another output folder"
        )
    return rows


def write_scores_csv(results: list[CaseResult], path: Path, previous: list[dict[str, str]] | None = None) -> None:
    """Write ``scores.csv`` (columns :data:`CSV_COLUMNS`) atomically: ``previous`` rows, then this run's.

    A case of ``previous`` that is in ``results`` gets the row of ``results`` (one row per case).
    """
    from s2cac.atomic import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    new = {r.case for r in results}
    for row in previous or []:
        if row["case"] not in new:
            writer.writerow(row)
    for r in results:
        writer.writerow(r.row())
    atomic_write_text(path, buf.getvalue())


def artery_labels(dataset_json: dict) -> dict[int, str]:
    """{label value: artery} for the labels of ``dataset_json`` named like :data:`ARTERIES` (any case)."""
    names = {a.lower(): a for a in ARTERIES}
    labels = dataset_json.get("labels") or {}
    return {int(v): names[str(k).lower()] for k, v in labels.items() if str(k).lower() in names}


def predict_case(
    predictor,
    case: CaseInput,
    out_dir: Path,
    options: PredictOptions,
    training: dict | None = None,
    arteries: dict[int, str] | None = None,
) -> CaseResult:
    """Predict, threshold, write and score one case; never raises for a case-level problem.

    ``training`` is the model's ``s2cac_training_data`` (for the scan QC flags; None = unknown); ``arteries``
    maps the model's label values to artery names (:func:`artery_labels`; empty for a binary model)."""
    from s2cac.inference.predictor import predict_network_labels
    from s2cac.inference.scan_qc import check_scan, read_scan_info
    from s2cac.io import read_ct
    from s2cac.scoring import score_mask

    t0 = time.perf_counter()
    result = CaseResult(case.name, str(case.path))
    mask_path = qc_path = None
    try:
        mask_path, qc_path = case_output_paths(out_dir, case.name)
        hu, geometry = read_ct(case.path)
        flags = check_scan(hu, read_scan_info(case.path, geometry.spacing_zyx, hu.shape), training)
        result.qc_flags = "; ".join(flags)
        predictor.progress_label = case.name
        labels, _ = predict_network_labels(predictor, hu, geometry.spacing_zyx, options.window, options.threshold_hu)
        mask = (labels != 0) & (hu >= options.threshold_hu)
        label_map = np.where(mask, labels, 0).astype(np.uint8) if arteries else mask.view(np.uint8)
        write_mask(label_map, geometry, mask_path)
        scores = score_mask(
            hu, label_map, geometry.spacing_zyx,
            threshold_hu=options.threshold_hu, mass_calibration=options.mass_calibration,
        )  # fmt: skip
        score = scores.total
        if arteries:
            result.arteries = _artery_values(scores, arteries)
        result.agatston, result.volume_mm3, result.mass_mg = score.agatston, score.volume_mm3, score.mass_mg
        result.n_lesions, result.risk_category = score.n_lesions, score.risk_category
        result.mask_voxels = int(mask.sum())
        if options.qc:
            from s2cac.inference.qc import save_qc_png

            title = f"{case.name}: Agatston {score.agatston:.1f} ({score.risk_category}), {score.n_lesions} lesions"
            save_qc_png(
                hu, label_map, geometry.spacing_zyx, qc_path, title=title, window=options.window, warnings=flags,
                label_names=arteries or None,
            )  # fmt: skip
        result.status = "ok"
    except Exception as err:  # noqa: BLE001 - one bad case must not stop the others; the error goes to the CSV
        result.error = f"{type(err).__name__}: {err}".replace("\n", " ")
        for stale in (mask_path, qc_path):  # never leave a previous run's output beside a failed case
            if stale is not None:
                stale.unlink(missing_ok=True)
    result.runtime_s = round(time.perf_counter() - t0, 3)
    return result


def _artery_values(scores, arteries: dict[int, str]) -> dict[str, float | int]:
    """ARTERY_COLUMNS values of a per-label score (0 for an artery without calcium)."""
    out: dict[str, float | int] = {}
    for a in ARTERIES:
        ls = [scores.per_label[v] for v, name in arteries.items() if name == a and v in scores.per_label]
        out[f"agatston_{a}"] = float(sum(s.agatston for s in ls))
        out[f"volume_mm3_{a}"] = float(sum(s.volume_mm3 for s in ls))
        out[f"n_lesions_{a}"] = int(sum(s.n_lesions for s in ls))
    out["n_vessels"] = sum(out[f"agatston_{a}"] > 0 for a in ARTERIES)
    return out


def _eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def predict_path(
    model,
    input_path: str | Path,
    out_dir: str | Path,
    options: PredictOptions | None = None,
    log: IO[str] | None = None,
) -> list[CaseResult]:
    """Predict every case under ``input_path`` into ``out_dir`` (see the module docstring).

    Args:
        model: a model folder or package path, or a :class:`~s2cac.inference.model_io.LoadedModel`.
        input_path: an image file, a folder of images, or a folder of DICOM series folders.
        out_dir: output folder (created).
        options: prediction options.
        log: progress stream (one line per case with ETA); default stderr.

    Returns:
        One :class:`CaseResult` per case, in case order; ``scores.csv`` is written as well.

    Raises:
        ModelError: the model is unusable (nothing is predicted).
        ValueError / FileNotFoundError: no input cases, or an invalid option.
    """
    return predict_cases(model, find_cases(input_path), out_dir, options, log)


def predict_cases(
    model,
    cases: list[CaseInput],
    out_dir: str | Path,
    options: PredictOptions | None = None,
    log: IO[str] | None = None,
) -> list[CaseResult]:
    """Predict the given cases into ``out_dir``; like :func:`predict_path` with an explicit case list
    (e.g. the test cases of a split, named by their case ids)."""
    from s2cac.inference.model_io import LoadedModel, load_model
    from s2cac.inference.predictor import make_predictor

    options = options or PredictOptions()
    log = log or sys.stderr
    out_dir = Path(out_dir)
    if not cases:
        raise ValueError("no cases to predict")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: output exists and is not a folder")
    previous = read_scores_csv(out_dir / "scores.csv")  # refuses a foreign scores.csv before anything runs
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    if options.window is None:
        options = dataclasses.replace(options, window=loaded.hu_window)
    predictor = make_predictor(
        loaded, device=options.device, step=options.step, tta=options.tta, patch_size=options.patch_size,
        calcium_probability=options.calcium_probability, decision=options.decision,
        candidate_hu=options.threshold_hu,
    )  # fmt: skip
    predictor.progress_stream = log  # a line every 10 s within a long case
    arteries = artery_labels(loaded.dataset_json) if len(loaded.dataset_json.get("labels") or {}) > 2 else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    if options.qc:
        (out_dir / "qc").mkdir(exist_ok=True)
    results: list[CaseResult] = []
    seen: set[str] = set()
    t_start = time.perf_counter()
    for i, case in enumerate(cases, 1):
        if case.name in seen:
            res = CaseResult(case.name, str(case.path), error=f"duplicate case name {case.name!r} (another input)")
        else:
            seen.add(case.name)
            res = predict_case(predictor, case, out_dir, options, loaded.training_data, arteries)
        results.append(res)
        write_scores_csv(results, out_dir / "scores.csv", previous)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / i * (len(cases) - i)
        what = (
            f"Agatston {res.agatston:.1f} ({res.risk_category}), {res.n_lesions} lesions"
            if res.status == "ok"
            else f"FAILED: {res.error}"
        )
        print(f"[{i}/{len(cases)}] {case.name}: {what}; {res.runtime_s:.1f} s; ETA {_eta(eta)}", file=log, flush=True)
        if res.qc_flags:
            print(f"  WARNING {case.name}: QC: {res.qc_flags}", file=log, flush=True)
    return results
