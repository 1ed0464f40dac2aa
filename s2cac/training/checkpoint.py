"""Safe checkpoints: only tensors, numbers, strings, lists and dicts, loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2cac.data.atomic import atomic_path


def plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths into plain Python types (tensors are kept)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, int) else k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_torch_save(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        torch.save(plain(obj), tmp)


def load_safe(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_torch_save` (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def load_model_for_inference(model_dir: str | Path, which: str = "final", device: str = "cpu"):
    """The trained model of a model folder, ready for nnU-Net's predictor.

    Args:
        model_dir: folder written by ``s2cac train``.
        which: ``final`` (teacher at the end) or ``best`` (teacher with the best moving-average pseudo-Dice).
        device: where to put the network.

    Returns:
        (network in eval mode with ``segmentation_only`` set, checkpoint metadata dict). Plans and dataset.json
        are ``model_dir/plans.json`` and ``model_dir/dataset.json``; pass them with the network to
        ``nnUNetPredictor.manual_initialization``.
    """
    from s2cac.nets import build_network
    from s2cac.training.config import MethodConfig

    ckpt = load_safe(Path(model_dir) / f"checkpoint_{which}.pth", map_location=device)
    cfg = MethodConfig.from_dict(ckpt["method_config"])
    net = build_network(cfg.network, **ckpt["network_kwargs"])
    net.load_state_dict(ckpt["network_weights"])
    net.to(device).eval()
    net.segmentation_only = True
    meta = {k: v for k, v in ckpt.items() if not k.endswith("_weights") and k != "optimizer_state"}
    return net, meta
