"""Evaluation: per-case segmentation metrics and cohort agreement statistics (orCaScore-style)."""

from s2cac.evaluation.cohort import cohort_summary, evaluate_case, summary_table
from s2cac.evaluation.metrics import empty_status, lesion_metrics, overlap_metrics, surface_distances
from s2cac.evaluation.options import EvaluationOptions
from s2cac.evaluation.stats import bland_altman, bootstrap_ci, category_agreement, correlations, icc_a1

__all__ = [
    "EvaluationOptions",
    "bland_altman",
    "bootstrap_ci",
    "category_agreement",
    "cohort_summary",
    "correlations",
    "empty_status",
    "evaluate_case",
    "icc_a1",
    "lesion_metrics",
    "overlap_metrics",
    "summary_table",
    "surface_distances",
]
