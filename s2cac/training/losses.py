"""Loss terms of S2CAC (METHOD.md), per-sample weighted so that negative sample boosting can scale them.

Shapes: logits (B, 2, Z, Y, X), targets (B, Z, Y, X) with values {0, 1}, scores and weights (B,).
All reductions are means over the batch of the per-sample value times its weight: sum_i w_i l_i / B.
Probabilities and soft volumes are computed in float32 (a voxel sum overflows float16 on paper-size patches).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

SCORE_TARGETS = ("log1p_volume_mm3", "voxel_count")


def _weights(weights: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return like.new_ones(n, dtype=torch.float32)
    return weights.to(device=like.device, dtype=torch.float32)


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy averaged over voxels per sample, then sum_i w_i CE_i / B."""
    per_voxel = F.cross_entropy(logits.float(), target.long(), reduction="none")
    per_sample = per_voxel.flatten(1).mean(1)
    return (per_sample * _weights(weights, len(per_sample), logits)).mean()


def weighted_soft_dice(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, smooth: float = 1e-5
) -> torch.Tensor:
    """Foreground soft Dice loss per sample, 1 - (2 sum(p g) + s) / (sum p + sum g + s), then weighted mean."""
    p = torch.softmax(logits.float(), dim=1)[:, 1].flatten(1)
    g = (target == 1).float().flatten(1)
    dice = (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)
    return ((1.0 - dice) * _weights(weights, len(dice), logits)).mean()


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """sum_i w_i |pred_i - target_i| / B for (B,) tensors."""
    diff = (pred.float() - target.float()).abs()
    return (diff * _weights(weights, len(diff), pred)).mean()


def soft_calcium_amount(logits: torch.Tensor) -> torch.Tensor:
    """Differentiable calcium voxel count S_soft: sum of the calcium probability over the patch, (B,)."""
    return torch.softmax(logits.float(), dim=1)[:, 1].flatten(1).sum(1)


def to_score_space(voxels: torch.Tensor, kind: str, voxel_volume_mm3: float) -> torch.Tensor:
    """Map a calcium voxel count (hard or soft) to the score head's target space.

    ``log1p_volume_mm3``: log(1 + voxels * voxel volume in mm^3) (the fix of METHOD.md defect 3);
    ``voxel_count``: the raw count, as in the original code.
    """
    if kind == "voxel_count":
        return voxels.float()
    if kind == "log1p_volume_mm3":
        return torch.log1p(voxels.float() * float(voxel_volume_mm3))
    raise ValueError(f"unknown score target {kind!r}; choose from {SCORE_TARGETS}")


def consistency_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of student and (detached) teacher logits over all elements."""
    return F.mse_loss(student_logits.float(), teacher_logits.detach().float())


def check_finite(value: torch.Tensor, name: str) -> None:
    """Raise FloatingPointError if a loss term is NaN or infinite."""
    if not math.isfinite(float(value.detach())):
        raise FloatingPointError(f"loss term {name} is {float(value.detach())}")


def s2cac_loss_terms(
    *,
    sup_logits: torch.Tensor,
    sup_target: torch.Tensor,
    sup_amount: torch.Tensor,
    sup_weights: torch.Tensor,
    sup_scores: torch.Tensor | None,
    unl_logits: torch.Tensor | None,
    unl_scores: torch.Tensor | None,
    teacher_logits: torch.Tensor | None,
    teacher_scores: torch.Tensor | None,
    consistency: float,
    score_target: str,
    voxel_volume_mm3: float,
    score_weight: float,
    score_consistency: bool,
) -> dict[str, torch.Tensor]:
    """The four S2CAC loss terms and their total (METHOD.md "Losses").

    Args:
        sup_logits: student logits of the labeled + negative patches (Bs, 2, Z, Y, X).
        sup_target: their labels (Bs, Z, Y, X).
        sup_amount: their true calcium amount in the score's voxel units (Bs,) (see :func:`to_score_space`).
        sup_weights: NSB weight per supervised patch (Bs,).
        sup_scores: student score head on those patches (Bs,), None without a score head.
        unl_logits, unl_scores: student outputs on the clean unlabeled patches (Bu, ...), None without teacher.
        teacher_logits, teacher_scores: teacher outputs on the noisy unlabeled patches.
        consistency: lambda(t).
        score_target, voxel_volume_mm3: score space (see :func:`to_score_space`).
        score_weight: factor on every score-valued L1 (1e-6 in the original's raw voxel-count setting).
        score_consistency: add term 4 (soft calcium amount vs teacher score / true amount).

    Returns:
        dict with ``seg``, ``score``, ``cons``, ``sdc`` (scoring-driven consistency) and ``total``;
        total = seg + score + consistency * (cons + sdc).
    """
    zero = sup_logits.new_zeros((), dtype=torch.float32)
    seg = weighted_ce(sup_logits, sup_target, sup_weights) + weighted_soft_dice(sup_logits, sup_target, sup_weights)
    sup_t = to_score_space(sup_amount, score_target, voxel_volume_mm3)
    score = score_weight * weighted_l1(sup_scores, sup_t, sup_weights) if sup_scores is not None else zero
    cons, sdc = zero, zero
    if unl_logits is not None and teacher_logits is not None:
        cons = consistency_mse(unl_logits, teacher_logits)
        if unl_scores is not None and teacher_scores is not None:
            cons = cons + score_weight * weighted_l1(unl_scores, teacher_scores.detach())
    if score_consistency:
        soft_sup = to_score_space(soft_calcium_amount(sup_logits), score_target, voxel_volume_mm3)
        sdc = score_weight * weighted_l1(soft_sup, sup_t, sup_weights)
        if unl_logits is not None and teacher_scores is not None:
            soft_unl = to_score_space(soft_calcium_amount(unl_logits), score_target, voxel_volume_mm3)
            sdc = sdc + score_weight * weighted_l1(soft_unl, teacher_scores.detach())
    total = seg + score + consistency * (cons + sdc)
    return {"seg": seg, "score": score, "cons": cons, "sdc": sdc, "total": total}
