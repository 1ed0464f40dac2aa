"""Workflow dry-runs of the paper stage: config/paper.yaml plans on a stand-in case sheet, and a per-experiment
target plans only that experiment's jobs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _cases import make_cohort

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent))


def _dry(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(work), "-n", *args],
                          capture_output=True, text=True, check=False)  # fmt: skip


def _job_counts(out: str) -> dict[str, int]:
    block = out.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def _demo(work: Path, **changes) -> None:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    for key, value in changes.items():
        section, name = key.split("__")
        cfg.setdefault(section, {})[name] = value
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_paper_config_plans_the_full_grid_on_a_stand_in_case_sheet(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "config.yaml", work / "config" / "config.yaml")
    make_cohort(work / "resources" / "paper", n=10)  # where config/paper.yaml's case sheet is looked for
    proc = _dry(work, "paper", "--configfile", str(ROOT / "config" / "paper.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout)
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))
    runs_per_ratio = len(paper["splits"]["folds"]) * len(paper["splits"]["seeds"])
    ratios = len(paper["splits"]["labeled_ratios"])
    main = 1 + len(paper["paper"]["baselines"])
    assert paper["splits"]["n_folds"] == 5 and paper["training"]["defaults"]["network"] == "paper"
    assert counts["train"] == counts["predict"] == (main * ratios + len(paper["paper"]["ablations"])) * runs_per_ratio
    assert counts["predict_threshold"] == ratios * runs_per_ratio
    assert counts["evaluate"] == counts["train"] + counts["predict_threshold"]
    assert counts["import_case_sheet"] == 1 and counts["paper_tables"] == counts["paper_figures"] == 1
    assert set(paper["training"]["run"]) == {paper["paper"]["method"], *paper["paper"]["baselines"],
                                             *paper["paper"]["ablations"]}  # fmt: skip
    assert "synthesize_cohort" not in counts and "heart_regions" not in counts


def test_experiment_target_plans_only_that_experiment(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _demo(work, training__run=["s2cac", "supervised", "s2cac_no_nsb"])
    proc = _dry(work, "experiment_s2cac_no_nsb")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout)
    assert counts["train"] == counts["predict"] == counts["evaluate"] == 1
    assert counts["experiment_table"] == 1
    assert not {"paper_tables", "paper_figures", "predict_threshold"} & set(counts)
    experiments = set(re.findall(r"experiment=(\w+)", proc.stdout))
    assert experiments == {"s2cac_no_nsb"}
    # the paper target plans every experiment, the threshold-only method included (no training for it)
    whole = _dry(work, "paper")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert set(re.findall(r"experiment=(\w+)", whole.stdout)) == {"s2cac", "supervised", "s2cac_no_nsb", "threshold"}
    threshold = _dry(work, "experiment_threshold")
    counts = _job_counts(threshold.stdout)
    assert counts["predict_threshold"] == counts["evaluate"] == 1 and "train" not in counts
    assert counts["heart_regions"] == 1


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"paper__baselines": ["nope"]}, "paper.baselines names 'nope'"),
        ({"paper__main_ratio": 0.3}, "paper.main_ratio 0.3"),
        ({"paper__colour": "red"}, "colour"),
    ],
)
def test_bad_paper_config_is_named(tmp_path: Path, change: dict, needle: str) -> None:
    work = tmp_path / "work"
    _demo(work, **change)
    proc = _dry(work)
    assert proc.returncode != 0 and needle in proc.stdout + proc.stderr


def test_threshold_is_a_reserved_experiment_name(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    cfg["experiments"]["threshold"] = {}
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _dry(work)
    assert proc.returncode != 0 and "reserved" in proc.stdout + proc.stderr
