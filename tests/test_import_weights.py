"""s2cac import-weights: the authors' checkpoint layout mapped onto our paper network (random weights, CPU)."""

from __future__ import annotations

import fractions
import pickle
from pathlib import Path

import pytest
import torch

from s2cac.cli import main
from s2cac.inference.import_weights import (
    LAYOUT_TSV,
    OURS_WITHOUT_COUNTERPART,
    UNUSED_PREFIXES,
    _paper_overrides,
    checkpoint_from_layout,
    convert_state_dict,
    key_mapping,
    load_original_checkpoint,
    original_state_dict,
    read_layout,
    save_checkpoint_bytes,
    structural_differences,
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
    return build_network("paper", **_paper_overrides()).state_dict()


@pytest.mark.skipif(not REFERENCE_TSV.exists(), reason="shared reference not present")
def test_shipped_layout_equals_reference() -> None:
    assert LAYOUT_TSV.read_text() == REFERENCE_TSV.read_text()


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
    ours_unmapped = sorted(set(paper_template) - set(mapping))
    assert ours_unmapped and all(OURS_WITHOUT_COUNTERPART.match(k) for k in ours_unmapped)
    assert len(ours_unmapped) == 8  # connections.{0..3}.norm.{weight,bias}
    assert set(mapping) <= set(paper_template)
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
    net = build_network("paper", **_paper_overrides())
    net.load_state_dict(ours, strict=True)
    # the segmentation path (what predict uses) runs with the imported weights
    net.eval().segmentation_only = True
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 2, 32, 32)).shape == (1, 2, 2, 32, 32)


def test_import_cli_writes_a_loadable_package(ckpt_file: Path, tmp_path: Path, capsys) -> None:
    diffs = structural_differences(build_network("paper", **_paper_overrides()))
    out = tmp_path / "imported.zip"
    if diffs:  # refused unless the user accepts the documented differences
        assert main(["import-weights", str(ckpt_file), str(out)]) == 2
        assert "max-pool" in capsys.readouterr().err and not out.exists()
    assert main(["import-weights", str(ckpt_file), str(out), "--allow-differences"]) == 0
    model = load_model(out)
    assert model.network_spec["preset"] == "paper"
    assert model.patch_size == (24, 256, 256)
    info = model.config["imported_from"]
    assert info["trainer_name"] == "nnUNetTrainer_S2CAC" and info["structural_differences"] == diffs
    assert info["original_normalization_schemes"] == ["CACWindowNormalization"]
    theirs = original_state_dict(load_original_checkpoint(ckpt_file))
    assert torch.equal(model.state_dict["head.weight"], theirs["segmentation_head.0.weight"])


def test_refuses_foreign_pickled_objects_and_wrong_layouts(tmp_path: Path) -> None:
    ckpt = checkpoint_from_layout(seed=2)
    ckpt["logging"]["odd"] = fractions.Fraction(1, 3)
    bad = tmp_path / "foreign.pth"
    bad.write_bytes(save_checkpoint_bytes(ckpt))
    with pytest.raises(ModelError, match="refusing to load.*fractions.Fraction"):
        load_original_checkpoint(bad)

    ckpt = checkpoint_from_layout(seed=3)
    del ckpt["network_weights"]["module.decoder.blocks.2.conv1.0.weight"]
    ckpt["network_weights"]["module.encoder.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 3, 3)
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(save_checkpoint_bytes(ckpt))
    assert main(["import-weights", str(wrong), str(tmp_path / "o.zip"), "--allow-differences"]) == 2
    with pytest.raises(ModelError, match="1 missing.*1 of other shape"):
        from s2cac.inference.import_weights import check_layout

        check_layout(original_state_dict(load_original_checkpoint(wrong)))
