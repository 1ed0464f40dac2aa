"""Every MethodConfig switch reaches the trainer: each test fails when the trainer ignores its switch.

The tiny dataset (tests/_tiny_nnunet.py) has labelled bright blobs and one unlabelled bright square per case
(a hard negative). Intensities are the window scale / 255, so 130 HU maps to 128 / 255.
"""

import copy

import numpy as np
import pytest
import torch
import yaml
from _tiny_nnunet import TEST_CONFIG, tiny_dataset  # noqa: F401 - fixture

from s2cac.training import losses as L
from s2cac.training.config import AUTHORS_PROCEDURE, MethodConfig, experiment_mapping
from s2cac.training.schedules import ema_update
from s2cac.training.trainer import create_trainer

LEVEL = 128 / 255  # 130 HU on the network's intensity scale (window level 130, width 850)


def _trainer(tiny_dataset, tmp_path, loaders=True, **changes):  # noqa: F811
    pre, split = tiny_dataset
    cfg = MethodConfig.from_dict({**TEST_CONFIG, **changes})
    tr = create_trainer(pre, split, cfg, tmp_path / "model", device="cpu")
    tr.initialize()
    if loaders:
        tr.dataloader_train, tr.dataloader_val = tr.get_dataloaders()
    tr.on_train_epoch_start()
    return tr


def _loader(tr, part):
    return tr.dataloader_train.parts[part].data_loader


def _batches(tr, n):
    return [next(tr.dataloader_train) for _ in range(n)]


# ----- sampling -----
def test_labeled_foreground_fraction(tiny_dataset, tmp_path):  # noqa: F811
    small = {"patch_size": [4, 16, 16], "augmentation": "none"}
    always = _trainer(tiny_dataset, tmp_path / "a", labeled_foreground_fraction=1.0, labeled_candidate_fraction=0.0,
                      **small)  # fmt: skip
    assert all((b["labeled"]["fg_seen"] > 0).all() for b in _batches(always, 8))
    never = _trainer(tiny_dataset, tmp_path / "b", labeled_foreground_fraction=0.0, labeled_candidate_fraction=0.0,
                     **small)  # fmt: skip
    assert any((b["labeled"]["fg_seen"] == 0).any() for b in _batches(never, 8))


def test_labeled_candidate_fraction_centres_on_bright_non_calcium(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(
        tiny_dataset,
        tmp_path,
        patch_size=[4, 16, 16],
        augmentation="none",
        labeled_foreground_fraction=0.0,
        labeled_candidate_fraction=1.0,
    )
    for b in _batches(tr, 6):
        x, y = b["labeled"]["data"][:, 0], b["labeled"]["target"][:, 0]
        bright_not_calcium = ((x >= LEVEL - 1e-6) & (y != 1)).flatten(1).sum(1)
        assert (bright_not_calcium > 0).all()  # every patch holds a hard negative


def test_negative_and_unlabeled_candidate_fractions(tiny_dataset, tmp_path):  # noqa: F811
    small = {"patch_size": [4, 16, 16], "augmentation": "none"}
    tr = _trainer(
        tiny_dataset, tmp_path / "c", negative_candidate_fraction=1.0, unlabeled_candidate_fraction=1.0, **small
    )
    assert _loader(tr, "unlabeled").candidates_use_labels is False  # unlabeled candidates never use labels
    for b in _batches(tr, 6):
        for part in ("negative", "unlabeled"):
            assert ((b[part]["data"][:, 0] >= LEVEL - 1e-6).flatten(1).sum(1) > 0).all()
    off = _trainer(tiny_dataset, tmp_path / "d", **small)
    assert any((b["negative"]["data"][:, 0] < LEVEL).all() for b in _batches(off, 10))


def test_val_foreground_fraction(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, val_foreground_fraction=1.0, patch_size=[4, 16, 16])
    val = tr.dataloader_val.data_loader
    assert val.foreground_fraction == 1.0
    for _ in range(4):
        batch = next(tr.dataloader_val)
        assert ((batch["target"] == 1).flatten(1).sum(1) > 0).all()


def test_faithful_unlabeled_centering_reads_hidden_calcium(tiny_dataset, tmp_path):  # noqa: F811
    small = {"patch_size": [4, 16, 16], "augmentation": "none"}
    tr = _trainer(tiny_dataset, tmp_path, faithful_unlabeled_centering=True, **small)
    assert all(b["unlabeled"]["fg_seen"].item() > 0 for b in _batches(tr, 6))


def test_faithful_score_crop_counts_the_whole_z_range(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, faithful_score_crop=True, patch_size=[2, 16, 16], augmentation="none")
    batches = _batches(tr, 6)
    crop = torch.cat([b["labeled"]["fg_crop"] for b in batches])
    seen = torch.cat([b["labeled"]["fg_seen"] for b in batches])
    assert (crop >= seen).all() and (crop > seen).any()  # 2-slice patches, counts over all 8 slices
    b = tr.compose(batches[0])
    assert torch.equal(b["sup_amount"][:2], batches[0]["labeled"]["fg_crop"])


# ----- augmentation -----
def test_augmentation_presets(tiny_dataset, tmp_path):  # noqa: F811
    from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    def kinds(tr):
        return {type(t).__name__ for t in _loader(tr, "labeled").transforms.transforms}

    none = _trainer(tiny_dataset, tmp_path / "n", augmentation="none")
    assert list(_loader(none, "labeled").patch_size) == [8, 32, 32]  # cropped at the final size
    assert kinds(none) == {"RemoveLabelTransform"}
    light = _trainer(tiny_dataset, tmp_path / "l", augmentation="light")
    assert list(_loader(light, "labeled").patch_size) == [8, 44, 44]  # 32 (cos 15 + sin 15) / 0.9 = 43.5
    assert SpatialTransform.__name__ in kinds(light) and MirrorTransform.__name__ not in kinds(light)
    assert not kinds(light) & {"GammaTransform", "ContrastTransform", "MultiplicativeBrightnessTransform"}
    full = _trainer(tiny_dataset, tmp_path / "f", augmentation="nnunet")
    assert MirrorTransform.__name__ in kinds(full) and "RandomTransform" in kinds(full)  # noise, gamma, ...
    # the network sees the final patch size whatever the preset
    for tr in (none, light, full):
        assert next(tr.dataloader_train)["labeled"]["data"].shape[2:] == (8, 32, 32)


# ----- teacher -----
def _teacher_input(tr, b):
    seen = {}
    handle = tr.teacher.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].detach().clone()))
    tr.compute_terms(b, 0.1)
    handle.remove()
    return seen["x"]


