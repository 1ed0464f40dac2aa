"""Do the demo models learn? Train the demo configuration for several seeds and print the learning table.

Runs the workflow (Snakemake, this repository's Snakefile) on the demo config with the given experiments and
seeds, then reads every model's test-set evaluation and prints, per method, mean +- sd over the seeds of:
Dice on the test scans with calcium, the false-positive volume (median over the negative test scans) and the
share of negative scans scored Agatston 0, Agatston ICC(A,1) and risk-category agreement over all test scans,
the Dice margin over the threshold baseline (every voxel >= 130 HU inside the heart region, on the same scans),
and the training wall time per model. The threshold baseline is printed as its own row.

    python benchmarks/bench_learning.py                       # s2cac, supervised, mean_teacher x seeds 0 1 2
    python benchmarks/bench_learning.py --experiments s2cac s2cac_faithful --seeds 0 --cores 2
    python benchmarks/bench_learning.py --no-run              # only tabulate what the workflow already made
    python benchmarks/bench_learning.py --decision voxel      # the same models, nnU-Net's per-voxel decision

Everything the table shows comes from files the workflow wrote (results/evaluate/..., results/data/...,
the rule benchmarks of the train jobs); the script writes the table to
results/benchmarks/learning/learning_table.md too.
Nothing here is timed against a threshold: it reports.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from s2cac.data.splits import ratio_tag  # the workflow's path tag of a labeled ratio

REPO = Path(__file__).resolve().parents[1]


def run_workflow(config: dict, cores: int, targets: list[str], parallel: int = 1) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, dir=REPO / ".snakemake") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
        cfg_path = fh.name
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        "--configfile",
        cfg_path,
        "--workflow-profile",
        "workflow/profiles/default",
        *targets,
    ]
    if parallel > 1:  # several one-thread jobs at once (OpenMP threads of jobs that share cores only spin)
        cmd[4] = str(parallel)
        cmd += ["--set-threads", "train=1", "predict=1"]
    print(">>", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def train_seconds(dataset: str, exp: str, tag: str, fold: int, seed: int) -> float:
    rel = Path("train") / dataset / exp / f"labeled{tag}" / f"fold{fold}" / f"seed{seed}.tsv"
    # Snakemake job timings; runs made before they moved to logs/benchmarks/ kept them in benchmarks/
    for root in (REPO / "logs" / "benchmarks", REPO / "benchmarks"):
        if (root / rel).is_file():
            return float(pd.read_csv(root / rel, sep="\t")["s"].iloc[0])
    return float("nan")


def model_row(dataset: str, exp: str, tag: str, fold: int, seed: int, baseline: pd.DataFrame) -> dict:
    folder = REPO / "results" / "evaluate" / dataset / exp / f"labeled{tag}" / f"fold{fold}" / f"seed{seed}"
    per_case = pd.read_csv(folder / "per_case.csv")
    summary = json.loads((folder / "summary.json").read_text())
    pos = per_case[per_case["agatston_ref"] > 0]
    neg = per_case[per_case["agatston_ref"] == 0]
    thr = baseline.set_index("case_id").loc[pos["case_id"], "baseline_dice"].astype(float)
    return {
        "method": exp,
        "seed": seed,
        "dice_pos": float(pos["dice"].mean()),
        "fp_mm3_neg_median": float(neg["volume_mm3_pred"].median()) if len(neg) else float("nan"),
        "neg_agatston0": float((neg["agatston_pred"] == 0).mean()) if len(neg) else float("nan"),
        "icc_agatston": float(summary["agreement"]["agatston"]["icc_a1"]),
        "risk_agreement": float((per_case["risk_pred"] == per_case["risk_ref"]).mean()),
        "dice_gain_vs_threshold": float(pos["dice"].mean() - thr.mean()),
        "train_s": train_seconds(dataset, exp, tag, fold, seed),
        "n_test": len(per_case),
        "n_neg": len(neg),
    }


def threshold_row(baseline: pd.DataFrame, test: set[str]) -> dict:
    b = baseline[baseline["case_id"].isin(test)]
    pos, neg = b[b["negative"] == "no"], b[b["negative"] == "yes"]
    return {
        "method": "threshold >= 130 HU in heart",
        "dice_pos": float(pos["baseline_dice"].mean()),
        "fp_mm3_neg_median": float(neg["baseline_fp_mm3"].median()),
        "neg_agatston0": float((neg["baseline_fp_mm3"] == 0).mean()),
        "dice_gain_vs_threshold": 0.0,
        "n_test": len(b),
        "n_neg": len(neg),
    }


COLUMNS = {
    "dice_pos": ("Dice (scans with calcium)", "{:.3f}"),
    "fp_mm3_neg_median": ("FP volume, negatives (median mm^3)", "{:.1f}"),
    "neg_agatston0": ("negatives scored 0", "{:.0%}"),
    "icc_agatston": ("Agatston ICC(A,1)", "{:.3f}"),
    "risk_agreement": ("risk category agreement", "{:.0%}"),
    "dice_gain_vs_threshold": ("Dice - threshold baseline", "{:+.3f}"),
    "train_s": ("training s/model", "{:.0f}"),
}


def fmt(values: pd.Series, pattern: str) -> str:
    v = values.dropna().astype(float)
    if v.empty:
        return "-"
    if len(v) == 1:
        return pattern.format(v.iloc[0])
    sd = float(v.std(ddof=1))
    sd_text = pattern.format(sd).lstrip("+") if "%" not in pattern else f"{sd * 100:.0f}%"
    return f"{pattern.format(float(v.mean()))} +- {sd_text}"


def table(rows: list[dict], order: list[str]) -> str:
    df = pd.DataFrame(rows)
    head = "| method | seeds | " + " | ".join(label for label, _ in COLUMNS.values()) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for method in order:
        sub = df[df["method"] == method]
        if sub.empty:
            continue
        seeds = int(sub["seed"].notna().sum()) if "seed" in sub else 0
        cells = [fmt(sub[c], p) if c in sub else "-" for c, (_, p) in COLUMNS.items()]
        lines.append(f"| {method} | {seeds or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"), help="base workflow config")
    ap.add_argument("--experiments", nargs="+", default=["s2cac", "supervised", "mean_teacher"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=1, help="run this many 1-thread train/predict jobs at once")
    ap.add_argument("--no-run", action="store_true", help="do not run the workflow, only tabulate")
    ap.add_argument("--decision", choices=("lesion", "voxel"), default=None,
                    help="predict.decision for this run (default: the config's); trainings are reused")  # fmt: skip
    args = ap.parse_args(argv)

    config = yaml.safe_load(Path(args.config).read_text())
    config["training"]["run"] = list(args.experiments)
    config["splits"]["seeds"] = list(args.seeds)
    if args.decision:
        config.setdefault("predict", {})["decision"] = args.decision
    dataset = config["dataset"]["name"]
    fold = int(config["splits"]["folds"][0])
    tag = ratio_tag(config["splits"]["labeled_ratios"][0])
    targets = [
        f"results/evaluate/{dataset}/{exp}/labeled{tag}/fold{fold}/seed{seed}/summary.json"
        for exp in args.experiments
        for seed in args.seeds
    ]
    if not args.no_run:
        (REPO / ".snakemake").mkdir(exist_ok=True)
        run_workflow(config, args.cores, targets, args.parallel)

    baseline = pd.read_csv(REPO / "results" / "data" / dataset / "threshold_baseline.tsv", sep="\t", comment="#")
    rows, missing = [], []
    for exp in args.experiments:
        for seed in args.seeds:
            folder = REPO / "results" / "evaluate" / dataset / exp / f"labeled{tag}" / f"fold{fold}" / f"seed{seed}"
            if (folder / "per_case.csv").is_file():
                rows.append(model_row(dataset, exp, tag, fold, seed, baseline))
            else:
                missing.append(f"{exp}/seed{seed}")
    if not rows:
        print("no evaluated model yet; run without --no-run", file=sys.stderr)
        return 1
    first = rows[0]
    test_cases = set(pd.read_csv(REPO / "results" / "evaluate" / dataset / first["method"] / f"labeled{tag}"
                                 / f"fold{fold}" / f"seed{first['seed']}" / "per_case.csv")["case_id"])  # fmt: skip
    rows.append(threshold_row(baseline, test_cases))
    order = [*args.experiments, rows[-1]["method"]]
    n_test, n_neg = rows[0]["n_test"], rows[0]["n_neg"]
    decision = (  # what this run predicted with; --no-run tabulates predictions made earlier
        "as predicted earlier (--no-run)" if args.no_run else config.get("predict", {}).get("decision", "lesion")
    )
    text = (
        f"Synthetic demo cohort (`{dataset}`, NOT clinical data): {n_test} test scans ({n_neg} negative), "
        f"labeled ratio {tag} %, fold {fold}, seeds {' '.join(map(str, args.seeds))}; mean +- sd over seeds; "
        f"decision rule: {decision}.\n\n"
        + table(rows, order)
        + (f"\n\nNot evaluated (yet): {', '.join(missing)}" if missing else "")
    )
    out = REPO / "results" / "benchmarks" / "learning"
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_table.md").write_text(text + "\n")
    pd.DataFrame(rows).to_csv(out / "learning_rows.csv", index=False)
    print(text)
    bad = [r for r in rows if any(isinstance(v, float) and math.isnan(v) for k, v in r.items() if k == "dice_pos")]
    return 1 if bad else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
