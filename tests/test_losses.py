"""Each S2CAC loss term on hand-made tensors with hand-computed values."""

import math

import numpy as np
import pytest
import torch

from s2cac.training import losses as L


def _logits_from_probs(p_fg: torch.Tensor) -> torch.Tensor:
    """Two-class logits (B, 2, ...) whose softmax foreground probability is p_fg."""
    return torch.stack([torch.zeros_like(p_fg), torch.log(p_fg / (1 - p_fg))], dim=1)


def test_weighted_ce_hand_computed():
    p = torch.tensor([[[[0.8, 0.2]]], [[[0.5, 0.5]]]])  # (B=2, Z=1, Y=1, X=2)
    t = torch.tensor([[[[1, 0]]], [[[1, 1]]]])
    # sample 0: -(log .8 + log .8)/2 = -log .8 ; sample 1: -log .5
    w = torch.tensor([1.0, 0.5])
    expect = (-math.log(0.8) * 1.0 + -math.log(0.5) * 0.5) / 2
    assert L.weighted_ce(_logits_from_probs(p), t, w).item() == pytest.approx(expect, rel=1e-5)


def test_weighted_soft_dice_hand_computed():
    p = torch.tensor([[[[0.8, 0.2]]], [[[0.1, 0.1]]]])
    t = torch.tensor([[[[1, 0]]], [[[0, 0]]]])
    s = 1e-5
    d0 = (2 * 0.8 + s) / (1.0 + 1 + s)
    d1 = s / (0.2 + 0 + s)
    w = torch.tensor([1.0, 0.25])
    expect = ((1 - d0) + 0.25 * (1 - d1)) / 2
    assert L.weighted_soft_dice(_logits_from_probs(p), t, w).item() == pytest.approx(expect, rel=1e-5)


def test_weighted_l1_and_soft_amount():
    assert L.weighted_l1(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.1])).item() == (
        pytest.approx((1.0 + 0.3) / 2)
    )
    p = torch.tensor([[[[0.8, 0.2]]], [[[0.1, 0.3]]]])
    assert L.soft_calcium_amount(_logits_from_probs(p)).tolist() == pytest.approx([1.0, 0.4], rel=1e-6)


def test_score_space():
    v = torch.tensor([0.0, 10.0])
    assert L.to_score_space(v, "voxel_count", 0.5).tolist() == [0.0, 10.0]
    assert L.to_score_space(v, "log1p_volume_mm3", 0.5).tolist() == pytest.approx([0.0, math.log(6.0)])
    with pytest.raises(ValueError, match="unknown score target"):
        L.to_score_space(v, "agatston", 1.0)


def test_consistency_mse_detaches_teacher():
    s = torch.tensor([1.0, 2.0], requires_grad=True)
    t = torch.tensor([0.0, 0.0], requires_grad=True)
    out = L.consistency_mse(s, t)
    assert out.item() == pytest.approx(2.5)
    out.backward()
    assert t.grad is None and s.grad.tolist() == [1.0, 2.0]


def test_all_terms_and_total_hand_computed():
    # one supervised patch (calcium in voxel 0), one unlabeled patch; 1x1x2 voxels each
    sup_p = torch.tensor([[[[0.8, 0.2]]]])
    unl_p = torch.tensor([[[[0.5, 0.25]]]])
    sup_logits, unl_logits = _logits_from_probs(sup_p), _logits_from_probs(unl_p)
    teacher_logits = unl_logits + 1.0  # MSE = 1
    terms = L.s2cac_loss_terms(
        sup_logits=sup_logits,
        sup_target=torch.tensor([[[[1, 0]]]]),
        sup_amount=torch.tensor([1.0]),
        sup_weights=torch.tensor([1.0]),
        sup_scores=torch.tensor([3.0]),
        unl_logits=unl_logits,
        unl_scores=torch.tensor([2.0]),
        teacher_logits=teacher_logits,
        teacher_scores=torch.tensor([0.5]),
        consistency=0.1,
        score_target="voxel_count",
        voxel_volume_mm3=1.0,
        score_weight=2.0,
        score_consistency=True,
    )
    ce = -(math.log(0.8) + math.log(0.8)) / 2
    dice = 1 - (2 * 0.8 + 1e-5) / (1.0 + 1 + 1e-5)
    assert terms["seg"].item() == pytest.approx(ce + dice, rel=1e-5)
    assert terms["score"].item() == pytest.approx(2.0 * abs(3.0 - 1.0))
    assert terms["cons"].item() == pytest.approx(1.0 + 2.0 * abs(2.0 - 0.5), rel=1e-5)
    # sdc: |S_soft(sup)=1.0 - 1| + |S_soft(unl)=0.75 - 0.5|, times score weight 2
    assert terms["sdc"].item() == pytest.approx(2.0 * (0.0 + 0.25), abs=1e-5)
    expect_total = terms["seg"] + terms["score"] + 0.1 * (terms["cons"] + terms["sdc"])
    assert terms["total"].item() == pytest.approx(expect_total.item())


