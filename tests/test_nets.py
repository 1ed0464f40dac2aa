"""Shape, validation and initialisation tests of the dual-path network."""

import inspect
import math

import pytest
import torch
from torch.nn import functional as F

from s2cac.nets import PRESETS, DualPathNet, build_network, count_parameters


@pytest.mark.parametrize("patch", [(8, 32, 32), (5, 48, 64), (1, 16, 16), (16, 64, 48)])
def test_tiny_output_shapes(patch):
    torch.manual_seed(0)
    net = build_network("tiny")
    x = torch.randn(2, 1, *patch)
    logits, score = net(x)
    assert logits.shape == (2, 2, *patch)
    assert score.shape == (2,)
    assert torch.isfinite(logits).all() and torch.isfinite(score).all()


def test_paper_preset_parameters_and_small_forward():
    net = build_network("paper")
    n = count_parameters(net)
    assert 34.0e6 < n < 35.0e6, n  # the paper: ~34.5 M used parameters
    net.eval()
    with torch.no_grad():
        logits, score = net(torch.randn(1, 1, 2, 32, 32))
    assert logits.shape == (1, 2, 2, 32, 32) and score.shape == (1,)


def test_paper_preset_has_four_connection_blocks_and_no_512_stage():
    net = build_network("paper")
    assert len(net.connections) == 4 and len(net.decoder) == 4
    assert max(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv3d)) == 256
    assert net.memory.shape == (1, 200, 160) and torch.all(net.memory == 0.5)


@pytest.mark.parametrize("patch", [(8, 24, 32), (8, 32, 40), (4, 8, 16)])
def test_bad_inplane_size_raises_clear_error(patch):
    net = build_network("tiny")
    with pytest.raises(ValueError, match="divisible by the network's total stride 16"):
        net(torch.randn(1, 1, *patch))