@pytest.mark.parametrize("sigma_hu, clip_hu", [(0.333, 0.667), (40.0, 1000.0), (200.0, 50.0)])
def test_teacher_noise_is_in_hu(tiny_dataset, tmp_path, sigma_hu, clip_hu):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, teacher_noise_sigma_hu=sigma_hu, teacher_noise_clip_hu=clip_hu)
    b = tr.compose(next(tr.dataloader_train))
    noise_hu = (_teacher_input(tr, b) - b["unl_x"]) * 850.0  # one unit of intensity = the 850 HU window
    assert noise_hu.abs().max().item() <= clip_hu + 1e-3
    expected_std = sigma_hu if clip_hu > 5 * sigma_hu else None
    if expected_std is not None:
        assert noise_hu.std().item() == pytest.approx(expected_std, rel=0.05)
    else:
        assert noise_hu.abs().max().item() == pytest.approx(clip_hu, rel=1e-3)  # clipped


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_teacher_mode(tiny_dataset, tmp_path, mode):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, teacher_mode=mode)
    assert tr.teacher.training is (mode == "train")
    assert tr.network.training


@pytest.mark.parametrize("buffers", [True, False])
def test_ema_buffers_switch(tiny_dataset, tmp_path, buffers):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, ema_buffers=buffers)
    before = copy.deepcopy(tr.teacher.state_dict())
    tr.train_step(next(tr.dataloader_train))
    after = tr.teacher.state_dict()
    bn_means = [k for k in before if k.endswith("running_mean")]
    changed = [not torch.equal(before[k], after[k]) for k in bn_means]
    assert any(changed) is buffers  # student BN statistics moved; the teacher follows only when averaged
    weights = [k for k in before if k.endswith("weight") and before[k].is_floating_point()]
    assert any(not torch.equal(before[k], after[k]) for k in weights)


def test_ema_update_without_buffers_unit():
    s, t = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    s.running_mean.fill_(1.0)
    s.weight.data.fill_(3.0)
    ema_update(t, s, 0.5, buffers=False)
    assert t.running_mean.tolist() == [0.0, 0.0, 0.0] and t.weight.tolist() == [2.0, 2.0, 2.0]
    ema_update(t, s, 0.5, buffers=True)
    assert t.running_mean.tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("buffers", [True, False])
