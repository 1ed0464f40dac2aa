"""The method classes (s2cac.training.methods): which class a config picks, and what one training step changes.

Every step test uses plain SGD (no momentum, no weight decay), so a parameter moves exactly when it got a
non-zero gradient; a teacher must move only by the EMA update.
"""

from pathlib import Path

import pytest
import torch
import yaml
from _tiny_nnunet import TEST_CONFIG, tiny_dataset  # noqa: F401 - fixture

from s2cac.training.config import METHOD_PRESETS, METHODS, MethodConfig, experiment_mapping, same_method
from s2cac.training.methods import (
    TRAINERS,
    MeanTeacherTrainer,
    S2CACTrainer,
    SemiSupervisedTrainer,
    SupervisedTrainer,
    UAMTTrainer,
    trainer_class,
)
from s2cac.training.trainer import create_trainer

ROOT = Path(__file__).parents[1]
PLAIN_SGD = {"optimizer": "sgd", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "learning_rate": 0.05}


# ----- which class -----
def test_every_method_has_a_class_and_a_preset():
    assert set(TRAINERS) == set(METHODS) == set(METHOD_PRESETS)
    for name, cls in TRAINERS.items():
        assert cls.method_name == name
        assert trainer_class(MethodConfig.from_dict({"method": name})) is cls


@pytest.mark.parametrize(
    "experiment, cls",
    [
        ("s2cac", S2CACTrainer),
        ("supervised", SupervisedTrainer),
        ("mean_teacher", MeanTeacherTrainer),
        ("s2cac_no_nsb", S2CACTrainer),
        ("s2cac_faithful", S2CACTrainer),
        ("uamt", UAMTTrainer),
    ],
)
def test_demo_experiments_pick_their_class(experiment, cls):
    doc = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    assert trainer_class(MethodConfig.from_dict(experiment_mapping(doc, experiment))) is cls


def test_existing_switch_configs_keep_their_class_and_values():
    """Configs without ``method:`` (every one written before it) infer it; ``method:`` + preset is the same config."""
    sup = {"use_teacher": False, "use_score_head": False, "score_consistency": False, "use_negatives": False,
           "nsb": {"enabled": False}}  # fmt: skip
    mt = {"use_score_head": False, "score_consistency": False, "use_negatives": False, "nsb": {"enabled": False}}
    for switches, method, cls in ((sup, "supervised", SupervisedTrainer), (mt, "mean_teacher", MeanTeacherTrainer),
                                  ({}, "s2cac", S2CACTrainer)):  # fmt: skip
        legacy, named = MethodConfig.from_dict(switches), MethodConfig.from_dict({"method": method})
        assert legacy.method is None and legacy.resolved_method == method and trainer_class(legacy) is cls
        assert same_method(legacy.to_dict(), named.to_dict())
        assert {k: v for k, v in legacy.to_dict().items() if k != "method"} == {
            k: v for k, v in named.to_dict().items() if k != "method"
        }
    # S2CAC without its teacher is the supervised class with the score switches on (an ablation, as before)
    assert trainer_class(MethodConfig.from_dict({"use_teacher": False})) is SupervisedTrainer
    # the experiment's own keys win over the preset: supervised + negatives
    assert MethodConfig.from_dict({"method": "supervised", "use_negatives": True}).negatives_in_batch == 1


def test_old_checkpoint_configs_are_the_same_method():
    """A checkpoint written before ``method`` and the uamt keys existed resumes with today's config."""
    new = MethodConfig.from_dict({**TEST_CONFIG}).to_dict()
    old = {k: v for k, v in new.items() if k != "method" and not k.startswith("uamt_")}
    assert same_method(old, new) and same_method(new, old)
    assert not same_method(old, {**new, "uamt_passes": 4})
    assert not same_method(old, MethodConfig.from_dict({**TEST_CONFIG, "method": "mean_teacher"}).to_dict())


@pytest.mark.parametrize(
    "mapping, needle",
    [
        ({"method": "cps"}, "method must be one of"),
        ({"method": "supervised", "use_teacher": True}, "use_teacher: false"),
        ({"method": "s2cac", "use_teacher": False}, "use_teacher: true"),
        ({"method": "mean_teacher", "use_score_head": True}, "no score head"),
        ({"method": "uamt", "uamt_passes": 0}, "uamt_passes"),
        ({"method": "uamt", "uamt_threshold_end": 1.5}, "fractions of ln"),
    ],
)
def test_bad_method_configs_say_what_to_fix(mapping, needle):
    with pytest.raises(ValueError, match=needle):
        MethodConfig.from_dict(mapping)


# ----- one training step per class -----
def _trainer(tiny_dataset, tmp_path, **changes):  # noqa: F811
    pre, split = tiny_dataset
    cfg = MethodConfig.from_dict({**TEST_CONFIG, **PLAIN_SGD, **changes})
    tr = create_trainer(pre, split, cfg, tmp_path / "model", device="cpu")
    tr.initialize()
    tr.dataloader_train, tr.dataloader_val = tr.get_dataloaders()
    tr.on_train_epoch_start()
    return tr


