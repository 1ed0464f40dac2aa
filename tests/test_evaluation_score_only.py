"""Score-only evaluation (cases with a reference score but no label map): hand-computed agreement and CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from s2cac.cli import main
from s2cac.evaluation.score_only import compare_scores


def _inputs():
    cases = pd.DataFrame({"case_id": ["a", "b", "c", "d", "e", "f"], "agatston": ["0", "5", "50", "500", "7", "9"]})
    scores = pd.DataFrame(
        {
            "case": ["a", "b", "c", "d", "e"],
            "status": ["ok", "ok", "ok", "ok", "failed"],
            "agatston": [0.0, 8.0, 120.0, 450.0, float("nan")],
        }
    )
    return cases, scores


def test_compare_scores_by_hand():
    per_case, summary = compare_scores(*_inputs())
    assert list(per_case["case_id"]) == ["a", "b", "c", "d"]
    assert summary["n_missing"] == 2 and summary["missing"] == ["e", "f"]  # failed and absent predictions
    assert list(per_case["risk_ref"]) == ["0", "1-10", "11-100", ">400"]
    assert list(per_case["risk_pred"]) == ["0", "1-10", "101-400", ">400"]
    ag = summary["agreement"]["agatston"]
    assert ag["bias"] == pytest.approx((0 + 3 + 70 - 50) / 4)
    assert summary["risk"]["accuracy"] == pytest.approx(0.75)
    assert -1 <= ag["icc_a1"] <= 1 and ag["pearson_r"] > 0.9


def test_compare_scores_rejects_bad_numbers():
    cases, scores = _inputs()
    cases.loc[0, "agatston"] = "n/a"
    with pytest.raises(ValueError, match="case a, reference agatston: not a number"):
        compare_scores(cases, scores)
    with pytest.raises(ValueError, match="no 'agatston' column"):
        compare_scores(cases.drop(columns="agatston"), scores)


def test_evaluate_scores_cli(tmp_path, capsys):
    cases, scores = _inputs()
    cases.assign(image=[f"images/{c}.nii.gz" for c in cases["case_id"]], label="").to_csv(
        tmp_path / "cases.tsv", sep="\t", index=False
    )
    scores.to_csv(tmp_path / "scores.csv", index=False)
    args = ["evaluate-scores", "--cases", str(tmp_path / "cases.tsv"), "--scores", str(tmp_path / "scores.csv")]
    assert main([*args, "--out-dir", str(tmp_path / "out")]) == 1  # two cases without a prediction
    summary = json.loads((tmp_path / "out/summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases"] == 4 and summary["risk"]["accuracy"] == pytest.approx(0.75)
    assert "4 cases" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "none.csv"), "--out-dir", str(tmp_path / "o2")]) == 2
