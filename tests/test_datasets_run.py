"""Dataset config -> fetch/verify -> import, through the library and through Snakemake; the case sheet schema;
the real-data starting config."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _cases import make_cohort
from _coca import chest, roi, square, write_calcium_xml, write_dicom_series
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from s2cac.datasets.coca import CocaError
from s2cac.datasets.run import fetch_dataset, import_dataset
from s2cac.training.config import MethodConfig, NSBConfig

ROOT = Path(__file__).resolve().parents[1]
CASES_SCHEMA = str(ROOT / "workflow" / "schemas" / "cases.schema.yaml")
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent))


def make_coca_cohort(root: Path, n_positive: int = 4, n_negative: int = 2) -> None:
    """A small gated COCA release: positives with one LAD ROI (on slice ImageIndex 2), negatives without XML."""
    gated = root / "Gated_release_final"
    for i in range(n_positive + n_negative):
        hu = chest(seed=10 + i)
        if i < n_positive:
            hu[2, 10:13, 10:13] = 200 + 100 * i
            write_calcium_xml(
                gated / "calcium_xml" / f"{100 + i}.xml",
                {
                    2: [
                        roi(
                            "Left Anterior Descending Artery",
                            square(10, 12, 10, 12),
                            area_cm2=0.0225,
                            max_hu=200 + 100 * i,
                        )
                    ]
                },
            )
        write_dicom_series(gated / "patient" / f"{100 + i}" / f"SE{i}", hu)


def test_case_sheet_schema_accepts_importer_sheets_and_rejects_bad_rows(tmp_path):
    make_coca_cohort(tmp_path / "coca", 2, 1)
    import_dataset({"name": "c", "source": "coca", "root": str(tmp_path / "coca")}, tmp_path / "out", progress=False)
    sheet = pd.read_csv(tmp_path / "out/cases.tsv", sep="\t", dtype=str, keep_default_na=False)
    validate(sheet, CASES_SCHEMA)
    assert list(sheet["negative"]) == ["no", "no", "yes"] and list(sheet["label"].str.len() > 0) == [True] * 3
    demo = pd.read_csv(make_cohort(tmp_path / "demo", n=3), sep="\t", dtype=str, keep_default_na=False)
    validate(demo, CASES_SCHEMA)
    score_only = demo.assign(label="", agatston="")
    with pytest.raises(WorkflowError, match="'agatston' is a required property|should be non-empty|is too short"):
        validate(score_only, CASES_SCHEMA)
    validate(score_only.assign(agatston="12.5"), CASES_SCHEMA)
    with pytest.raises(WorkflowError, match="does not match"):
        validate(demo.assign(case_id=["a", "../b", "c"]), CASES_SCHEMA)


def test_fetch_verifies_placed_coca_data_and_explains_what_is_missing(tmp_path):
    with pytest.raises(CocaError, match="(?s)Stanford AIMI.*Gated_release_final/calcium_xml/<id>.xml"):
        fetch_dataset({"name": "c", "source": "coca", "root": str(tmp_path / "empty")}, progress=False)
    make_coca_cohort(tmp_path / "coca", 1, 1)
    manifest = fetch_dataset({"name": "c", "source": "coca", "root": str(tmp_path / "coca")}, progress=False)
    assert manifest["layout"]["patients"] == 2 and manifest["layout"]["annotations"] == 1
    assert manifest["downloads"] == []


def _zip_tree(src: Path, archive: Path) -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_coca_workflow_downloads_imports_and_splits(tmp_path):
    make_coca_cohort(tmp_path / "release")
    sha = _zip_tree(tmp_path / "release", tmp_path / "COCA_gated.zip")
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    cfg = {
        "dataset": {
            "name": "coca",
            "source": "coca",
            "nnunet_id": 520,
            "download": [{"url": (tmp_path / "COCA_gated.zip").as_uri(), "sha256": sha}],
        },
        "preprocess": {},
        "splits": {"test_fraction": 0.25, "n_folds": 2, "folds": [0], "labeled_ratios": [1.0]},
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = [
        "results/data/coca/cases.tsv",
        "results/splits/coca/seed0/splits_final.json",
        "results/nnunet/raw/Dataset520_coca",
    ]
    first = _snakemake(work, *targets)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (work / "resources/coca/downloads/COCA_gated.zip").is_file()
    assert (work / "resources/coca/COCA_gated/Gated_release_final/calcium_xml/100.xml").is_file()
    sheet = pd.read_csv(work / "results/data/coca/cases.tsv", sep="\t")
    assert len(sheet) == 6 and (sheet["negative"] == "yes").sum() == 2
    assert np.allclose(sheet["agatston"], sheet["agatston_lad"]) and (sheet["agatston_lad"] > 0).sum() == 4
    summary = (work / "results/data/coca/import_log.txt").read_text(encoding="utf-8")
    assert "cases: 6" in summary and "negatives: 2" in summary and "roi_mismatches: 0" in summary
    raw = work / "results/nnunet/raw/Dataset520_coca"
    assert len(list((raw / "labelsTr").glob("*.nii.gz"))) == 6  # the imported cohort feeds nnU-Net unchanged
    for rule in ("fetch_dataset", "import_dataset"):
        assert (work / "logs" / rule / "coca.log").is_file()
        assert (work / "logs" / "benchmarks" / rule / "coca.tsv").is_file()
    second = _snakemake(work, *targets)
    assert "Nothing to be done" in second.stdout + second.stderr


def test_coca_workflow_without_data_says_what_to_fetch(tmp_path):
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    cfg = {"dataset": {"name": "coca", "source": "coca", "nnunet_id": 520}, "preprocess": {}, "splits": {}}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(work, "results/data/coca/cases.tsv")
    assert proc.returncode != 0
    log = (work / "logs/fetch_dataset/coca.log").read_text(encoding="utf-8")
    assert "Stanford AIMI" in log and "resources/coca/Gated_release_final/patient" in log


def _merged(*files: str) -> dict:
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    for f in files:
        update_config(cfg, yaml.safe_load((ROOT / "config" / f).read_text(encoding="utf-8")))
    return cfg


def test_real_config_sets_every_demo_shortcut_back_to_the_method():
    """The demo's CPU settings must not leak into a real cohort's run (the configs are merged key by key)."""
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    cfg = _merged("real.yaml", "coca.yaml")
    method = {f.name: f.default for f in dataclasses.fields(MethodConfig) if f.default is not dataclasses.MISSING}
    nsb = {f.name: f.default for f in dataclasses.fields(NSBConfig)}
    real = yaml.safe_load((ROOT / "config" / "real.yaml").read_text(encoding="utf-8"))["training"]["defaults"]
    for key, value in demo["training"]["defaults"].items():
        assert key in real, f"config/real.yaml must set training.defaults.{key} back (the demo sets it)"
        if key == "nsb":
            for k in value:
                assert real["nsb"][k] == nsb[k], f"training.defaults.nsb.{k}"
        elif key in method:
            assert real[key] == method[key], f"training.defaults.{key}: {real[key]!r}, method {method[key]!r}"
    assert cfg["preprocess"]["patch_size"] == [24, 256, 256]
    for key in demo["splits"]:
        assert key in yaml.safe_load((ROOT / "config" / "real.yaml").read_text(encoding="utf-8"))["splits"], (
            f"splits.{key}"
        )
    assert cfg["splits"]["n_folds"] == 5 and len(cfg["splits"]["labeled_ratios"]) > 1
    assert cfg["dataset"]["source"] == "coca" and cfg["dataset"]["name"] == "coca"
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)


@pytest.mark.parametrize(
    "dataset, needle",
    [
        ({"coca": {"part": "both"}}, "both"),
        ({"coca": {"parts": "gated"}}, "parts"),
        ({"download": [{"url": "ftp://host/x.zip"}]}, "ftp://host/x.zip"),
        ({"download": [{"url": "https://h/x.zip", "sha256": "abc"}]}, "abc"),
        ({"download": [{"url": "https://h/x.zip", "filename": "../x.zip"}]}, "../x.zip"),
        ({"source": "folder", "folder": {"images": "i"}}, "labels"),
        ({"source": "folder", "folder": {"images": "i", "labels": "l", "label_map": "orcscore"}}, "orcscore"),
    ],
)
def test_dataset_schema_rejects_bad_options(dataset, needle):
    cfg = {"dataset": {"name": "c", "source": "coca", "nnunet_id": 5, **dataset}, "preprocess": {}, "splits": {}}
    with pytest.raises(WorkflowError) as info:
        validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert needle in str(info.value)


def test_folder_workflow_imports_the_cohort(tmp_path):
    from _cases import write_volume

    for i in range(3):
        hu = chest((4, 16, 16), seed=i)
        lab = np.zeros(hu.shape, np.uint8)
        if i:
            hu[1, 4:7, 4:7], lab[1, 4:7, 4:7] = 300, i
        write_volume(tmp_path / "data/img" / f"p{i}_0000.nii.gz", hu)
        write_volume(tmp_path / "data/lab" / f"p{i}.nii.gz", lab)
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    folder = {"images": "img", "labels": "lab", "image_suffix": "_0000", "label_map": {1: 2, 2: 4}}
    cfg = {
        "dataset": {
            "name": "mine",
            "source": "folder",
            "nnunet_id": 9,
            "root": str(tmp_path / "data"),
            "folder": folder,
        },
        "preprocess": {},
        "splits": {},
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(work, "results/data/mine/cases.tsv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sheet = pd.read_csv(work / "results/data/mine/cases.tsv", sep="\t")
    assert list(sheet["case_id"]) == ["p0", "p1", "p2"] and list(sheet["negative"]) == ["yes", "no", "no"]
    assert sheet["agatston_lad"].tolist()[1] > 0 and sheet["agatston_rca"].tolist()[2] > 0
