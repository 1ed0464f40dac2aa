"""Loss terms of S2CAC (docs/training.md, "Losses"), per-sample weighted so that negative sample boosting can
scale them.

Shapes: logits (B, K, Z, Y, X), targets (B, Z, Y, X) with values 0..K-1, scores and weights (B,). K = 2 is the
paper's binary calcium; K = 5 holds the arteries (1 LM, 2 LAD, 3 LCX, 4 RCA). Every class but the background is
calcium: the calcium probability is 1 - p(background) and the soft Dice averages the calcium classes, so for
K = 2 every term is the binary formula.
Reductions are weighted means over the batch: sum_i w_i l_i / B (default) or sum_i w_i l_i / sum_i w_i
(the authors' normalisation). With candidate gating the calcium probability is 0 wherever a mask is False
(below the Agatston threshold), exactly as the exported mask is.
Probabilities and soft volumes are computed in float32 (a voxel sum overflows float16 on paper-size patches).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from s2cac.inference.lesions import LESION_CONNECTIVITY, candidate_components
from s2cac.training.config import SCORE_TARGETS  # defined there: the config (and the Snakefile) need no torch

NORMALIZATIONS = ("batch", "weights")


def _weights(weights: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return like.new_ones(n, dtype=torch.float32)
    return weights.to(device=like.device, dtype=torch.float32)


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None, normalization: str = "batch") -> torch.Tensor:
    """sum_i w_i l_i / B (``batch``) or sum_i w_i l_i / sum_i w_i (``weights``, the authors' choice).

    With ``weights`` normalisation a batch whose weights are all 0 gives 0.
    """
    w = _weights(weights, len(per_sample), per_sample)
    total = (per_sample.float() * w).sum()
    if normalization == "batch":
        return total / len(per_sample)
    if normalization == "weights":
        return total / w.sum().clamp_min(1e-12)
    raise ValueError(f"unknown loss normalization {normalization!r}; choose from {NORMALIZATIONS}")


def _gate(target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return target if mask is None else torch.where(mask, target, torch.zeros_like(target))


def calcium_probability(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax calcium probability 1 - p(background) (B, Z, Y, X) in float32; 0 where ``mask`` (B, Z, Y, X) is
    False (gated). Summed over the calcium classes 1..K-1 (for K = 2 exactly p(calcium))."""
    p = torch.softmax(logits.float(), dim=1)[:, 1:].sum(1)
    return p if mask is None else p * mask.float()


def weighted_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    normalization: str = "batch",
) -> torch.Tensor:
    """Cross-entropy averaged over voxels per sample, then the weighted mean over samples.

    With a ``mask`` (candidate gating) the output is background wherever the mask is False, so only masked-in
    voxels have a loss: the per-sample mean runs over them (0 for a sample without any).
    """
    per_voxel = F.cross_entropy(logits.float(), _gate(target, mask).long(), reduction="none")
    if mask is None:
        per_sample = per_voxel.flatten(1).mean(1)
    else:
        m = mask.flatten(1).float()
        per_sample = (per_voxel.flatten(1) * m).sum(1) / m.sum(1).clamp_min(1.0)
    return weighted_mean(per_sample, weights, normalization)


def weighted_soft_dice(
    logits: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    smooth: float = 1e-5,
    mask: torch.Tensor | None = None,
    normalization: str = "batch",
) -> torch.Tensor:
    """Foreground soft Dice loss per sample, 1 - mean_k (2 sum(p_k g_k) + s) / (sum p_k + sum g_k + s) over the
    calcium classes k = 1..K-1 (for K = 2 the binary calcium Dice), then the weighted mean over samples.

    With a ``mask`` both p and g are 0 outside it (the gated output). A class absent from a sample's target
    scores s / (sum p_k + s), as a calcium-free patch does in the binary case.
    """
    p = torch.softmax(logits.float(), dim=1)[:, 1:].flatten(2)  # (B, K-1, V)
    if mask is not None:
        p = p * mask.float().flatten(1).unsqueeze(1)
    t = _gate(target, mask).flatten(1)
    classes = torch.arange(1, logits.shape[1], device=t.device).view(1, -1, 1)
    g = (t.unsqueeze(1) == classes).float()
    dice = (2 * (p * g).sum(2) + smooth) / (p.sum(2) + g.sum(2) + smooth)  # (B, K-1)
    return weighted_mean(1.0 - dice.mean(1), weights, normalization)