def test_ema_update_equals_the_per_tensor_update(buffers):
    """The batched update (torch._foreach_*) gives exactly t.mul_(alpha).add_(s, alpha=1 - alpha) per tensor."""
    from s2cac.nets import build_network

    torch.manual_seed(0)
    student = build_network("tiny")
    student.train()
    student(torch.randn(2, 1, 8, 32, 32))  # BatchNorm statistics and num_batches_tracked move
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for x in [*teacher.parameters(), *(b for b in teacher.buffers() if b.is_floating_point())]:
            x.add_(torch.randn_like(x))
    reference, before = copy.deepcopy(teacher), copy.deepcopy(teacher.state_dict())
    student(torch.randn(2, 1, 8, 32, 32))
    for alpha in (0.0, 0.5, 0.95, 1 / 3):
        ema_update(teacher, student, alpha, buffers=buffers)
        with torch.no_grad():
            for t, s in zip(reference.parameters(), student.parameters(), strict=True):
                t.mul_(alpha).add_(s, alpha=1.0 - alpha)
            if buffers:
                for t, s in zip(reference.buffers(), student.buffers(), strict=True):
                    t.mul_(alpha).add_(s, alpha=1.0 - alpha) if t.is_floating_point() else t.copy_(s)
    got, want = teacher.state_dict(), reference.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    means = [k for k in want if k.endswith("running_mean")]
    assert means and all(torch.equal(got[k], before[k]) is (not buffers) for k in means)  # buffers follow iff asked
    assert all(not torch.equal(got[k], before[k]) for k in want if k.endswith(".weight"))


# ----- losses -----
def _terms(tr, b, consistency=0.1):
    torch.manual_seed(0)
    return tr.compute_terms(b, consistency)


def test_loss_normalization(tiny_dataset, tmp_path):  # noqa: F811
    a = _trainer(tiny_dataset, tmp_path / "a", loss_normalization="batch", use_teacher=False)
    w = _trainer(tiny_dataset, tmp_path / "w", loss_normalization="weights", use_teacher=False)
    w.network.load_state_dict(a.network.state_dict())
    b = a.compose(next(a.dataloader_train))
    b["sup_weights"] = torch.tensor([1.0, 0.5, 0.25])
    a.network.eval(), w.network.eval()  # same BatchNorm behaviour in both
    ta, tw = _terms(a, b), _terms(w, b)
    factor = 3 / 1.75  # B / sum(w)
    assert tw["seg"].item() == pytest.approx(ta["seg"].item() * factor, rel=1e-4)
    assert tw["score"].item() == pytest.approx(ta["score"].item() * factor, rel=1e-4)


def test_weighted_mean_normalizations():
    v, w = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.5])
    assert L.weighted_mean(v, w, "batch").item() == pytest.approx(1.0)
    assert L.weighted_mean(v, w, "weights").item() == pytest.approx(2.0 / 1.5)
    assert L.weighted_mean(v, torch.zeros(2), "weights").item() == 0.0
    with pytest.raises(ValueError):
        L.weighted_mean(v, w, "sum")


def test_score_loss_weight(tiny_dataset, tmp_path):  # noqa: F811
    one = _trainer(tiny_dataset, tmp_path / "1", score_loss_weight=1.0)
    three = _trainer(tiny_dataset, tmp_path / "3", score_loss_weight=3.0)
    three.network.load_state_dict(one.network.state_dict())
    three.teacher.load_state_dict(one.teacher.state_dict())
    b = one.compose(next(one.dataloader_train))
    one.network.eval(), three.network.eval()
    t1, t3 = _terms(one, b), _terms(three, b)
    assert t1["score"].item() > 0
    assert t3["score"].item() == pytest.approx(3 * t1["score"].item(), rel=1e-5)
    assert t3["sdc"].item() == pytest.approx(3 * t1["sdc"].item(), rel=1e-5)


def test_faithful_score_target_effective_values(tiny_dataset, tmp_path):  # noqa: F811
    fixed = _trainer(tiny_dataset, tmp_path / "x", use_teacher=False, score_consistency=False)
    faithful = _trainer(tiny_dataset, tmp_path / "f", use_teacher=False, score_consistency=False,
                        faithful_score_target=True)  # fmt: skip
    faithful.network.load_state_dict(fixed.network.state_dict())
    b = fixed.compose(next(fixed.dataloader_train))
    fixed.network.eval(), faithful.network.eval()
    with torch.no_grad():
        _, scores = faithful.network(b["sup_x"])
    expect = 1e-6 * L.weighted_l1(scores, b["sup_amount"], b["sup_weights"])  # raw voxel count, weight 1e-6
    assert _terms(faithful, b)["score"].item() == pytest.approx(expect.item(), rel=1e-4)
    assert _terms(fixed, b)["score"].item() != pytest.approx(expect.item(), rel=1e-2)


