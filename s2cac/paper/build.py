"""Build the paper outputs of a plan (s2cac.paper.collect) from the workflow's result folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s2cac.atomic import atomic_write_text
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
from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU


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
        labels[THRESHOLD_EXPERIMENT] = threshold_label(regions, float(plan.get("threshold_hu", CALCIUM_THRESHOLD_HU)))
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


def nsb_schedules(plan: dict[str, Any]) -> dict[str, dict]:
    """Legend label -> {a, b, tau, epochs} of the plan's NSB schedules (``plan["nsb"]``: experiment -> its
    resolved NSB settings, from the workflow); experiments with the same schedule share one line. Without any,
    the method's published schedule (a 0.999, b 0.03, tau 300 over 500 epochs)."""
    groups: dict[tuple, list[str]] = {}
    for exp, s in (plan.get("nsb") or {}).items():
        groups.setdefault((s["a"], s["b"], s["tau"], s["epochs"]), []).append(exp)
    if not groups:
        groups[(0.999, 0.03, 300.0, 500)] = ["published schedule"]
    return {
        f"{', '.join(names)}: a={a:g}, b={b:g}, tau={tau:g}": {"a": a, "b": b, "tau": tau, "epochs": epochs}
        for (a, b, tau, epochs), names in groups.items()
    }


def _qualitative_cases(plan: dict[str, Any], per_case: pd.DataFrame, columns: dict[str, str], sheet: pd.DataFrame,
                       root: str | Path) -> list:  # fmt: skip
    from s2cac.paper.figures import QualitativeCase

    ratio, fold, seed = plan["main_ratio"], min(plan["folds"]), min(plan["seeds"])
    first = per_case[(per_case["experiment"] == plan["method"]) & (per_case["ratio"] == ratio)]
    first = first[(first["fold"] == fold) & (first["seed"] == seed) & (first["agatston_ref"] > 0)]
    ids = first.sort_values(["agatston_ref", "case_id"])["case_id"].tolist()
    n = min(int(plan.get("qualitative_cases", 4)), len(ids))
    picks = [ids[i] for i in np.unique(np.linspace(0, len(ids) - 1, n).round().astype(int))] if n else []
    rows = sheet.set_index("case_id")
    return [
        QualitativeCase(
            cid,
            Path(rows.loc[cid, "image"]),
            Path(rows.loc[cid, "label"]),
            {
                title: Run(exp, ratio, fold, seed).path("predict", plan["dataset"], root) / f"{cid}_cac.nii.gz"
                for title, exp in columns.items()
            },  # fmt: skip
        )
        for cid in picks
    ]


def build_figures(
    plan: dict[str, Any], out_dir: str | Path, cases_tsv: str | Path, root: str | Path = "."
) -> list[Path]:
    """Write the figures (PNG and PDF) into ``out_dir``: dice_vs_ratio, agatston_agreement (the method),
    risk_confusion, qualitative (the method and the best baseline by main-table Dice), training_curves,
    nsb_schedule; returns the paths."""
    from s2cac.data.cases import load_case_sheet
    from s2cac.paper import figures as fig

    out_dir = Path(out_dir)
    dataset, cohort, ratio, method = plan["dataset"], plan["cohort"], plan["main_ratio"], plan["method"]
    metrics, per_case = load_runs(plan_runs(plan), dataset, root)
    labels = method_labels(plan, root)
    main = main_experiments(plan)
    at_ratio = per_case[per_case["ratio"] == ratio]
    paths = fig.dice_vs_ratio(metrics, main, labels, cohort, out_dir / "dice_vs_ratio")
    own = at_ratio[at_ratio["experiment"] == method]
    paths += fig.agatston_agreement(own, labels[method], cohort, out_dir / "agatston_agreement")
    paths += fig.risk_confusions(at_ratio, main, labels, cohort, out_dir / "risk_confusion")
    dice = metrics[metrics["ratio"] == ratio].groupby("experiment")["dice"].mean()
    candidates = [e for e in plan.get("baselines", []) if e in dice.index and dice[e] == dice[e]]
    if not candidates and plan.get("threshold"):
        candidates = [THRESHOLD_EXPERIMENT]
    columns = {labels[method]: method}
    if candidates:
        best = max(candidates, key=lambda e: dice[e])
        columns[f"best baseline: {labels[best]}"] = best
    sheet = load_case_sheet(cases_tsv)
    paths += fig.qualitative_grid(_qualitative_cases(plan, per_case, columns, sheet, root), cohort,
                                  out_dir / "qualitative")  # fmt: skip
    curves = {}
    for exp in experiments_of(plan):
        if exp != THRESHOLD_EXPERIMENT:
            logs = [r.path("models", dataset, root) / "training_log.txt" for r in plan_runs(plan, [exp])]
            curves[labels[exp]] = [fig.read_training_log(p) for p in logs if p.parents[2].name == f"labeled{ratio}"]
    paths += fig.training_curves(curves, cohort, out_dir / "training_curves")
    paths += fig.nsb_schedule(nsb_schedules(plan), cohort, out_dir / "nsb_schedule")
    return paths
