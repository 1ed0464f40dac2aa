"""End-to-end Snakemake runs in a temporary directory (real rules, real nnU-Net preprocessing)."""

import hashlib
import json
import re
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
    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [8, 16, 16]
    roles = json.loads((work / "results/splits/mine/seed0/fold1/labeled50.json").read_text(encoding="utf-8"))
    assert len(roles["test"]) == 2 and roles["negative"]
    for rule in ("import_case_sheet", "nnunet_raw", "nnunet_preprocess", "splits"):
        assert list((work / "logs" / rule).rglob("*.log")), rule
        assert list((work / "logs" / "benchmarks" / rule).rglob("*.tsv")), rule
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


TRAINING = {
    "run": ["s2cac"],
    "device": "cpu",
    "defaults": {
        "network": "tiny",
        "optimizer": "adam",
        "learning_rate": 0.003,
        "epochs": 2,
        "iterations_per_epoch": 3,
        "val_iterations": 1,
        "consistency_ramp_step": 1,
        "consistency_ramp_length": 4,
    },
}
EXPERIMENTS = {
    "s2cac": {},
    "supervised": {"use_teacher": False, "use_score_head": False, "score_consistency": False, "use_negatives": False},
    "s2cac_no_nsb": {"nsb": {"enabled": False}},  # configured, not in training.run: built only when asked for
}


def _outputs(work: Path) -> dict[str, tuple[int, str]]:
    """(mtime in ns, sha256) of every file under results/ and logs/, by path relative to ``work``."""
    return {
        p.relative_to(work).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for top in ("results", "logs")
        for p in sorted((work / top).rglob("*"))
        if p.is_file()
    }


def _job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Snakemake's "Job stats" table of a run or dry run: jobs per rule."""
    block = (proc.stdout + proc.stderr).split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