def test_terms_off_without_teacher_and_score_consistency():
    terms = L.s2cac_loss_terms(
        sup_logits=torch.zeros(2, 2, 1, 2, 2),
        sup_target=torch.zeros(2, 1, 2, 2, dtype=torch.long),
        sup_amount=torch.zeros(2),
        sup_weights=torch.ones(2),
        sup_scores=None,
        unl_logits=None,
        unl_scores=None,
        teacher_logits=None,
        teacher_scores=None,
        consistency=0.1,
        score_target="log1p_volume_mm3",
        voxel_volume_mm3=1.0,
        score_weight=1.0,
        score_consistency=False,
    )
    assert terms["score"].item() == terms["cons"].item() == terms["sdc"].item() == 0.0
    assert terms["total"].item() == pytest.approx(terms["seg"].item())


def test_check_finite():
    L.check_finite(torch.tensor(1.0), "x")
    with pytest.raises(FloatingPointError, match="seg"):
        L.check_finite(torch.tensor(float("nan")), "seg")


# ----- K classes: binary calcium (K = 2) or the four arteries (K = 5) -----
def _binary_reference(logits, target, mask, smooth=1e-5):
    """The binary formulas as they were written before K classes: p = softmax[:, 1], g = target == 1."""
    p = torch.softmax(logits.float(), 1)[:, 1]
    g = target == 1
    if mask is not None:
        p, g = p * mask.float(), g & mask
    p, g = p.flatten(1), g.float().flatten(1)
    dice = (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)
    return torch.softmax(logits.float(), 1)[:, 1] * (1 if mask is None else mask.float()), 1 - dice


@pytest.mark.parametrize("gated", [False, True])
def test_two_classes_are_the_binary_formulas(gated):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 2, 5, 6, generator=gen) * 3
    target = (torch.rand(3, 2, 5, 6, generator=gen) > 0.7).long()
    mask = torch.rand(3, 2, 5, 6, generator=gen) > 0.4 if gated else None
    p_ref, dice_ref = _binary_reference(logits, target, mask)
    assert torch.equal(L.calcium_probability(logits, mask), p_ref)
    w = torch.tensor([1.0, 0.5, 0.2])
    assert torch.equal(L.weighted_soft_dice(logits, target, w, mask=mask), L.weighted_mean(dice_ref, w))


def test_calcium_probability_is_one_minus_background():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 2, 3, 4, generator=gen) * 2
    p_bg = torch.softmax(logits, 1)[:, 0]
    assert torch.allclose(L.calcium_probability(logits), 1 - p_bg, atol=1e-6)
    assert torch.allclose(L.soft_calcium_amount(logits), (1 - p_bg).flatten(1).sum(1), atol=1e-5)
    mask = torch.zeros(2, 2, 3, 4, dtype=torch.bool)
    mask[:, 0] = True
    assert torch.allclose(L.calcium_probability(logits, mask), (1 - p_bg) * mask, atol=1e-6)


def _logits_from_class_probs(p: torch.Tensor) -> torch.Tensor:
    """Logits (B, K, ...) whose softmax is p (B, K, ...)."""
    return torch.log(p)


def test_five_class_dice_averages_the_artery_classes():
    # one sample, 2 voxels; voxel 0 is LAD (2), voxel 1 background; probabilities over (bg, LM, LAD, LCX, RCA)
    p = torch.tensor([[0.1, 0.1, 0.6, 0.1, 0.1], [0.6, 0.1, 0.1, 0.1, 0.1]]).T.reshape(1, 5, 1, 1, 2)
    target = torch.tensor([[[[2, 0]]]])
    s = 1e-5
    lad = (2 * 0.6 + s) / (0.7 + 1 + s)
    absent = s / (0.2 + s)  # LM, LCX, RCA: not in the target, 0.1 predicted on each voxel
    expect = 1 - (lad + 3 * absent) / 4
    got = L.weighted_soft_dice(_logits_from_class_probs(p), target)
    assert got.item() == pytest.approx(expect, rel=1e-5)
    # a prediction of the wrong artery is a Dice error although the calcium is found
    wrong = torch.tensor([[0.1, 0.1, 0.1, 0.6, 0.1], [0.6, 0.1, 0.1, 0.1, 0.1]]).T.reshape(1, 5, 1, 1, 2)
    assert L.weighted_soft_dice(_logits_from_class_probs(wrong), target).item() > got.item()
    # CE over all five classes: -(log 0.6 + log 0.6) / 2
    assert L.weighted_ce(_logits_from_class_probs(p), target).item() == pytest.approx(-math.log(0.6), rel=1e-5)
    assert L.soft_calcium_amount(_logits_from_class_probs(p)).item() == pytest.approx(0.9 + 0.4, rel=1e-5)


def test_predictive_entropy_hand_computed():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]]).T.reshape(1, 2, 1, 1, 3)  # (B, K=2, Z, Y, X=3)
    h = L.predictive_entropy(p, eps=0.0 + 1e-12)
    expect = [math.log(2), 0.0, -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))]
    assert h.shape == (1, 1, 1, 3) and h.flatten().tolist() == pytest.approx(expect, abs=1e-6)