def test_consistency_max(tiny_dataset, tmp_path):  # noqa: F811
    low = _trainer(tiny_dataset, tmp_path / "l", consistency_max=0.1, consistency_ramp_length=0)
    high = _trainer(tiny_dataset, tmp_path / "h", consistency_max=0.7, consistency_ramp_length=0)
    assert low.current_consistency_weight() == 0.1 and high.current_consistency_weight() == 0.7
    out = high.train_step(next(high.dataloader_train))
    assert out["lambda"] == 0.7


def test_candidate_gating_ignores_voxels_below_the_threshold(tiny_dataset, tmp_path):  # noqa: F811
    gated = _trainer(tiny_dataset, tmp_path / "g", candidate_gating=True, use_teacher=False)
    plain = _trainer(tiny_dataset, tmp_path / "p", candidate_gating=False, use_teacher=False)
    plain.network.load_state_dict(gated.network.state_dict())
    b = gated.compose(next(gated.dataloader_train))
    gated.network.eval(), plain.network.eval()
    x = b["sup_x"].clone().requires_grad_(False)
    logits, _ = gated.network(x)
    logits = logits.detach().requires_grad_(True)
    mask = gated.candidate_mask(x)
    assert mask is not None and 0 < mask.float().mean() < 0.5 and plain.candidate_mask(x) is None
    loss = L.weighted_ce(logits, b["sup_y"], mask=mask) + L.weighted_soft_dice(logits, b["sup_y"], mask=mask)
    loss.backward()
    below = ~mask.unsqueeze(1).expand_as(logits)
    assert logits.grad[below].abs().max().item() == 0.0  # nothing below 130 HU is learnt
    assert logits.grad[~below].abs().max().item() > 0.0
    assert _terms(gated, b)["seg"].item() != pytest.approx(_terms(plain, b)["seg"].item(), rel=1e-3)


def test_candidate_hu_sets_the_level(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, loaders=False, candidate_hu=130.0)
    assert tr.candidate_level == pytest.approx(LEVEL)
    hi = _trainer(tiny_dataset, tmp_path / "h", loaders=False, candidate_hu=400.0)
    assert hi.candidate_level == pytest.approx(209 / 255)  # (400 + 295) / 850 * 255 = 208.5, rounded up


def test_grad_clip(tiny_dataset, tmp_path):  # noqa: F811
    def step_size(clip):
        tr = _trainer(tiny_dataset, tmp_path / str(clip), grad_clip=clip, optimizer="sgd", momentum=0.0,
                      nesterov=False, learning_rate=0.1, weight_decay=0.0, use_teacher=False)  # fmt: skip
        before = [p.detach().clone() for p in tr.network.parameters()]
        tr.train_step(next(tr.dataloader_train))
        return sum((p.detach() - q).norm() ** 2 for p, q in zip(tr.network.parameters(), before, strict=True)) ** 0.5

    tiny, large = step_size(1e-4), step_size(1e3)
    assert tiny.item() == pytest.approx(0.1 * 1e-4, rel=0.05)  # lr x clipped gradient norm
    assert large.item() > 100 * tiny.item()


def test_init_fg_bias(tiny_dataset, tmp_path):  # noqa: F811
    on = _trainer(tiny_dataset, tmp_path / "on", loaders=False, init_fg_bias=True)
    off = _trainer(tiny_dataset, tmp_path / "off", loaders=False, init_fg_bias=False)
    assert on.network.head.bias[1].item() < -2.0  # log-odds of a small calcium fraction
    assert off.network.head.bias.abs().max().item() == 0.0


def test_dwa_term_weights(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, loss_weighting="dwa", dwa_temperature=2.0)
    assert tr.term_weights == dict.fromkeys(("seg", "score", "cons", "sdc"), 1.0)
    log = tr.logger.local_logger.my_fantastic_logging
    for name, (a, b) in {"seg": (1.0, 0.5), "score": (1.0, 1.0), "cons": (1.0, 2.0), "sdc": (1.0, 1.0)}.items():
        log[f"loss_{name}"] = [a, b]
    tr.current_epoch = 2
    w = tr.current_term_weights()
    e = {k: np.exp(r / 2.0) for k, r in {"seg": 0.5, "score": 1.0, "cons": 2.0, "sdc": 1.0}.items()}
    assert w == pytest.approx({k: 4 * v / sum(e.values()) for k, v in e.items()})
    off = _trainer(tiny_dataset, tmp_path / "off", loaders=False)
    off.logger.local_logger.my_fantastic_logging.update({k: v for k, v in log.items() if k.startswith("loss_")})
    off.current_epoch = 2
    assert off.current_term_weights() == dict.fromkeys(("seg", "score", "cons", "sdc"), 1.0)


