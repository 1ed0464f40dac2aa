"""Safe checkpoints: only tensors, numbers, strings, lists and dicts, loaded with ``weights_only=True``."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2cac.atomic import atomic_path


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


class CheckpointError(ValueError):
    """A checkpoint file is empty, truncated, damaged or not a safe (weights-only) checkpoint."""


def safe_torch_load(source: str | Path | io.BytesIO, where: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with plain errors naming ``where`` (no pickle code ever runs).

    Raises:
        CheckpointError: empty, truncated or damaged file; or a pickle that needs more than tensors and plain
            data (refused: loading it could run code; nothing was run).
    """
    if isinstance(source, (str, Path)) and Path(source).is_file() and Path(source).stat().st_size == 0:
        raise CheckpointError(f"{where}: empty file (0 bytes): not a checkpoint")
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" not in str(err) and "Unsupported global" not in str(err):
            raise CheckpointError(f"{where}: truncated or damaged checkpoint ({_first_line(err)})") from err
        raise CheckpointError(
            f"{where}: not a safe checkpoint: it holds Python objects other than tensors and plain data, which "
            "could run code when loaded; it was refused and nothing was run"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise CheckpointError(f"{where}: truncated or damaged checkpoint ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_safe(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`atomic_torch_save` (``weights_only=True``).

    Raises:
        CheckpointError: the file is empty, truncated or damaged, or not a safe checkpoint; the message names
            the file and, for training checkpoints, how to resume or start over.
    """
    path = Path(path)
    try:
        obj = safe_torch_load(path, str(path), map_location)
    except CheckpointError as err:
        raise CheckpointError(f"{err}. {_recovery_hint(path)}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, got {type(obj).__name__}. {_recovery_hint(path)}")
    return obj


def _recovery_hint(path: Path) -> str:
    if path.name == "checkpoint_latest.pth":
        return (
            "It is the only resume point: put back an intact copy of it (e.g. from a backup) to resume, or delete "
            "it and rerun to start this training over from epoch 0"
        )
    if path.name == "checkpoint_final.pth":
        latest = path.with_name("checkpoint_latest.pth")
        if latest.is_file():
            return f"Delete it and rerun to resume from {latest.name}"
        return f"Copy it again from where it came from, or delete {path.parent} and rerun to train again"
    return "Copy the file again or use another checkpoint"
