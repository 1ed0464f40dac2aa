"""Score-only evaluation: predicted Agatston scores vs reference scores of cases without a label map (e.g. the
COCA non-gated part), at the level of the score (ICC, Bland-Altman, correlations) and of the risk category
(confusion matrix, accuracy, linearly weighted kappa).

Inputs: a case sheet with ``case_id`` and ``agatston`` (the reference total), and the ``scores.csv`` of
``s2cac predict`` (columns ``case``, ``status``, ``agatston``). Reference per-artery scores are reported as they
are; the prediction has no arteries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s2cac.atomic import atomic_write_text
from s2cac.evaluation.run import json_safe
from s2cac.evaluation.stats import bland_altman, category_agreement, correlations, icc_a1
from s2cac.scoring import RISK_BOUNDS, risk_category, risk_category_names


def _number(value: object, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: not a number: {value!r}") from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{where}: expected a score >= 0, got {value!r}")
    return out


def compare_scores(
    cases: pd.DataFrame, predicted: pd.DataFrame, *, risk_bounds: tuple[float, ...] = RISK_BOUNDS
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-case table and summary of predicted vs reference Agatston.

    Args:
        cases: case sheet rows (``case_id``, ``agatston``).
        predicted: ``s2cac predict``'s scores (``case``, ``agatston``, optional ``status``).

    Returns:
        (per-case table with ``agatston_ref``, ``agatston_pred``, ``risk_ref``, ``risk_pred``; summary with
        ``n_cases``, ``n_missing`` (no or failed prediction, listed in ``missing``), ``agreement`` and ``risk``).
    """
    if "agatston" not in cases.columns:
        raise ValueError("case sheet has no 'agatston' column (the reference score)")
    for col in ("case", "agatston"):
        if col not in predicted.columns:
            raise ValueError(f"scores table has no {col!r} column; expected s2cac predict's scores.csv")
    ok = predicted
    if "status" in predicted.columns:
        ok = predicted[predicted["status"].astype(str) == "ok"]
    pred = {str(c): a for c, a in zip(ok["case"], ok["agatston"], strict=True)}
    rows, missing = [], []
    for cid, ref in zip(cases["case_id"].astype(str), cases["agatston"], strict=True):
        if cid not in pred:
            missing.append(cid)
            continue
        r = _number(ref, f"case {cid}, reference agatston")
        p = _number(pred[cid], f"case {cid}, predicted agatston")
        rows.append(
            {
                "case_id": cid,
                "agatston_ref": r,
                "agatston_pred": p,
                "risk_ref": risk_category(r, risk_bounds),
                "risk_pred": risk_category(p, risk_bounds),
            }
        )
    per_case = pd.DataFrame(rows, columns=["case_id", "agatston_ref", "agatston_pred", "risk_ref", "risk_pred"])
    p, r = per_case["agatston_pred"].to_numpy(float), per_case["agatston_ref"].to_numpy(float)
    summary: dict[str, Any] = {"n_cases": len(per_case), "n_missing": len(missing), "missing": missing}
    summary["agreement"] = {
        "agatston": {
            "icc_a1": icc_a1(np.column_stack([r, p])) if len(p) >= 2 else float("nan"),
            **bland_altman(p, r),
            **correlations(p, r),
        }
    }
    summary["risk"] = category_agreement(
        per_case["risk_pred"].tolist(), per_case["risk_ref"].tolist(), risk_category_names(risk_bounds)
    )
    return per_case, summary


def write_comparison(per_case: pd.DataFrame, summary: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``per_case.csv`` and ``summary.json`` in ``out_dir`` (each written atomically)."""
    out_dir = Path(out_dir)
    files = [out_dir / "per_case.csv", out_dir / "summary.json"]
    atomic_write_text(files[0], per_case.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(files[1], json.dumps(json_safe(summary), indent=2) + "\n")
    return files
