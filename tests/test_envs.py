"""The conda env files pin exactly what requirements/lock.txt pins, and the lock pins torch/nnU-Net."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock():
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_the_key_versions():
    lock = _lock()
    assert lock["torch"] == "2.13.0"
    assert lock["nnunetv2"] == "2.8.1"
    assert lock["snakemake"].startswith("9.")
    for name in [
        "simpleitk",
        "numpy",
        "scipy",
        "pandas",
        "matplotlib",
        "seaborn",
        "connected-components-3d",
        "scikit-learn",
        "pydicom",
        "pytest",
        "ruff",
    ]:
        assert name in lock, name


def test_every_env_pin_equals_the_lock():
    lock = _lock()
    envs = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))
    assert {p.stem for p in envs} >= {"data", "torch", "analysis"}
    for path in envs:
        env = yaml.safe_load(path.read_text(encoding="utf-8"))
        deps = env["dependencies"]
        assert "python=3.11" in deps, path
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        assert pip, path
        for req in pip:
            name, version = req.split("==")
            key = re.sub(r"[-_.]+", "-", name).lower()
            assert lock.get(key) == version, f"{path.name}: {req} but the lock has {lock.get(key)}"


def test_env_files_are_up_to_date_with_the_lock():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "requirements" / "sync_envs.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_every_rule_env_exists():
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    used = set(re.findall(r'"\.\./envs/([\w-]+\.yaml)"', text))
    assert used, "rules name no conda env"
    for name in used:
        assert (ROOT / "workflow" / "envs" / name).is_file(), name
