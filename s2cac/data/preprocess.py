"""Run nnU-Net v2's own fingerprint extraction, planning and preprocessing for one raw dataset.

nnU-Net reads its folders from the ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` environment
variables when it is first imported. To give every job its own folders (never global ones), the nnU-Net
steps run in a child Python process (:mod:`s2cac.data._nnunet_job`) whose environment names this call's
folders. The result is moved into place in one rename, so a failed run leaves no half-written dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from s2cac.atomic import atomic_dir
from s2cac.nnunet import CONFIGURATION, PLANS_IDENTIFIER


def _check_triplet(name: str, value: Sequence[float] | None, kind: type) -> list | None:
    if value is None:
        return None
    vals = list(value)
    if len(vals) != 3 or not all(float(v) > 0 for v in vals):
        raise ValueError(f"{name} must be three positive numbers (z, y, x), got {value!r}")
    return [kind(v) for v in vals]


def run_preprocessing(
    raw_dataset: str | Path,
    preprocessed_root: str | Path,
    *,
    target_spacing_zyx: Sequence[float] | None = None,
    patch_size_zyx: Sequence[int] | None = None,
    num_processes: int = 1,
    log: str | Path | None = None,
) -> Path:
    """Fingerprint, plan (``3d_fullres`` only) and preprocess ``raw_dataset`` with nnU-Net v2.

    Args:
        raw_dataset: the raw dataset folder ``.../DatasetXXX_name`` (imagesTr, labelsTr, dataset.json).
        preprocessed_root: the folder that will hold ``DatasetXXX_name`` afterwards.
        target_spacing_zyx: overrides nnU-Net's target spacing (mm); None keeps nnU-Net's choice.
        patch_size_zyx: overrides nnU-Net's patch size (voxels); None keeps nnU-Net's choice.
        num_processes: worker processes for nnU-Net (the rule's ``threads``).
        log: file that receives nnU-Net's output; None passes it through.

    Returns:
        ``preprocessed_root/DatasetXXX_name``.
    """
    raw_dataset = Path(raw_dataset).resolve()
    name = raw_dataset.name
    if not (raw_dataset / "dataset.json").is_file():
        raise FileNotFoundError(f"{raw_dataset}: no dataset.json; is this an nnU-Net raw dataset folder?")
    if not name.startswith("Dataset") or not name[7:10].isdigit():
        raise ValueError(f"{raw_dataset}: folder must be named DatasetXXX_name")
    job = {
        "dataset_id": int(name[7:10]),
        "target_spacing": _check_triplet("target_spacing", target_spacing_zyx, float),
        "patch_size": _check_triplet("patch_size", patch_size_zyx, int),
        "num_processes": max(1, int(num_processes)),
        "configuration": CONFIGURATION,
        "plans_identifier": PLANS_IDENTIFIER,
    }
    final = Path(preprocessed_root) / name
    with atomic_dir(final) as tmp_dataset, tempfile.TemporaryDirectory(prefix="s2cac-nnunet-") as scratch:
        # nnU-Net writes to nnUNet_preprocessed/<name>; point it at a scratch root, then move the result.
        pre_root = Path(scratch) / "preprocessed"
        env = dict(os.environ)
        env.update(
            nnUNet_raw=str(raw_dataset.parent),
            nnUNet_preprocessed=str(pre_root),
            nnUNet_results=str(Path(scratch) / "results"),
            nnUNet_n_proc_DA=str(job["num_processes"]),
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        cmd = [sys.executable, "-m", "s2cac.data._nnunet_job", json.dumps(job)]
        out = open(log, "a") if log else None  # noqa: SIM115 - closed below
        try:
            proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None, check=False)
        finally:
            if out:
                out.close()
        if proc.returncode != 0:
            where = f"; see {log}" if log else ""
            raise RuntimeError(f"nnU-Net preprocessing of {raw_dataset} failed (exit {proc.returncode}){where}")
        produced = pre_root / name
        for item in produced.iterdir():
            os.replace(item, tmp_dataset / item.name)
    return final


def load_plans(preprocessed_dataset: str | Path) -> dict:
    """Read ``nnUNetPlans.json`` of a preprocessed dataset."""
    path = Path(preprocessed_dataset) / f"{PLANS_IDENTIFIER}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no nnU-Net plans; run the preprocess step first")
    return json.loads(path.read_text())
