"""Calcium scoring: Agatston, volume and mass per label and in total (pure numpy)."""

from s2cac.scoring.agatston import (
    CALCIUM_THRESHOLD_HU,
    RISK_BOUNDS,
    LabelScore,
    ScoreResult,
    agatston_weight,
    risk_category,
    risk_category_names,
    score_mask,
)

__all__ = [
    "CALCIUM_THRESHOLD_HU",
    "RISK_BOUNDS",
    "LabelScore",
    "ScoreResult",
    "agatston_weight",
    "risk_category",
    "risk_category_names",
    "score_mask",
]
