"""Training methods as small trainer classes, the way nnU-Net's trainer variants are (docs/training.md, "Methods").

:class:`~s2cac.training.base.BaseTrainer` owns the shared machinery; :class:`SemiSupervisedTrainer` adds the
teacher/student lifecycle (EMA teacher, teacher noise, teacher forward, teacher checkpoint keys); each method
overrides one or two hooks. ``method:`` in an experiment picks the class (:func:`trainer_class`); adding a
baseline is one class here, its :data:`~s2cac.training.config.METHODS` / ``METHOD_PRESETS`` entry, its
experiment in config/config.yaml and its test (tests/test_training_methods.py).
"""

from __future__ import annotations

import copy

import torch

from s2cac.training import losses as L
from s2cac.training.base import BaseTrainer
from s2cac.training.config import MethodConfig
from s2cac.training.schedules import ema_alpha, ema_update, uncertainty_threshold


class SupervisedTrainer(BaseTrainer):
    """Supervised on labeled (and, with ``use_negatives``, negative) patches only; the student is released.

    The loss is S2CAC's supervised part: seg, plus term 2 and the labeled half of term 4 where
    ``use_score_head`` / ``score_consistency`` are on (S2CAC without its teacher, an ablation; the
    ``supervised`` preset switches them off).
    """

    method_name = "supervised"

    def compute_terms(self, b: dict, consistency: float) -> dict[str, torch.Tensor]:
        with self._autocast():
            logits, scores = self.network(self._layout(b["sup_x"]))
        return self.loss_terms(b, (logits, scores), consistency)