def test_early_stopping(tiny_dataset, tmp_path):  # noqa: F811
    from s2cac.training.run import train_model

    pre, split = tiny_dataset
    # gating at 5000 HU leaves no candidate: the pseudo-Dice stays 0, so the best epoch is the first one
    stop = {"early_stopping_start": 1, "early_stopping_patience": 2}
    cfg = MethodConfig.from_dict({**TEST_CONFIG, **stop, "epochs": 6, "candidate_gating": True, "candidate_hu": 5000})
    out = tmp_path / "m"
    res = train_model(pre, split, cfg, out, device="cpu")
    assert res["epochs"] == 3
    assert "early stop after epoch 3" in (out / "training_log.txt").read_text(encoding="utf-8")


# ----- the authors' procedure -----
def test_authors_procedure_is_valid_and_in_the_demo_config():
    from pathlib import Path

    cfg = MethodConfig.from_dict(AUTHORS_PROCEDURE)
    for key, value in AUTHORS_PROCEDURE.items():
        assert getattr(cfg, key) == value, key
    doc = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text(encoding="utf-8"))
    faithful = experiment_mapping(doc, "s2cac_faithful")
    for key, value in AUTHORS_PROCEDURE.items():
        assert faithful.get(key) == value, f"config.yaml s2cac_faithful: {key} should be {value!r}"


def test_execution_keys_do_not_block_resume():
    from s2cac.training.config import same_method

    a = MethodConfig.from_dict({**TEST_CONFIG, "data_workers": 0}).to_dict()
    b = MethodConfig.from_dict({**TEST_CONFIG, "data_workers": 6}).to_dict()
    c = MethodConfig.from_dict({**TEST_CONFIG, "data_workers": 0, "epochs": 5}).to_dict()
    assert same_method(a, b) and not same_method(a, c)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_cpu_teacher_runs_a_single_patch_as_a_pair(tiny_dataset, tmp_path, mode):  # noqa: F811
    """Batch 1 takes torch's slow CPU convolution path; the pair gives the same output (eval and train mode)."""
    tr = _trainer(tiny_dataset, tmp_path, loaders=False, teacher_mode=mode)
    seen = []
    handle = tr.teacher.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    x = torch.rand(1, 1, *tr.configuration_manager.patch_size)
    with torch.no_grad():
        logits, scores = tr._teacher_forward(x)
        handle.remove()
        ref_logits, ref_scores = tr.teacher(x)
    assert seen == [2] and logits.shape == ref_logits.shape and scores.shape == (1,)
    assert torch.allclose(logits, ref_logits, atol=1e-4) and torch.allclose(scores, ref_scores, atol=1e-4)


def test_lesion_loss_weight(tiny_dataset, tmp_path):  # noqa: F811
    on = _trainer(tiny_dataset, tmp_path / "on", lesion_loss_weight=1.0, use_teacher=False)
    off = _trainer(tiny_dataset, tmp_path / "off", lesion_loss_weight=0.0, use_teacher=False)
    off.network.load_state_dict(on.network.state_dict())
    b = on.compose(next(on.dataloader_train))
    assert off.compose(next(off.dataloader_train))["sup_lesions"] is None
    lesions = b["sup_lesions"]  # the candidate lesions (26-connected voxels >= 130 HU) of each patch
    assert lesions is not None and lesions.shape == b["sup_y"].shape and int(lesions.max()) >= 1
    assert torch.equal(lesions > 0, on.candidate_mask(b["sup_x"]))
    on.network.eval(), off.network.eval()
    t_on, t_off = _terms(on, b), _terms(off, b)
    logits, _ = on.network(on._layout(b["sup_x"]))
    extra = L.lesion_bce(logits, b["sup_y"], lesions, b["sup_weights"])
    assert extra.item() > 0
    assert t_on["seg"].item() == pytest.approx(t_off["seg"].item() + extra.item(), rel=1e-4)
    with pytest.raises(ValueError, match="lesion_loss_weight"):
        MethodConfig.from_dict({**TEST_CONFIG, "lesion_loss_weight": -1.0})