def test_lesion_bce_hand_computed():
    # sample 0: a 2-voxel calcium lesion and a 1-voxel non-calcium speck; sample 1: no candidate at all
    logits = torch.zeros(2, 2, 1, 1, 4)
    logits[0, 1, 0, 0, :] = torch.tensor([0.0, 2.0, 0.0, -1.0])  # p(calcium) = sigmoid(logit difference)
    target = torch.tensor([[[[1, 1, 0, 0]]], [[[0, 0, 0, 0]]]])
    mask = np.array([[[[True, True, False, True]]], [[[False] * 4]]])
    lesions = torch.from_numpy(L.candidate_lesions(mask))
    assert lesions[0].flatten().tolist() == [1, 1, 0, 2] and lesions[1].max() == 0
    p = torch.sigmoid(torch.tensor([0.0, 2.0, -1.0]))
    calcium_mean, speck = (p[0] + p[1]) / 2, p[2]
    sample0 = (-torch.log(calcium_mean) - torch.log(1 - speck)) / 2  # each lesion counts once
    w = torch.tensor([1.0, 0.5])
    got = L.lesion_bce(logits, target, lesions, w)
    assert got.item() == pytest.approx(sample0.item() / 2, rel=1e-5)  # sum(w l) / B; sample 1 adds 0
    assert L.lesion_bce(logits, target, lesions, w, "weights").item() == pytest.approx(sample0.item() / 1.5, rel=1e-5)
    # a lesion is calcium when at least half of its voxels are: one calcium voxel of two is enough
    half = torch.tensor([[[[1, 0, 0, 0]]], [[[0, 0, 0, 0]]]])
    assert L.lesion_bce(logits, half, lesions, w).item() == pytest.approx(got.item(), rel=1e-5)


def test_lesion_bce_weighs_a_speck_like_a_large_lesion():
    """A voxel-averaged CE dilutes a 1-voxel false positive among a large structure's voxels; the lesion loss
    does not."""
    logits = torch.full((1, 2, 1, 1, 101), -4.0)
    logits[0, 0] = 0.0
    logits[0, 1, 0, 0, 100] = 4.0  # one confident false-positive speck beside a 99-voxel bone (gap at 99)
    target = torch.zeros(1, 1, 1, 101, dtype=torch.int64)
    mask = np.ones((1, 1, 1, 101), bool)
    mask[0, 0, 0, 99] = False
    lesions = torch.from_numpy(L.candidate_lesions(mask))
    assert int(lesions.max()) == 2
    ce = L.weighted_ce(logits, target, mask=torch.from_numpy(mask))
    les = L.lesion_bce(logits, target, lesions)
    assert les.item() > 15 * ce.item()


def test_lesion_weight_adds_to_the_seg_term():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 2, 4, 4)
    target = (torch.rand(2, 2, 4, 4) > 0.7).long()
    mask = torch.rand(2, 2, 4, 4) > 0.4
    lesions = torch.from_numpy(L.candidate_lesions(mask.numpy()))
    common = {"sup_logits": logits, "sup_target": target, "sup_amount": torch.zeros(2), "sup_weights": torch.ones(2),
              "sup_scores": None, "unl_logits": None, "unl_scores": None, "teacher_logits": None,
              "teacher_scores": None, "consistency": 0.1, "score_target": "log1p_volume_mm3", "voxel_volume_mm3": 1.0,
              "score_weight": 1.0, "score_consistency": False, "sup_mask": mask}  # fmt: skip
    off = L.s2cac_loss_terms(**common, sup_lesions=lesions, lesion_weight=0.0)
    on = L.s2cac_loss_terms(**common, sup_lesions=lesions, lesion_weight=2.0)
    expected = off["seg"] + 2.0 * L.lesion_bce(logits, target, lesions)
    assert on["seg"].item() == pytest.approx(expected.item(), rel=1e-6) and on["seg"].item() > off["seg"].item()


def test_lesion_bce_balances_calcium_and_other_lesions():
    logits = torch.zeros(1, 2, 1, 1, 8)
    logits[0, 1, 0, 0] = torch.tensor([1.0, 0.0, 2.0, 0.0, 3.0, 0.0, -1.0, 0.0])  # lesions at 0, 2, 4, 6
    target = torch.zeros(1, 1, 1, 8, dtype=torch.int64)
    target[0, 0, 0, 0] = 1  # one calcium lesion, three non-calcium specks
    mask = np.zeros((1, 1, 1, 8), bool)
    mask[0, 0, 0, ::2] = True
    lesions = torch.from_numpy(L.candidate_lesions(mask))
    p = torch.sigmoid(torch.tensor([1.0, 2.0, 3.0, -1.0]))
    bce = torch.cat([-torch.log(p[:1]), -torch.log(1 - p[1:])])
    assert L.lesion_bce(logits, target, lesions).item() == pytest.approx(
        (0.5 * (bce[0] + bce[1:].mean())).item(), rel=1e-5
    )
    assert L.lesion_bce(logits, target, lesions, balanced=False).item() == pytest.approx(bce.mean().item(), rel=1e-5)
