"""s2cac import-weights: the authors' checkpoint layout mapped onto our paper network (random weights, CPU)."""

from __future__ import annotations

import fractions
import pickle
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from s2cac.cli import main
from s2cac.inference.import_weights import (
    LAYOUT_TSV,
    ORIGINAL_OVERRIDES,
    UNUSED_PREFIXES,
    checkpoint_from_layout,
    convert_state_dict,
    key_mapping,
    load_original_checkpoint,
    original_network,
    original_state_dict,
    read_layout,
    save_checkpoint_bytes,
)
from s2cac.inference.model_io import ModelError, load_model
from s2cac.nets import build_network

REFERENCE_TSV = Path("/work/shared/reference/original_checkpoint_layout.tsv")


@pytest.fixture(scope="module")
def ckpt_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("orig") / "checkpoint_S2CAC.pth"
    path.write_bytes(save_checkpoint_bytes(checkpoint_from_layout(seed=1)))
    return path


@pytest.fixture(scope="module")
def paper_template() -> dict[str, torch.Tensor]:
    return original_network().state_dict()


@pytest.mark.skipif(not REFERENCE_TSV.exists(), reason="shared reference not present")
def test_shipped_layout_equals_reference() -> None:
    assert LAYOUT_TSV.read_text(encoding="utf-8") == REFERENCE_TSV.read_text(encoding="utf-8")


def test_checkpoint_has_every_key_and_loads_without_unsafe_pickle(ckpt_file: Path) -> None:
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only=True refuses the numpy scalars in its logs ...
        torch.load(ckpt_file, weights_only=True)
    ckpt = load_original_checkpoint(ckpt_file)  # ... our narrow allowlist accepts them
    assert set(ckpt) == {
        "network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema", "current_epoch",
        "init_args", "trainer_name", "inference_allowed_mirroring_axes",
    }  # fmt: skip
    sd = original_state_dict(ckpt)
    layout = read_layout()
    assert set(sd) == set(layout) and len(layout) == 354  # every line of the TSV
    assert all(tuple(sd[k].shape) == layout[k][0] for k in layout)


def test_mapping_table_covers_both_networks(paper_template) -> None:
    mapping = key_mapping()
    layout = read_layout()
    assert set(mapping) == set(paper_template)  # every parameter of ours has a counterpart
    # the residual+LayerNorm connection block differs only by its LayerNorm (no counterpart, so not imported)
    extra = set(build_network("paper", faithful_connection=False).state_dict()) - set(paper_template)
    assert extra == {f"connections.{i}.norm.{p}" for i in range(4) for p in ("weight", "bias")}
    assert len(set(mapping.values())) == len(mapping)  # one-to-one
    unused = set(layout) - set(mapping.values())
    assert unused and all(k.startswith(UNUSED_PREFIXES) for k in unused)
    for ours, theirs in mapping.items():
        shape = layout[theirs][0]
        # equal shapes, except the memory/position tables: (200, 160) there, (1, 200, 160) here
        assert tuple(paper_template[ours].shape) in (shape, (1, *shape)), (ours, theirs)


def test_convert_copies_each_tensor_to_its_counterpart(ckpt_file: Path, paper_template) -> None:
    theirs = original_state_dict(load_original_checkpoint(ckpt_file))
    ours = convert_state_dict(theirs, paper_template)
    assert set(ours) == set(paper_template)
    for k, theirs_key in key_mapping().items():
        assert torch.equal(ours[k].reshape(-1), theirs[theirs_key].reshape(-1)), k
    net = original_network()
    net.load_state_dict(ours, strict=True)
    # the segmentation path (what predict uses) runs with the imported weights
    net.eval().segmentation_only = True
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 2, 32, 32)).shape == (1, 2, 2, 32, 32)