@pytest.mark.slow
def test_synthetic_demo_workflow_end_to_end(tmp_path):
    """The demo path: synthetic cohort -> nnU-Net raw -> preprocessing -> splits -> train -> predict ->
    evaluate -> paper tables for two experiments, then nothing to do; rerunning one experiment through its
    target (README) rewrites its outputs only."""
    import numpy as np
    import pandas as pd
    import SimpleITK as sitk

    work = tmp_path / "work"
    demo = {
        "dataset": {"name": "synthetic", "source": "synthetic", "nnunet_id": 501, "synthetic": SYNTH},
        "preprocess": PREPROCESS,
        "splits": SPLITS | {"folds": [0], "labeled_ratios": [0.5]},
        "training": TRAINING | {"run": ["s2cac", "supervised"]},
        "experiments": EXPERIMENTS,
        "predict": {"device": "cpu"},
        "evaluate": {"bootstrap": 200},
    }
    _write_config(work, demo)
    first = _run(work)
    assert first.returncode == 0, first.stderr[-3000:]
    data = work / "results" / "data" / "synthetic"
    assert (data / "overview.png").stat().st_size > 10_000
    assert len(list((data / "images").glob("*.nii.gz"))) == 8
    pre = work / "results" / "nnunet" / "preprocessed" / "Dataset501_synthetic"
    assert len(list((pre / "nnUNetPlans_3d_fullres").glob("*_seg.b2nd"))) == 8
    roles = json.loads((work / "results/splits/synthetic/seed0/fold0/labeled50.json").read_text(encoding="utf-8"))
    assert roles["labeled"] and roles["negative"] and roles["unlabeled"]

    run = "synthetic/s2cac/labeled50/fold0/seed0"
    model = work / "results" / "models" / run
    assert (model / "checkpoint_final.pth").is_file() and (model / "curves.png").is_file()
    assert "epoch 2/2" in (model / "training_log.txt").read_text(encoding="utf-8")
    pred = work / "results" / "predict" / run
    scores = pd.read_csv(pred / "scores.csv")
    assert sorted(scores["case"]) == roles["test"] and set(scores["status"]) == {"ok"}
    for case in roles["test"]:
        src = sitk.ReadImage(str(data / "images" / f"{case}.nii.gz"))
        out = sitk.ReadImage(str(pred / f"{case}_cac.nii.gz"))
        assert out.GetSize() == src.GetSize() and np.allclose(out.GetSpacing(), src.GetSpacing())
        assert np.allclose(out.GetOrigin(), src.GetOrigin()) and np.allclose(out.GetDirection(), src.GetDirection())
    ev = work / "results" / "evaluate" / run
    per_case = pd.read_csv(ev / "per_case.csv")
    assert sorted(per_case["case_id"]) == roles["test"]
    ref = pd.read_csv(data / "cases.tsv", sep="\t").set_index("case_id")
    for _, row in per_case.iterrows():  # the reference Agatston of evaluation = the case sheet's
        assert row["agatston_ref"] == pytest.approx(ref.loc[row["case_id"], "agatston"], abs=0.01)
    assert json.loads((ev / "summary.json").read_text(encoding="utf-8"))
    assert list((ev / "figures").glob("*.png"))

    second = _run(work)
    assert "Nothing to be done" in second.stdout + second.stderr
    # an ablation is one more target: only its own jobs run
    other = _run(work, "-n", f"results/evaluate/{run.replace('s2cac', 's2cac_no_nsb', 1)}/summary.json")
    assert other.returncode == 0
    assert "train " in other.stdout and "nnunet_preprocess" not in other.stdout

    # execution settings are not method parameters: another device, threads or data workers retrain nothing
    cfg = yaml.safe_load((work / "config" / "config.yaml").read_text(encoding="utf-8"))
    cfg["training"]["device"] = cfg["predict"]["device"] = "auto"
    cfg["training"]["defaults"]["data_workers"] = 2
    _write_config(work, cfg)
    # (not `--list-changes params`: snakemake 9.27 lists every output that has params there, changed or not)
    for triggers in ([], ["--rerun-triggers", "params"]):
        moved = _run(work, "-n", "--set-threads", "train=1", "predict=1", *triggers)
        assert moved.returncode == 0 and "Nothing to be done" in moved.stdout + moved.stderr, moved.stdout[-2000:]
    cfg["training"]["defaults"]["learning_rate"] = 0.001  # a hyper-parameter does
    _write_config(work, cfg)
    retrain = _run(work, "-n")
    assert "train " in retrain.stdout and "synthesize_cohort" not in retrain.stdout

    # rerun one experiment as the README says: its training, prediction, evaluation and own table are rewritten,
    # the other experiment's outputs (and the shared cohort, preprocessing and splits) are not touched
    _write_config(work, demo)
    before = _outputs(work)
    rerun = _run(work, "experiment_supervised", "--forcerun", "train")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    jobs = _job_counts(rerun)
    assert {k: jobs.get(k) for k in ("train", "predict", "evaluate", "experiment_table")} == dict.fromkeys(
        ("train", "predict", "evaluate", "experiment_table"), 1
    ), jobs
    after = _outputs(work)

    def owned(path: str) -> bool:  # the supervised experiment's files: .../supervised/... or .../supervised.md
        return re.search(r"(^|/)supervised(/|\.)", path) is not None

    sup = run.replace("s2cac", "supervised", 1)
    rewritten = [
        f"results/models/{sup}/checkpoint_final.pth",
        f"results/models/{sup}/curves.png",
        f"results/predict/{sup}/scores.csv",
        *(f"results/predict/{sup}/{case}_cac.nii.gz" for case in roles["test"]),
        f"results/evaluate/{sup}/summary.json",
        f"results/evaluate/{sup}/per_case.csv",
        "results/paper/synthetic/experiments/supervised.md",
    ]
    for path in rewritten:
        assert owned(path) and path in before and after[path][0] > before[path][0], path
    untouched = {path: stamp for path, stamp in before.items() if not owned(path)}
    assert any(f"/{run}/" in path for path in untouched)  # s2cac's model, predictions, evaluation
    assert {path: after.get(path) for path in untouched} == untouched
    assert {path for path in after if not owned(path)} == set(untouched)  # and nothing new beside them
    # the paper tables that compare it are still there, and `paper` refreshes only them (no other experiment's jobs)
    assert all(f"results/paper/synthetic/tables/{t}.csv" in after for t in ("main", "ablation", "label_ratio"))
    refresh = _run(work, "paper")
    assert refresh.returncode == 0, refresh.stderr[-3000:]
    refreshed = set(_job_counts(refresh)) - {"total"}
    assert "paper_tables" in refreshed and refreshed <= {"paper", "paper_tables", "paper_figures", "paper_environment"}
    runs = pd.read_csv(work / "results" / "paper" / "synthetic" / "tables" / "runs.csv")
    assert {"s2cac", "supervised"} <= set(runs["experiment"])
    final = _outputs(work)
    for table in ("main", "runs", "headline"):  # rebuilt from the rerun's evaluation
        path = next(p for p in final if p.startswith(f"results/paper/synthetic/tables/{table}."))
        assert final[path][0] > after[f"results/evaluate/{sup}/summary.json"][0], path
    assert all(final[path] == after[path] for path in after if "/paper/" not in path and "/paper_" not in path)

    # the HTML report (README: `snakemake --report results/report.html`) gathers the tables, figures and environment
    html_path = work / "results" / "report.html"
    report = _run(work, "--report", str(html_path))
    assert report.returncode == 0, report.stderr[-3000:]
    html = html_path.read_text(encoding="utf-8", errors="replace")
    tables = ("main.csv", "ablation.csv", "label_ratio.csv", "wilcoxon.csv", "headline.txt")
    environment = ("config.yaml", "software.csv", "walltime.csv")
    figures = ("qualitative.png", "nsb_schedule.png", "training_curves.png", "risk_confusion.png")
    for name in tables + environment + figures:
        assert name in html, name


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


