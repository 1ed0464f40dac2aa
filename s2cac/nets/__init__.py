"""Networks: the S2CAC dual-path CNN + transformer and its presets.

:class:`DualPathNet` (torch) is imported on first use, so that checking a config's preset name (the Snakefile does,
once per job on a cluster) does not import torch.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from s2cac.nets.dualpath import DualPathNet

#: Constructor arguments of :class:`DualPathNet` per preset. ``paper`` follows the paper and the authors' released
#: network (34.5 M parameters; docs/training.md, "Network") and is also the constructor's defaults (a test keeps them
#: equal); ``tiny`` trains on two CPU cores (about 0.18 M parameters) with the residual connection block (LayerNorm
#: around the cross-attention) and the (1, 3, 3) pool, which the CPU demo was tuned with.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        stem_channels=64,
        stage_channels=(64, 128, 256),
        stage_blocks=(3, 4, 6),
        decoder_channels=(256, 128, 64, 32),
        embed_dim=160,
        token_grid=(5, 8, 5),
        num_heads=4,
        ff_dim=2048,
        dropout=0.1,
        # As the authors' released network: stem max-pool over 3 slices too, and a connection block that is
        # encoder(cross-attention) with no extra residual/LayerNorm (as the paper describes it).
        pool_kernel=(3, 3, 3),
        faithful_connection=True,
    ),
    "tiny": dict(
        stem_channels=8,
        stage_channels=(8, 16, 32),
        stage_blocks=(1, 1, 1),
        decoder_channels=(32, 16, 8, 8),
        embed_dim=16,
        token_grid=(2, 2, 2),
        num_heads=2,
        ff_dim=32,
        dropout=0.0,
        pool_kernel=(1, 3, 3),
        faithful_connection=False,
        fullres_kernel=(1, 3, 3),  # the full-resolution block in-plane only: ~1.3x per CPU training step
    ),
}


def __getattr__(name: str) -> Any:
    if name == "DualPathNet":  # s2cac.nets.DualPathNet, also the class path nnU-Net's plans name
        from s2cac.nets.dualpath import DualPathNet

        return DualPathNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_network(preset: str = "paper", **overrides: Any) -> DualPathNet:
    """Build a :class:`DualPathNet` from a preset name plus constructor overrides (validated)."""
    from s2cac.nets.dualpath import DualPathNet

    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}; choose from {sorted(PRESETS)}")
    # the constructor's parameters only (co_varnames would also accept its local variable names)
    unknown = set(overrides) - (set(inspect.signature(DualPathNet.__init__).parameters) - {"self"})
    if unknown:
        raise ValueError(f"unknown network argument(s) {sorted(unknown)} for preset {preset!r}")
    return DualPathNet(**{**PRESETS[preset], **overrides})


def count_parameters(net) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["PRESETS", "DualPathNet", "build_network", "count_parameters"]
