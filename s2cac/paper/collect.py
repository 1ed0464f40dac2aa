"""What the paper outputs are built from: the plan (methods, ratios, folds, seeds), its runs' folders and the
numbers read from each run's evaluation (``summary.json``, ``per_case.csv``).

The plan is a plain mapping (the workflow builds it from the config and passes it to every paper rule; the
workflow's per-experiment targets list their jobs with :func:`plan_runs` too)::

    dataset: synthetic          # results/*/{dataset}/...
    cohort: "synthetic demo cohort ..."   # stated on every table and figure (cohort_note)
    method: s2cac               # the proposed method
    baselines: [supervised, mean_teacher]   # learned baselines: every labeled ratio
    threshold: true             # the threshold-only reference method (experiment "threshold"), every ratio
    ablations: [s2cac_no_nsb]   # variants of the method: the main ratio only
    main_ratio: "50"            # labeled{tag} of the main and ablation tables
    ratios: ["10", "20", "50", "100"]
    folds: [0]
    seeds: [0, 1, 2]
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from s2cac.paper.threshold import THRESHOLD_EXPERIMENT

#: Run-level metric -> (column label, higher is better). Read from a run's summary.json by run_metrics().
METRICS: dict[str, tuple[str, bool]] = {
    "dice": ("Dice", True),
    "sensitivity": ("Sensitivity", True),
    "precision": ("Precision", True),
    "hd95_mm": ("HD95 (mm)", False),
    "lesion_f1": ("Lesion F1", True),
    "agatston_icc": ("Agatston ICC", True),
    "risk_accuracy": ("Risk accuracy", True),
    "risk_kappa": ("Risk kappa (linear)", True),
}


def cohort_note(name: str, source: str, description: str | None = None) -> str:
    """The sentence every table and figure carries about where its numbers come from. The synthetic demo
    cohort always says that it is not clinical data, whatever ``description`` says."""
    if source == "synthetic":
        text = (
            f"synthetic demo cohort '{name}' (computer-generated phantoms): NOT clinical data, not comparable "
            "with published results"
        )
    else:
        text = f"cohort '{name}' (dataset source: {source})"
    return f"{text}; {description}" if description else text


def experiments_of(plan: dict[str, Any]) -> list[str]:
    """Every experiment of the plan, in table order: threshold, baselines, method, ablations."""
    head = [THRESHOLD_EXPERIMENT] if plan.get("threshold") else []
    return [*head, *plan.get("baselines", []), plan["method"], *plan.get("ablations", [])]


def ratios_of(plan: dict[str, Any], experiment: str) -> list[str]:
    """Labeled-ratio tags an experiment runs at: every ratio, except ablations (the main ratio only)."""
    return [plan["main_ratio"]] if experiment in plan.get("ablations", []) else list(plan["ratios"])


@dataclass(frozen=True)
class Run:
    """One trained (or threshold) model: experiment x labeled ratio x fold x seed."""

    experiment: str
    ratio: str
    fold: int
    seed: int

    def path(self, stage: str, dataset: str, root: str | Path = ".") -> Path:
        """``<root>/results/<stage>/<dataset>/<experiment>/labeled<ratio>/fold<f>/seed<s>``."""
        return (
            Path(root) / "results" / stage / dataset / self.experiment / f"labeled{self.ratio}" / f"fold{self.fold}"
            / f"seed{self.seed}"
        )  # fmt: skip


def plan_runs(plan: dict[str, Any], experiments: list[str] | None = None) -> list[Run]:
    """The runs of ``experiments`` (default: all of the plan)."""
    return [
        Run(exp, tag, int(fold), int(seed))
        for exp in (experiments_of(plan) if experiments is None else experiments)
        for tag in ratios_of(plan, exp)
        for fold in plan["folds"]
        for seed in plan["seeds"]
    ]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def run_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The METRICS of one run from its ``summary.json`` (s2cac.evaluation.cohort_summary); null -> NaN.

    Voxel metrics are the mean over the test scans where they are defined (a scan with empty reference and
    prediction has no Dice: docs/scoring.md); lesion F1 is pooled over all lesions of the test set.
    """
    metrics = summary.get("metrics", {})
    return {
        "dice": _num(metrics.get("dice", {}).get("mean")),
        "sensitivity": _num(metrics.get("sensitivity", {}).get("mean")),
        "precision": _num(metrics.get("precision", {}).get("mean")),
        "hd95_mm": _num(metrics.get("hd95_mm", {}).get("mean")),
        "lesion_f1": _num(summary.get("lesion", {}).get("f1")),
        "agatston_icc": _num(summary.get("agreement", {}).get("agatston", {}).get("icc_a1")),
        "risk_accuracy": _num(summary.get("risk", {}).get("accuracy")),
        "risk_kappa": _num(summary.get("risk", {}).get("kappa_linear")),
    }


def load_runs(runs: list[Run], dataset: str, root: str | Path = ".") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-run metrics, per-case rows) of ``runs`` from ``results/evaluate``; both carry ``experiment``,
    ``ratio``, ``fold``, ``seed``; per-case rows also ``abs_agatston_error`` = |predicted - reference Agatston|.

    Raises:
        FileNotFoundError: a run without its evaluation (names the folder).
    """
    rows, cases = [], []
    for run in runs:
        folder = run.path("evaluate", dataset, root)
        if not (folder / "summary.json").is_file():
            raise FileNotFoundError(f"{folder}: no summary.json (evaluate this run first)")
        keys = {"experiment": run.experiment, "ratio": run.ratio, "fold": run.fold, "seed": run.seed}
        rows.append({**keys, **run_metrics(json.loads((folder / "summary.json").read_text(encoding="utf-8")))})
        per_case = pd.read_csv(folder / "per_case.csv", dtype={"case_id": str, "risk_pred": str, "risk_ref": str})
        per_case["abs_agatston_error"] = (per_case["agatston_pred"] - per_case["agatston_ref"]).abs()
        cases.append(per_case.assign(**keys))
    metrics = pd.DataFrame(rows, columns=["experiment", "ratio", "fold", "seed", *METRICS])
    per_case = pd.concat(cases, ignore_index=True) if cases else pd.DataFrame()
    return metrics, per_case
