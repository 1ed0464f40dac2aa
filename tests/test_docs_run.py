"""The docs' command lines run, as written, on tiny inputs (tests/test_docs.py only checks that the CLI parses them).

Every line of a fenced block in README.md, docs/*.md and */README.md that starts with ``s2cac`` is either run here
(each of its synopsis variants, see ``_doc_commands.variants``) in a working directory holding tiny stand-ins for
the files it names, or listed in ``NOT_RUN`` with the reason. Placeholders (``MODEL``, ``DIR``, ``CF``...) are
given a value by the option they follow (``PLACEHOLDERS``); ``results/models/.../seed0`` is the model the line
before it uses; ``--device cuda`` runs on the CPU when the machine has no GPU. Each command must exit 0 and write
what the docs say it writes; commands that name another's output (``predict`` then ``evaluate``, ``export-model``
then ``predict --model s2cac_model.zip``) run in the docs' order in one directory, so the documented commands
connect. The inference Python snippet (docs/inference.md) runs too.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import SimpleITK as sitk
from _cases import make_cohort
from _coca import write_dicom_series
from _doc_commands import DocCommand, doc_commands, variants
from _tiny_nnunet import tiny_dataset  # noqa: F401 - fixture (session-scoped, shared with the training tests)

from s2cac.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("*/README.md"))]
FENCED = [c for doc in DOCS for c in doc_commands(doc, ROOT) if c.program == "s2cac" and c.fenced]
SYNTH_MODEL = "results/models/synthetic/s2cac/labeled50/fold0/seed0"

#: fenced command (its start) -> why it is not run here
NOT_RUN = {
    "s2cac synth --out results/data/synthetic --seed 2025": "the full demo cohort (24 cases of 32 x 192 x 192, "
    "about 100 s on one core); the `--config synth.yaml --n-cases 8` line beside it runs",
}
#: (option, placeholder) -> value in the test's working directory
PLACEHOLDERS = {
    ("--model", "MODEL"): SYNTH_MODEL,
    ("--input", "PATH"): "scans/",
    ("--output", "DIR"): "out/",
    ("--patch-size", "Z"): "8",
    ("--patch-size", "Y"): "32",
    ("--patch-size", "X"): "32",
    ("--mass-calibration", "CF"): "0.8",
    ("--checkpoint", "FILE"): "checkpoint_final.pth",
    ("--image", "IMAGE"): "images/case01.nii.gz",
    ("--mask", "MASK"): "labels/case01.nii.gz",
    ("--slice-increment-mm", "MM"): "3",
    ("--pred", "DIR"): "out/",
    ("--out-dir", "DIR"): "eval/",
    ("--images", "DIR"): "images/",
    ("--ref", "DIR"): "labels/",
    ("--out", "DIR"): "synth_out/",
}
#: what each subcommand must have written (paths relative to the value of the option named), beyond exit code 0
WRITES = {
    "predict": ("--output", ["scores.csv"]),
    "evaluate": ("--out-dir", ["per_case.csv", "summary.json"]),
    "evaluate-scores": ("--out-dir", ["per_case.csv", "summary.json"]),
    "synth": ("--out", ["cases.tsv"]),
}


def _gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _argv(variant: list[str]) -> list[str]:
    """One synopsis variant with its placeholders given values (see the module docstring)."""
    out, option = [], None
    for tok in variant[1:]:
        if tok.startswith("-"):
            option = tok
        elif (option, tok) in PLACEHOLDERS:
            tok = PLACEHOLDERS[(option, tok)]
        elif tok.startswith("cuda") and option == "--device" and not _gpu():
            tok = "cpu"
        elif tok.startswith("results/models/.../"):  # the part left out: that of the model the line before uses
            rest = tok.removeprefix("results/models/.../")
            first = "/" + rest.split("/")[0]
            tok = f"{SYNTH_MODEL[: SYNTH_MODEL.rfind(first)] if first in SYNTH_MODEL else 'results/models'}/{rest}"
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*", tok):
            raise AssertionError(f"placeholder {tok} after {option} has no value: add it to PLACEHOLDERS")
        out.append(tok)
    return out


def _run(argv: list[str], capsys) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    err = captured.err + captured.out
    assert code == 0, f"s2cac {' '.join(argv)}: exit {code}\n{err[-3000:]}"
    sub = argv[0]
    if sub in WRITES:
        option, files = WRITES[sub]
        folder = Path(argv[argv.index(option) + 1])
        missing = [f for f in files if not (folder / f).is_file()]
        assert not missing, f"s2cac {' '.join(argv)}: wrote no {missing} in {folder}"
    return err


def _not_run(command: DocCommand) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.text.startswith(start)), None)


def _needs_training_or_import(command: DocCommand) -> bool:
    return command.text.split()[1] in ("train", "import-weights")


# ---------------------------------------------------------------- the tiny world the docs' paths point into


def _tiny_model(out: Path) -> Path:
    import torch

    from s2cac.inference.model_io import write_model_folder
    from s2cac.inference.plans import make_dataset_json, make_plans
    from s2cac.nets import build_network

    torch.manual_seed(0)
    net = build_network("tiny", fg_prior=0.3)
    config = {"network": "tiny", "network_overrides": {"fg_prior": 0.3}, "use_score_head": True}
    write_model_folder(out, net.state_dict(), make_plans([8, 32, 32], (3.0, 0.7, 0.7)), make_dataset_json(), config)
    shutil.copy(out / "checkpoint_best.pth", out / "checkpoint_final.pth")  # --checkpoint best|final|FILE
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("model") / "seed0")


@pytest.fixture
def world(tmp_path: Path, model: Path, monkeypatch) -> Path:
    """A working directory with the files the docs' inference and scoring commands name, as tiny stand-ins."""
    sheet = make_cohort(tmp_path, n=3)  # images/, labels/, cases.tsv: case00 (no calcium), case01, case02
    shutil.copytree(tmp_path / "images", tmp_path / "scans")
    for cid in ("case01", "case02"):
        hu = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "images" / f"{cid}.nii.gz")))
        write_dicom_series(tmp_path / "dicom_series_folders" / cid, hu)
    for path in (SYNTH_MODEL, "results/models/coca/s2cac/labeled100/fold0/seed0"):
        shutil.copytree(model, tmp_path / path)
    nongated = tmp_path / "results" / "data" / "coca_nongated"  # score-only cases: an empty label, a reference
    shutil.copytree(tmp_path / "images", nongated / "images")
    rows = ["case_id\timage\tlabel\tagatston"] + [
        f"{c}\timages/{c}.nii.gz\t\t{a}" for c, a in (("case01", 30), ("case02", 0))
    ]
    (nongated / "cases.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "synth.yaml").write_text("shape_zyx: [8, 48, 48]\n")
    assert sheet == tmp_path / "cases.tsv"
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- tests


def test_every_fenced_command_is_run_or_says_why_not():
    runs = [c for c in FENCED if not _not_run(c)]
    assert len(runs) >= 10, [c.text for c in FENCED]
    for start in NOT_RUN:  # no stale entry
        assert any(c.text.startswith(start) for c in FENCED), (
            f"NOT_RUN names a command the docs no longer have: {start}"
        )
    for c in runs:  # every placeholder has a value
        for variant in variants(c.text):
            _argv(variant)


def test_placeholder_without_value_is_caught():
    with pytest.raises(AssertionError, match="placeholder NEW after --frob has no value"):
        _argv(["s2cac", "predict", "--frob", "NEW"])
    # "..." is the left-out part of the model path: a wrong folder named after it stays wrong
    assert _argv(["s2cac", "export-model", "results/models/.../seed0", "m.zip"])[1] == SYNTH_MODEL
    assert _argv(["s2cac", "export-model", "results/models/.../fold0", "m.zip"])[1] == SYNTH_MODEL.rsplit("/", 1)[0]


@pytest.mark.slow
def test_documented_inference_and_scoring_commands_run_in_order(world: Path, capsys):
    """README's and docs/'s predict, export-model, predict from the package (DICOM series), evaluate,
    evaluate-scores, score and synth lines, in the docs' order, in one directory."""
    ran = []
    for command in FENCED:
        if _not_run(command) or _needs_training_or_import(command):
            continue
        for variant in variants(command.text):
            argv = _argv(variant)
            _run(argv, capsys)
            ran.append(argv[0])
    print("ran:", ran)
    assert {"predict", "export-model", "evaluate", "evaluate-scores", "score", "synth"} <= set(ran), ran
    # the documented predict -> evaluate connection: evaluate found every case's predicted mask
    with open(world / "eval" / "per_case.csv", newline="") as fh:
        evaluated = {row["case_id"]: row for row in csv.DictReader(fh)}
    assert sorted(evaluated) == ["case00", "case01", "case02"]
    assert all(row["agatston_pred"] not in ("", "nan", "NaN") for row in evaluated.values()), evaluated
    # the package predicted the DICOM series folders (README's third line)
    assert {"case01_cac.nii.gz", "case02_cac.nii.gz"} <= {p.name for p in (world / "out").iterdir()}
    assert (world / "s2cac_model.zip").is_file()


def test_inference_python_snippet_runs(world: Path):
    snippet = re.search(
        r"^```python\n(.*?)^```", (ROOT / "docs" / "inference.md").read_text(encoding="utf-8"), re.M | re.S
    )
    assert snippet and "predict_path" in snippet.group(1)
    namespace: dict = {}
    exec(compile(ast.parse(snippet.group(1)), "docs/inference.md", "exec"), namespace)  # noqa: S102
    assert len(namespace["results"]) == 3
    assert {"case00_cac.nii.gz", "scores.csv", "qc"} <= {p.name for p in (world / "out").iterdir()}


@pytest.mark.slow
def test_documented_import_weights_command_runs(tmp_path: Path, capsys, monkeypatch):
    from s2cac.inference.import_weights import checkpoint_from_layout, save_checkpoint_bytes
    from s2cac.inference.model_io import load_model

    (command,) = [c for c in FENCED if c.text.split()[1] == "import-weights"]
    (tmp_path / "checkpoint_S2CAC.pth").write_bytes(save_checkpoint_bytes(checkpoint_from_layout(seed=1)))
    monkeypatch.chdir(tmp_path)
    (variant,) = variants(command.text)
    argv = _argv(variant)
    _run(argv, capsys)
    assert load_model(tmp_path / argv[-1]).network_spec["preset"] == "paper"


@pytest.mark.slow
def test_documented_train_command_runs(tiny_dataset, tmp_path: Path, capsys, monkeypatch):  # noqa: F811
    """docs/training.md's `s2cac train` line on the tiny nnU-Net dataset placed where the workflow writes the
    demo's, with the repository's config/config.yaml and an overrides.yaml that makes it one short epoch."""
    from s2cac.inference.model_io import load_model

    (command,) = [c for c in FENCED if c.text.split()[1] == "train"]
    pre, split = tiny_dataset
    work = tmp_path / "work"
    (work / "results" / "nnunet" / "preprocessed").mkdir(parents=True)
    os.symlink(pre, work / "results" / "nnunet" / "preprocessed" / "Dataset501_synthetic")
    split_file = work / "results" / "splits" / "synthetic" / "seed0" / "fold0" / "labeled50.json"
    split_file.parent.mkdir(parents=True)
    split_file.write_text(json.dumps(split))
    (work / "config").symlink_to(ROOT / "config")
    (work / "overrides.yaml").write_text(
        "patch_size: [8, 32, 32]\nepochs: 1\niterations_per_epoch: 2\nval_iterations: 1\n"
    )
    monkeypatch.chdir(work)
    for variant in variants(command.text):  # --device auto|cpu|cuda: the second and third find the model done
        _run(_argv(variant), capsys)
    assert (work / SYNTH_MODEL / "checkpoint_final.pth").is_file()
    assert load_model(work / SYNTH_MODEL).network_spec["preset"] == "tiny"
