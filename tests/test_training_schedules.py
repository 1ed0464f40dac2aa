"""Consistency ramp, NSB weight, EMA update and the method config."""

import copy
import math

import pytest
import torch

from s2cac.training.config import MethodConfig, load_method_config
from s2cac.training.schedules import consistency_weight, ema_alpha, ema_update, nsb_weight, uncertainty_threshold


def test_consistency_ramp_known_points():
    assert consistency_weight(0) == pytest.approx(0.1 * math.exp(-5))
    assert consistency_weight(149) == pytest.approx(0.1 * math.exp(-5))  # t = 149 // 150 = 0
    assert consistency_weight(150 * 100) == pytest.approx(0.1 * math.exp(-5 * 0.25))  # t = 100 = T/2
    assert consistency_weight(150 * 200) == pytest.approx(0.1)
    assert consistency_weight(10**9) == pytest.approx(0.1)
    assert consistency_weight(7, max_weight=0.5, ramp_step=1, ramp_length=0) == 0.5
    assert consistency_weight(5, ramp_step=1, ramp_length=10) == pytest.approx(0.1 * math.exp(-1.25))


def test_nsb_weight_known_points():
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert nsb_weight(0) == pytest.approx(1 - 0.999 * (1 - sig(-9)))
    assert nsb_weight(0) < 0.002
    assert nsb_weight(300) == pytest.approx(1 - 0.999 * 0.5)
    assert nsb_weight(10_000) == pytest.approx(1.0)
    assert nsb_weight(100, a=0.999, b=0.03, tau=100) == pytest.approx(0.5005)
    assert nsb_weight(0, a=0.5, b=0.03, tau=300) > 0.5  # a = 0.5 never drops below 0.5
    ws = [nsb_weight(e) for e in range(0, 500, 50)]
    assert ws == sorted(ws)


def test_ema_alpha_and_update():
    assert ema_alpha(0) == 0.0 and ema_alpha(1) == 0.5 and ema_alpha(9) == pytest.approx(0.9)
    assert ema_alpha(10_000) == 0.99 and ema_alpha(3, alpha_max=0.6) == 0.6
    student = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in teacher.parameters():
            p.fill_(1.0)
        for p in student.parameters():
            p.fill_(3.0)
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    ema_update(teacher, student, 0.75)
    for p in teacher.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.75 * 1 + 0.25 * 3))
    assert torch.allclose(teacher[1].running_mean, torch.full((2,), 0.75 * 0 + 0.25 * 2))
    assert teacher[1].num_batches_tracked.item() == 7
    ema_update(teacher, student, 0.0)  # alpha 0 = copy
    assert all(torch.equal(t, s) for t, s in zip(teacher.parameters(), student.parameters(), strict=True))


def test_config_roundtrip_and_unknown_keys(tmp_path):
    c = MethodConfig.from_dict({"nsb": {"a": 0.5, "tau": 100}, "patch_size": [16, 64, 64], "network": "tiny"})
    assert c.nsb.a == 0.5 and c.nsb.b == 0.03 and c.patch_size == (16, 64, 64)
    assert MethodConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match=r"unknown method config key\(s\) \['lr'\]"):
        MethodConfig.from_dict({"lr": 0.1})
    with pytest.raises(ValueError, match=r"unknown nsb key\(s\) \['alpha'\]"):
        MethodConfig.from_dict({"nsb": {"alpha": 1}})
    with pytest.raises(ValueError, match="score_target"):
        MethodConfig.from_dict({"score_target": "agatston"})
    with pytest.raises(ValueError, match="use_teacher needs n_unlabeled"):
        MethodConfig.from_dict({"n_unlabeled": 0})
    with pytest.raises(ValueError, match="network must be one of"):
        MethodConfig.from_dict({"network": "huge"})


def test_faithful_switches_and_effective_values():
    c = MethodConfig(faithful_score_target=True)
    assert c.effective_score_target == "voxel_count" and c.effective_score_weight == 1e-6
    assert MethodConfig().effective_score_target == "log1p_volume_mm3"
    sup = MethodConfig(use_teacher=False, use_negatives=False, use_score_head=False, score_consistency=False)
    assert sup.negatives_in_batch == 0 and sup.unlabeled_in_batch == 0


def test_load_experiment_then_config_override(tmp_path):
    exp = tmp_path / "config.yaml"
    exp.write_text(
        "experiments:\n  s2cac:\n    network: tiny\n    nsb: {a: 0.5}\n  supervised:\n    use_teacher: false\n"
    )
    over = tmp_path / "over.json"
    over.write_text('{"epochs": 3, "nsb": {"tau": 10}}')
    c = load_method_config(over, "s2cac", exp)
    assert c.network == "tiny" and c.epochs == 3 and c.nsb.a == 0.5 and c.nsb.tau == 10
    with pytest.raises(ValueError, match="no experiment 'nope'"):
        load_method_config(None, "nope", exp)


def test_uamt_threshold_ramp_known_points():
    """Yu et al.: (0.75 + 0.25 exp(-5 (1 - t/T)^2)) ln 2 for two classes, ln K in general."""
    assert uncertainty_threshold(0, 100, 0.75, 1.0, 2) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * math.log(2))
    assert uncertainty_threshold(50, 100, 0.75, 1.0, 2) == pytest.approx((0.75 + 0.25 * math.exp(-1.25)) * math.log(2))
    assert uncertainty_threshold(100, 100, 0.75, 1.0, 5) == pytest.approx(math.log(5))
    assert uncertainty_threshold(500, 100, 0.75, 1.0, 2) == pytest.approx(math.log(2))  # after T: the end value
