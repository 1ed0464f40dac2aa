"""One typed, frozen configuration object holding every switch of the S2CAC method and its baselines.

The workflow's ``config.yaml`` has an ``experiments:`` mapping of name -> a mapping accepted by
:meth:`MethodConfig.from_dict` (nested ``nsb:`` allowed). Unknown keys are rejected by name.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU

# what the score head regresses (s2cac.training.losses); here, not there, so that reading a config (and parsing
# the Snakefile, once per job on a cluster) does not import torch
SCORE_TARGETS = ("log1p_volume_mm3", "voxel_count")
AUGMENTATIONS = ("none", "light", "nnunet")

#: Keys that change how training runs, not what it computes: a checkpoint written with other values of these may
#: be resumed or reused (moving a run to other hardware must not restart it).
EXECUTION_KEYS = ("data_workers",)


#: Training methods, each one trainer class (s2cac.training.methods): ``method:`` in an experiment picks it.
METHODS = ("supervised", "mean_teacher", "s2cac", "uamt")

#: What ``method: NAME`` sets before the experiment's own keys (which win): the published form of each baseline.
#: The switches stay ablation switches of the classes that honour them (docs/training.md, "Methods").
METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "supervised": {
        "use_teacher": False,
        "use_score_head": False,
        "score_consistency": False,
        "use_negatives": False,
        "nsb": {"enabled": False},
    },
    "mean_teacher": {
        "use_score_head": False,
        "score_consistency": False,
        "use_negatives": False,
        "nsb": {"enabled": False},
    },
    "s2cac": {},
    "uamt": {"use_score_head": False, "score_consistency": False, "use_negatives": False, "nsb": {"enabled": False}},
}


def infer_method(use_teacher: bool, use_score_head: bool, score_consistency: bool) -> str:
    """The method of a config without ``method:`` (every config written before the key existed): no teacher ->
    ``supervised``; a teacher without score head and scoring-driven consistency -> ``mean_teacher``; else ``s2cac``.
    """
    if not use_teacher:
        return "supervised"
    return "s2cac" if (use_score_head or score_consistency) else "mean_teacher"


def same_method(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two resolved method configs (``to_dict()``) describe the same training, execution keys aside.

    A key missing from one of them (a checkpoint written before the key existed) counts as its default, which by
    design keeps the behaviour the key did not have yet; ``method`` is compared as resolved (``null`` = inferred).
    """
    return _comparable(a) == _comparable(b)


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    defaults = MethodConfig().to_dict()
    out = {**defaults, **d}
    if isinstance(d.get("nsb"), dict):
        out["nsb"] = {**defaults["nsb"], **d["nsb"]}
    if out.get("method") is None:
        out["method"] = infer_method(out["use_teacher"], out["use_score_head"], out["score_consistency"])
    return {k: v for k, v in out.items() if k not in EXECUTION_KEYS}


#: The authors' training procedure (their released code and config), switch by switch: every value that differs
#: from :class:`MethodConfig`'s defaults, defects included. ``s2cac_faithful`` experiments use all of them
#: (tests check that ``config/*.yaml`` does); docs/training.md explains each one.
AUTHORS_PROCEDURE: dict[str, Any] = {
    "faithful_negative_target": True,
    "faithful_score_crop": True,
    "faithful_score_target": True,
    "faithful_unlabeled_centering": True,
    "labeled_foreground_fraction": 1.0,
    "labeled_candidate_fraction": 0.0,
    "negative_candidate_fraction": 0.0,
    "unlabeled_candidate_fraction": 0.0,
    "val_foreground_fraction": 1.0,
    "augmentation": "none",
    "teacher_mode": "train",
    "ema_buffers": False,
    "teacher_noise_sigma_hu": 0.333,
    "teacher_noise_clip_hu": 0.667,
    "loss_normalization": "weights",
    "loss_weighting": "none",
    "init_fg_bias": False,
    "candidate_gating": False,
    "early_stopping_start": 200,
    "early_stopping_patience": 50,
    "network_overrides": {"attn_dropout": 0.0, "faithful_init": True},
}


@dataclass(frozen=True)
class NSBConfig:
    """Negative sample boosting: calcium-free patches weigh w(e) = 1 - a (1 - sigmoid(b (e - tau)))."""

    enabled: bool = True
    a: float = 0.999
    b: float = 0.03
    tau: float = 300.0


