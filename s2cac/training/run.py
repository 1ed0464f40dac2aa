"""Train one model folder end to end, resuming from its latest checkpoint when rerun."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from s2cac.training.config import MethodConfig, same_method


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