def test_import_cli_writes_a_loadable_package(ckpt_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported.zip"
    assert main(["import-weights", str(ckpt_file), str(out)]) == 0  # no flag needed: nothing differs
    model = load_model(out)
    assert model.network_spec == {"preset": "paper", "overrides": ORIGINAL_OVERRIDES, "use_score_head": True}
    assert model.config["network_overrides"] == {"pool_kernel": [3, 3, 3], "faithful_connection": True}
    assert model.patch_size == (24, 256, 256)
    info = model.config["imported_from"]
    assert info["trainer_name"] == "nnUNetTrainer_S2CAC" and "structural_differences" not in info
    assert info["original_normalization_schemes"] == ["CACWindowNormalization"]
    net = model.build_network()
    assert net.pool.kernel_size == (3, 3, 3) and net.pool.padding == (1, 1, 1)
    assert all(c.faithful for c in net.connections)
    theirs = original_state_dict(load_original_checkpoint(ckpt_file))
    assert torch.equal(model.state_dict["head.weight"], theirs["segmentation_head.0.weight"])


def _reference_pool_and_score(theirs: dict[str, torch.Tensor], x: torch.Tensor, decoder_out: list[torch.Tensor]):
    """Their stem + max-pool, and their score from the decoder outputs, computed from their tensors directly."""
    bn = {p: theirs[f"encoder.bn1.{p}"] for p in ("weight", "bias", "running_mean", "running_var")}
    stem = F.conv3d(x, theirs["encoder.conv1.weight"], stride=(1, 2, 2), padding=(0, 3, 3))
    stem = F.relu(F.batch_norm(stem, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"]))
    pooled = F.max_pool3d(stem, (3, 3, 3), (1, 2, 2), (1, 1, 1))
    memory = theirs["decoder.embedding_A"][None]
    for i, feats in enumerate(decoder_out):
        d = f"decoder.conv_flat.{i}.0"
        tokens = F.conv3d(feats, theirs[f"{d}.weight"], theirs[f"{d}.bias"])
        tokens = F.adaptive_avg_pool3d(tokens, (5, 8, 5)).flatten(2).transpose(1, 2)
        cross = torch.nn.MultiheadAttention(160, 4, batch_first=True)
        prefix = f"decoder.cross_attention_layers.{i}.multihead_attn."
        cross.load_state_dict({k.removeprefix(prefix): v for k, v in theirs.items() if k.startswith(prefix)})
        layer = torch.nn.TransformerEncoderLayer(160, 4, 2048, batch_first=True)
        prefix = f"decoder.self_attention_layers.{i}."
        layer.load_state_dict({k.removeprefix(prefix): v for k, v in theirs.items() if k.startswith(prefix)})
        cross.eval(), layer.eval()
        query = tokens + theirs["decoder.position_embedding"][None]
        memory = layer(cross(query, memory, memory, need_weights=False)[0])
    score = F.linear(memory.mean(dim=1), theirs["decoder.reg_head.weight"], theirs["decoder.reg_head.bias"])
    return pooled, score.squeeze(1)


def test_imported_folder_reproduces_their_computation(ckpt_file: Path, tmp_path: Path) -> None:
    out = main(["import-weights", str(ckpt_file), str(tmp_path / "model")])
    assert out == 0
    model = load_model(tmp_path / "model")
    theirs = original_state_dict(load_original_checkpoint(ckpt_file))
    for ours_key, theirs_key in key_mapping().items():  # every tensor copied
        assert torch.equal(model.state_dict[ours_key].reshape(-1), theirs[theirs_key].reshape(-1)), ours_key
    net = model.build_network()
    net.load_state_dict(model.state_dict, strict=True)
    net.eval()
    seen: dict[str, torch.Tensor] = {}
    net.pool.register_forward_hook(lambda m, i, o: seen.__setitem__("pool", o))
    for j, block in enumerate(net.decoder):
        block.register_forward_hook(lambda m, i, o, j=j: seen.__setitem__(f"dec{j}", o))
    x = torch.rand(1, 1, 8, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, score = net(x)
        ref_pool, ref_score = _reference_pool_and_score(theirs, x, [seen[f"dec{j}"] for j in range(4)])
    assert logits.shape == (1, 2, 8, 64, 64) and torch.isfinite(logits).all()
    assert torch.allclose(seen["pool"], ref_pool, atol=1e-5)
    assert torch.allclose(score, ref_score, atol=1e-5), (score, ref_score)

    # the residual + LayerNorm connection block (the constructor's default) with the same weights where keys
    # overlap: same segmentation, other score
    default = build_network("paper", faithful_connection=False).eval()
    missing, unexpected = default.load_state_dict(model.state_dict, strict=False)
    assert not unexpected and all(".norm." in k for k in missing) and len(missing) == 8
    with torch.no_grad():
        d_logits, d_score = default(x)
    assert torch.allclose(d_logits, logits) and not torch.allclose(d_score, score, atol=1e-3)


def test_refuses_foreign_pickled_objects_and_wrong_layouts(tmp_path: Path) -> None:
    ckpt = checkpoint_from_layout(seed=2)
    ckpt["logging"]["odd"] = fractions.Fraction(1, 3)
    bad = tmp_path / "foreign.pth"
    bad.write_bytes(save_checkpoint_bytes(ckpt))
    with pytest.raises(ModelError, match="not a safe checkpoint.*fractions.Fraction"):
        load_original_checkpoint(bad)

    ckpt = checkpoint_from_layout(seed=3)
    del ckpt["network_weights"]["module.decoder.blocks.2.conv1.0.weight"]
    ckpt["network_weights"]["module.encoder.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 3, 3)
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(save_checkpoint_bytes(ckpt))
    assert main(["import-weights", str(wrong), str(tmp_path / "o.zip")]) == 2
    with pytest.raises(ModelError, match="1 missing.*1 of other shape"):
        from s2cac.inference.import_weights import check_layout

        check_layout(original_state_dict(load_original_checkpoint(wrong)))
