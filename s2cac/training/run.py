"""Train one model folder end to end, resuming from its latest checkpoint when rerun."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from s2cac.training.config import MethodConfig, same_method

SPLIT_KEYS = ("labeled", "unlabeled", "negative", "validation", "test")


def read_split(path: str | Path) -> dict[str, list[str]]:
    """Read a split JSON (``labeled``/``unlabeled``/``negative``/``validation``/``test`` lists of identifiers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid split JSON ({err})") from err
    if not isinstance(split, dict) or "labeled" not in split or "validation" not in split:
        raise ValueError(f"{path}: a split needs at least 'labeled' and 'validation' lists")
    # scalar metadata (seed, fold, labeled_ratio) is allowed; an unknown list of cases is an error
    unknown = sorted(k for k, v in split.items() if k not in SPLIT_KEYS and isinstance(v, list))
    if unknown:
        raise ValueError(f"{path}: unknown split list(s) {unknown}; known: {list(SPLIT_KEYS)}")
    overlap = set(split.get("unlabeled", [])) & (set(split["labeled"]) | set(split["validation"]))
    if overlap:
        raise ValueError(f"{path}: case(s) {sorted(overlap)[:5]} are both unlabeled and labeled/validation")
    return {k: [str(i) for i in split.get(k, [])] for k in SPLIT_KEYS}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA device (use --device cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


def train_model(
    preprocessed_dataset: str | Path,
    split: dict[str, list[str]],
    config: MethodConfig,
    output_dir: str | Path,
    fold: int = 0,
    device: str = "cpu",
) -> dict:
    """Train (or resume, or skip when finished) one model folder.

    The folder receives: ``checkpoint_final.pth`` (teacher as ``network_weights``, plus student),
    ``checkpoint_best.pth``
    (teacher with the best moving-average pseudo-Dice), ``checkpoint_latest.pth`` while training, ``plans.json``,
    ``dataset.json``, ``config.yaml`` (resolved method config), ``split.json``, ``training_log.txt``, ``curves.png``.

    Returns:
        A summary dict: ``status`` (``trained``, ``resumed`` or ``already_done``), epochs, final and best
        moving-average pseudo-Dice.
    """
    from s2cac.atomic import atomic_write_text
    from s2cac.training.checkpoint import load_safe
    from s2cac.training.trainer import create_trainer

    out = Path(output_dir)
    final = out / "checkpoint_final.pth"
    if final.is_file():
        ckpt = load_safe(final)
        if not same_method(ckpt["method_config"], config.to_dict()):
            raise ValueError(f"{out} holds a finished model trained with a different config; use a new folder")
        return {"status": "already_done", **_summary(ckpt)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    atomic_write_text(out / "split.json", json.dumps(split, indent=2) + "\n")
    torch.manual_seed(config.seed)
    trainer = create_trainer(preprocessed_dataset, split, config, out, fold=fold, device=device)
    latest = out / "checkpoint_latest.pth"
    status = "trained"
    if latest.is_file():
        trainer.load_checkpoint(str(latest))
        trainer.print_to_log_file(f"resuming from {latest} at epoch {trainer.current_epoch}")
        status = "resumed"
    trainer.run_training()
    return {"status": status, **_summary(load_safe(final))}


def _summary(ckpt: dict) -> dict:
    log = ckpt.get("logging", {})
    dice = log.get("mean_fg_dice", [])
    return {
        "epochs": int(ckpt["current_epoch"]),
        "final_pseudo_dice": float(dice[-1]) if dice else None,
        "best_ema_pseudo_dice": ckpt.get("_best_ema"),
    }
