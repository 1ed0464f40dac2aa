"""The machinery every training method shares: a subclass of nnU-Net v2's ``nnUNetTrainer`` (nnunetv2 == 2.8.1).

Reused from nnU-Net: plans/label handling, dataset classes, data loader (sub-classed only to count calcium and
to skip labels), batchgeneratorsv2 augmentation, poly LR, logger and EMA pseudo-Dice, epoch loop. New here:
the dual-path network, composite batches with NSB weights, the loss terms' wiring, safe checkpoints, validation,
the one-line progress report and the curves. The methods (s2cac.training.methods) are small subclasses that
override :meth:`BaseTrainer.compute_terms` and a few hooks; build one with
:func:`s2cac.training.trainer.create_trainer`.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.loss.dice import get_tp_fp_fn_tn
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from s2cac.hu import window_hu, windows_from_dataset_json
from s2cac.nets import build_network
from s2cac.nnunet import PLANS_SCHEME
from s2cac.training import losses as L
from s2cac.training.augmentation import light_initial_patch, light_transforms, no_transforms
from s2cac.training.checkpoint import atomic_torch_save, load_safe
from s2cac.training.config import EXECUTION_KEYS, MethodConfig, same_method
from s2cac.training.loaders import CaseCache, CompositeBatches, PatchLoader, wrap
from s2cac.training.schedules import consistency_weight, nsb_weight

EXTRA_LOG_KEYS = ("loss_seg", "loss_score", "loss_cons", "loss_sdc", "consistency_weight", "nsb_weight")
TERMS = ("seg", "score", "cons", "sdc")


class BaseTrainer(nnUNetTrainer):
    """What every method shares: nnU-Net integration, loaders, batches, validation, checkpoints, progress line.

    A method overrides :meth:`compute_terms` (its forward passes and loss terms) and, for a teacher, the hooks
    :meth:`set_train_modes`, :meth:`after_optimizer_step`, :attr:`eval_network`, :meth:`checkpoint_weights` and
    :meth:`load_checkpoint_weights` (s2cac.training.methods). Construct with
    :func:`s2cac.training.trainer.create_trainer`; ``run_training()`` is nnU-Net's epoch loop.
    """

    #: the ``method:`` name this class implements (s2cac.training.config.METHODS)
    method_name = ""

    # ----- set-up -----
    def setup_method(self, config: MethodConfig, split: dict, output_dir: Path) -> None:
        """Apply the method config, the split and the output folder (called once by :func:`create_trainer`)."""
        self.cfg = config
        self.split = {k: list(split.get(k, [])) for k in ("labeled", "unlabeled", "negative", "validation")}
        self.unlabeled_from_labeled = config.unlabeled_in_batch > 0 and not self.split["unlabeled"]
        if self.unlabeled_from_labeled:  # 100 % labeled: the teacher's stream is the labeled scans' images
            self.split["unlabeled"] = list(self.split["labeled"])
        for key, needed in (
            ("labeled", True),
            ("validation", True),
            ("negative", config.negatives_in_batch > 0),
            ("unlabeled", config.unlabeled_in_batch > 0),
        ):
            if needed and not self.split[key]:
                raise ValueError(f"the split has no {key!r} cases, but this config needs them")
        self.output_folder = self.output_folder_base = str(output_dir)
        self.log_file = str(output_dir / "training_log.txt")
        self.logger.output_folder = str(output_dir)
        for key in EXTRA_LOG_KEYS:
            self.logger.local_logger.my_fantastic_logging[key] = []
        self.initial_lr = config.learning_rate
        self.weight_decay = config.weight_decay
        self.num_epochs = config.epochs
        self.num_iterations_per_epoch = config.iterations_per_epoch
        self.num_val_iterations_per_epoch = config.val_iterations
        self.enable_deep_supervision = False
        self.save_every = 1
        self.global_step = 0
        self.teacher = None
        self.fg_prior: float | None = None
        self.voxel_volume_mm3 = float(np.prod(self.configuration_manager.spacing))
        # Intensities reach the network as window_hu(HU) / 255 (nnU-Net's RGBTo01 on our uint8 images), so one
        # unit is the window width in HU; the candidate level is the Agatston threshold on that scale.
        # Channels 1.. (optional) see the CT through further windows; candidates are judged on channel 0.
        self.hu_windows = windows_from_dataset_json(self.dataset_json)
        self.hu_window = self.hu_windows[0]
        self.candidate_level = float(window_hu(np.array([config.candidate_hu]), self.hu_window)[0]) / 255.0
        schemes = list(self.configuration_manager.normalization_schemes)
        needs_level = config.candidate_gating or config.labeled_candidate_fraction > 0
        needs_level |= config.negative_candidate_fraction > 0 or config.unlabeled_candidate_fraction > 0
        needs_level |= config.lesion_loss_weight > 0
        if needs_level and (not schemes or any(x != PLANS_SCHEME for x in schemes)):
            raise ValueError(
                f"candidate gating/sampling needs s2cac's HU-windowed images ({PLANS_SCHEME}), got {schemes}"
            )
        self._stop_early = False
        self.best_epoch: int | None = None
        if self.device.type != "cuda" or not config.amp:
            self.grad_scaler = None
        elif config.amp_dtype == "bfloat16":
            self.grad_scaler = None  # bf16 has float32's range: no loss scaling
        self._epoch_t0 = time.time()

    def _set_batch_size_and_oversample(self) -> None:
        self.batch_size = self.cfg.n_labeled

    def _do_i_compile(self) -> bool:
        return False

    def _get_deep_supervision_scales(self):
        return None

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """The dual-path network has a single output resolution: nothing to switch."""

    def plot_network_architecture(self) -> None:
        """Skipped (nnU-Net's needs hiddenlayer)."""

    def network_kwargs(self) -> dict:
        """Constructor overrides of the network preset (stored in checkpoints)."""
        return {
            **self.cfg.network_overrides,
            "in_channels": int(self.num_input_channels),
            "num_classes": int(self.label_manager.num_segmentation_heads),
            "use_score_head": self.cfg.use_score_head,
            "fg_prior": self.fg_prior,
        }

    def build_network_architecture(
        self,
        plans_manager,
        configuration_manager,
        num_input_channels,
        num_output_channels,
        enable_deep_supervision=False,
    ):
        """The dual-path network of the configured preset (an instance method: it needs the method config)."""
        if self.cfg.init_fg_bias and self.fg_prior is None:
            self.fg_prior = self._measure_fg_prior()
        net = build_network(self.cfg.network, **self.network_kwargs())
        net.check_patch(configuration_manager.patch_size)
        return net

    def _measure_fg_prior(self) -> float | None:
        """Calcium voxel fraction (any label > 0) of the labeled training cases (their labels only), clipped to
        [1e-5, 0.5]; the network splits it evenly over its calcium classes (``fg_prior``)."""
        ds = infer_dataset_class(self.preprocessed_dataset_folder)(
            self.preprocessed_dataset_folder, self.split["labeled"]
        )
        fg = total = 0
        for key in self.split["labeled"]:
            seg = np.asarray(ds.load_case(key)[1][:])
            fg, total = fg + int((seg > 0).sum()), total + seg.size
        return float(np.clip(fg / total, 1e-5, 0.5)) if fg > 0 else None

    def initialize(self) -> None:
        super().initialize()
        if self.device.type == "cpu":  # oneDNN's 3D convolutions (above all their backward) are ~1.5x faster
            self.network.to(memory_format=torch.channels_last_3d)

    def configure_optimizers(self):
        params = self.network.parameters()
        if self.cfg.optimizer == "adam":
            opt = torch.optim.Adam(params, self.initial_lr, weight_decay=self.weight_decay, foreach=True)
        else:
            opt = torch.optim.SGD(
                params,
                self.initial_lr,
                momentum=self.cfg.momentum,
                nesterov=self.cfg.nesterov,
                weight_decay=self.weight_decay,
                foreach=True,
            )
        return opt, PolyLRScheduler(opt, self.initial_lr, self.num_epochs, exponent=self.cfg.poly_exponent)

    def do_split(self):
        return self.split["labeled"], self.split["validation"]

    def training_transforms(self):
        """(transforms, crop size before them) of the configured augmentation preset (s2cac.training.augmentation)."""
        patch = [int(p) for p in self.configuration_manager.patch_size]
        if self.cfg.augmentation == "none":
            self.inference_allowed_mirroring_axes = None
            return no_transforms(), patch
        if self.cfg.augmentation == "light":
            self.inference_allowed_mirroring_axes = None
            return light_transforms(patch), light_initial_patch(patch)
        rotation, dummy_2d, initial_patch, mirror_axes = (
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        )
        tr = self.get_training_transforms(
            patch, rotation, None, mirror_axes, dummy_2d, use_mask_for_norm=self.configuration_manager.use_mask_for_norm
        )
        return tr, initial_patch

    def get_dataloaders(self):
        cfg, patch = self.cfg, self.configuration_manager.patch_size
        tr, initial_patch = self.training_transforms()
        val = self.get_validation_transforms(None)
        folder, cls, level = self.preprocessed_dataset_folder, self.dataset_class, self.candidate_level

        def loader(keys, batch, fg, transforms, size, read_labels=True, candidates=0.0):
            return PatchLoader(
                cls(folder, keys),
                batch,
                size,
                patch,
                self.label_manager,
                fg,
                transforms,
                read_labels=read_labels,
                candidate_fraction=candidates,
                candidate_level=level if candidates > 0 else None,
                count_whole_z=cfg.faithful_score_crop,
            )

        workers = cfg.data_workers
        if workers is None:
            workers = get_allowed_n_proc_DA() if self.device.type == "cuda" else 0
        pin = self.device.type == "cuda"
        cache = CaseCache()  # shared by the in-process loaders (their case sets are disjoint, except 100 % labeled)
        lab = loader(
            self.split["labeled"],
            cfg.n_labeled,
            cfg.labeled_foreground_fraction,
            tr,
            initial_patch,
            candidates=cfg.labeled_candidate_fraction,
        )
        lab = wrap(lab, max(workers // 2, min(workers, 1)), pin, cache)
        neg = unl = None
        if cfg.negatives_in_batch:
            neg_cand = cfg.negative_candidate_fraction
            neg = loader(self.split["negative"], cfg.n_negative, 0.0, tr, initial_patch, candidates=neg_cand)
            neg = wrap(neg, workers // 4, pin, cache)
        if cfg.unlabeled_in_batch:
            # Labels of unlabeled scans are read only to reproduce the original code's defects: 4 (patches centred
            # on hidden calcium) and 1 (the negative patch's target is the unlabeled patch's calcium count).
            leak = cfg.faithful_unlabeled_centering or cfg.faithful_negative_target
            if self.unlabeled_from_labeled:
                self.print_to_log_file(
                    "the split has no unlabeled scans (100 % labeled): the teacher's unlabeled patches come from the "
                    "labeled scans' images (their labels are not used there)"
                )
            if leak:
                self.print_to_log_file("faithful_unlabeled_centering/negative_target: reading unlabeled scans' labels")
            if cfg.faithful_unlabeled_centering:
                unl = loader(self.split["unlabeled"], cfg.n_unlabeled, 1.0, tr, initial_patch)
            else:
                unl = loader(
                    self.split["unlabeled"],
                    cfg.n_unlabeled,
                    0.0,
                    tr,
                    initial_patch,
                    read_labels=leak,
                    candidates=cfg.unlabeled_candidate_fraction,
                )
                unl.candidates_use_labels = False  # image-only candidates: never look at hidden calcium
            unl = wrap(unl, workers // 4, pin, cache)
        n_val = cfg.n_labeled + cfg.negatives_in_batch
        val_loader = loader(self.split["validation"], n_val, cfg.val_foreground_fraction, val, patch)
        return CompositeBatches(lab, neg, unl), wrap(val_loader, min(workers, 1), pin, cache)

    # ----- determinism -----
    def _reseed(self, epoch: int) -> None:
        seed = (self.cfg.seed * 1_000_003 + epoch) % (2**31)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # ----- training -----
    def _autocast(self):
        if self.device.type == "cuda" and self.cfg.amp:
            dtype = torch.bfloat16 if self.cfg.amp_dtype == "bfloat16" else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    def on_train_epoch_start(self) -> None:
        self._reseed(self.current_epoch)
        self._epoch_t0 = time.time()
        self.set_train_modes()
        self.lr_scheduler.step(self.current_epoch)
        self.logger.log("lrs", self.optimizer.param_groups[0]["lr"], self.current_epoch)
        self.term_weights = self.current_term_weights()

    def set_train_modes(self) -> None:
        """Train mode for what learns this epoch (the student; a method with a teacher sets the teacher's mode)."""
        self.network.train()

    def current_term_weights(self) -> dict[str, float]:
        """Factors on the four loss terms this epoch: 1, or Dynamic Weight Average of the last two epochs."""
        if self.cfg.loss_weighting != "dwa":
            return dict.fromkeys(TERMS, 1.0)
        log = self.logger.local_logger.my_fantastic_logging
        history = [
            {t: float(log[f"loss_{t}"][e]) for t in TERMS}
            for e in range(max(0, self.current_epoch - 2), self.current_epoch)
            if all(len(log[f"loss_{t}"]) > e for t in TERMS)
        ]
        return L.dwa_weights(history, self.cfg.dwa_temperature)

    def candidate_voxels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Z, Y, X) True where a voxel may be calcium (>= candidate_hu; judged on the first channel)."""
        return x[:, 0] >= self.candidate_level - 1e-6

    def candidate_mask(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """:meth:`candidate_voxels` for candidate gating, or None without gating."""
        if x is None or not self.cfg.candidate_gating:
            return None
        return self.candidate_voxels(x)

    def current_nsb_weight(self) -> float:
        n = self.cfg.nsb
        return nsb_weight(self.current_epoch, n.a, n.b, n.tau) if n.enabled else 1.0

    def current_consistency_weight(self) -> float:
        c = self.cfg
        return consistency_weight(
            self.global_step, c.consistency_max, c.consistency_ramp_step, c.consistency_ramp_length
        )

    def compose(self, batch: dict) -> dict:
        """Tensors of one iteration: supervised images/labels/amounts/NSB weights and unlabeled images."""
        cfg, dev = self.cfg, self.device
        count = "fg_crop" if cfg.faithful_score_crop else "fg_seen"
        lab, neg, unl = batch["labeled"], batch["negative"], batch["unlabeled"]
        parts = [lab] + ([neg] if neg is not None else [])
        amount = [lab[count]]
        if neg is not None:
            if cfg.faithful_negative_target:  # defect 1: the unlabeled patch's count, repeated
                amount.append(unl[count].repeat(math.ceil(cfg.n_negative / cfg.n_unlabeled))[: cfg.n_negative])
            else:
                amount.append(torch.zeros(cfg.n_negative))
        seen = torch.cat([p["fg_seen"] for p in parts])
        weights = torch.where(seen > 0, torch.ones_like(seen), torch.full_like(seen, self.current_nsb_weight()))
        sup_x = torch.cat([p["data"] for p in parts])
        lesions = None
        if cfg.lesion_loss_weight > 0:  # the candidate lesions the lesion decision will judge (on the CPU)
            lesions = torch.from_numpy(L.candidate_lesions(self.candidate_voxels(sup_x).numpy())).to(dev)
        return {
            "sup_x": sup_x.to(dev, non_blocking=True),
            "sup_lesions": lesions,
            "sup_y": torch.cat([p["target"] for p in parts])[:, 0].to(dev, non_blocking=True),
            "sup_amount": torch.cat(amount).to(dev),
            "sup_weights": weights.to(dev),
            "unl_x": unl["data"].to(dev, non_blocking=True) if unl is not None else None,
        }

    def compute_terms(self, b: dict, consistency: float) -> dict[str, torch.Tensor]:
        """The method's forward passes on a composed batch (see :meth:`compose`) and its loss terms: ``seg``,
        ``score``, ``cons``, ``sdc`` and ``total`` (scalars; only ``total`` is backpropagated)."""
        raise NotImplementedError(f"{type(self).__name__} does not define compute_terms")

    def loss_terms(
        self,
        b: dict,
        student: tuple[torch.Tensor, torch.Tensor],
        consistency: float,
        unlabeled: tuple[torch.Tensor, torch.Tensor] | None = None,
        teacher: tuple[torch.Tensor, torch.Tensor] | None = None,
        score_terms: bool = True,
    ) -> dict[str, torch.Tensor]:
        """S2CAC's loss terms (:func:`losses.s2cac_loss_terms`) of one composed batch.

        Args:
            b: the batch of :meth:`compose`.
            student: (logits, scores) of the student on ``b["sup_x"]``.
            consistency: lambda(t).
            unlabeled: (logits, scores) of the student on the clean unlabeled patches; with ``teacher`` only.
            teacher: (logits, scores) of the teacher on the noisy unlabeled patches, or None (no terms 3-4 on
                unlabeled patches).
            score_terms: use the score head (term 2 and the score parts of 3) and scoring-driven consistency
                (term 4) as ``use_score_head`` / ``score_consistency`` switch them; False = neither.
        """
        cfg = self.cfg
        has_score, has_teacher = score_terms and cfg.use_score_head, teacher is not None
        return L.s2cac_loss_terms(
            sup_logits=student[0],
            sup_target=b["sup_y"],
            sup_amount=b["sup_amount"],
            sup_weights=b["sup_weights"],
            sup_scores=student[1] if has_score else None,
            unl_logits=unlabeled[0] if has_teacher else None,
            unl_scores=unlabeled[1] if (has_score and has_teacher) else None,
            teacher_logits=teacher[0] if has_teacher else None,
            teacher_scores=teacher[1] if (has_score and has_teacher) else None,
            consistency=consistency,
            score_target=cfg.effective_score_target,
            voxel_volume_mm3=self.voxel_volume_mm3,
            score_weight=cfg.effective_score_weight,
            score_consistency=score_terms and cfg.score_consistency,
            sup_mask=self.candidate_mask(b["sup_x"]),
            unl_mask=self.candidate_mask(b["unl_x"]) if has_teacher else None,
            normalization=cfg.loss_normalization,
            term_weights=getattr(self, "term_weights", None),
            sup_lesions=b.get("sup_lesions"),
            lesion_weight=cfg.lesion_loss_weight,
        )

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """Network input in the memory layout of the network: channels-last on the CPU (see :meth:`initialize`)."""
        return x.contiguous(memory_format=torch.channels_last_3d) if self.device.type == "cpu" else x

    def train_step(self, batch: dict) -> dict:
        cfg, lam = self.cfg, self.current_consistency_weight()
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.compute_terms(self.compose(batch), lam)
        total = terms["total"]
        if self.grad_scaler is not None:
            self.grad_scaler.scale(total).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
            self.optimizer.step()
        self.after_optimizer_step()
        self.global_step += 1
        out = {k: float(v.detach()) for k, v in terms.items()}
        L.check_finite(terms["total"], f"total (terms {out})")
        return {"loss": np.array(out.pop("total")), **out, "lambda": lam}

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step, before ``global_step`` counts it (a teacher's EMA update)."""

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        super().on_train_epoch_end(train_outputs)
        e = self.current_epoch
        for name in ("seg", "score", "cons", "sdc"):
            self.logger.log(f"loss_{name}", float(np.mean([o[name] for o in train_outputs])), e)
        self.logger.log("consistency_weight", float(train_outputs[-1]["lambda"]), e)
        self.logger.log("nsb_weight", self.current_nsb_weight(), e)

    # ----- validation (pseudo-Dice of the released network) -----
    @property
    def eval_network(self) -> torch.nn.Module:
        """The network that is validated and released (the student here; a teacher where a method has one)."""
        return self.network

    @property
    def released_network(self) -> str:
        """Which network :attr:`eval_network` is: ``student`` or ``teacher`` (stored in checkpoints)."""
        return "student"

    def on_validation_epoch_start(self) -> None:
        self.eval_network.eval()

    def validation_step(self, batch: dict) -> dict:
        x = batch["data"].to(self.device, non_blocking=True)
        y = batch["target"].to(self.device, non_blocking=True)
        with self._autocast():
            logits, _ = self.eval_network(self._layout(x))
        mask = self.candidate_mask(x)
        loss = L.weighted_ce(logits, y[:, 0], mask=mask) + L.weighted_soft_dice(logits, y[:, 0], mask=mask)
        pred = logits.argmax(1, keepdim=True)
        if mask is not None:  # the gated output, as exported: calcium only where HU >= candidate_hu
            pred = pred * mask.unsqueeze(1)
        onehot = torch.zeros_like(logits, dtype=torch.float32).scatter_(1, pred, 1)
        tp, fp, fn, _ = get_tp_fp_fn_tn(onehot, y, axes=[0, 2, 3, 4])
        return {
            "loss": float(loss),
            "tp_hard": tp[1:].cpu().numpy(),
            "fp_hard": fp[1:].cpu().numpy(),
            "fn_hard": fn[1:].cpu().numpy(),
        }

    # ----- epoch end: progress line, checkpoints, curves -----
    def on_epoch_end(self) -> None:
        e, log = self.current_epoch, self.logger
        self.logger.log("epoch_end_timestamps", time.time(), e)
        took = time.time() - self._epoch_t0
        done = e + 1
        eta = took * (self.num_epochs - done)
        dice = log.get_value("mean_fg_dice", e)
        self.print_to_log_file(
            f"epoch {done}/{self.num_epochs} | loss {log.get_value('train_losses', e):.4f} "
            f"(seg {log.get_value('loss_seg', e):.4f} score {log.get_value('loss_score', e):.4f} "
            f"cons {log.get_value('loss_cons', e):.4f} sdc {log.get_value('loss_sdc', e):.4f}) "
            f"| lr {log.get_value('lrs', e):.5f} | lambda {log.get_value('consistency_weight', e):.4f} "
            f"| nsb_w {log.get_value('nsb_weight', e):.4f} | val loss {log.get_value('val_losses', e):.4f} "
            f"| pseudo-Dice {dice:.4f} (ema {log.get_value('ema_fg_dice', e):.4f}) "
            f"| {took:.1f} s/epoch | ETA {_hms(eta)}",
            add_timestamp=False,
        )
        ema = log.get_value("ema_fg_dice", e)
        if self._best_ema is None or ema > self._best_ema:
            self._best_ema = ema
            self.best_epoch = e
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_best.pth"))
        start, patience = self.cfg.early_stopping_start, self.cfg.early_stopping_patience
        if start is not None and done > start and e - (self.best_epoch or 0) >= patience:
            self.print_to_log_file(
                f"early stop after epoch {done}: no better moving-average pseudo-Dice for {patience} epochs "
                f"(best {self._best_ema:.4f} at epoch {(self.best_epoch or 0) + 1})"
            )
            self._stop_early = True
        if done < self.num_epochs and done % self.save_every == 0:
            self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_latest.pth"))
        if done % max(1, self.num_epochs // 8) == 0 or done >= self.num_epochs or self._stop_early:
            # about 8 updates per run: drawing the figure every epoch cost ~5 % of a CPU demo training
            from s2cac.training.curves import plot_curves

            plot_curves(log.local_logger.my_fantastic_logging, Path(self.output_folder) / "curves.png")
        self.current_epoch += 1

    def run_training(self) -> None:
        """nnU-Net's epoch loop, which also ends when early stopping says so."""
        self.on_train_start()
        for _ in range(self.current_epoch, self.num_epochs):
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)]
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                n_val = self.num_val_iterations_per_epoch
                val = [self.validation_step(next(self.dataloader_val)) for _ in range(n_val)]
                self.on_validation_epoch_end(val)
            self.on_epoch_end()
            if self._stop_early:
                break
        self.on_train_end()

    def on_train_end(self) -> None:
        super().on_train_end()
        if self.dataloader_train is not None:
            self.dataloader_train.finish()

    # ----- checkpoints (safe: weights_only=True) -----
    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            return
        kind = Path(filename).stem.replace("checkpoint_", "")
        ckpt = {
            "format": "s2cac-checkpoint-1",
            "kind": kind,
            "network_weights": self.eval_network.state_dict(),
            "released_network": self.released_network,
            "method_config": self.cfg.to_dict(),
            "network_kwargs": self.network_kwargs(),
            "current_epoch": self.current_epoch + 1,
            "global_step": self.global_step,
            "_best_ema": self._best_ema,
            "best_epoch": getattr(self, "best_epoch", None),
            "trainer_name": type(self).__name__,
            "method": self.method_name,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            "configuration": self.configuration_name,
            "patch_size": list(self.configuration_manager.patch_size),
        }
        if kind != "best":
            ckpt.update(self.checkpoint_weights())
            ckpt["logging"] = self.logger.get_checkpoint()
        if kind == "latest":
            ckpt["optimizer_state"] = self.optimizer.state_dict()
            ckpt["grad_scaler_state"] = self.grad_scaler.state_dict() if self.grad_scaler is not None else None
        atomic_torch_save(ckpt, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """Resume from a full (``latest``) checkpoint; refuses one written with a different method config."""
        if not self.was_initialized:
            self.initialize()
        ckpt = filename_or_checkpoint
        if not isinstance(ckpt, dict):
            ckpt = load_safe(ckpt, map_location=self.device)
        if ckpt.get("optimizer_state") is None:
            raise ValueError("this checkpoint has no optimizer state; resume needs checkpoint_latest.pth")
        if not same_method(ckpt["method_config"], self.cfg.to_dict()):
            old = ckpt["method_config"]
            changed = sorted(k for k, v in self.cfg.to_dict().items() if old.get(k) != v and k not in EXECUTION_KEYS)
            raise ValueError(
                f"the checkpoint was trained with a different config (changed: {changed}); "
                "use a new output folder or delete the old one"
            )
        self.load_checkpoint_weights(ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        if self.grad_scaler is not None and ckpt.get("grad_scaler_state") is not None:
            self.grad_scaler.load_state_dict(ckpt["grad_scaler_state"])
        self.logger.load_checkpoint(ckpt["logging"])
        self.current_epoch = int(ckpt["current_epoch"])
        self.global_step = int(ckpt["global_step"])
        self._best_ema = ckpt["_best_ema"]
        self.best_epoch = ckpt.get("best_epoch")
        self.inference_allowed_mirroring_axes = ckpt["inference_allowed_mirroring_axes"]

    def checkpoint_weights(self) -> dict:
        """The weights a full (``latest``/``final``) checkpoint holds: the student, and ``teacher_weights`` None."""
        return {"student_weights": self.network.state_dict(), "teacher_weights": None}

    def load_checkpoint_weights(self, ckpt: dict) -> None:
        """Put back what :meth:`checkpoint_weights` saved."""
        self.network.load_state_dict(ckpt["student_weights"])


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