def lesion_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    lesions: torch.Tensor,
    weights: torch.Tensor | None = None,
    normalization: str = "batch",
    eps: float = 1e-6,
    balanced: bool = True,
) -> torch.Tensor:
    """Candidate-lesion loss: the decision of ``predict.decision: lesion`` (s2cac.inference.lesions), trained.

    ``lesions`` (B, Z, Y, X) numbers each sample's candidate lesions 1..n (the connected components of its voxels
    >= the Agatston threshold; 0 elsewhere). A lesion's prediction is the mean calcium probability over its
    voxels, its target 1 when at least half of its voxels are calcium (any label > 0), else 0; its loss is the
    binary cross-entropy of the two. Per sample the mean over its lesions (``balanced``: the mean over its
    calcium lesions and the mean over the others weigh half each when it has both), 0 for a sample without
    any; then the weighted mean over samples. Every lesion counts once, whatever its size: a 3-voxel noise speck
    or a small plaque weighs as much as a rib, where a voxel-averaged loss dilutes it among thousands of voxels.
    Without ``balanced`` the many noise specks of a patch outweigh its few calcium lesions.
    """
    p = calcium_probability(logits)
    per_sample = []
    for i in range(p.shape[0]):
        ids = lesions[i].reshape(-1).long()
        n = int(ids.max()) if ids.numel() else 0
        if n <= 0:
            per_sample.append(p.new_zeros(()))
            continue
        inside = ids > 0
        idx = ids[inside] - 1
        sums = p.new_zeros(n).index_add(0, idx, p[i].reshape(-1)[inside])
        counts = torch.bincount(idx, minlength=n).to(p.dtype)
        calcium = torch.bincount(idx, weights=(target[i].reshape(-1)[inside] > 0).to(p.dtype), minlength=n)
        mean = (sums / counts).clamp(eps, 1.0 - eps)
        truth = (calcium >= 0.5 * counts).to(p.dtype)
        bce = F.binary_cross_entropy(mean, truth, reduction="none")
        if balanced and 0 < truth.sum() < n:  # calcium and non-calcium lesions weigh half each
            per_sample.append(0.5 * (bce[truth > 0].mean() + bce[truth == 0].mean()))
        else:
            per_sample.append(bce.mean())
    return weighted_mean(torch.stack(per_sample), weights, normalization)


def candidate_lesions(mask: np.ndarray, connectivity: int = LESION_CONNECTIVITY) -> np.ndarray:
    """(B, Z, Y, X) int32: each sample's candidate lesions (:func:`s2cac.inference.lesions.candidate_components`
    of its ``mask``) numbered 1..n, 0 outside: the lesions the decision at inference keeps or drops."""
    out = np.zeros(mask.shape, dtype=np.int32)
    for i in range(mask.shape[0]):
        if mask[i].any():
            out[i] = candidate_components(mask[i], connectivity)
    return out


def weighted_l1(
    pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None, normalization: str = "batch"
) -> torch.Tensor:
    """Weighted mean of |pred_i - target_i| for (B,) tensors (see :func:`weighted_mean`)."""
    return weighted_mean((pred.float() - target.float()).abs(), weights, normalization)


