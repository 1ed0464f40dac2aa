"""Workflow configuration: the schema rejects typos and bad values with a message naming the key."""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def _demo():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))


def test_demo_config_is_valid_and_defaults_are_filled():
    cfg = _demo()
    del cfg["splits"]["seeds"]
    validate(cfg, SCHEMA, set_default=True)
    assert cfg["splits"]["seeds"] == [0]


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda c: c["splits"].update(n_fold=3), "n_fold"),
        (lambda c: c.update(preproces={}), "preproces"),
        (lambda c: c["dataset"].update(source="web"), "web"),
        (lambda c: c["preprocess"].update(patch_size=[16, 64]), "patch_size"),
        (lambda c: c["splits"].update(labeled_ratios=[0.0]), "labeled_ratios"),
        (lambda c: c["dataset"].update(name="bad name"), "bad name"),
        (lambda c: c["preprocess"]["hu_window"].update(levle=100), "levle"),
        (lambda c: c["preprocess"].update(labels="artery"), "artery"),
    ],
)
def test_schema_rejects_bad_configs_naming_the_key(edit, needle):
    cfg = copy.deepcopy(_demo())
    edit(cfg)
    with pytest.raises(WorkflowError) as info:
        validate(cfg, SCHEMA, set_default=True)
    assert needle in str(info.value)


def _dry_run(tmp_path, cfg) -> subprocess.CompletedProcess:
    (tmp_path / "config").mkdir(parents=True)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake = shutil.which("snakemake", path=str(Path(sys.executable).parent))
    return subprocess.run(
        [snakemake, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "1"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_workflow_stops_on_a_config_typo(tmp_path):
    cfg = _demo()
    cfg["splits"]["n_fold"] = 3
    proc = _dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "'n_fold' was unexpected" in proc.stdout + proc.stderr


def test_fold_outside_n_folds_is_rejected(tmp_path):
    cfg = _demo()
    cfg["splits"]["folds"] = [0, 7]
    proc = _dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "splits.folds has fold 7" in proc.stdout + proc.stderr


def test_experiment_typo_and_unknown_run_are_rejected(tmp_path):
    cfg = _demo()
    cfg["experiments"]["s2cac"] = {"nsb": {"tua": 3}}
    proc = _dry_run(tmp_path / "a", cfg)
    assert proc.returncode != 0
    assert "experiments.s2cac" in proc.stdout + proc.stderr and "tua" in proc.stdout + proc.stderr
    cfg = _demo()
    cfg["training"]["run"] = ["s2cca"]
    proc = _dry_run(tmp_path / "b", cfg)
    assert proc.returncode != 0
    assert "training.run names 's2cca'" in proc.stdout + proc.stderr


def test_training_defaults_type_and_typo_are_blamed_on_training_defaults(tmp_path):
    from s2cac.training.config_check import check_workflow_config

    cfg = _demo()
    cfg["training"]["defaults"]["epochs"] = "ten"
    proc = _dry_run(tmp_path / "a", cfg)
    assert proc.returncode != 0
    assert "training.defaults.epochs: expected an integer, got 'ten'" in proc.stdout + proc.stderr
    assert "TypeError" not in proc.stdout + proc.stderr
    cfg = _demo()
    cfg["training"]["defaults"]["epocs"] = 3
    with pytest.raises(ValueError, match=r"^training\.defaults\.epocs: unknown method config key"):
        check_workflow_config(cfg)
    cfg = _demo()
    cfg["experiments"]["s2cac"] = {"nsb": {"a": "high"}}
    with pytest.raises(ValueError, match=r"^experiments\.s2cac\.nsb\.a: expected a number, got 'high'"):
        check_workflow_config(cfg)


def test_dry_run_checks_the_case_sheet(tmp_path):
    (tmp_path / "data").mkdir()
    sheet = tmp_path / "data" / "cases.tsv"
    sheet.write_text("case_id\timage\tlabel\nc0\tmissing.nii.gz\tlab.nii.gz\n")
    cfg = _demo()
    cfg["dataset"] = {"name": "mine", "source": "case_sheet", "nnunet_id": 77, "case_sheet": str(sheet)}
    proc = _dry_run(tmp_path / "w", cfg)
    assert proc.returncode != 0
    assert "dataset.case_sheet: case c0: image file not found" in proc.stdout + proc.stderr


def test_rerun_policy_code_is_versioned_not_an_input():
    """Editing package code re-runs nothing by itself: no rule declares s2cac sources as input, and every rule
    holds its stage's result version (s2cac/stages.py) in its params, bumped when results change."""
    import re

    from s2cac.stages import STAGE_VERSIONS

    rules = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        rule_body = r"^\s*rule (\w+):\n((?:(?!\s*rule \w+:)\s{4,}.*\n|\n)+)"
        for name, body in re.findall(rule_body, smk.read_text(encoding="utf-8"), re.M):
            rules[name] = body
    assert set(rules) == set(STAGE_VERSIONS)
    for name, body in rules.items():
        assert f'version=STAGE_VERSIONS["{name}"]' in body, name
    workflow_text = (ROOT / "Snakefile").read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "workflow" / "rules").glob("*.smk")
    )
    assert "package_code" not in workflow_text and 'rglob("*.py")' not in workflow_text


def test_rules_log_and_time_under_logs():
    """Each rule's log is logs/<rule>/..., its job timing logs/benchmarks/<rule>/... (git-ignored, beside the
    logs); benchmarks/ holds benchmark code only, and .gitignore hides nothing there."""
    import re

    rule_body = r"^\s*rule (\w+):\n((?:(?!\s*rule \w+:)\s{4,}.*\n|\n)+)"
    found = 0
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for name, body in re.findall(rule_body, smk.read_text(encoding="utf-8"), re.M):
            log = re.search(r"^\s+log:\n\s+f?\"([^\"]+)\"", body, re.M)
            timing = re.search(r"^\s+benchmark:\n\s+f?\"([^\"]+)\"", body, re.M)
            assert log and log.group(1).startswith(f"logs/{name}/"), (name, log and log.group(1))
            assert timing and timing.group(1).startswith(f"logs/benchmarks/{name}/"), (name, timing and timing.group(1))
            found += 1
    assert found >= 10
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert not [line for line in ignored if line.lstrip("/").startswith("benchmarks")], ignored


def test_schema_defaults_are_the_library_defaults():
    """One source per parameter: where the config schema fills in a default, it is the library's own (the HU
    window, predict's options); a change to one without the other fails here."""
    from s2cac.hu import HUWindow
    from s2cac.inference.batch import PredictOptions

    props = yaml.safe_load(Path(SCHEMA).read_text(encoding="utf-8"))["properties"]
    window = props["preprocess"]["properties"]["hu_window"]
    assert window["default"] == {"level": HUWindow().level, "width": HUWindow().width}
    assert {k: v["default"] for k, v in window["properties"].items()} == window["default"]
    predict = {k: v["default"] for k, v in props["predict"]["properties"].items() if k != "checkpoint"}
    library = PredictOptions()
    assert predict == {k: getattr(library, k) for k in predict}
