"""Convert the authors' released checkpoint (``checkpoint_S2CAC.pth``) into our model folder or package.

Their file is a torch pickle of an nnU-Net (<= 2.5) checkpoint dict: ``network_weights`` (their state_dict,
possibly with a ``module.`` prefix), ``optimizer_state``, ``grad_scaler_state``, ``logging``, ``_best_ema``,
``current_epoch``, ``init_args`` (with the plans), ``trainer_name``, ``inference_allowed_mirroring_axes``.
It is loaded with ``torch.load(weights_only=True)``; numpy scalars in its logs need a narrow allowlist
(:data:`ALLOWED_NUMPY_GLOBALS`, only while loading); any other pickled global is refused.

:func:`key_mapping` is the explicit table (ours <- theirs) for our ``paper`` network built with
:data:`ORIGINAL_OVERRIDES` (their stem max-pool kernel and connection block), which computes what theirs does;
the layout is ``shared/reference/original_checkpoint_layout.tsv``. Unused in their forward and not imported:
``encoder.layer4.*`` and ``decoder.SAL_first.*``. See docs/inference.md.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from s2cac.inference.model_io import ModelError, check_output, write_model_folder, write_package
from s2cac.inference.plans import make_dataset_json, make_plans
from s2cac.nnunet import CONFIGURATION

if TYPE_CHECKING:
    from s2cac.nets import DualPathNet

#: The only non-torch globals their checkpoint may hold (numpy scalars in logs / _best_ema).
ALLOWED_NUMPY_GLOBALS: list[Any] = [
    np._core.multiarray.scalar,
    np.dtype,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
    np.dtypes.Int32DType,
    np.dtypes.BoolDType,
]
CHECKPOINT_KEYS = (
    "network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema",
    "current_epoch", "init_args", "trainer_name", "inference_allowed_mirroring_axes",
)  # fmt: skip
#: Their parameters with no role in their forward pass (not imported).
UNUSED_PREFIXES = ("encoder.layer4.", "decoder.SAL_first.")
#: ``paper`` constructor overrides that make our network compute what theirs does: max-pool kernel (3, 3, 3)
#: after the stem, connection blocks without residual and LayerNorm around the cross-attention.
ORIGINAL_OVERRIDES: dict[str, Any] = {"pool_kernel": [3, 3, 3], "faithful_connection": True}
#: Their parameter layout (key, shape, dtype), a copy of shared/reference/original_checkpoint_layout.tsv.
LAYOUT_TSV = Path(__file__).with_name("original_checkpoint_layout.tsv")
DEFAULT_SPACING_ZYX = (3.0, 0.369, 0.369)
DEFAULT_PATCH = (24, 256, 256)
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_MHA = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
_ENC_LAYER = (*(f"self_attn.{p}" for p in _MHA), "linear1.weight", "linear1.bias", "linear2.weight",
              "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")  # fmt: skip


def key_mapping(stage_blocks: tuple[int, ...] = (3, 4, 6), n_decoder: int = 4) -> dict[str, str]:
    """Our state_dict key -> their key for :func:`original_network` (ResNet-34 stages 1-3, 4 decoder blocks).

    Every key of our network has a counterpart; theirs without one are :data:`UNUSED_PREFIXES`.
    """
    m: dict[str, str] = {"stem.0.weight": "encoder.conv1.weight"}
    m |= {f"stem.1.{p}": f"encoder.bn1.{p}" for p in _BN}
    for s, nblocks in enumerate(stage_blocks):
        for b in range(nblocks):
            ours, theirs = f"stages.{s}.{b}", f"encoder.layer{s + 1}.{b}"
            m[f"{ours}.conv1.weight"] = f"{theirs}.conv1.weight"
            m[f"{ours}.conv2.weight"] = f"{theirs}.conv2.weight"
            m |= {f"{ours}.bn{i}.{p}": f"{theirs}.bn{i}.{p}" for i in (1, 2) for p in _BN}
        if s > 0:  # stride-2 stages have a projection shortcut (their "downsample")
            m[f"stages.{s}.0.shortcut.0.weight"] = f"encoder.layer{s + 1}.0.downsample.0.weight"
            m |= {f"stages.{s}.0.shortcut.1.{p}": f"encoder.layer{s + 1}.0.downsample.1.{p}" for p in _BN}
    for i in range(n_decoder):
        for j, conv in enumerate(("conv1", "conv2")):
            m[f"decoder.{i}.{j}.0.weight"] = f"decoder.blocks.{i}.{conv}.0.weight"
            m |= {f"decoder.{i}.{j}.1.{p}": f"decoder.blocks.{i}.{conv}.1.{p}" for p in _BN}
        m[f"connections.{i}.proj.weight"] = f"decoder.conv_flat.{i}.0.weight"
        m[f"connections.{i}.proj.bias"] = f"decoder.conv_flat.{i}.0.bias"
        m |= {f"connections.{i}.cross_attn.{p}": f"decoder.cross_attention_layers.{i}.multihead_attn.{p}" for p in _MHA}
        m |= {f"connections.{i}.encoder.{p}": f"decoder.self_attention_layers.{i}.{p}" for p in _ENC_LAYER}
    m |= {"head.weight": "segmentation_head.0.weight", "head.bias": "segmentation_head.0.bias"}
    m |= {"score_head.weight": "decoder.reg_head.weight", "score_head.bias": "decoder.reg_head.bias"}
    m |= {"memory": "decoder.embedding_A", "pos_embed": "decoder.position_embedding"}  # (200, D) -> (1, 200, D)
    return m


def read_layout(tsv: str | Path = LAYOUT_TSV) -> dict[str, tuple[tuple[int, ...], str]]:
    """Their layout: key -> (shape, dtype name)."""
    layout = {}
    for line in Path(tsv).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, dtype = line.split("\t")
            layout[key] = (tuple(int(d) for d in re.findall(r"\d+", shape)), dtype.strip())
    return layout


def check_layout(theirs: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Refuse a state_dict whose keys or shapes differ from the released network's layout."""
    layout = read_layout()
    missing = sorted(set(layout) - set(theirs))
    surplus = sorted(set(theirs) - set(layout))
    shapes = sorted(k for k in set(layout) & set(theirs) if tuple(theirs[k].shape) != layout[k][0])
    if missing or surplus or shapes:
        raise ModelError(
            f"{where}: not the released S2CAC (resnet34_3D) layout: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(surplus)} unknown (e.g. {surplus[:3]}), {len(shapes)} of other shape (e.g. {shapes[:3]})"
        )