def soft_calcium_amount(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Differentiable calcium voxel count S_soft: sum of the (gated) calcium probability over the patch, (B,)."""
    return calcium_probability(logits, mask).flatten(1).sum(1)


def to_score_space(voxels: torch.Tensor, kind: str, voxel_volume_mm3: float) -> torch.Tensor:
    """Map a calcium voxel count (hard or soft) to the score head's target space.

    ``log1p_volume_mm3``: log(1 + voxels * voxel volume in mm^3) (the fix of the original code's defect 3,
    docs/training.md);
    ``voxel_count``: the raw count, as in the original code.
    """
    if kind == "voxel_count":
        return voxels.float()
    if kind == "log1p_volume_mm3":
        return torch.log1p(voxels.float() * float(voxel_volume_mm3))
    raise ValueError(f"unknown score target {kind!r}; choose from {SCORE_TARGETS}")


def consistency_mse(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared difference of student and (detached) teacher logits over all elements, or over the
    voxels where ``mask`` (B, Z, Y, X) is True (0 when there are none)."""
    sq = (student_logits.float() - teacher_logits.detach().float()) ** 2
    if mask is None:
        return sq.mean()
    m = mask.unsqueeze(1).expand_as(sq).float()
    return (sq * m).sum() / m.sum().clamp_min(1.0)


def predictive_entropy(probs: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Voxel uncertainty -sum_k p_k log(p_k + eps) of class probabilities (B, K, Z, Y, X) -> (B, Z, Y, X), in nats
    (at most ln K)."""
    p = probs.float()
    return -(p * torch.log(p + eps)).sum(1)


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
    sup_mask: torch.Tensor | None = None,
    unl_mask: torch.Tensor | None = None,
    normalization: str = "batch",
    term_weights: dict[str, float] | None = None,
    sup_lesions: torch.Tensor | None = None,
    lesion_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The four S2CAC loss terms and their total (docs/training.md, "Losses").

    Args:
        sup_logits: student logits of the labeled + negative patches (Bs, K, Z, Y, X).
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
        sup_mask, unl_mask: candidate gating (B, Z, Y, X) bool, or None: calcium only where True.
        normalization: weighted means over the batch size (``batch``) or the sum of weights (``weights``).
        term_weights: optional factors on ``seg``, ``score``, ``cons``, ``sdc`` (Dynamic Weight Average).
        sup_lesions: the supervised patches' candidate lesions (:func:`candidate_lesions`), or None.
        lesion_weight: the factor of :func:`lesion_bce` on ``sup_lesions``, part of ``seg`` (0: not computed).

    Returns:
        dict with ``seg``, ``score``, ``cons``, ``sdc`` (scoring-driven consistency) and ``total``;
        total = k_seg seg + k_score score + consistency * (k_cons cons + k_sdc sdc), every k 1 by default.
    """
    zero = sup_logits.new_zeros((), dtype=torch.float32)
    norm = normalization
    seg = weighted_ce(sup_logits, sup_target, sup_weights, sup_mask, norm) + weighted_soft_dice(
        sup_logits, sup_target, sup_weights, mask=sup_mask, normalization=norm
    )
    if lesion_weight > 0 and sup_lesions is not None:
        seg = seg + lesion_weight * lesion_bce(sup_logits, sup_target, sup_lesions, sup_weights, norm)
    sup_t = to_score_space(sup_amount, score_target, voxel_volume_mm3)
    score = score_weight * weighted_l1(sup_scores, sup_t, sup_weights, norm) if sup_scores is not None else zero
    cons, sdc = zero, zero
    if unl_logits is not None and teacher_logits is not None:
        cons = consistency_mse(unl_logits, teacher_logits, unl_mask)
        if unl_scores is not None and teacher_scores is not None:
            cons = cons + score_weight * weighted_l1(unl_scores, teacher_scores.detach())
    if score_consistency:
        soft_sup = to_score_space(soft_calcium_amount(sup_logits, sup_mask), score_target, voxel_volume_mm3)
        sdc = score_weight * weighted_l1(soft_sup, sup_t, sup_weights, norm)
        if unl_logits is not None and teacher_scores is not None:
            soft_unl = to_score_space(soft_calcium_amount(unl_logits, unl_mask), score_target, voxel_volume_mm3)
            sdc = sdc + score_weight * weighted_l1(soft_unl, teacher_scores.detach())
    k = {"seg": 1.0, "score": 1.0, "cons": 1.0, "sdc": 1.0, **(term_weights or {})}
    total = k["seg"] * seg + k["score"] * score + consistency * (k["cons"] * cons + k["sdc"] * sdc)
    return {"seg": seg, "score": score, "cons": cons, "sdc": sdc, "total": total}


def dwa_weights(history: list[dict[str, float]], temperature: float = 2.0) -> dict[str, float]:
    """Dynamic Weight Average (Liu et al., CVPR 2019) of the four terms from their last two epoch means.

    k_i = K exp(r_i / T) / sum_j exp(r_j / T), r_i = L_i(e-1) / L_i(e-2), K = 4 terms; all 1 until two epochs
    are known. A term whose earlier mean is 0 (switched off) gets r = 1.
    """
    names = ("seg", "score", "cons", "sdc")
    if len(history) < 2:
        return dict.fromkeys(names, 1.0)
    last, before = history[-1], history[-2]
    r = {n: (last[n] / before[n]) if before[n] > 0 else 1.0 for n in names}
    e = {n: math.exp(r[n] / temperature) for n in names}
    z = sum(e.values())
    return {n: len(names) * e[n] / z for n in names}
