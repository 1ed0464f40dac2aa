"""Per-artery Agatston in the evaluation (reference labelled 1 LM, 2 LAD, 3 LCX, 4 RCA), by hand."""

from __future__ import annotations

import numpy as np
import pytest
from _cases import write_volume

from s2cac.evaluation.arteries import artery_scores
from s2cac.evaluation.options import EvaluationOptions
from s2cac.evaluation.run import CaseFiles, evaluate_files


def _case():
    hu = np.full((3, 12, 12), 20, np.int16)
    hu[0, 0, 0] = -1000  # air somewhere: CT in HU
    ref = np.zeros(hu.shape, np.uint8)
    pred = np.zeros(hu.shape, np.uint8)
    hu[1, 1:4, 1:4] = 250  # LAD lesion: 9 mm^2 x weight 2 = 18
    ref[1, 1:4, 1:4] = 2
    pred[1, 1:4, 1:4] = 1
    hu[1, 6:8, 6:9] = 350  # RCA lesion: 6 mm^2 x weight 3 = 18, missed by the prediction
    ref[1, 6:8, 6:9] = 4
    hu[2, 9:11, 9:11] = 450  # false positive: 4 mm^2 x weight 4 = 16
    pred[2, 9:11, 9:11] = 1
    return hu, pred, ref


def test_artery_scores_by_hand():
    hu, pred, ref = _case()
    row = artery_scores(hu, pred, ref, (3.0, 1.0, 1.0))
    assert row == {
        "agatston_ref_lm": 0.0, "agatston_ref_lad": pytest.approx(18.0), "agatston_ref_lcx": 0.0,
        "agatston_ref_rca": pytest.approx(18.0), "agatston_pred_in_lm": 0.0,
        "agatston_pred_in_lad": pytest.approx(18.0), "agatston_pred_in_lcx": 0.0, "agatston_pred_in_rca": 0.0,
        "agatston_pred_outside": pytest.approx(16.0),
    }  # fmt: skip


def test_evaluate_files_adds_artery_columns_only_when_asked(tmp_path):
    hu, pred, ref = _case()
    for name, arr in (("ct", hu), ("ref", ref), ("pred", pred)):
        write_volume(tmp_path / f"{name}.nii.gz", arr, spacing=(1.0, 1.0, 3.0))
    case = CaseFiles("a", tmp_path / "ct.nii.gz", tmp_path / "ref.nii.gz", tmp_path / "pred.nii.gz")
    assert not any(c.startswith("agatston_ref_") for c in evaluate_files([case]).columns)
    row = evaluate_files([case], EvaluationOptions(per_artery=True)).iloc[0]
    assert row["agatston_ref"] == pytest.approx(36.0) and row["agatston_pred"] == pytest.approx(34.0)
    assert row["agatston_ref_lad"] + row["agatston_ref_rca"] == pytest.approx(row["agatston_ref"])
    parts = sum(row[f"agatston_pred_in_{a}"] for a in ("lm", "lad", "lcx", "rca")) + row["agatston_pred_outside"]
    assert parts == pytest.approx(row["agatston_pred"])


def test_evaluate_files_with_an_artery_model(tmp_path):
    """Predictions that label arteries (preprocess.labels: arteries): per-artery agreement next to the
    reference-split columns; the ``arteries`` option does not reach the Agatston scorer."""
    hu, pred, ref = _case()
    for name, arr in (("ct", hu), ("ref", ref), ("pred", pred)):
        write_volume(tmp_path / f"{name}.nii.gz", arr, spacing=(1.0, 1.0, 3.0))
    case = CaseFiles("a", tmp_path / "ct.nii.gz", tmp_path / "ref.nii.gz", tmp_path / "pred.nii.gz")
    arteries = {1: "LM", 2: "LAD", 3: "LCX", 4: "RCA"}
    row = evaluate_files([case], EvaluationOptions(per_artery=True, arteries=arteries)).iloc[0]
    assert row["agatston_LAD_ref"] == pytest.approx(row["agatston_ref_lad"])
    assert row["n_vessels_ref"] == 2 and "n_vessels_pred" in row


@pytest.mark.parametrize("bad", [{0: "LM"}, {"1": "LM"}, {1: 2}, ["LM"]])
def test_arteries_option_is_checked(bad):
    with pytest.raises(ValueError, match="arteries must map label values > 0 to artery names"):
        EvaluationOptions(arteries=bad)
