"""End-to-end Snakemake runs in a temporary directory (real rules, real nnU-Net preprocessing)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent))


def _run(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2", *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def _write_config(workdir: Path, cfg: dict) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))


SPLITS = {"test_fraction": 0.25, "n_folds": 2, "folds": [0, 1], "labeled_ratios": [0.5, 1.0], "seeds": [0]}
PREPROCESS = {"target_spacing": [3.0, 1.4, 1.4], "patch_size": [8, 16, 16]}


@pytest.mark.slow
def test_case_sheet_workflow_end_to_end(tmp_path, cohort):
    work = tmp_path / "work"
    _write_config(
        work,
        {
            "dataset": {"name": "mine", "source": "case_sheet", "nnunet_id": 77, "case_sheet": str(cohort)},
            "preprocess": PREPROCESS,
            "splits": SPLITS,
        },
    )
    first = _run(work)
    assert first.returncode == 0, first.stderr[-3000:]
    pre = work / "results" / "nnunet" / "preprocessed" / "Dataset077_mine"
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [8, 16, 16]
    roles = json.loads((work / "results/splits/mine/seed0/fold1/labeled50.json").read_text())
    assert len(roles["test"]) == 2 and roles["negative"]
    for rule in ("import_case_sheet", "nnunet_raw", "nnunet_preprocess", "splits"):
        assert list((work / "logs" / rule).rglob("*.log")), rule
        assert list((work / "benchmarks" / rule).rglob("*.tsv")), rule
    second = _run(work)
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr


def test_missing_case_sheet_is_a_clear_error(tmp_path):
    work = tmp_path / "work"
    _write_config(
        work,
        {
            "dataset": {
                "name": "mine",
                "source": "case_sheet",
                "nnunet_id": 77,
                "case_sheet": str(tmp_path / "nowhere.tsv"),
            },
            "preprocess": PREPROCESS,
            "splits": SPLITS,
        },
    )
    proc = _run(work, "-n")
    assert proc.returncode != 0
    assert "nowhere.tsv" in proc.stdout + proc.stderr


SYNTH = {"n_cases": 8, "negative_fraction": 0.25, "seed": 3, "shape_zyx": [12, 96, 96], "overview_cases": 2}


@pytest.mark.slow
def test_synthetic_demo_workflow_end_to_end(tmp_path):
    """The demo path: synthetic cohort -> nnU-Net raw -> preprocessing -> splits, then nothing to do."""
    work = tmp_path / "work"
    _write_config(
        work,
        {
            "dataset": {"name": "synthetic", "source": "synthetic", "nnunet_id": 501, "synthetic": SYNTH},
            "preprocess": PREPROCESS,
            "splits": SPLITS,
        },
    )
    first = _run(work)
    assert first.returncode == 0, first.stderr[-3000:]
    data = work / "results" / "data" / "synthetic"
    assert (data / "overview.png").stat().st_size > 10_000
    assert len(list((data / "images").glob("*.nii.gz"))) == 8
    pre = work / "results" / "nnunet" / "preprocessed" / "Dataset501_synthetic"
    assert len(list((pre / "nnUNetPlans_3d_fullres").glob("*_seg.b2nd"))) == 8
    roles = json.loads((work / "results/splits/synthetic/seed0/fold0/labeled100.json").read_text())
    assert roles["labeled"] and roles["negative"] and roles["unlabeled"] == []
    second = _run(work)
    assert "Nothing to be done" in second.stdout + second.stderr


def test_synthetic_option_typo_stops_the_workflow(tmp_path):
    work = tmp_path / "work"
    _write_config(
        work,
        {
            "dataset": {"name": "synthetic", "source": "synthetic", "nnunet_id": 501, "synthetic": {"n_case": 3}},
            "preprocess": PREPROCESS,
            "splits": SPLITS,
        },
    )
    proc = _run(work, "-n")
    assert proc.returncode != 0
    assert "dataset.synthetic" in proc.stdout + proc.stderr and "n_case" in proc.stdout + proc.stderr
