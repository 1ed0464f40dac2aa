"""A careful user's bad inputs, per command: each one exits with the documented code and a message naming the
file or option, writes no partial output and leaves every pre-existing file as it was.

Exit codes (s2cac.cli.EXIT_CODES): 0 done, 1 some cases failed, 2 bad usage or input, 130 interrupted.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from s2cac.cli import main

SPACING_XYZ = (0.5, 0.5, 3.0)
SHAPE = (8, 64, 64)


def _ct(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, -900, np.int16)
    hu[:, 8:-8, 8:-8] = rng.normal(40, 10, (SHAPE[0], SHAPE[1] - 16, SHAPE[2] - 16)).astype(np.int16)
    hu[3, 20:24, 20:24] = 500
    return hu


def _write(arr: np.ndarray, path: Path) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING_XYZ)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), path.name.endswith(".gz"))
    return path


def _cut(path: Path, fraction: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (temporary files included) with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(args: list, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def _check(tmp_path: Path, before: dict[str, bytes], new: set[str] = frozenset()) -> None:
    """Nothing changed under tmp_path except the expected ``new`` files (no partial or temporary file)."""
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k not in new} == before


# ---------------------------------------------------------------- s2cac score


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    mask = (_ct() >= 130).astype(np.uint8)
    return _write(_ct(), tmp_path / "ct.nii.gz"), _write(mask, tmp_path / "mask.nii.gz")


def _nan_image(path: Path) -> None:
    arr = _ct().astype(np.float32)
    arr[0, 0, :4] = np.nan
    _write(arr, path)


@pytest.mark.parametrize(
    "spoil, extra, message",
    [
        (lambda ct, m: _cut(ct), [], r"ct\.nii\.gz: cannot read image: truncated: the compressed stream ends"),
        (lambda ct, m: _cut(m, 0.9), [], r"mask\.nii\.gz: cannot read image: truncated"),
        (lambda ct, m: _nan_image(ct), [], r"ct\.nii\.gz: cannot read image: 4 NaN or infinite voxel"),
        (lambda ct, m: None, ["--threshold-hu", "nan"], r"--threshold-hu: expected a finite number, got 'nan'"),
        (lambda ct, m: None, ["--mass-calibration", "-0.8"], r"--mass-calibration: expected a number > 0"),
        (lambda ct, m: None, ["--slice-increment-mm", "0"], r"--slice-increment-mm: expected a number > 0"),
        (lambda ct, m: None, ["--min-area-mm2", "-1"], r"--min-area-mm2: expected a number >= 0"),
        (lambda ct, m: None, ["--out", "{ct}"], r"is the --image file: refusing to overwrite an input"),
        (lambda ct, m: None, ["--out", "{dir}"], r"is a folder; give a file name"),
    ],
)
def test_score_bad_inputs(pair, tmp_path: Path, capsys, spoil, extra, message) -> None:
    ct, mask = pair
    spoil(ct, mask)
    (tmp_path / "scores.csv").write_text("mine\n")  # a file of the user's beside the inputs
    before = _snapshot(tmp_path)
    extra = [a.format(ct=ct, dir=tmp_path) for a in extra]
    out = [] if "--out" in extra else ["--out", tmp_path / "new.csv"]
    code, err = _run(["score", "--image", ct, "--mask", mask, *out, *extra], capsys)
    assert code == 2
    assert re.search(message, err), err
    assert "Traceback" not in err
    _check(tmp_path, before)


def test_score_replaces_only_its_output_atomically(pair, tmp_path: Path, capsys) -> None:
    ct, mask = pair
    out = tmp_path / "s.csv"
    assert _run(["score", "--image", ct, "--mask", mask, "--out", out], capsys)[0] == 0
    first = out.read_text(encoding="utf-8")
    assert first.startswith("label,agatston") and not list(tmp_path.glob(".s.csv.tmp-*"))


# ---------------------------------------------------------------- s2cac check-cases


def _sheet(tmp_path: Path) -> Path:
    rows = ["case_id\timage\tlabel"]
    for i in range(2):
        _write(_ct(i), tmp_path / f"img{i}.nii.gz")
        _write((_ct(i) >= 130).astype(np.uint8), tmp_path / f"lab{i}.nii")
        rows.append(f"c{i}\timg{i}.nii.gz\tlab{i}.nii")
    sheet = tmp_path / "cases.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda d: _cut(d / "img1.nii.gz"), r"case c1: cannot read image .*img1\.nii\.gz: truncated"),
        (lambda d: _cut(d / "lab0.nii", 0.8), r"case c0: cannot read label .*lab0\.nii: truncated: holds"),
        (lambda d: (d / "cases.tsv").write_text(""), r"cases\.tsv: empty file; a case sheet needs a header line"),
        (lambda d: (d / "img0.nii.gz").unlink(), r"case c0: image file not found"),
    ],
)
def test_check_cases_bad_inputs(tmp_path: Path, capsys, spoil, message) -> None:
    sheet = _sheet(tmp_path)
    assert _run(["check-cases", sheet], capsys)[0] == 0
    spoil(tmp_path)
    before = _snapshot(tmp_path)
    code, err = _run(["check-cases", sheet], capsys)
    assert code == 2 and re.search(message, err), err
    _check(tmp_path, before)


# ---------------------------------------------------------------- s2cac predict / export-model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from s2cac.inference.model_io import write_model_folder
    from s2cac.inference.plans import make_dataset_json, make_plans
    from s2cac.nets import build_network

    torch.manual_seed(0)
    net = build_network("tiny", fg_prior=0.3)
    config = {"network": "tiny", "network_overrides": {"fg_prior": 0.3}, "use_score_head": True}
    out = tmp_path_factory.mktemp("model") / "tiny_model"
    plans = make_plans([8, 64, 64], (3.0, 0.5, 0.5))
    return write_model_folder(out, net.state_dict(), plans, make_dataset_json(), config)


@pytest.fixture(scope="module")
def package(model_dir: Path, tmp_path_factory) -> Path:
    from s2cac.inference.model_io import export_model

    return export_model(model_dir, tmp_path_factory.mktemp("pkg") / "tiny.zip")


def _flip_weights_byte(package: Path, out: Path) -> Path:
    data = bytearray(package.read_bytes())
    with zipfile.ZipFile(package) as zf:
        info = zf.getinfo("weights.pt")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # first data byte (stored member)
    data[start + info.file_size // 2] ^= 0x01
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    "case, message",
    [
        ("threshold_nan", r"--threshold-hu: expected a finite number, got 'nan'"),
        ("negative_calibration", r"--mass-calibration: expected a number > 0"),
        ("probability_one", r"--calcium-probability: expected a number between 0 and 1 \(exclusive\), got '1'"),
        ("probability_nan", r"--calcium-probability: expected a finite number, got 'nan'"),
        ("decision_component", r"--decision: invalid choice: 'component' \(choose from '?lesion'?, '?voxel'?\)"),
        ("device_gpu0", r"--device 'gpu0': use auto, cpu, cuda or cuda:N"),
        ("huge_patch", r"--patch-size 4000 4000 4000: .* far beyond any GPU's memory"),
        ("output_is_a_file", r"--output .*keep\.txt: exists and is not a folder"),
        ("flipped_byte", r"tiny_flipped\.zip: damaged package \(Bad CRC-32"),
        ("checkpoint_with_package", r"a checkpoint choice applies to model folders"),
        ("foreign_scores_csv", r"scores\.csv: exists but was not written by s2cac predict"),
        ("fold_folder", r"not a model folder, but it holds seed0: give one of them"),
    ],
)
def test_predict_bad_usage_exits_2_before_writing(
    case: str, message: str, model_dir: Path, package: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    scan = _write(_ct(), tmp_path / "scans" / "p1.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's notes")
    model, extra, output = model_dir, [], out
    if case == "threshold_nan":
        extra = ["--threshold-hu", "nan"]
    elif case == "negative_calibration":
        extra = ["--mass-calibration", "-1"]
    elif case in ("probability_one", "probability_nan"):
        extra = ["--calcium-probability", "1" if case == "probability_one" else "nan"]
    elif case == "decision_component":
        extra = ["--decision", "component"]
    elif case == "device_gpu0":
        extra = ["--device", "gpu0"]
    elif case == "huge_patch":
        extra = ["--patch-size", "4000", "4000", "4000"]
    elif case == "output_is_a_file":
        output = out / "keep.txt"
    elif case == "flipped_byte":
        model = _flip_weights_byte(package, tmp_path / "tiny_flipped.zip")
    elif case == "checkpoint_with_package":
        model, extra = package, ["--checkpoint", "final"]
    elif case == "foreign_scores_csv":
        (out / "scores.csv").write_text("patient,score\nx,1\n")
    elif case == "fold_folder":
        shutil.copytree(model_dir, tmp_path / "fold0" / "seed0")
        model = tmp_path / "fold0"
    before = _snapshot(tmp_path)
    code, err = _run(["predict", "--model", model, "--input", scan, "--output", output, *extra], capsys)
    assert code == 2, err
    assert re.search(message, err), err
    assert "Traceback" not in err and "weights_only=False" not in err
    _check(tmp_path, before)


def test_predict_truncated_and_nan_scans_fail_alone_and_scores_merge(model_dir: Path, tmp_path: Path, capsys) -> None:
    import csv

    scans = tmp_path / "scans"
    _write(_ct(1), scans / "good.nii.gz")
    _cut(_write(_ct(2), scans / "cut.nii.gz"))
    nan = _ct(3).astype(np.float32)
    nan[1, 1, 1] = np.inf
    _write(nan, scans / "inf.nii")
    out = tmp_path / "out"
    code, err = _run(["predict", "--model", model_dir, "--input", scans, "--output", out, "--device", "cpu"], capsys)
    assert code == 1 and "FAILED: cut, inf" in err

    def rows() -> dict[str, dict[str, str]]:
        with open(out / "scores.csv", newline="") as fh:
            return {r["case"]: r for r in csv.DictReader(fh)}

    first = rows()
    assert first["good"]["status"] == "ok"
    assert first["cut"]["status"] == "failed" and "truncated" in first["cut"]["error"]
    assert first["inf"]["status"] == "failed" and "1 NaN or infinite voxel" in first["inf"]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["good_cac.nii.gz", "qc", "scores.csv"]
    assert sorted(p.name for p in (out / "qc").iterdir()) == ["good.png"]
    # a second run into the same folder: earlier rows kept, the re-predicted case replaced (one row per case)
    more = tmp_path / "more"
    _write(_ct(2), more / "cut.nii.gz")  # the user copied the file again
    good_mask = (out / "good_cac.nii.gz").read_bytes()
    code, _ = _run(["predict", "--model", model_dir, "--input", more, "--output", out, "--device", "cpu"], capsys)
    assert code == 0
    second = rows()
    assert list(second) == ["good", "inf", "cut"]
    assert second["good"] == first["good"] and second["inf"] == first["inf"]
    assert second["cut"]["status"] == "ok" and (out / "cut_cac.nii.gz").is_file()
    assert (out / "good_cac.nii.gz").read_bytes() == good_mask


def test_predict_interrupted_exits_130_keeping_finished_cases(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    import s2cac.inference.batch as batch

    scans = tmp_path / "scans"
    for i in range(3):
        _write(_ct(i), scans / f"p{i}.nii.gz")
    real = batch.predict_case

    def interrupt_on_third(predictor, case, out_dir, options, *more, **named):
        if case.name == "p2":
            raise KeyboardInterrupt
        return real(predictor, case, out_dir, options, *more, **named)

    monkeypatch.setattr(batch, "predict_case", interrupt_on_third)
    out = tmp_path / "out"
    code, err = _run(["predict", "--model", model_dir, "--input", scans, "--output", out, "--no-qc"], capsys)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["p0_cac.nii.gz", "p1_cac.nii.gz", "scores.csv"]
    assert (out / "scores.csv").read_text(encoding="utf-8").count("\n") == 3  # header + the two finished cases


@pytest.mark.parametrize(
    "target, extra, message",
    [
        ("existing.zip", [], r"existing\.zip: already exists; choose a new name, or pass --overwrite"),
        ("{model}/checkpoint_best.pth", ["--overwrite"], r"checkpoint_best\.pth: is not an s2cac model package"),
        ("notes.txt", ["--overwrite"], r"notes\.txt: is not an s2cac model package; refusing to replace it"),
        ("afolder", [], r"afolder: is a folder; give the package's file name"),
    ],
)
def test_export_model_never_replaces_what_it_did_not_write(
    target: str, extra: list, message: str, model_dir: Path, package: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    from s2cac.inference.model_io import load_model

    model = shutil.copytree(model_dir, tmp_path / "model")
    shutil.copy(package, tmp_path / "existing.zip")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "afolder").mkdir()
    (tmp_path / "afolder" / "x.txt").write_text("mine")
    before = _snapshot(tmp_path)
    code, err = _run(["export-model", model, tmp_path / target.format(model=model), *extra], capsys)
    assert code == 2 and re.search(message, err), err
    _check(tmp_path, before)
    load_model(model)  # still loadable
    assert _run(["export-model", model, tmp_path / "existing.zip", "--overwrite"], capsys)[0] == 0
    load_model(tmp_path / "existing.zip")


# ---------------------------------------------------------------- s2cac import-weights


@pytest.fixture(scope="module")
def their_checkpoint(tmp_path_factory) -> Path:
    from s2cac.inference.import_weights import checkpoint_from_layout, save_checkpoint_bytes

    path = tmp_path_factory.mktemp("theirs") / "checkpoint_S2CAC.pth"
    path.write_bytes(save_checkpoint_bytes(checkpoint_from_layout(seed=1)))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("existing_dir", r"mydata: already exists; choose a new name, or pass --overwrite"),
        ("existing_dir_overwrite", r"mydata: is not an s2cac model folder \(or empty\); refusing to replace it"),
        ("existing_zip", r"model\.zip: already exists"),
        ("empty_checkpoint", r"empty\.pth: not a loadable torch checkpoint \(truncated or damaged\? empty file\)"),
        ("truncated_checkpoint", r"cut\.pth: not a loadable torch checkpoint \(truncated or damaged\?"),
    ],
)
def test_import_weights_bad_inputs(case: str, message: str, their_checkpoint: Path, tmp_path: Path, capsys) -> None:
    ckpt, extra = their_checkpoint, []
    out = tmp_path / "mydata"
    out.mkdir()
    (out / "sub").mkdir()
    (out / "sub" / "scan.nii.gz").write_bytes(b"precious")
    (tmp_path / "model.zip").write_bytes(b"not a package, but the user's")
    if case == "existing_dir_overwrite":
        extra = ["--overwrite"]
    elif case == "existing_zip":
        out = tmp_path / "model.zip"
    elif case == "empty_checkpoint":
        ckpt, out = tmp_path / "empty.pth", tmp_path / "new_model"
        ckpt.write_bytes(b"")
    elif case == "truncated_checkpoint":
        ckpt, out = tmp_path / "cut.pth", tmp_path / "new_model"
        ckpt.write_bytes(their_checkpoint.read_bytes()[:5000])
    before = _snapshot(tmp_path)
    code, err = _run(["import-weights", ckpt, out, *extra], capsys)
    assert code == 2 and re.search(message, err), err
    assert "Traceback" not in err
    _check(tmp_path, before)


# ---------------------------------------------------------------- checkpoints (s2cac train's resume)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("checkpoint_latest.pth", b"", r"checkpoint_latest\.pth: empty file .*delete it and rerun to start"),
        ("checkpoint_latest.pth", "cut", r"checkpoint_latest\.pth: truncated or damaged checkpoint"),
        ("checkpoint_final.pth", "cut", r"checkpoint_final\.pth: truncated .*Delete it and rerun to resume from"),
        ("checkpoint_final.pth", "pickle", r"not a safe checkpoint: .*it was refused and nothing was run"),
    ],
)
def test_damaged_training_checkpoints_named_with_the_way_out(tmp_path: Path, name, content, message) -> None:
    from s2cac.training.checkpoint import CheckpointError, load_safe

    buf = io.BytesIO()
    torch.save({"network_weights": {"w": torch.ones(300)}, "current_epoch": 3}, buf)
    good = buf.getvalue()
    (tmp_path / "checkpoint_latest.pth").write_bytes(good)
    if content == "cut":
        content = good[: len(good) // 2]
    elif content == "pickle":
        buf = io.BytesIO()
        torch.save({"network_weights": {}, "odd": gzip.GzipFile}, buf)  # a class: needs weights_only=False
        content = buf.getvalue()
    (tmp_path / name).write_bytes(content)
    before = _snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_safe(tmp_path / name)
    assert "weights_only=False" not in str(info.value)
    _check(tmp_path, before)


def test_train_cli_names_the_damaged_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "checkpoint_final.pth").write_bytes(b"PK\x03\x04 cut")
    split = tmp_path / "split.json"
    split.write_text('{"labeled": ["a"], "validation": ["b"]}')
    config = tmp_path / "method.yaml"
    config.write_text("network: tiny\n")
    before = _snapshot(tmp_path)
    args = ["train", "--preprocessed", tmp_path, "--split", split, "--config", config, "--output", out]
    code, err = _run(args, capsys)
    assert code == 2 and "checkpoint_final.pth: truncated or damaged checkpoint" in err, err
    assert "train again" in err and "Traceback" not in err
    _check(tmp_path, before)


@pytest.mark.parametrize(
    "split_text, config_text, message",
    [
        ('{"labeled": ["a"], "validation": [', "network: tiny\n", r"split\.json: not a valid split JSON"),
        (
            '{"labeled": ["a"], "validation": ["b"]}',
            "epochs: ten\n",
            r"method\.yaml: config\.epochs: expected an integer",
        ),
        ('{"labeled": ["a"], "validation": ["b"]}', "epochs: [1\n", r"method\.yaml: not valid YAML"),
    ],
)
def test_train_cli_bad_files(tmp_path: Path, capsys, split_text, config_text, message) -> None:
    split = tmp_path / "split.json"
    split.write_text(split_text)
    config = tmp_path / "method.yaml"
    config.write_text(config_text)
    before = _snapshot(tmp_path)
    args = ["train", "--preprocessed", tmp_path, "--split", split, "--config", config, "--output", tmp_path / "m"]
    code, err = _run(args, capsys)
    assert code == 2 and re.search(message, err), err
    _check(tmp_path, before)