def _snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _step(tr):
    """One train_step at global step 1 (EMA alpha 0.5); returns (student before, teacher before, outputs)."""
    tr.global_step = 1
    student0 = _snapshot(tr.network)
    teacher0 = _snapshot(tr.teacher) if tr.teacher is not None else None
    out = tr.train_step(next(tr.dataloader_train))
    return student0, teacher0, out


def _check_student_moved_by_its_gradient(tr, student0):
    """Only parameters with a non-zero gradient changed, and most of those did; returns the changed names."""
    moved, with_grad = set(), set()
    for name, p in tr.network.named_parameters():
        if not torch.equal(p.detach(), student0[name]):
            moved.add(name)
        if p.grad is not None and bool(p.grad.abs().sum() > 0):
            with_grad.add(name)
    assert moved <= with_grad, sorted(moved - with_grad)
    assert len(moved) >= 0.9 * len(with_grad) > 0
    return moved


#: parameter name prefixes of the transformer path and score head (built only with ``use_score_head``)
SCORE_PATH = ("memory", "pos_embed", "connections.", "score_head.")


def _check_no_score_path(*nets):
    """A method without a score head builds neither it nor the transformer path that feeds it."""
    for net in nets:
        names = [n for n, _ in net.named_parameters()]
        assert names and not [n for n in names if n.startswith(SCORE_PATH)]


def _check_score_path_moved(tr, moved):
    """The score head and every part of the transformer path (memory, position embedding, the connection block
    of each decoder level) got a gradient and moved."""
    assert {"memory", "pos_embed", "score_head.weight", "score_head.bias"} <= moved, sorted(moved)
    blocks = {int(n.split(".")[1]) for n in moved if n.startswith("connections.")}
    assert blocks == set(range(len(tr.network.decoder))), blocks


def _check_teacher_moved_by_ema_only(tr, student0, teacher0):
    assert all(p.grad is None for p in tr.teacher.parameters())
    student, teacher = tr.network.state_dict(), tr.teacher.state_dict()
    for name, t in teacher.items():
        if t.is_floating_point():  # parameters and BN statistics (ema_buffers): alpha 0.5 at step 1
            assert torch.allclose(t, 0.5 * teacher0[name] + 0.5 * student[name], atol=1e-6), name
    assert any(not torch.equal(teacher[k], teacher0[k]) for k in teacher)


def test_supervised_step_moves_the_student_and_there_is_no_teacher(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, method="supervised")
    assert type(tr) is SupervisedTrainer and tr.teacher is None and tr.eval_network is tr.network
    assert tr.dataloader_train.parts["unlabeled"] is None and tr.dataloader_train.parts["negative"] is None
    student0, _, out = _step(tr)
    _check_student_moved_by_its_gradient(tr, student0)
    _check_no_score_path(tr.network)  # the preset builds no transformer path
    assert out["cons"] == out["score"] == out["sdc"] == 0.0
    weights = tr.checkpoint_weights()
    assert weights["teacher_weights"] is None and tr.released_network == "student"


def test_supervised_step_with_the_score_head_trains_it(tiny_dataset, tmp_path):  # noqa: F811
    """S2CAC without its teacher (an ablation) is the supervised class with the score switches on: the score head
    and the transformer path learn from the labeled half of terms 2 and 4, and there is still no teacher."""
    tr = _trainer(tiny_dataset, tmp_path, use_teacher=False, use_negatives=False, nsb={"enabled": False})
    assert type(tr) is SupervisedTrainer and tr.teacher is None
    student0, _, out = _step(tr)
    _check_score_path_moved(tr, _check_student_moved_by_its_gradient(tr, student0))
    assert out["score"] > 0 and out["cons"] == 0.0


def test_mean_teacher_step_student_by_gradient_teacher_by_ema(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, method="mean_teacher")
    assert type(tr) is MeanTeacherTrainer and isinstance(tr, SemiSupervisedTrainer)
    assert tr.eval_network is tr.teacher and tr.released_network == "teacher"
    student0, teacher0, out = _step(tr)
    _check_student_moved_by_its_gradient(tr, student0)
    _check_teacher_moved_by_ema_only(tr, student0, teacher0)
    _check_no_score_path(tr.network, tr.teacher)
    assert out["cons"] > 0 and out["score"] == out["sdc"] == 0.0
    assert set(tr.checkpoint_weights()) == {"student_weights", "teacher_weights"}


def test_s2cac_step_trains_the_score_head(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, method="s2cac")
    assert type(tr) is S2CACTrainer
    student0, teacher0, out = _step(tr)
    _check_score_path_moved(tr, _check_student_moved_by_its_gradient(tr, student0))
    _check_teacher_moved_by_ema_only(tr, student0, teacher0)
    assert out["score"] > 0 and out["sdc"] > 0 and out["cons"] > 0


