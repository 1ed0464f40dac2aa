"""Per-artery calcium: a model with artery labels (5 outputs) -> artery mask, per-artery scores, QC colours;
per-artery agreement in the evaluation; training on artery labels (tiny dataset with labels 1-4)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch
from _tiny_nnunet import TEST_CONFIG, tiny_artery_dataset  # noqa: F401 - fixture

from s2cac.evaluation.cohort import cohort_summary, evaluate_case
from s2cac.inference.batch import ARTERY_COLUMNS, artery_labels, predict_path
from s2cac.inference.model_io import write_model_folder
from s2cac.inference.plans import make_dataset_json, make_plans
from s2cac.nets import build_network
from s2cac.scoring import score_mask

SPACING = (3.0, 0.5, 0.5)
ARTERY_DATASET = {"background": 0, "LM": 1, "LAD": 2, "LCX": 3, "RCA": 4}


def _ct(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.arange(6), np.arange(64), np.arange(64), indexing="ij")
    hu = np.where(((y - 32) / 28.0) ** 2 + ((x - 32) / 30.0) ** 2 <= 1, 40.0, -1000.0)
    for cz, cy, cx in [(1, 20, 20), (2, 40, 24), (3, 24, 44), (4, 44, 44)]:
        hu[(z == cz) & ((y - cy) ** 2 + (x - cx) ** 2 <= 8)] = rng.uniform(300, 700)
    return np.rint(hu + rng.normal(0, 10, hu.shape)).astype(np.int16)


def test_artery_labels_by_name() -> None:
    assert artery_labels({"labels": ARTERY_DATASET}) == {1: "LM", 2: "LAD", 3: "LCX", 4: "RCA"}
    assert artery_labels({"labels": {"background": 0, "calcium": 1}}) == {}


def test_predict_with_an_artery_model(tmp_path: Path) -> None:
    torch.manual_seed(1)
    # fg_prior 0.8 split over 4 arteries: every head bias 0 (untrained network, calcium argmax somewhere)
    net = build_network("tiny", num_classes=5, fg_prior=0.8)
    config = {"network": "tiny", "network_overrides": {"num_classes": 5, "fg_prior": 0.8}}
    dataset = {**make_dataset_json(), "labels": ARTERY_DATASET}
    model = write_model_folder(tmp_path / "m", net.state_dict(), make_plans([4, 32, 32], SPACING), dataset, config)
    hu = _ct(0)
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(SPACING[::-1])
    sitk.WriteImage(img, str(tmp_path / "scan.nii.gz"))
    results = predict_path(model, tmp_path / "scan.nii.gz", tmp_path / "out")
    assert results[0].status == "ok", results[0].error
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "scan_cac.nii.gz")))
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4} and labels.any()  # artery labels, not just 0/1
    assert not (labels[hu < 130]).any()
    with open(tmp_path / "out" / "scores.csv", newline="") as f:
        row = next(csv.DictReader(f))
    per = score_mask(hu, labels, SPACING).per_label
    names = {1: "LM", 2: "LAD", 3: "LCX", 4: "RCA"}
    for v, a in names.items():
        expected = per[v].agatston if v in per else 0.0
        assert float(row[f"agatston_{a}"]) == float(f"{expected:.6g}")
    assert int(row["n_vessels"]) == sum(1 for v in names if v in per and per[v].agatston > 0)
    assert all(row[c] != "" for c in ARTERY_COLUMNS)
    assert (tmp_path / "out" / "qc" / "scan.png").stat().st_size > 0


def test_per_artery_agreement_in_evaluation() -> None:
    hu = _ct(1)
    ref = np.zeros(hu.shape, np.uint8)
    for v, (cz, cy, cx) in enumerate([(1, 20, 20), (2, 40, 24), (3, 24, 44), (4, 44, 44)], 1):
        ref[cz, cy - 2 : cy + 3, cx - 2 : cx + 3] = v
    pred = ref.copy()
    pred[pred == 4] = 0  # misses the RCA lesion
    pred[pred == 3] = 2  # calls the LCX lesion LAD
    arteries = {1: "LM", 2: "LAD", 3: "LCX", 4: "RCA"}
    row = evaluate_case(hu, pred, ref, SPACING, arteries=arteries)
    assert row["n_vessels_ref"] == 4 and row["n_vessels_pred"] == 2
    assert row["agatston_RCA_pred"] == 0 and row["agatston_RCA_ref"] > 0
    assert row["agatston_LM_pred"] == row["agatston_LM_ref"] > 0
    assert row["agatston_LAD_pred"] > row["agatston_LAD_ref"]
    assert row["dice_LM"] == 1.0 and row["dice_LCX"] == 0.0 and row["dice_RCA"] == 0.0
    assert row["dice_LAD"] == pytest.approx(2 * 25 / (50 + 25))  # its own lesion and the LCX's
    summary = cohort_summary(pd.DataFrame([row, evaluate_case(hu, ref, ref, SPACING, arteries=arteries)]), n_boot=20)
    per = summary["per_artery"]
    assert set(per) == {"LM", "LAD", "LCX", "RCA", "n_vessels"}
    assert per["n_vessels"]["exact"] == 0.5 and per["RCA"]["found"] == 0.5 and per["LM"]["found"] == 1.0
    assert per["LAD"]["dice_mean"] == pytest.approx((2 / 3 + 1) / 2) and per["LAD"]["dice_n"] == 2
    assert per["RCA"]["dice_mean"] == pytest.approx(0.5) and per["LM"]["dice_mean"] == 1.0


def test_raw_dataset_keeps_artery_labels(tmp_path: Path) -> None:
    from s2cac.data.nnunet_raw import write_raw_dataset

    hu = _ct(2)
    lab = np.zeros(hu.shape, np.uint8)
    lab[1, 18:23, 18:23], lab[4, 42:47, 42:47] = 1, 4
    for name, arr in (("img.nii.gz", hu), ("lab.nii.gz", lab)):
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing(SPACING[::-1])
        sitk.WriteImage(im, str(tmp_path / name))
    (tmp_path / "cases.tsv").write_text("case_id\timage\tlabel\nc0\timg.nii.gz\tlab.nii.gz\n")
    folder = write_raw_dataset(
        tmp_path / "cases.tsv", tmp_path / "raw", 6, "Art", label_mode="arteries", progress=False
    )
    assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["labels"] == ARTERY_DATASET
    kept = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "c0.nii.gz")))
    assert set(np.unique(kept)) == {0, 1, 4}


# ----- training on artery labels (the tiny dataset's blobs labelled 1-4) -----
def _artery_trainer(dataset, tmp_path, **changes):
    from s2cac.training.config import MethodConfig
    from s2cac.training.trainer import create_trainer

    pre, split = dataset
    tr = create_trainer(pre, split, MethodConfig.from_dict({**TEST_CONFIG, **changes}), tmp_path / "m", device="cpu")
    tr.initialize()
    tr.dataloader_train, tr.dataloader_val = tr.get_dataloaders()
    tr.on_train_epoch_start()
    return tr


def test_artery_voxels_are_calcium_for_loaders_and_prior(tiny_artery_dataset, tmp_path):  # noqa: F811
    tr = _artery_trainer(tiny_artery_dataset, tmp_path, patch_size=[4, 16, 16], augmentation="none",
                         labeled_foreground_fraction=0.6, labeled_candidate_fraction=0.4)  # fmt: skip
    assert tr.label_manager.num_segmentation_heads == 5 and tr.network.head.out_channels == 5
    arteries_only = 0  # patches with calcium of arteries 2-4 and none labelled 1
    for _ in range(10):
        batch = next(tr.dataloader_train)
        y = batch["labeled"]["target"][:, 0]
        assert torch.equal(batch["labeled"]["fg_seen"], (y > 0).flatten(1).sum(1).float())
        b = tr.compose(batch)
        calcium = (y > 0).flatten(1).any(1)
        assert (b["sup_weights"][:2][calcium] == 1).all()  # an artery patch is a calcium patch for NSB
        arteries_only += int(((y > 1).flatten(1).any(1) & ~(y == 1).flatten(1).any(1)).sum())
    assert arteries_only > 0
    loader = tr.dataloader_train.parts["labeled"].data_loader
    fg = total = 0
    for key in tiny_artery_dataset[1]["labeled"]:
        data, seg, _, _ = loader._data.load_case(key)
        seg = np.asarray(seg[:])
        coords = loader.candidate_locations(key, data, seg)
        bright = np.asarray(data[0]) >= tr.candidate_level
        assert (bright & (seg[0] > 1)).any()  # bright artery voxels exist ...
        assert len(coords) and (seg[tuple(coords.T)] <= 0).all()  # ... and are never hard negatives
        fg, total = fg + int((seg > 0).sum()), total + seg.size
    assert tr._measure_fg_prior() == pytest.approx(fg / total)
    bias = tr.network.head.bias.detach()  # init_fg_bias: the prior split over the four arteries
    assert torch.softmax(bias, 0)[1:].sum().item() == pytest.approx(fg / total, rel=1e-4)


def test_train_and_predict_arteries_on_the_tiny_dataset(tiny_artery_dataset, tmp_path):  # noqa: F811
    from s2cac.training.checkpoint import load_safe
    from s2cac.training.config import MethodConfig
    from s2cac.training.run import train_model

    pre, split = tiny_artery_dataset
    # supervised and Adam: a few iterations are enough for the student to find the bright blobs
    fast = {"optimizer": "adam", "learning_rate": 0.01, "epochs": 4, "iterations_per_epoch": 10, "use_teacher": False}
    summary = train_model(pre, split, MethodConfig.from_dict({**TEST_CONFIG, **fast}), tmp_path / "m", device="cpu")
    assert summary["status"] == "trained" and summary["best_ema_pseudo_dice"] > 0  # mean Dice over arteries
    ckpt = load_safe(tmp_path / "m" / "checkpoint_final.pth")
    assert ckpt["network_kwargs"]["num_classes"] == 5 and ckpt["network_weights"]["head.weight"].shape[0] == 5
    assert json.loads((tmp_path / "m" / "dataset.json").read_text(encoding="utf-8"))["labels"] == ARTERY_DATASET
    # a test case of the fixture, back in HU (the fixture's images are on the 130/850 window's 0..255 scale)
    raw = sorted((pre.parents[1] / "raw").glob("*/imagesTr"))[0] / f"{split['test'][0]}_0000.nii.gz"
    img = sitk.ReadImage(str(raw))
    hu = np.rint(sitk.GetArrayFromImage(img).astype(np.float32) * 850 / 255 - 295).astype(np.int16)
    scan = sitk.GetImageFromArray(hu)
    scan.CopyInformation(img)
    sitk.WriteImage(scan, str(tmp_path / "scan.nii.gz"))
    result = predict_path(tmp_path / "m", tmp_path / "scan.nii.gz", tmp_path / "out")[0]
    assert result.status == "ok", result.error
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "scan_cac.nii.gz")))
    assert labels.any() and labels.max() <= 4 and not labels[hu < 130].any()
    with open(tmp_path / "out" / "scores.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert all(row[c] != "" for c in ARTERY_COLUMNS)
    per = score_mask(hu, labels, SPACING).per_label
    for v, a in {1: "LM", 2: "LAD", 3: "LCX", 4: "RCA"}.items():
        assert float(row[f"agatston_{a}"]) == pytest.approx(per[v].agatston if v in per else 0.0, rel=1e-5)
    assert int(row["n_vessels"]) == sum(1 for v in per if per[v].agatston > 0) >= 1
