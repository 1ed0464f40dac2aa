"""Per-artery Agatston against a reference that labels arteries (1 LM, 2 LAD, 3 LCX, 4 RCA), for predictions
without arteries (the binary calcium masks of s2cac predict)."""

from __future__ import annotations

from typing import Any

import numpy as np

from s2cac.scoring import score_mask

#: Reference label value -> artery name (the synthetic cohort's and the importers' convention).
ARTERY_NAMES = {1: "lm", 2: "lad", 3: "lcx", 4: "rca"}


def artery_scores(
    hu: np.ndarray, pred: np.ndarray, ref: np.ndarray, spacing_zyx: tuple[float, float, float], **score_options: Any
) -> dict[str, float]:
    """Agatston per artery of the reference, and of the prediction split by the reference.

    A predicted voxel takes the artery label of the reference voxel it lies on, or counts as ``outside`` (a false
    positive, or calcium the reference left unlabelled).

    Args:
        hu: (z, y, x) CT, HU.
        pred: (z, y, x) predicted mask (non-zero = calcium).
        ref: (z, y, x) reference label map with artery labels.
        spacing_zyx: voxel spacing, mm.
        **score_options: options of :func:`s2cac.scoring.score_mask`.

    Returns:
        ``agatston_ref_<artery>``, ``agatston_pred_in_<artery>`` for every artery of :data:`ARTERY_NAMES`, and
        ``agatston_pred_outside``.
    """
    ref_scores = score_mask(hu, ref, spacing_zyx, **score_options).per_label
    outside = max(ARTERY_NAMES) + 1
    ref_lab = np.where(np.isin(ref, list(ARTERY_NAMES)), ref, outside)
    split = np.where(pred != 0, ref_lab, 0).astype(np.uint8)
    pred_scores = score_mask(hu, split, spacing_zyx, **score_options).per_label
    row: dict[str, float] = {}
    for value, name in ARTERY_NAMES.items():
        row[f"agatston_ref_{name}"] = ref_scores[value].agatston if value in ref_scores else 0.0
        row[f"agatston_pred_in_{name}"] = pred_scores[value].agatston if value in pred_scores else 0.0
    row["agatston_pred_outside"] = pred_scores[outside].agatston if outside in pred_scores else 0.0
    return row
