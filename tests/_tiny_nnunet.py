"""A tiny nnU-Net v2 preprocessed dataset for the training tests (built once per test session).

Images are 8 x 48 x 48 uint8 volumes (spacing 3 x 0.5 x 0.5 mm) with a few bright blobs labelled 1 (or, in the
artery variant, 1-4: LM, LAD, LCX, RCA); negative cases have no labelled blobs. Every case also has one bright,
unlabelled square "distractor" (bone or aortic calcium in a real scan): the hard negatives that candidate-centred
sampling looks for. They are written as an nnU-Net raw dataset with ``rgb_to_0_1`` normalisation and run
through nnU-Net's own fingerprint, planning and preprocessing, in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from s2cac.envtools import temporary_environ

DATASET_ID = 987
DATASET_NAME = f"Dataset{DATASET_ID}_TinyCAC"
ARTERY_DATASET_ID = 988
ARTERY_DATASET_NAME = f"Dataset{ARTERY_DATASET_ID}_TinyArteries"
ARTERY_LABELS = {"background": 0, "LM": 1, "LAD": 2, "LCX": 3, "RCA": 4}
TWO_WINDOW_DATASET_ID = 989
TWO_WINDOW_DATASET_NAME = f"Dataset{TWO_WINDOW_DATASET_ID}_TinyTwoWindows"
#: the second channel's window in the two-window variant ([400, 3000] HU)
EXTRA_WINDOW = {"level": 1700.0, "width": 2600.0}
SHAPE = (8, 48, 48)
SPACING = (3.0, 0.5, 0.5)


def _case(rng: np.random.Generator, n_blobs: int, arteries: bool = False) -> tuple[np.ndarray, np.ndarray]:
    image = rng.normal(70, 12, SHAPE).clip(0, 255)
    label = np.zeros(SHAPE, np.uint8)
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    for _ in range(n_blobs):
        cz, cy, cx = rng.integers(1, SHAPE[0] - 1), rng.integers(6, SHAPE[1] - 6), rng.integers(6, SHAPE[2] - 6)
        r = rng.uniform(1.5, 3.0)
        blob = (((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r) & (np.abs(zz - cz) <= 1)
        image[blob] = rng.uniform(200, 250)
        label[blob] = 1
        if arteries:  # a function of the centre, not a draw: the images stay those of the binary dataset
            label[blob] = 1 + (cz * 7 + cy * 3 + cx) % 4
    return image.astype(np.uint8), label


def image_hu(image: np.ndarray) -> np.ndarray:
    """The HU a 0..255 image of the method's window (130/850) stands for (window bottom -295 HU)."""
    return np.rint(image.astype(np.float32) * 850 / 255 - 295).astype(np.int16)


