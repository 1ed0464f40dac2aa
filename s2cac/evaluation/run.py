"""Evaluate a set of cases from files and write the per-case CSV, cohort summary (JSON, CSV) and figures."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s2cac.evaluation.cohort import cohort_summary, evaluate_case, summary_table
from s2cac.evaluation.options import EvaluationOptions
from s2cac.io.images import IMAGE_SUFFIXES, read_ct, read_label_map


@dataclass(frozen=True)
class CaseFiles:
    """Files of one case: CT image, reference and predicted masks."""

    case_id: str
    image: Path
    reference: Path
    prediction: Path


def _stem(path: Path) -> str:
    for suffix in IMAGE_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _find(folder: Path, case_id: str, what: str) -> Path:
    # nnU-Net names images <case>_0000.nii.gz; s2cac predict names its masks <case>_cac.nii.gz
    names = (case_id, f"{case_id}_cac") if what == "prediction" else (case_id, f"{case_id}_0000")
    for name in names:
        for suffix in IMAGE_SUFFIXES:
            if (folder / f"{name}{suffix}").exists():
                return folder / f"{name}{suffix}"
        if (folder / name).is_dir():  # a DICOM series folder
            return folder / name
    raise FileNotFoundError(f"{folder}: no {what} for case {case_id!r} ({names[0]}.nii.gz, {names[1]}.nii.gz, ...)")


def cases_from_folders(images: Path, references: Path, predictions: Path) -> list[CaseFiles]:
    """Cases named by the reference masks in ``references``; images and predictions matched by case id."""
    for folder in (images, references, predictions):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
    ids = sorted(_stem(p) for p in references.iterdir() if _stem(p) != p.name)
    if not ids:
        raise ValueError(f"{references}: no reference masks ({', '.join(IMAGE_SUFFIXES)})")
    return [
        CaseFiles(
            i, _find(images, i, "image"), _find(references, i, "reference mask"), _find(predictions, i, "prediction")
        )
        for i in ids
    ]


def cases_from_sheet(sheet: Path, predictions: Path | None = None) -> list[CaseFiles]:
    """Cases of a case sheet (columns case_id, image, label[, prediction]); without a ``prediction`` column the
    predictions are ``<predictions>/<case_id>.nii.gz`` or ``<case_id>_cac.nii.gz`` (as ``s2cac predict``
    writes them; or another image suffix)."""
    from s2cac.data.cases import load_case_sheet

    df = load_case_sheet(sheet)
    if "prediction" in df.columns:
        base = Path(sheet).parent
        preds = [Path(p) if Path(p).is_absolute() else base / p for p in df["prediction"]]
    elif predictions is not None:
        preds = [_find(predictions, cid, "prediction") for cid in df["case_id"]]
    else:
        raise ValueError(f"{sheet}: no 'prediction' column; give the predictions folder with --pred")
    return [
        CaseFiles(str(c), Path(i), Path(r), p)
        for c, i, r, p in zip(df["case_id"], df["image"], df["label"], preds, strict=True)
    ]


def evaluate_files(
    cases: list[CaseFiles], options: EvaluationOptions | None = None, geometry_tol: float = 1e-3
) -> pd.DataFrame:
    """Per-case table (one row per case, ``case_id`` first) of :func:`evaluate_case` on files; with
    ``options.per_artery`` (the references label 1 LM, 2 LAD, 3 LCX, 4 RCA) also the columns of
    :func:`s2cac.evaluation.arteries.artery_scores`. ``options.arteries`` (predictions of an artery model) reaches
    :func:`evaluate_case`: per-artery Agatston of prediction and reference, vessel counts.

    Args:
        cases: the files of each case.
        options: scoring and lesion options (default: :class:`EvaluationOptions`'s).
        geometry_tol: how far (mm, cosines) a mask's grid may be from its image's.
    """
    from s2cac.evaluation.arteries import artery_scores

    options = _checked(options)
    score_options = options.score_options()
    rows = []
    for case in cases:
        hu, geom = read_ct(case.image, copy=False)
        ref, _ = read_label_map(case.reference, geom, geometry_tol, copy=False)
        pred, _ = read_label_map(case.prediction, geom, geometry_tol, copy=False)
        row = evaluate_case(
            hu,
            pred,
            ref,
            geom.spacing_zyx,
            lesion_connectivity=options.lesion_connectivity,
            arteries=dict(options.arteries) if options.arteries else None,
            **score_options,
        )
        rows.append({"case_id": case.case_id, **row})
        if options.per_artery:
            rows[-1].update(artery_scores(hu, pred, ref, geom.spacing_zyx, **score_options))
    return pd.DataFrame(rows)


def _checked(options: EvaluationOptions | None) -> EvaluationOptions:
    if options is None:
        return EvaluationOptions()
    if not isinstance(options, EvaluationOptions):  # e.g. a config mapping: EvaluationOptions.from_mapping(...)
        raise TypeError(f"options must be EvaluationOptions, got {type(options).__name__}")
    return options


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/inf as None (JSON has no NaN: undefined values are null) and numpy scalars as Python's."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_outputs(per_case: pd.DataFrame, summary: dict[str, Any], out_dir: Path, figures: bool = True) -> list[Path]:
    """Write ``per_case.csv``, ``summary.json``, ``summary.csv`` and (optionally) ``figures/*.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "per_case.csv", out_dir / "summary.json", out_dir / "summary.csv"]
    per_case.to_csv(written[0], index=False, na_rep="NaN")
    written[1].write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    summary_table(summary).to_csv(written[2], index=False, na_rep="NaN")
    if figures and len(per_case):
        from s2cac.evaluation.plots import plot_bland_altman, plot_confusion, plot_scatter

        fig_dir = out_dir / "figures"
        fig_dir.mkdir(exist_ok=True)
        p, r = per_case["agatston_pred"].to_numpy(float), per_case["agatston_ref"].to_numpy(float)
        plot_scatter(p, r, fig_dir / "agatston_scatter.png")
        plot_bland_altman(p, r, summary["agreement"]["agatston"], fig_dir / "agatston_bland_altman.png")
        plot_confusion(summary["risk"], fig_dir / "risk_confusion.png")
        written += sorted(fig_dir.glob("*.png"))
    return written


def evaluate(
    cases: list[CaseFiles],
    out_dir: Path,
    options: EvaluationOptions | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    figures: bool = True,
    geometry_tol: float = 1e-3,
) -> dict[str, Any]:
    """Evaluate ``cases`` and write all outputs to ``out_dir``; returns the cohort summary.

    Args:
        cases: the files of each case.
        out_dir: receives ``per_case.csv``, ``summary.json``, ``summary.csv`` and ``figures/``.
        options: scoring and lesion options (default: :class:`EvaluationOptions`'s); all of them are recorded
            under ``options`` in the summary.
        n_boot: bootstrap resamples for the 95 % confidence intervals.
        seed: seed of the bootstrap.
        figures: also write the PNG figures.
        geometry_tol: how far (mm, cosines) a mask's grid may be from its image's.
    """
    options = _checked(options)
    per_case = evaluate_files(cases, options, geometry_tol)
    summary = cohort_summary(per_case, n_boot=n_boot, seed=seed)
    summary["options"] = options.to_dict()
    write_outputs(per_case, summary, out_dir, figures)
    return summary
