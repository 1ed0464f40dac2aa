"""Schedules of the trainers: consistency ramp, negative-sample-boosting weight, EMA teacher update, UA-MT's
uncertainty threshold."""

from __future__ import annotations

import math

import torch
from torch import nn

from s2cac.training.config import MethodConfig, NSBConfig

# The defaults are the method's, defined once in MethodConfig / NSBConfig.
_NSB = NSBConfig()


def consistency_weight(
    iteration: int,
    max_weight: float = MethodConfig.consistency_max,
    ramp_step: int = MethodConfig.consistency_ramp_step,
    ramp_length: int = MethodConfig.consistency_ramp_length,
) -> float:
    """lambda(t) = max_weight * exp(-5 (1 - min(t, T) / T)^2) with t = iteration // ramp_step, T = ramp_length.

    ``ramp_length`` 0 means no ramp (always ``max_weight``).
    """
    if ramp_length <= 0:
        return float(max_weight)
    t = min(iteration // max(1, ramp_step), ramp_length)
    return float(max_weight * math.exp(-5.0 * (1.0 - t / ramp_length) ** 2))


def uncertainty_threshold(step: int, total_steps: int, start: float, end: float, num_classes: int) -> float:
    """UA-MT's entropy threshold (Yu et al. 2019): (start + (end - start) exp(-5 (1 - min(t, T) / T)^2)) ln(K)
    with t = ``step``, T = ``total_steps`` (the whole training) and K classes (ln K = the largest entropy)."""
    ramp = math.exp(-5.0 * (1.0 - min(step, total_steps) / max(1, total_steps)) ** 2)
    return float((start + (end - start) * ramp) * math.log(num_classes))


def nsb_weight(epoch: int | float, a: float = _NSB.a, b: float = _NSB.b, tau: float = _NSB.tau) -> float:
    """Weight of a calcium-free patch at ``epoch``: w(e) = 1 - a (1 - sigmoid(b (e - tau)))."""
    return float(1.0 - a * (1.0 - 1.0 / (1.0 + math.exp(-b * (epoch - tau)))))


def ema_alpha(step: int, alpha_max: float = MethodConfig.ema_alpha) -> float:
    """EMA decay after optimiser step ``step`` (0-based): min(1 - 1 / (step + 1), alpha_max)."""
    return min(1.0 - 1.0 / (step + 1), alpha_max)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float, buffers: bool = MethodConfig.ema_buffers) -> None:
    """teacher <- alpha * teacher + (1 - alpha) * student, for parameters and (``buffers``) floating buffers
    (BN statistics); integer buffers (BN's ``num_batches_tracked``) are then copied from the student.

    With ``buffers=False`` (the authors' code) only parameters are averaged and the teacher keeps its own
    buffers (a teacher in train mode updates its BN statistics from its own batches).
    """
    pairs = list(zip(teacher.parameters(), student.parameters(), strict=True))
    if buffers:
        for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
            if t.dtype.is_floating_point:
                pairs.append((t, s))
            else:
                t.copy_(s)
    if not pairs:
        return
    # the same two operations per tensor as t.mul_(alpha).add_(s, alpha=1 - alpha), batched over all tensors (one
    # call instead of ~200 on the tiny network; identical values, tests/test_training_switches.py)
    ts, ss = [t for t, _ in pairs], [s.detach() for _, s in pairs]
    torch._foreach_mul_(ts, alpha)
    torch._foreach_add_(ts, ss, alpha=1.0 - alpha)