def build_tiny_dataset(
    root: Path,
    n_positive: int = 10,
    n_negative: int = 3,
    seed: int = 0,
    arteries: bool = False,
    two_windows: bool = False,
) -> tuple[Path, dict]:
    """Write and preprocess the dataset under ``root``; returns (preprocessed dataset folder, split dict).

    ``arteries``: the same images with every blob labelled as one of the four arteries (1-4, see
    :data:`ARTERY_LABELS`), as ``s2cac nnunet-raw --labels arteries`` exports them. ``two_windows``: the same
    images plus a second channel, their HU through :data:`EXTRA_WINDOW`, as ``--extra-window`` exports them.
    """
    import SimpleITK as sitk

    from s2cac.hu import HUWindow, window_hu

    dataset_id, name = (ARTERY_DATASET_ID, ARTERY_DATASET_NAME) if arteries else (DATASET_ID, DATASET_NAME)
    if two_windows:
        dataset_id, name = TWO_WINDOW_DATASET_ID, TWO_WINDOW_DATASET_NAME
    raw = root / "raw" / name
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n_positive + n_negative):
        cid = f"case_{i:03d}"
        image, label = _case(rng, int(rng.integers(2, 5)) if i < n_positive else 0, arteries)
        drng = np.random.default_rng([seed, i, 1])  # own stream: the labelled blobs stay as they were
        z, y, x = int(drng.integers(1, SHAPE[0] - 1)), int(drng.integers(4, SHAPE[1] - 8)), int(drng.integers(4, 40))
        free = label[z, y : y + 4, x : x + 4] == 0
        image[z, y : y + 4, x : x + 4][free] = 240  # the window's 130 HU maps to 128
        files = [(image, raw / "imagesTr" / f"{cid}_0000.nii.gz"), (label, raw / "labelsTr" / f"{cid}.nii.gz")]
        if two_windows:
            high = window_hu(image_hu(image), HUWindow(**EXTRA_WINDOW))
            files.append((high, raw / "imagesTr" / f"{cid}_0001.nii.gz"))
        for arr, path in files:
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing(SPACING[::-1])
            sitk.WriteImage(img, str(path))
        ids.append(cid)
    info = {
        "channel_names": {"0": "rgb_to_0_1", "1": "rgb_to_0_1"} if two_windows else {"0": "rgb_to_0_1"},
        "labels": ARTERY_LABELS if arteries else {"background": 0, "calcium": 1},
        "numTraining": len(ids),
        "file_ending": ".nii.gz",
    }
    if two_windows:
        info["s2cac_extra_hu_windows"] = [EXTRA_WINDOW]
    (raw / "dataset.json").write_text(json.dumps(info))
    pre = root / "preprocessed"
    with temporary_environ(nnUNet_raw=raw.parent, nnUNet_preprocessed=pre, nnUNet_results=root / "results"):
        from nnunetv2.experiment_planning.plan_and_preprocess_api import (
            extract_fingerprints,
            plan_experiments,
            preprocess,
        )

        extract_fingerprints([dataset_id], num_processes=1, check_dataset_integrity=False, verbose=False)
        plan_experiments([dataset_id])
        preprocess([dataset_id], configurations=("3d_fullres",), num_processes=(1,), show_progress_bar=False)
    pos, neg = ids[:n_positive], ids[n_positive:]
    split = {"labeled": pos[:4], "unlabeled": pos[4:7], "negative": neg, "validation": pos[7:9], "test": pos[9:]}
    return pre / name, split


try:
    import pytest

    @pytest.fixture(scope="session")
    def tiny_dataset(tmp_path_factory) -> tuple[Path, dict]:
        """(preprocessed dataset folder, split) of the tiny dataset, built once per session."""
        return build_tiny_dataset(tmp_path_factory.mktemp("tiny_nnunet"))

    @pytest.fixture(scope="session")
    def tiny_artery_dataset(tmp_path_factory) -> tuple[Path, dict]:
        """(preprocessed dataset folder, split) of the tiny dataset with artery labels 1-4, built once per session."""
        return build_tiny_dataset(tmp_path_factory.mktemp("tiny_arteries"), arteries=True)

    @pytest.fixture(scope="session")
    def tiny_two_window_dataset(tmp_path_factory) -> tuple[Path, dict]:
        """(preprocessed dataset folder, split) of the tiny dataset with a second HU-window channel."""
        return build_tiny_dataset(tmp_path_factory.mktemp("tiny_two_windows"), two_windows=True)
except ImportError:  # pragma: no cover - used outside pytest
    pass


#: A method config small enough for CPU tests: 5 iterations per epoch, tiny network, 8x32x32 patches.
TEST_CONFIG = {
    "network": "tiny",
    "patch_size": [8, 32, 32],
    "epochs": 4,
    "iterations_per_epoch": 5,
    "val_iterations": 2,
    "consistency_ramp_step": 1,
    "consistency_ramp_length": 10,
    "nsb": {"a": 0.999, "b": 1.0, "tau": 2},
    "seed": 3,
}