@dataclass(frozen=True)
class MethodConfig:
    """Every switch of the trainer. Defaults = S2CAC with the original code's defects fixed (docs/training.md)."""

    # --- the method (a trainer class) and its switches (baselines / ablations) ---
    method: str | None = None  # one of METHODS; None = inferred from the three switches below (infer_method)
    use_teacher: bool = True  # Mean Teacher with unlabeled patches; False = supervised only
    use_score_head: bool = True  # transformer path + score regression (term 2)
    score_consistency: bool = True  # term 4: soft calcium amount vs teacher score / true amount
    use_negatives: bool = True  # draw negative (calcium-free) scans into every batch
    nsb: NSBConfig = field(default_factory=NSBConfig)
    # --- batch composition (patches per iteration) ---
    n_labeled: int = 2
    n_negative: int = 1
    n_unlabeled: int = 1
    # --- where patches are centred (probabilities per patch; the rest are random crops) ---
    labeled_foreground_fraction: float = 0.5  # labeled patches centred on calcium (authors: 1.0)
    labeled_candidate_fraction: float = 0.3  # labeled patches centred on a bright (>= candidate_hu) non-calcium voxel
    negative_candidate_fraction: float = 0.7  # negative-scan patches centred on a bright voxel (all are non-calcium)
    unlabeled_candidate_fraction: float = 0.5  # unlabeled patches centred on a bright voxel (image only, no label)
    val_foreground_fraction: float = 0.33  # validation patches centred on calcium (authors: 1.0)
    candidate_hu: float = (
        CALCIUM_THRESHOLD_HU  # the Agatston threshold: voxels below it can never be exported as calcium
    )
    # --- calcium is only ever exported where HU >= candidate_hu (inference: network AND HU >= threshold) ---
    candidate_gating: bool = True  # train and validate on that gated output (calcium probability 0 below it)
    lesion_loss_weight: float = 0.0  # + this x BCE of each candidate lesion's mean calcium probability (seg term)
    # --- augmentation of the three training loaders ---
    augmentation: str = "light"  # "none" (authors: centre crop only) | "light" | "nnunet" (nnU-Net's default)
    # --- score target ---
    score_target: str = "log1p_volume_mm3"  # or "voxel_count" (the original)
    score_loss_weight: float = 1.0
    # --- the original code's defects, kept on request for the ablation table ---
    faithful_negative_target: bool = False  # defect 1: negative patch's target = the unlabeled patch's count
    faithful_score_crop: bool = False  # defect 2: count the target on the authors' large crop (whole z range)
    faithful_score_target: bool = False  # defect 3: raw voxel count with loss weight 1e-6
    faithful_unlabeled_centering: bool = False  # defect 4: unlabeled patches centred on their hidden calcium
    # --- consistency ramp: lambda = max * exp(-5 (1 - min(t, T)/T)^2), t = iteration // ramp_step ---
    consistency_max: float = 0.1
    consistency_ramp_step: int = 150
    consistency_ramp_length: int = 200
    # --- teacher ---
    ema_alpha: float = 0.99
    ema_buffers: bool = True  # also average BatchNorm statistics (authors: parameters only)
    teacher_mode: str = "eval"  # "eval" (running statistics, no dropout) | "train" (authors: batch statistics)
    teacher_noise_sigma_hu: float = 20.0  # teacher input noise clamp(N(0, sigma^2), +-clip), in HU
    teacher_noise_clip_hu: float = 40.0  # (authors: 0.1 and 0.2 on the 0..255 window scale = 0.333, 0.667 HU)
    # --- uncertainty-aware Mean Teacher (method uamt; Yu et al., MICCAI 2019) ---
    uamt_passes: int = 8  # noisy teacher passes whose mean prediction's entropy is the uncertainty
    uamt_threshold_start: float = 0.75  # consistency only where entropy < threshold x ln(K), ramped from start ...
    uamt_threshold_end: float = 1.0  # ... to end over the whole training with exp(-5 (1 - t/T)^2)
    # --- losses ---
    loss_normalization: str = "batch"  # weighted means: sum(w l) / B ("batch") or / sum(w) ("weights", authors)
    loss_weighting: str = "none"  # "none" | "dwa" (Dynamic Weight Average of the four terms; authors: off)
    dwa_temperature: float = 2.0
    # --- optimisation ---
    optimizer: str = "sgd"  # "sgd" (the paper) or "adam"
    learning_rate: float = 0.01
    momentum: float = 0.99
    nesterov: bool = True
    weight_decay: float = 3e-5
    poly_exponent: float = 0.9
    epochs: int = 500
    iterations_per_epoch: int = 300
    val_iterations: int = 50
    early_stopping_start: int | None = None  # epoch after which training stops without EMA improvement
    early_stopping_patience: int = 50  # epochs without a new best moving-average pseudo-Dice
    grad_clip: float = 12.0
    amp: bool = True  # autocast on CUDA only
    amp_dtype: str = "float16"  # or "bfloat16"
    seed: int = 0
    data_workers: int | None = None  # augmentation processes; None = nnU-Net's default on CUDA, 0 on CPU
    # --- network ---
    network: str = "paper"  # preset name in s2cac.nets.PRESETS
    network_overrides: dict[str, Any] = field(default_factory=dict)
    init_fg_bias: bool = True  # calcium logit bias = log-odds of the labeled cases' calcium fraction
    patch_size: tuple[int, int, int] | None = None  # (z, y, x); None = the nnU-Net plans' patch size

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"MethodConfig: {msg}")

        need(self.method is None or self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        method = self.resolved_method
        need(
            (method == "supervised") is (not self.use_teacher),
            f"method {method} needs use_teacher: {str(method != 'supervised').lower()}",
        )
        need(
            method not in ("mean_teacher", "uamt") or not (self.use_score_head or self.score_consistency),
            f"method {method} has no score head: set use_score_head and score_consistency to false (or use s2cac)",
        )
        need(self.uamt_passes >= 1, f"uamt_passes must be >= 1, got {self.uamt_passes}")
        need(
            0.0 <= self.uamt_threshold_start <= 1.0 and 0.0 <= self.uamt_threshold_end <= 1.0,
            "uamt_threshold_start and uamt_threshold_end are fractions of ln(K): each in [0, 1]",
        )
        need(self.n_labeled >= 1, f"n_labeled must be >= 1, got {self.n_labeled}")
        need(self.n_negative >= 0 and self.n_unlabeled >= 0, "n_negative and n_unlabeled must be >= 0")
        need(not (self.use_negatives and self.n_negative == 0), "use_negatives needs n_negative >= 1")
        need(not (self.use_teacher and self.n_unlabeled == 0), "use_teacher needs n_unlabeled >= 1")
        for name in (
            "labeled_foreground_fraction",
            "labeled_candidate_fraction",
            "negative_candidate_fraction",
            "unlabeled_candidate_fraction",
            "val_foreground_fraction",
        ):
            need(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1], got {getattr(self, name)}")
        need(
            self.labeled_foreground_fraction + self.labeled_candidate_fraction <= 1.0,
            "labeled_foreground_fraction + labeled_candidate_fraction must be <= 1",
        )
        need(math.isfinite(self.candidate_hu), "candidate_hu must be a finite HU value")
        need(
            math.isfinite(self.lesion_loss_weight) and self.lesion_loss_weight >= 0,
            f"lesion_loss_weight must be >= 0, got {self.lesion_loss_weight}",
        )
        need(self.augmentation in AUGMENTATIONS, f"augmentation must be one of {AUGMENTATIONS}")
        need(self.teacher_mode in ("eval", "train"), "teacher_mode must be 'eval' or 'train'")
        need(self.loss_normalization in ("batch", "weights"), "loss_normalization must be 'batch' or 'weights'")
        need(self.loss_weighting in ("none", "dwa"), "loss_weighting must be 'none' or 'dwa'")
        need(self.dwa_temperature > 0, "dwa_temperature must be > 0")
        need(self.early_stopping_start is None or self.early_stopping_start >= 0, "early_stopping_start must be >= 0")
        need(self.early_stopping_patience >= 1, "early_stopping_patience must be >= 1")
        need(self.score_target in SCORE_TARGETS, f"score_target must be one of {SCORE_TARGETS}")
        need(
            not (self.score_consistency and not self.use_score_head) or not self.use_teacher,
            "score_consistency with a teacher needs use_score_head (the teacher's score is the target)",
        )
        need(
            not (self.faithful_unlabeled_centering and not self.use_teacher),
            "faithful_unlabeled_centering needs use_teacher",
        )
        need(
            not (self.faithful_negative_target and not (self.use_negatives and self.use_teacher)),
            "faithful_negative_target needs use_negatives and use_teacher",
        )
        need(self.consistency_max >= 0 and self.consistency_ramp_step >= 1, "bad consistency ramp")
        need(self.consistency_ramp_length >= 0, "consistency_ramp_length must be >= 0")
        need(0.0 <= self.ema_alpha < 1.0, "ema_alpha must be in [0, 1)")
        need(self.teacher_noise_sigma_hu >= 0 and self.teacher_noise_clip_hu >= 0, "teacher noise must be >= 0")
        need(self.optimizer in ("sgd", "adam"), f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        need(self.learning_rate > 0 and self.epochs >= 1 and self.iterations_per_epoch >= 1, "bad schedule")
        need(self.val_iterations >= 1, "val_iterations must be >= 1")
        need(self.grad_clip > 0, "grad_clip must be > 0")
        need(self.amp_dtype in ("float16", "bfloat16"), "amp_dtype must be 'float16' or 'bfloat16'")
        need(self.data_workers is None or self.data_workers >= 0, "data_workers must be >= 0 or null")
        if self.patch_size is not None:
            need(len(self.patch_size) == 3 and all(int(p) > 0 for p in self.patch_size), "patch_size is (z, y, x)")
        from s2cac.nets import PRESETS

        need(self.network in PRESETS, f"network must be one of {sorted(PRESETS)}, got {self.network!r}")

    # --- effective values ---
    @property
    def resolved_method(self) -> str:
        """``method``, or the one the switches describe when it is not given (:func:`infer_method`)."""
        return self.method or infer_method(self.use_teacher, self.use_score_head, self.score_consistency)

    @property
    def effective_score_target(self) -> str:
        return "voxel_count" if self.faithful_score_target else self.score_target

    @property
    def effective_score_weight(self) -> float:
        return 1e-6 if self.faithful_score_target else self.score_loss_weight

    @property
    def negatives_in_batch(self) -> int:
        return self.n_negative if self.use_negatives else 0

    @property
    def unlabeled_in_batch(self) -> int:
        return self.n_unlabeled if self.use_teacher else 0

    # --- (de)serialisation ---
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MethodConfig:
        """Build from a plain mapping; unknown keys (also inside ``nsb``) raise ValueError naming them.

        A ``method:`` puts its :data:`METHOD_PRESETS` entry under the mapping (the mapping's own keys win).
        """
        data = dict(data or {})
        if data.get("method") in METHOD_PRESETS:
            data = merge_method_mappings(copy.deepcopy(METHOD_PRESETS[data["method"]]), data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown method config key(s) {unknown}; known: {sorted(names)}")
        nsb = data.pop("nsb", None)
        if nsb is not None and not isinstance(nsb, NSBConfig):
            if not isinstance(nsb, dict):
                raise ValueError(f"nsb must be a mapping, got {nsb!r}")
            bad = sorted(set(nsb) - {f.name for f in dataclasses.fields(NSBConfig)})
            if bad:
                raise ValueError(f"unknown nsb key(s) {bad}; known: enabled, a, b, tau")
            nsb = NSBConfig(**nsb)
        if data.get("patch_size") is not None:
            data["patch_size"] = tuple(int(p) for p in data["patch_size"])
        if "network_overrides" in data:
            data["network_overrides"] = dict(data["network_overrides"] or {})
        return cls(**data, **({"nsb": nsb} if nsb is not None else {}))

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON/YAML-able data (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> MethodConfig:
        """A copy with some fields changed (validated)."""
        return MethodConfig.from_dict({**self.to_dict(), **changes})


def load_method_config(
    config: str | Path | None = None, experiment: str | None = None, experiments_file: str | Path | None = None
) -> MethodConfig:
    """Read a config: ``experiments_file``'s ``experiments[experiment]`` mapping, then ``config`` on top.

    Both files may be YAML or JSON. ``config`` may also hold the mapping under a top-level ``method:`` key.
    """
    merged: dict[str, Any] = {}
    if experiment is not None:
        if experiments_file is None:
            raise ValueError("--experiment needs --experiments-file (the workflow's config.yaml)")
        try:
            merged = experiment_mapping(_read_mapping(experiments_file), experiment)
        except ValueError as err:
            raise ValueError(f"{experiments_file}: {err}") from None
    if config is not None:
        doc = _read_mapping(config)
        doc = doc.get("method", doc) if isinstance(doc.get("method"), dict) else doc
        merged = merge_method_mappings(merged, doc)
    return MethodConfig.from_dict(merged)


def merge_method_mappings(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``; the nested ``nsb`` mapping is merged key by key."""
    out = {**base, **top}
    if isinstance(base.get("nsb"), dict) and isinstance(top.get("nsb"), dict):
        out["nsb"] = {**base["nsb"], **top["nsb"]}
    return out


def experiment_mapping(doc: dict[str, Any], experiment: str) -> dict[str, Any]:
    """The method mapping of one experiment of a workflow config: ``training.defaults`` (shared by every
    experiment, optional) updated by ``experiments[experiment]``."""
    experiments = doc.get("experiments")
    if not isinstance(experiments, dict) or experiment not in experiments:
        known = sorted(experiments) if isinstance(experiments, dict) else []
        raise ValueError(f"no experiment {experiment!r} under 'experiments:'; known: {known}")
    defaults = (doc.get("training") or {}).get("defaults") or {}
    return merge_method_mappings(dict(defaults), dict(experiments[experiment] or {}))


def _read_mapping(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return doc