def test_uamt_step_masks_consistency_by_teacher_uncertainty(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, method="uamt", uamt_passes=3)
    assert type(tr) is UAMTTrainer and tr.teacher is not None
    batches = []
    hook = tr.teacher.register_forward_pre_hook(lambda mod, args: batches.append(args[0].shape[0]))
    b = tr.compose(next(tr.dataloader_train))
    torch.manual_seed(0)
    terms = tr.compute_terms(b, consistency=1.0)
    hook.remove()
    # the target pass and T = 3 noisy passes, two per forward (a single patch runs as a CPU pair)
    assert batches == [2, 2, 2]
    assert 0.0 < float(terms["certain"]) <= 1.0
    # threshold 0: no voxel is certain enough, so no consistency and no gradient from it
    tr.cfg = tr.cfg.replace(uamt_threshold_start=0.0, uamt_threshold_end=0.0)
    torch.manual_seed(0)
    none = tr.compute_terms(b, consistency=1.0)
    assert none["cons"].item() == 0.0 and none["certain"].item() == 0.0
    # threshold ln K: every voxel counts: the softmax MSE over the candidate voxels
    tr.cfg = tr.cfg.replace(uamt_threshold_start=1.0, uamt_threshold_end=1.0)
    tr.network.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    full = tr.compute_terms(b, consistency=1.0)
    assert float(full["cons"]) > 0 and full["total"].item() == pytest.approx(
        (full["seg"] + full["cons"]).item(), rel=1e-6
    )
    full["cons"].backward()
    assert sum(float(p.grad.abs().sum()) for p in tr.network.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in tr.teacher.parameters())
    # the ramp: start x ln K at step 0, end x ln K at the last step
    tr.cfg = tr.cfg.replace(uamt_threshold_start=0.75, uamt_threshold_end=1.0)
    tr.global_step = 0
    start = tr.current_uncertainty_threshold()
    tr.global_step = tr.cfg.epochs * tr.cfg.iterations_per_epoch
    assert start == pytest.approx(0.75 * 0.6931 + 0.25 * 0.6931 * 0.006738, rel=1e-3)
    assert tr.current_uncertainty_threshold() == pytest.approx(0.693147, rel=1e-5)

    tr2 = _trainer(tiny_dataset, tmp_path / "step", method="uamt", uamt_passes=2)
    student0, teacher0, out = _step(tr2)
    _check_student_moved_by_its_gradient(tr2, student0)
    _check_teacher_moved_by_ema_only(tr2, student0, teacher0)
    _check_no_score_path(tr2.network, tr2.teacher)
    assert out["score"] == out["sdc"] == 0.0


def test_uamt_trains_end_to_end_and_releases_the_teacher(tiny_dataset, tmp_path):  # noqa: F811
    from s2cac.training.checkpoint import load_safe
    from s2cac.training.run import train_model

    pre, split = tiny_dataset
    cfg = MethodConfig.from_dict({**TEST_CONFIG, "method": "uamt", "uamt_passes": 2, "epochs": 2,
                                  "iterations_per_epoch": 2, "val_iterations": 1})  # fmt: skip
    assert train_model(pre, split, cfg, tmp_path / "m")["status"] == "trained"
    ckpt = load_safe(tmp_path / "m" / "checkpoint_final.pth")
    assert (ckpt["trainer_name"], ckpt["method"], ckpt["released_network"]) == ("UAMTTrainer", "uamt", "teacher")
    assert ckpt["method_config"]["method"] == "uamt" and ckpt["teacher_weights"] is not None
    assert all(torch.equal(ckpt["network_weights"][k], v) for k, v in ckpt["teacher_weights"].items())
    assert train_model(pre, split, cfg, tmp_path / "m")["status"] == "already_done"


@pytest.mark.parametrize("method", ["mean_teacher", "s2cac"])
def test_all_labeled_split_gives_the_teacher_the_labeled_images(tiny_dataset, tmp_path, method):  # noqa: F811
    """At 100 % labeled (the label-ratio study's last ratio) a split has no unlabeled scans: the teacher methods
    then take their unlabeled patches from the labeled scans' images (never their labels) instead of failing."""
    pre, split = tiny_dataset
    full = {**split, "labeled": sorted(split["labeled"] + split["unlabeled"]), "unlabeled": []}
    cfg = MethodConfig.from_dict({**TEST_CONFIG, **PLAIN_SGD, "method": method})
    tr = create_trainer(pre, full, cfg, tmp_path / "model", device="cpu")
    assert tr.unlabeled_from_labeled and tr.split["unlabeled"] == full["labeled"]
    tr.initialize()
    tr.dataloader_train, tr.dataloader_val = tr.get_dataloaders()
    tr.on_train_epoch_start()
    unl = tr.dataloader_train.parts["unlabeled"].data_loader
    assert set(unl.indices) == set(full["labeled"]) and not unl.read_labels
    student0, teacher0, out = _step(tr)
    _check_student_moved_by_its_gradient(tr, student0)
    _check_teacher_moved_by_ema_only(tr, student0, teacher0)
    assert out["cons"] > 0
    log = (tmp_path / "model" / "training_log.txt").read_text(encoding="utf-8")
    assert "no unlabeled scans (100 % labeled)" in log
    sup = MethodConfig.from_dict({**TEST_CONFIG, **PLAIN_SGD, "method": "supervised"})
    assert not create_trainer(pre, full, sup, tmp_path / "sup", device="cpu").unlabeled_from_labeled