def test_label_mode_reruns_the_export_only_when_it_changes(tmp_path):
    """preprocess.labels: binary (the default, set or not) keeps the raw export's params; arteries re-exports
    (and so retrains everything downstream) with labels 1-4 kept."""
    work = tmp_path / "work"
    cfg = {
        "dataset": {"name": "synthetic", "source": "synthetic", "nnunet_id": 501,
                    "synthetic": SYNTH | {"n_cases": 4, "shape_zyx": [8, 64, 64]}},
        "preprocess": PREPROCESS,
        "splits": SPLITS,
    }  # fmt: skip
    _write_config(work, cfg)
    raw = work / "results" / "nnunet" / "raw" / "Dataset501_synthetic"
    first = _run(work, str(raw.relative_to(work)))
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((raw / "dataset.json").read_text(encoding="utf-8"))["labels"] == {"background": 0, "calcium": 1}
    _write_config(work, cfg | {"preprocess": PREPROCESS | {"labels": "binary"}})
    same = _run(work, "-n", str(raw.relative_to(work)))
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr, same.stdout[-2000:]
    _write_config(work, cfg | {"preprocess": PREPROCESS | {"labels": "arteries"}})
    again = _run(work, str(raw.relative_to(work)))
    assert again.returncode == 0 and "nnunet_raw" in again.stdout + again.stderr, again.stderr[-3000:]
    labels = json.loads((raw / "dataset.json").read_text(encoding="utf-8"))["labels"]
    assert labels == {"background": 0, "LM": 1, "LAD": 2, "LCX": 3, "RCA": 4}


@pytest.mark.slow
def test_artery_demo_workflow_end_to_end(tmp_path):
    """preprocess.labels: arteries through the whole demo path: a 5-output model, artery masks and per-artery
    scores from predict, per-artery agreement from evaluate."""
    import pandas as pd
    import torch

    work = tmp_path / "work"
    _write_config(
        work,
        {
            "dataset": {"name": "synthetic", "source": "synthetic", "nnunet_id": 501, "synthetic": SYNTH},
            "preprocess": PREPROCESS | {"labels": "arteries"},
            "splits": SPLITS | {"folds": [0], "labeled_ratios": [0.5]},
            "training": TRAINING,
            "experiments": {"s2cac": {}},
            "predict": {"device": "cpu"},
            "evaluate": {"bootstrap": 200},
        },
    )
    proc = _run(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = "synthetic/s2cac/labeled50/fold0/seed0"
    ckpt = torch.load(work / "results" / "models" / run / "checkpoint_final.pth", weights_only=True)
    assert ckpt["network_kwargs"]["num_classes"] == 5
    scores = pd.read_csv(work / "results" / "predict" / run / "scores.csv")
    assert {"agatston_LM", "agatston_LAD", "agatston_LCX", "agatston_RCA", "n_vessels"} <= set(scores.columns)
    assert scores["n_vessels"].notna().all()
    ev = work / "results" / "evaluate" / run
    per_case = pd.read_csv(ev / "per_case.csv")
    assert {"agatston_LAD_pred", "agatston_LAD_ref", "n_vessels_pred", "n_vessels_ref"} <= set(per_case.columns)
    summary = json.loads((ev / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["per_artery"]) == {"LM", "LAD", "LCX", "RCA", "n_vessels"}
