"""Per-artery calcium: a model with artery labels (5 outputs) -> artery mask, per-artery scores, QC colours;
per-artery agreement in the evaluation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch

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
    net = build_network("tiny", num_classes=5, fg_prior=0.5)
    config = {"network": "tiny", "network_overrides": {"num_classes": 5, "fg_prior": 0.5}}
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
    summary = cohort_summary(pd.DataFrame([row, evaluate_case(hu, ref, ref, SPACING, arteries=arteries)]), n_boot=20)
    per = summary["per_artery"]
    assert set(per) == {"LM", "LAD", "LCX", "RCA", "n_vessels"}
    assert per["n_vessels"]["exact"] == 0.5 and per["RCA"]["found"] == 0.5 and per["LM"]["found"] == 1.0


def test_raw_dataset_keeps_artery_labels(tmp_path: Path) -> None:
    import json

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
    assert json.loads((folder / "dataset.json").read_text())["labels"] == ARTERY_DATASET
    kept = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "c0.nii.gz")))
    assert set(np.unique(kept)) == {0, 1, 4}