def test_segmentation_only_returns_logits():
    net = build_network("tiny").eval()
    net.segmentation_only = True
    out = net(torch.randn(1, 1, 4, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2, 4, 32, 32)


def test_fg_prior_sets_head_bias():
    net = build_network("tiny", fg_prior=0.01)
    assert net.head.bias[0].item() == 0.0
    assert net.head.bias[1].item() == pytest.approx(math.log(0.01 / 0.99))


def test_fg_prior_is_split_over_the_artery_classes():
    net = build_network("tiny", num_classes=5, fg_prior=0.02)
    assert net.head.bias[0].item() == 0.0
    p = torch.softmax(net.head.bias.detach(), 0)  # the untrained head's class probabilities (zero features)
    assert p[0].item() == pytest.approx(0.98) and p[1:].tolist() == pytest.approx([0.005] * 4)


def test_without_score_head_score_is_zero_and_no_transformer():
    net = build_network("tiny", use_score_head=False)
    assert not hasattr(net, "connections")
    _, score = net(torch.randn(2, 1, 4, 16, 16))
    assert torch.all(score == 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stage_blocks": (1, 1)}, "one entry per stage"),
        ({"decoder_channels": (8, 8, 8)}, "decoder_channels needs 4"),
        ({"num_heads": 3}, "must divide embed_dim"),
        ({"token_grid": (2, 2)}, "token_grid"),
        ({"fg_prior": 1.5}, "fg_prior"),
        ({"stem_channels": 0}, "stem_channels"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DualPathNet(**{**PRESETS["tiny"], **kwargs})


def test_constructor_defaults_are_the_paper_preset():
    """DualPathNet() builds the paper's network, the same as build_network("paper") (one source per parameter)."""
    defaults = {
        name: p.default for name, p in inspect.signature(DualPathNet.__init__).parameters.items() if name != "self"
    }
    for name, value in PRESETS["paper"].items():
        assert defaults[name] == value, f"DualPathNet's default {name}={defaults[name]!r}, paper preset {value!r}"


def test_unknown_preset_or_override():
    with pytest.raises(ValueError, match="unknown network preset"):
        build_network("huge")
    with pytest.raises(ValueError, match="unknown network argument"):
        build_network("tiny", widht=3)


def test_two_stage_network_has_stride_8():
    net = build_network("tiny", stage_channels=(8, 16), stage_blocks=(1, 1), decoder_channels=(16, 8, 8))
    assert net.total_stride == 8
    logits, _ = net(torch.randn(1, 1, 3, 24, 40))
    assert logits.shape == (1, 2, 3, 24, 40)


def test_paper_preset_is_the_authors_network():
    net = build_network("paper")
    assert count_parameters(net) == 34_482_211
    assert net.pool.kernel_size == (3, 3, 3) and net.pool.padding == (1, 1, 1) and net.pool.stride == (1, 2, 2)
    assert all(c.faithful for c in net.connections)


def test_constructor_defaults_unchanged():
    net = build_network("tiny")
    assert net.pool.kernel_size == (1, 3, 3) and net.pool.padding == (0, 1, 1) and net.pool.stride == (1, 2, 2)
    assert all(not c.faithful and isinstance(c.norm, torch.nn.LayerNorm) for c in net.connections)


@pytest.mark.parametrize("pool_kernel", [(3, 3, 3), (3, 5, 5)])
@pytest.mark.parametrize("patch", [(8, 32, 32), (5, 48, 64), (1, 16, 16)])
def test_pool_kernel_keeps_shapes(pool_kernel, patch):
    torch.manual_seed(0)
    net = build_network("tiny", pool_kernel=list(pool_kernel)).eval()
    assert net.pool.kernel_size == pool_kernel and net.pool.padding == tuple(k // 2 for k in pool_kernel)
    x = torch.randn(2, 1, *patch)
    stem = net.stem(x)
    assert net.pool(stem).shape == build_network("tiny").pool(stem).shape
    logits, score = net(x)
    assert logits.shape == (2, 2, *patch) and score.shape == (2,)
    assert torch.isfinite(logits).all() and torch.isfinite(score).all()


def test_pool_kernel_changes_only_the_pool():
    torch.manual_seed(0)
    ref = build_network("tiny").eval()
    net = build_network("tiny", pool_kernel=(3, 3, 3)).eval()
    net.load_state_dict(ref.state_dict(), strict=True)  # no parameters involved
    x = torch.randn(1, 1, 6, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(ref(x)[0], net(x)[0])


@pytest.mark.parametrize("pool_kernel", [(2, 3, 3), (3, 3), (0, 3, 3), (3, 3, -1), (3.0, 3, 3), (True, 3, 3), "333", 3])
def test_pool_kernel_validation(pool_kernel):
    with pytest.raises(ValueError, match="pool_kernel must be three odd positive integers"):
        build_network("tiny", pool_kernel=pool_kernel)


@pytest.mark.parametrize("patch", [(8, 32, 32), (5, 48, 64), (1, 16, 16), (16, 64, 48)])
def test_faithful_connection_shapes_and_parameters(patch):
    torch.manual_seed(0)
    net = build_network("tiny", faithful_connection=True)
    assert all(c.faithful and not hasattr(c, "norm") for c in net.connections)
    default = build_network("tiny")
    extra = set(default.state_dict()) - set(net.state_dict())
    assert extra == {f"connections.{i}.norm.{p}" for i in range(4) for p in ("weight", "bias")}
    assert set(net.state_dict()) < set(default.state_dict())
    logits, score = net(torch.randn(2, 1, *patch))
    assert logits.shape == (2, 2, *patch) and score.shape == (2,)
    assert torch.isfinite(logits).all() and torch.isfinite(score).all()


def test_faithful_connection_block_computes_encoder_of_cross_attention():
    torch.manual_seed(0)
    net = build_network("tiny", faithful_connection=True).eval()
    block = net.connections[1]
    feats, memory = torch.randn(2, 16, 4, 8, 8), torch.randn(2, 8, 16)
    with torch.no_grad():
        tokens = F.adaptive_avg_pool3d(block.proj(feats), (2, 2, 2)).flatten(2).transpose(1, 2) + net.pos_embed
        attended = block.cross_attn(tokens, memory, memory)[0]  # query = tokens + pos, key = value = memory
        assert torch.allclose(block(feats, memory, net.pos_embed), block.encoder(attended), atol=1e-6)


def test_faithful_connection_validation_and_paper_count():
    with pytest.raises(ValueError, match="faithful_connection"):
        build_network("tiny", faithful_connection="yes")
    net = build_network("paper", pool_kernel=(1, 3, 3), faithful_connection=False)
    assert count_parameters(net) == 34_482_211 + 4 * 2 * 160


@pytest.mark.parametrize("name", ["n_tokens", "stages", "embed_dimm"])
def test_build_network_refuses_local_names_and_typos(name) -> None:
    from s2cac.nets import build_network

    with pytest.raises(ValueError, match=rf"unknown network argument\(s\) \['{name}'\]"):
        build_network("tiny", **{name: 3})


def test_fullres_kernel_only_in_the_last_decoder_block():
    def kernels(net):
        return [[m.kernel_size for m in block.modules() if isinstance(m, torch.nn.Conv3d)] for block in net.decoder]

    tiny = kernels(build_network("tiny"))
    assert tiny[-1] == [(1, 3, 3), (1, 3, 3)] and all(k == [(3, 3, 3)] * 2 for k in tiny[:-1])
    assert all(k == [(3, 3, 3)] * 2 for k in kernels(build_network("tiny", fullres_kernel=(3, 3, 3))))
    assert kernels(build_network("paper"))[-1] == [(3, 3, 3), (3, 3, 3)]  # the authors' network is unchanged
    logits, _ = build_network("tiny", fullres_kernel=[3, 1, 1])(torch.randn(2, 1, 4, 32, 32))
    assert logits.shape == (2, 2, 4, 32, 32)
    with pytest.raises(ValueError, match="fullres_kernel must be three odd positive integers"):
        build_network("tiny", fullres_kernel=(2, 3, 3))


def test_connection_pools_before_projecting_as_if_after():
    """Pooling then projecting (what forward does, cheaper) equals projecting every voxel then pooling."""
    torch.manual_seed(0)
    block = build_network("tiny").connections[-1]
    feats = torch.randn(2, 8, 6, 48, 80)  # a grid the token pool does not divide evenly
    with torch.no_grad():
        slow = F.adaptive_avg_pool3d(block.proj(feats), block.token_grid)
        fast = block.proj(F.adaptive_avg_pool3d(feats, block.token_grid))
    assert torch.allclose(slow, fast, atol=1e-5)


def _trained_like(preset: str, **overrides) -> DualPathNet:
    """A network whose BatchNorm layers hold non-trivial statistics and affine parameters (folding them into the
    convolutions is then not the identity)."""
    torch.manual_seed(1)
    net = build_network(preset, **overrides)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("segmentation_only", [True, False])
def test_fused_for_inference_computes_the_eval_network(channels_last, segmentation_only):
    net = _trained_like("tiny", num_classes=3)
    net.segmentation_only = segmentation_only
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fused = net.fused_for_inference(channels_last=channels_last)
    x = torch.randn(2, 1, 4, 32, 48)
    with torch.no_grad():
        ref, out = net(x), fused(x)
    if segmentation_only:
        ref, out = (ref,), (out,)
    for r, o in zip(ref, out, strict=True):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-4)
    # no BatchNorm left, folded into the convolutions; the original network is untouched
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    w = fused.decoder[0][0][0].weight  # (32, 48, 3, 3, 3): the two layouts differ
    assert w.is_contiguous(memory_format=torch.channels_last_3d) == channels_last
    # what nnU-Net does before predicting: load the (fused) network's own parameters into it
    fused.load_state_dict(fused.state_dict())


def test_fused_for_inference_folds_the_statistics_not_ignores_them():
    net = _trained_like("tiny")
    net.segmentation_only = True
    fused = net.fused_for_inference()
    x = torch.randn(1, 1, 2, 32, 32)
    with torch.no_grad():
        net.stages[0][0].bn1.running_var.mul_(4.0)  # the copy must not depend on the original's buffers
        changed = net(x)
        net.stages[0][0].bn1.running_var.div_(4.0)
        ref, out = net(x), fused(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert (changed - ref).abs().max() > 1e-3


def test_fused_for_inference_of_the_paper_network():
    """The paper preset (3 x 3 x 3 stem pool, 3/4/6 blocks with strided shortcuts, plain connection blocks)."""
    net = _trained_like("paper")
    fused = net.fused_for_inference()
    x = torch.randn(1, 1, 2, 32, 32)
    with torch.no_grad():
        (ref_logits, ref_score), (logits, score) = net(x), fused(x)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(score, ref_score, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
