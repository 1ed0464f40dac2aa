"""The S2CAC dual-path network: an anisotropic 3D ResNet U-Net (CNN path) and a memory-token transformer.

Shapes use (B, C, Z, Y, X). Every stride is in-plane (1, 2, 2): the slice axis Z is never downsampled, so a
patch needs Y and X divisible by :attr:`DualPathNet.total_stride` (16 with the default three stages) and any Z.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

_INPLANE = (1, 2, 2)


def _conv_bn_relu(cin: int, cout: int, kernel: Sequence[int] = (3, 3, 3), stride: Sequence[int] = (1, 1, 1)):
    pad = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(cin, cout, tuple(kernel), tuple(stride), pad, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock3d(nn.Module):
    """ResNet basic block with 3x3x3 convolutions; ``stride`` is (1, 2, 2) or (1, 1, 1)."""

    def __init__(self, cin: int, cout: int, stride: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, tuple(stride), 1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if cin != cout or tuple(stride) != (1, 1, 1):
            self.shortcut = nn.Sequential(nn.Conv3d(cin, cout, 1, tuple(stride), bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class ConnectionBlock(nn.Module):
    """One CNN -> transformer connection after a decoder block.

    Decoder features (B, C, Z, Y, X) are projected to ``embed_dim`` channels, average-pooled to ``token_grid``
    and flattened to N tokens (+ position embedding). The tokens query the memory (B, N, D) by
    cross-attention; a transformer encoder layer gives the new memory (B, N, D): by default on
    ``LayerNorm(tokens + attended)``; with ``faithful=True`` on ``attended`` alone, as in the authors' released
    network (no residual, no ``norm`` parameters).
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int,
        token_grid: Sequence[int],
        num_heads: int,
        ff_dim: int,
        dropout: float,
        faithful: bool = False,
        attn_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.faithful = bool(faithful)
        self.proj = nn.Conv3d(in_channels, embed_dim, 1)
        self.token_grid = tuple(int(g) for g in token_grid)
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.cross_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=attn_dropout, batch_first=True)
        if not self.faithful:
            self.norm = nn.LayerNorm(embed_dim)
        self.encoder = nn.TransformerEncoderLayer(
            embed_dim, num_heads, ff_dim, dropout, batch_first=True, norm_first=False
        )

    def forward(self, feats: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # proj (1x1x1 conv) and the average pool are both linear and commute exactly; pooling first runs the
        # projection on N tokens instead of every voxel (the full-resolution connection was ~15 % of a CPU step)
        tokens = self.proj(F.adaptive_avg_pool3d(feats, self.token_grid)).flatten(2).transpose(1, 2) + pos
        attended, _ = self.cross_attn(tokens, memory, memory, need_weights=False)
        if self.faithful:
            return self.encoder(attended)
        return self.encoder(self.norm(tokens + attended))


class DualPathNet(nn.Module):
    """Dual-path CNN + transformer for calcium segmentation and calcium-score regression.

    Args:
        in_channels: image channels (1 for CT).
        num_classes: segmentation logits (2: background, calcium).
        stem_channels: channels of the stem conv (kernel (1, 7, 7), stride (1, 2, 2)) before the max-pool.
        stage_channels: channels of the residual stages; stage 0 keeps the resolution, later ones stride (1, 2, 2).
        stage_blocks: basic blocks per residual stage.
        decoder_channels: output channels of the decoder blocks, one more than the number of stages
            (the last block restores full resolution without a skip).
        embed_dim: transformer width (memory and token dimension).
        token_grid: (z, y, x) average-pool grid of the decoder features; its product is the token count N,
            which is also the size of the learnable memory.
        num_heads: attention heads; must divide ``embed_dim``.
        ff_dim: feed-forward width of the transformer encoder layers.
        dropout: transformer dropout.
        memory_init: initial value of every memory entry.
        fg_prior: if given (0 < p < 1), the untrained network predicts calcium with probability p instead of
            (K - 1) / K: the background bias starts at 0 and each of the K - 1 calcium logits' biases at
            log(p / ((K - 1)(1 - p))), which splits p evenly over the calcium classes (arteries); for K = 2 this
            is log(p / (1 - p)).
        use_score_head: build the transformer path and score head; if False, ``forward`` returns a zero score.
        pool_kernel: (z, y, x) kernel of the max-pool after the stem (odd sizes; padding kernel // 2, stride
            (1, 2, 2), so shapes do not depend on it). The authors' released network uses (3, 3, 3).
        faithful_connection: connection blocks as in the authors' released network: the encoder layer acts on
            the cross-attention output alone (no residual, no LayerNorm); see :class:`ConnectionBlock`.
        attn_dropout: dropout of the cross-attention weights; None = ``dropout`` (the authors use 0).
        faithful_init: initialise as the authors' code: position embedding ~ N(0, 1) and Linear layers
            Xavier-uniform with zero bias (default: position embedding truncated N(0, 0.02^2), PyTorch's Linear
            default).
        fullres_kernel: (z, y, x) kernel of the two convolutions of the last decoder block, the only one at full
            resolution (odd sizes). The authors use (3, 3, 3); ``(1, 3, 3)`` costs about a quarter on a CPU (the
            3D context then comes from the lower-resolution layers, which keep 3 x 3 x 3).

    The defaults are the ``paper`` preset (:data:`s2cac.nets.PRESETS`): ``DualPathNet()`` is the paper's network.

    ``forward(x)`` with x (B, in_channels, Z, Y, X) returns ``(logits (B, num_classes, Z, Y, X), score (B,))``,
    or only the logits when :attr:`segmentation_only` is True (for nnU-Net's sliding-window predictor).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        stem_channels: int = 64,
        stage_channels: Sequence[int] = (64, 128, 256),
        stage_blocks: Sequence[int] = (3, 4, 6),
        decoder_channels: Sequence[int] = (256, 128, 64, 32),
        embed_dim: int = 160,
        token_grid: Sequence[int] = (5, 8, 5),
        num_heads: int = 4,
        ff_dim: int = 2048,
        dropout: float = 0.1,
        memory_init: float = 0.5,
        fg_prior: float | None = None,
        use_score_head: bool = True,
        pool_kernel: Sequence[int] = (3, 3, 3),
        faithful_connection: bool = True,
        attn_dropout: float | None = None,
        faithful_init: bool = False,
        fullres_kernel: Sequence[int] = (3, 3, 3),
    ) -> None:
        super().__init__()
        _validate(
            in_channels,
            num_classes,
            stem_channels,
            stage_channels,
            stage_blocks,
            decoder_channels,
            embed_dim,
            token_grid,
            num_heads,
            ff_dim,
            dropout,
            fg_prior,
            pool_kernel,
            faithful_connection,
        )
        _odd_kernel("fullres_kernel", fullres_kernel)
        if attn_dropout is not None and not 0.0 <= attn_dropout < 1.0:
            raise ValueError(f"attn_dropout must be in [0, 1) or None, got {attn_dropout}")
        self.segmentation_only = False
        self.use_score_head = use_score_head
        self.total_stride = 2 ** (len(stage_channels) + 1)
        self.stem = _conv_bn_relu(in_channels, stem_channels, (1, 7, 7), _INPLANE)
        pool_kernel = tuple(pool_kernel)
        self.pool = nn.MaxPool3d(pool_kernel, _INPLANE, tuple(k // 2 for k in pool_kernel))
        stages, cin = [], stem_channels
        for i, (cout, nblocks) in enumerate(zip(stage_channels, stage_blocks, strict=True)):
            stride = (1, 1, 1) if i == 0 else _INPLANE
            blocks = [BasicBlock3d(cin, cout, stride)] + [BasicBlock3d(cout, cout) for _ in range(nblocks - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        # skips from deep to shallow: stages[-2], ..., stages[0], stem; the last decoder block has none
        skips = list(stage_channels[-2::-1]) + [stem_channels, 0]
        decoder, cin = [], stage_channels[-1]
        for i, (cout, skip) in enumerate(zip(decoder_channels, skips, strict=True)):
            k = tuple(fullres_kernel) if i == len(decoder_channels) - 1 else (3, 3, 3)
            decoder.append(nn.Sequential(_conv_bn_relu(cin + skip, cout, k), _conv_bn_relu(cout, cout, k)))
            cin = cout
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Conv3d(decoder_channels[-1], num_classes, 1)
        if use_score_head:
            n_tokens = math.prod(token_grid)
            self.memory = nn.Parameter(torch.full((1, n_tokens, embed_dim), float(memory_init)))
            self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, embed_dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            self.connections = nn.ModuleList(
                ConnectionBlock(c, embed_dim, token_grid, num_heads, ff_dim, dropout, faithful_connection, attn_dropout)
                for c in decoder_channels
            )
            self.score_head = nn.Linear(embed_dim, 1)
        self._init_weights(fg_prior, faithful_init)

    def _init_weights(self, fg_prior: float | None, faithful_init: bool = False) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif faithful_init and isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if faithful_init and self.use_score_head:
            with torch.no_grad():
                self.pos_embed.normal_(0.0, 1.0)
        if fg_prior is not None:
            with torch.no_grad():
                self.head.bias.zero_()
                k = self.head.bias.numel() - 1  # calcium classes
                self.head.bias[1:] = math.log(fg_prior / (k * (1.0 - fg_prior)))

    def check_patch(self, spatial: Sequence[int]) -> None:
        """Raise ValueError unless a (Z, Y, X) patch fits: Y and X divisible by the total in-plane stride."""
        if len(spatial) != 3 or any(int(s) < 1 for s in spatial):
            raise ValueError(f"patch must be (Z, Y, X) with positive sizes, got {tuple(spatial)}")
        bad = [n for n, s in zip("YX", spatial[1:], strict=True) if int(s) % self.total_stride]
        if bad:
            ok = [max(self.total_stride, round(int(s) / self.total_stride) * self.total_stride) for s in spatial[1:]]
            raise ValueError(
                f"patch {tuple(int(s) for s in spatial)}: in-plane size {'/'.join(bad)} must be divisible by the "
                f"network's total stride {self.total_stride}; e.g. use (Y, X) = {tuple(ok)}"
            )

    def fused_for_inference(self, channels_last: bool = True) -> DualPathNet:
        """A copy for inference: eval mode, every BatchNorm folded into the convolution before it, and (by default)
        channels-last memory.

        Folding uses torch's ``fuse_conv_bn_eval`` (the convolution's weights and bias absorb the BatchNorm's running
        statistics and affine parameters): the same function as the eval-mode network, up to float rounding (logits
        differ by ~1e-5). With ``channels_last`` the activations are stored (B, Z, Y, X, C) and the 1x1x1 head is a
        matrix product over the channels; on a CPU, oneDNN's convolutions are then ~1.5-2x faster for ``tiny``
        (benchmarks/RESULTS.md). The copy cannot be trained (no BatchNorm) and its ``state_dict`` has no
        BatchNorm keys; ``self`` is not changed.
        """
        net = copy.deepcopy(self).eval()
        for module in list(net.modules()):
            if isinstance(module, BasicBlock3d):
                module.conv1, module.bn1 = fuse_conv_bn_eval(module.conv1, module.bn1), nn.Identity()
                module.conv2, module.bn2 = fuse_conv_bn_eval(module.conv2, module.bn2), nn.Identity()
            if isinstance(module, nn.Sequential):
                for i in range(len(module) - 1):
                    if isinstance(module[i], nn.Conv3d) and isinstance(module[i + 1], nn.BatchNorm3d):
                        module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), nn.Identity()
        left = [name for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if left:  # every BatchNorm of this architecture follows a convolution; a new layout must be folded too
            raise RuntimeError(f"fused_for_inference: BatchNorm layers not folded: {left}")
        net._channels_last = bool(channels_last)
        if channels_last:
            net = net.to(memory_format=torch.channels_last_3d)
        return net

    _channels_last: bool = False

    def _head(self, y: torch.Tensor) -> torch.Tensor:
        if not self._channels_last:
            return self.head(y)
        # (B, Z, Y, X, C) view of the channels-last features; torch's Conv3d would copy them back to
        # channels-first and take its slow path for a 1x1x1 kernel
        out = F.linear(y.permute(0, 2, 3, 4, 1), self.head.weight.flatten(1), self.head.bias)
        return out.permute(0, 4, 1, 2, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected input (B, C, Z, Y, X), got shape {tuple(x.shape)}")
        self.check_patch(x.shape[2:])
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        skips = [self.stem(x)]
        y = self.pool(skips[0])
        for stage in self.stages:
            y = stage(y)
            skips.append(y)
        skips = skips[:-1][::-1]  # deep -> shallow: stages[-2..0], stem
        run_score = self.use_score_head and not self.segmentation_only
        memory = self.memory.expand(x.shape[0], -1, -1) if run_score else None
        for i, block in enumerate(self.decoder):
            y = F.interpolate(y, scale_factor=_INPLANE, mode="nearest")
            if i < len(skips):
                y = torch.cat([y, skips[i]], dim=1)
            y = block(y)
            if run_score:
                memory = self.connections[i](y, memory, self.pos_embed)
        logits = self._head(y)
        if self.segmentation_only:
            return logits
        if run_score:
            score = self.score_head(memory.mean(dim=1)).squeeze(1)
        else:
            score = logits.new_zeros(x.shape[0])
        return logits, score


def _validate(
    in_channels,
    num_classes,
    stem_channels,
    stage_channels,
    stage_blocks,
    decoder_channels,
    embed_dim,
    token_grid,
    num_heads,
    ff_dim,
    dropout,
    fg_prior,
    pool_kernel,
    faithful_connection,
) -> None:
    def positive_ints(name: str, seq) -> None:
        vals = list(seq)
        if not vals or not all(isinstance(v, int) and v > 0 for v in vals):
            raise ValueError(f"{name} must be a non-empty list of positive integers, got {seq!r}")

    for name, v in (
        ("in_channels", in_channels),
        ("num_classes", num_classes),
        ("stem_channels", stem_channels),
        ("embed_dim", embed_dim),
        ("num_heads", num_heads),
        ("ff_dim", ff_dim),
    ):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (softmax over background and calcium), got {num_classes}")
    positive_ints("stage_channels", stage_channels)
    positive_ints("stage_blocks", stage_blocks)
    positive_ints("decoder_channels", decoder_channels)
    positive_ints("token_grid", token_grid)
    if len(stage_blocks) != len(stage_channels):
        raise ValueError(f"stage_blocks {list(stage_blocks)} needs one entry per stage {list(stage_channels)}")
    if len(decoder_channels) != len(stage_channels) + 1:
        raise ValueError(
            f"decoder_channels needs {len(stage_channels) + 1} entries (one per stage + full resolution), "
            f"got {list(decoder_channels)}"
        )
    if len(token_grid) != 3:
        raise ValueError(f"token_grid must be (z, y, x), got {token_grid!r}")
    if embed_dim % num_heads:
        raise ValueError(f"num_heads ({num_heads}) must divide embed_dim ({embed_dim})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if fg_prior is not None and not 0.0 < fg_prior < 1.0:
        raise ValueError(f"fg_prior must be a probability in (0, 1), got {fg_prior}")
    _odd_kernel("pool_kernel", pool_kernel)
    if not isinstance(faithful_connection, bool):
        raise ValueError(f"faithful_connection must be true or false, got {faithful_connection!r}")


def _odd_kernel(name: str, kernel) -> None:
    values = list(kernel) if isinstance(kernel, Sequence) and not isinstance(kernel, str) else []
    if len(values) != 3 or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 and k % 2 for k in values):
        raise ValueError(f"{name} must be three odd positive integers (z, y, x), got {kernel!r}")
