"""The report's environment tables: software versions and wall time per workflow stage (from Snakemake's
benchmark files, ``logs/benchmarks/<rule>/...tsv``)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = ("s2cac", "snakemake", "nnunetv2", "torch", "numpy", "scipy", "pandas", "scikit-learn", "SimpleITK",
            "matplotlib", "seaborn", "connected-components-3d")  # fmt: skip


def software_versions(repo: str | Path | None = None) -> pd.DataFrame:
    """``component, version``: Python, the platform, the git commit of ``repo`` (when it is a git checkout)
    and the installed versions of PACKAGES ("not installed" when missing)."""
    rows = [("python", sys.version.split()[0]), ("platform", platform.platform())]
    if repo is not None:
        try:
            commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    check=True, timeout=10).stdout.strip()  # fmt: skip
            dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
            rows.append(("s2cac git commit", commit + (" (with uncommitted changes)" if dirty else "")))
        except (OSError, subprocess.SubprocessError):
            pass
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame(rows, columns=["component", "version"])


def walltime_table(benchmarks: str | Path = "logs/benchmarks") -> pd.DataFrame:
    """Per stage (rule): jobs, total / mean / max wall-clock seconds and the largest max RSS (MB), from every
    ``<benchmarks>/<rule>/**/*.tsv`` Snakemake wrote (the last line of each: the latest run of that job)."""
    rows = []
    root = Path(benchmarks)
    for rule_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        seconds, rss = [], []
        for tsv in sorted(rule_dir.rglob("*.tsv")):
            try:
                last = pd.read_csv(tsv, sep="\t").iloc[-1]
            except (pd.errors.ParserError, pd.errors.EmptyDataError, IndexError):
                continue
            seconds.append(float(last["s"]))
            rss.append(pd.to_numeric(last.get("max_rss"), errors="coerce"))
        if seconds:
            s = pd.Series(seconds)
            rows.append({"stage": rule_dir.name, "jobs": len(s), "total_s": s.sum(), "mean_s": s.mean(),
                         "max_s": s.max(), "max_rss_mb": pd.Series(rss).max()})  # fmt: skip
    table = pd.DataFrame(rows, columns=["stage", "jobs", "total_s", "mean_s", "max_s", "max_rss_mb"])
    return table.sort_values("total_s", ascending=False, ignore_index=True)


def walltime_markdown(table: pd.DataFrame, cohort: str) -> str:
    """The wall-time table as Markdown (minutes), with its total."""
    lines = ["**Wall time per stage** (Snakemake benchmark files)", "", f"Cohort: {cohort}.", ""]
    lines += [
        "| stage | jobs | total (min) | mean (min) | max (min) | max RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        lines.append(f"| {r['stage']} | {int(r['jobs'])} | {r['total_s'] / 60:.1f} | {r['mean_s'] / 60:.1f} | "
                     f"{r['max_s'] / 60:.1f} | {r['max_rss_mb']:.0f} |")  # fmt: skip
    total = float(table["total_s"].sum()) if len(table) else 0.0
    lines += ["", f"Total of all jobs: {total / 60:.1f} min (jobs that ran in parallel count in full)."]
    return "\n".join(lines) + "\n"