def load_original_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load their checkpoint without executing arbitrary pickled code.

    ``torch.load(weights_only=True)`` first; if it refuses only because of numpy scalar/dtype globals, again
    with exactly :data:`ALLOWED_NUMPY_GLOBALS` allowlisted. Anything else is refused with the global's name.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - inspect why below
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception as err:  # noqa: BLE001
            detail = str(first).strip().splitlines()[0] if str(first).strip() else type(first).__name__
            if path.stat().st_size == 0:
                detail = "empty file"
            raise ModelError(f"{path}: not a loadable torch checkpoint (truncated or damaged? {detail})") from err
        allowed = {f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_NUMPY_GLOBALS}
        allowed |= {"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"}
        unsafe = sorted(set(needed) - allowed)
        if unsafe:
            raise ModelError(
                f"{path}: not a safe checkpoint: it references {unsafe}, which are not plain weights or numpy "
                "scalars and could run code when loaded; it was refused and nothing was run"
            ) from first
        with torch.serialization.safe_globals(ALLOWED_NUMPY_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)


def original_state_dict(ckpt: dict[str, Any], where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Their ``network_weights`` with any ``module.`` prefix removed."""
    if not isinstance(ckpt, dict) or "network_weights" not in ckpt:
        raise ModelError(f"{where}: not an nnU-Net checkpoint dict (no 'network_weights'; keys {list(ckpt)[:9]})")
    sd = ckpt["network_weights"]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def convert_state_dict(
    theirs: dict[str, torch.Tensor], ours_template: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map their tensors onto our keys; refuse missing, surplus or differently shaped tensors.

    Args:
        theirs: their state_dict (prefix removed).
        ours_template: state_dict of :func:`original_network` (names, shapes, dtypes).
    """
    mapping = key_mapping()
    ours_keys = set(ours_template)
    unmapped_ours = sorted(ours_keys - set(mapping))
    if unmapped_ours or set(mapping) - ours_keys:
        raise ModelError(
            f"mapping table and our network disagree: unmapped {unmapped_ours[:5]}, "
            f"unknown {sorted(set(mapping) - ours_keys)[:5]} (was the network changed?)"
        )
    used = set(mapping.values())
    missing = sorted(used - set(theirs))
    surplus = sorted(k for k in set(theirs) - used if not k.startswith(UNUSED_PREFIXES))
    if missing or surplus:
        raise ModelError(
            f"checkpoint layout is not the released S2CAC network: {len(missing)} expected tensor(s) missing "
            f"(e.g. {missing[:3]}), {len(surplus)} unknown (e.g. {surplus[:3]})"
        )
    out = {}
    for key, tmpl in ours_template.items():
        src = theirs[mapping[key]]
        if src.numel() != tmpl.numel() or (src.ndim == tmpl.ndim and src.shape != tmpl.shape):
            raise ModelError(f"{mapping[key]} has shape {tuple(src.shape)}; our {key} needs {tuple(tmpl.shape)}")
        out[key] = src.detach().reshape(tmpl.shape).to(tmpl.dtype).clone()
    return out


def original_network() -> DualPathNet:
    """Our ``paper`` network with :data:`ORIGINAL_OVERRIDES` (random weights): the authors' computation."""
    from s2cac.nets import build_network

    return build_network("paper", **ORIGINAL_OVERRIDES)


def _their_plans(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    init = ckpt.get("init_args") or {}
    plans = init.get("plans", init) if isinstance(init, dict) else {}
    conf = (plans.get("configurations") or {}).get(CONFIGURATION, {}) if isinstance(plans, dict) else {}
    return plans, conf


def import_original_checkpoint(checkpoint: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Convert their checkpoint into our model folder, or a package if ``out`` ends with ``.zip``.

    The model's config records ``network: paper`` with ``network_overrides`` = :data:`ORIGINAL_OVERRIDES`, so
    :func:`~s2cac.inference.load_model` rebuilds the authors' computation.

    Args:
        checkpoint: ``checkpoint_S2CAC.pth`` (teacher weights, nnU-Net checkpoint dict).
        out: output model folder or ``.zip`` package.
        overwrite: replace an existing ``out``; only an s2cac package, model folder or empty folder is ever
            replaced (see :func:`~s2cac.inference.model_io.check_output`).

    Returns:
        The written path.
    """
    checkpoint = Path(checkpoint)
    check_output(out, overwrite, "package" if Path(out).suffix.lower() == ".zip" else "folder")
    ckpt = load_original_checkpoint(checkpoint)
    theirs = original_state_dict(ckpt, str(checkpoint))
    check_layout(theirs, str(checkpoint))
    state = convert_state_dict(theirs, original_network().state_dict())
    _, conf = _their_plans(ckpt)
    patch = conf.get("patch_size") or list(DEFAULT_PATCH)
    spacing = conf.get("spacing") or list(DEFAULT_SPACING_ZYX)
    plans = make_plans(patch, spacing, median_shape=conf.get("median_image_size_in_voxels"), preset="paper")
    mirror = ckpt.get("inference_allowed_mirroring_axes") or (0, 1, 2)
    config = {
        "network": "paper",
        "network_overrides": copy.deepcopy(ORIGINAL_OVERRIDES),
        "use_score_head": True,
        "inference_allowed_mirroring_axes": [int(a) for a in mirror],
        "imported_from": {
            "file": checkpoint.name,
            "sha256": _sha256_file(checkpoint),
            "trainer_name": str(ckpt.get("trainer_name", "")),
            "current_epoch": int(ckpt.get("current_epoch", -1) or -1),
            "original_normalization_schemes": [str(s) for s in conf.get("normalization_schemes", [])],
        },
    }
    out = Path(out)
    if out.suffix.lower() == ".zip":
        write_package(out, state, plans, make_dataset_json(), config, {"imported_from": checkpoint.name})
    else:
        write_model_folder(out, state, plans, make_dataset_json(), config)
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_from_layout(tsv: str | Path = LAYOUT_TSV, seed: int = 0) -> dict[str, Any]:
    """A checkpoint dict in their layout with random weights, built from the layout TSV (for tests).

    Holds every key and shape of the TSV and the checkpoint dict's other entries, with the kinds of values an
    nnU-Net checkpoint holds (numpy float64 in the logs, a torch.device in ``init_args``).
    """
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, (dims, dtype) in read_layout(tsv).items():
        if dtype == "torch.int64":
            sd[f"module.{key}"] = torch.tensor(7, dtype=torch.int64).reshape(dims)
        elif key.endswith("running_var"):  # positive, so that a forward pass gives finite values
            sd[f"module.{key}"] = 0.5 + torch.rand(dims, generator=gen)
        else:
            sd[f"module.{key}"] = torch.randn(dims, generator=gen) * 0.05
    plans = {"configurations": {CONFIGURATION: {"patch_size": [24, 256, 256], "spacing": [3.0, 0.369, 0.369],
                                               "normalization_schemes": ["CACWindowNormalization"]}}}  # fmt: skip
    return {
        "network_weights": sd,
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.99, "params": [0, 1]}]},
        "grad_scaler_state": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 3},
        "logging": {
            "mean_fg_dice": [np.float64(0.5), np.float64(0.6)],
            "ema_fg_dice": [np.float64(0.55)],
            "epoch_start_timestamps": [1.0, 2.0],
        },  # fmt: skip
        "_best_ema": np.float64(0.61),
        "current_epoch": 500,
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": 0, "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer_S2CAC",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }


def save_checkpoint_bytes(ckpt: dict[str, Any]) -> bytes:
    """``torch.save`` of a checkpoint dict to bytes (for tests)."""
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()