class SemiSupervisedTrainer(BaseTrainer):
    """Student + EMA teacher: the teacher sees the unlabeled patches with noise, is updated by EMA after every
    optimizer step, is validated and released, and is saved as ``teacher_weights``.

    A method defines :meth:`semi_terms` (its loss from the student's and teacher's outputs) and may replace
    :meth:`teacher_outputs` (what the teacher computes).
    """

    def initialize(self) -> None:
        super().initialize()
        self.teacher = copy.deepcopy(self.network).to(self.device)
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def set_train_modes(self) -> None:
        super().set_train_modes()
        self.teacher.train(self.cfg.teacher_mode == "train")

    def compute_terms(self, b: dict, consistency: float) -> dict[str, torch.Tensor]:
        n_sup = len(b["sup_x"])
        with self._autocast():
            logits, scores = self.network(self._layout(torch.cat([b["sup_x"], b["unl_x"]])))
            with torch.no_grad():
                teacher = self.teacher_outputs(b["unl_x"])
        return self.semi_terms(
            b, (logits[:n_sup], scores[:n_sup]), (logits[n_sup:], scores[n_sup:]), teacher, consistency
        )

    def teacher_outputs(self, unl_x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher on the noisy unlabeled patches: ``logits`` (Bu, K, Z, Y, X) and ``scores`` (Bu,)."""
        logits, scores = self._teacher_forward(unl_x + self.teacher_noise(unl_x))
        return {"logits": logits, "scores": scores}

    def semi_terms(
        self,
        b: dict,
        student: tuple[torch.Tensor, torch.Tensor],
        unlabeled: tuple[torch.Tensor, torch.Tensor],
        teacher: dict[str, torch.Tensor],
        consistency: float,
    ) -> dict[str, torch.Tensor]:
        """Loss terms from the student's (logits, scores) on the supervised and the clean unlabeled patches and
        :meth:`teacher_outputs`."""
        raise NotImplementedError(f"{type(self).__name__} does not define semi_terms")

    def _teacher_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher outputs for x; on the CPU a batch of one runs as two copies, of which the first is kept.

        torch's CPU 3D convolutions take a slow, non-oneDNN path for batch 1 (one 16 x 64 x 64 patch through
        ``tiny`` costs ~3x a batch of two), and one unlabeled patch per iteration is the default. Two copies give
        the same BatchNorm batch statistics as one (train-mode teacher), so the kept copy's output is unchanged
        up to float rounding.
        """
        if self.device.type != "cpu" or x.shape[0] != 1:
            return self.teacher(self._layout(x))
        logits, scores = self.teacher(self._layout(torch.cat([x, x])))
        return logits[:1], scores[:1]

    def teacher_noise(self, x: torch.Tensor) -> torch.Tensor:
        """clamp(N(0, sigma^2), +-clip) with sigma and clip given in HU, on the network's intensity scale."""
        if x.shape[1] != len(self.hu_windows):
            raise ValueError(f"input has {x.shape[1]} channels, the dataset {len(self.hu_windows)} HU windows")
        noise = torch.randn_like(x)
        for c, window in enumerate(self.hu_windows):  # one HU on channel c's [0, 1] scale is 1 / its window width
            unit = 1.0 / window.width
            sigma, clip = self.cfg.teacher_noise_sigma_hu * unit, self.cfg.teacher_noise_clip_hu * unit
            noise[:, c] = (noise[:, c] * sigma).clamp(-clip, clip)  # scalar maths: one window rounds as it always did
        return noise

    def after_optimizer_step(self) -> None:
        cfg = self.cfg
        ema_update(self.teacher, self.network, ema_alpha(self.global_step, cfg.ema_alpha), cfg.ema_buffers)

    @property
    def eval_network(self) -> torch.nn.Module:
        return self.teacher

    @property
    def released_network(self) -> str:
        return "teacher"

    def checkpoint_weights(self) -> dict:
        return {"student_weights": self.network.state_dict(), "teacher_weights": self.teacher.state_dict()}

    def load_checkpoint_weights(self, ckpt: dict) -> None:
        self.network.load_state_dict(ckpt["student_weights"])
        self.teacher.load_state_dict(ckpt["teacher_weights"])


class MeanTeacherTrainer(SemiSupervisedTrainer):
    """Mean Teacher (Tarvainen and Valpola, NeurIPS 2017): seg + lambda(t) MSE(student, teacher logits)."""

    method_name = "mean_teacher"

    def semi_terms(self, b, student, unlabeled, teacher, consistency):
        return self.loss_terms(
            b, student, consistency, unlabeled, (teacher["logits"], teacher["scores"]), score_terms=False
        )


class S2CACTrainer(SemiSupervisedTrainer):
    """S2CAC (Hao et al. 2025): Mean Teacher + score head (term 2 and the score part of term 3) + scoring-driven
    consistency (term 4); ``use_score_head``, ``score_consistency``, ``use_negatives`` and ``nsb`` are its
    ablation switches."""

    method_name = "s2cac"

    def semi_terms(self, b, student, unlabeled, teacher, consistency):
        return self.loss_terms(
            b, student, consistency, unlabeled, (teacher["logits"], teacher["scores"]), score_terms=True
        )


class UAMTTrainer(MeanTeacherTrainer):
    """Uncertainty-aware Mean Teacher (Yu et al., MICCAI 2019).

    The teacher also makes ``uamt_passes`` (T) noisy passes; the entropy of their mean softmax is the voxel's
    uncertainty. The consistency is the MSE of student and teacher softmax over the voxels whose uncertainty is
    below a threshold ramped from ``uamt_threshold_start`` to ``uamt_threshold_end`` times ln(K) over the whole
    training (and, with candidate gating, only on candidate voxels), averaged over those voxels and the K classes.
    """

    method_name = "uamt"

    def teacher_outputs(self, unl_x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().teacher_outputs(unl_x)  # the target pass
        n, passes = len(unl_x), self.cfg.uamt_passes
        probs = torch.zeros_like(out["logits"], dtype=torch.float32)
        for start in range(0, passes, 2):  # two passes per forward, as Yu et al. do (and no CPU batch of one)
            k = min(2, passes - start)
            x = unl_x.repeat(k, 1, 1, 1, 1)
            logits, _ = self._teacher_forward(x + self.teacher_noise(x))
            probs += torch.softmax(logits.float(), 1).view(k, n, *logits.shape[1:]).sum(0)
        out["uncertainty"] = L.predictive_entropy(probs / passes)
        return out

    def current_uncertainty_threshold(self) -> float:
        """Entropy threshold of this step: (start + (end - start) ramp(t)) ln(K) (:func:`uncertainty_threshold`)."""
        c = self.cfg
        return uncertainty_threshold(
            self.global_step,
            c.epochs * c.iterations_per_epoch,
            c.uamt_threshold_start,
            c.uamt_threshold_end,
            int(self.label_manager.num_segmentation_heads),
        )

    def semi_terms(self, b, student, unlabeled, teacher, consistency):
        terms = self.loss_terms(b, student, consistency, score_terms=False)  # the supervised terms
        certain = teacher["uncertainty"] < self.current_uncertainty_threshold()
        gate = self.candidate_mask(b["unl_x"])
        mask = certain if gate is None else certain & gate
        s = torch.softmax(unlabeled[0].float(), 1)
        t = torch.softmax(teacher["logits"].float(), 1)
        cons = L.consistency_mse(s, t, mask)
        k = (getattr(self, "term_weights", None) or {}).get("cons", 1.0)
        terms["cons"] = cons
        terms["total"] = terms["total"] + consistency * k * cons
        terms["certain"] = mask.float().mean()
        return terms


#: ``method:`` name -> trainer class
TRAINERS: dict[str, type[BaseTrainer]] = {
    cls.method_name: cls for cls in (SupervisedTrainer, MeanTeacherTrainer, S2CACTrainer, UAMTTrainer)
}


def trainer_class(config: MethodConfig) -> type[BaseTrainer]:
    """The trainer class of a config: ``method``, or the method its switches describe (``resolved_method``)."""
    return TRAINERS[config.resolved_method]
