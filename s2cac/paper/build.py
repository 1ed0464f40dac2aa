"""Build the paper outputs of a plan (s2cac.paper.collect) from the workflow's result folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from s2cac.data.atomic import atomic_write_text
from s2cac.paper.collect import Run, experiments_of, load_runs, plan_runs
from s2cac.paper.tables import (
    comparison_table,
    headline,
    paired_tests,
    ratio_table,
    tests_table,
    to_markdown,
    write_table,
)
from s2cac.paper.threshold import THRESHOLD_EXPERIMENT, threshold_label


def method_labels(plan: dict[str, Any], root: str | Path = ".") -> dict[str, str]:
    """Display names: experiment names, and the threshold method named after the region its cases used
    (``regions.tsv`` of its predictions)."""
    labels = {e: e for e in experiments_of(plan)}
    if plan.get("threshold"):
        regions: list[str] = []
        for run in plan_runs(plan, [THRESHOLD_EXPERIMENT]):
            table = run.path("predict", plan["dataset"], root) / "regions.tsv"
            if table.is_file():
                regions += pd.read_csv(table, sep="\t")["region"].tolist()
        labels[THRESHOLD_EXPERIMENT] = threshold_label(regions, float(plan.get("threshold_hu", 130)))
    return labels


def main_experiments(plan: dict[str, Any]) -> list[str]:
    """Rows of the main table and of the label-ratio study: threshold, baselines, the method."""
    head = [THRESHOLD_EXPERIMENT] if plan.get("threshold") else []
    return [*head, *plan.get("baselines", []), plan["method"]]


def build_tables(plan: dict[str, Any], out_dir: str | Path, root: str | Path = ".") -> list[Path]:
    """Write main, ablation, label_ratio and wilcoxon (.csv/.md/.tex), runs.csv (every run's metrics) and
    headline.txt into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    metrics, per_case = load_runs(plan_runs(plan), plan["dataset"], root)
    labels = method_labels(plan, root)
    cohort, ratio, method = plan["cohort"], plan["main_ratio"], plan["method"]
    main = main_experiments(plan)
    tables = [
        comparison_table("main", "Comparison with the baselines", metrics, main, ratio, cohort, labels),
        comparison_table("ablation", "Ablations", metrics, [method, *plan.get("ablations", [])], ratio, cohort, labels),
        ratio_table(metrics, main, plan["ratios"], cohort, labels),
        tests_table(paired_tests(per_case, method, [e for e in main if e != method], ratio), ratio, cohort, labels),
    ]
    if not plan.get("ablations"):
        tables[1].notes.append("No ablation is configured (paper.ablations): the method's row only.")
    paths = [p for t in tables for p in write_table(t, out_dir)]
    paths.append(out_dir / "runs.csv")
    atomic_write_text(paths[-1], metrics.assign(cohort=cohort).to_csv(index=False, na_rep="NaN", lineterminator="\n"))
    paths.append(out_dir / "headline.txt")
    atomic_write_text(paths[-1], headline(metrics, experiments_of(plan), ratio, cohort, labels) + "\n")
    return paths


def build_experiment_table(plan: dict[str, Any], experiment: str, out_stem: str | Path, root: str | Path = ".") -> None:
    """One experiment's own summary (every METRICS column per labeled ratio, mean +- sd over its runs) as
    ``<out_stem>.csv`` and ``.md``: what the per-experiment target ends with."""
    runs = [Run(r.experiment, r.ratio, r.fold, r.seed) for r in plan_runs(plan, [experiment])]
    metrics, _ = load_runs(runs, plan["dataset"], root)
    labels = method_labels(plan, root) if experiment == THRESHOLD_EXPERIMENT else {}
    out_stem = Path(out_stem)
    parts, data = [], []
    for ratio in dict.fromkeys(r.ratio for r in runs):
        title = f"Experiment {experiment}, labeled {ratio} %"
        table = comparison_table(out_stem.name, title, metrics, [experiment], ratio, plan["cohort"], labels)
        parts.append(to_markdown(table))
        data.append(table.data)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    csv = pd.concat(data, ignore_index=True).to_csv(index=False, na_rep="NaN", lineterminator="\n")
    atomic_write_text(out_stem.with_suffix(".csv"), csv)
    atomic_write_text(out_stem.with_suffix(".md"), "\n".join(parts))
