"""Trainer tests on a tiny nnU-Net-preprocessed dataset: loaders, score targets, gradients, run and resume."""

import json

import pytest
import torch
from _tiny_nnunet import TEST_CONFIG, tiny_dataset  # noqa: F401 - fixture

from s2cac.training.config import MethodConfig
from s2cac.training.trainer import S2CACTrainer, create_trainer


def _trainer(tiny_dataset, tmp_path, **changes):  # noqa: F811
    pre, split = tiny_dataset
    cfg = MethodConfig.from_dict({**TEST_CONFIG, **changes})
    tr = create_trainer(pre, split, cfg, tmp_path / "model", device="cpu")
    tr.initialize()
    tr.dataloader_train, tr.dataloader_val = tr.get_dataloaders()
    return tr


def test_batch_composition_and_score_targets(tiny_dataset, tmp_path):  # noqa: F811
    torch.manual_seed(0)
    tr = _trainer(tiny_dataset, tmp_path)
    split = tiny_dataset[1]
    for _ in range(3):
        batch = next(tr.dataloader_train)
        lab, neg, unl = batch["labeled"], batch["negative"], batch["unlabeled"]
        assert lab["data"].shape == (2, 1, 8, 32, 32) and neg["data"].shape[0] == 1 and unl["data"].shape[0] == 1
        assert set(lab["keys"]) <= set(split["labeled"]) and set(neg["keys"]) <= set(split["negative"])
        assert set(unl["keys"]) <= set(split["unlabeled"])
        assert unl["target"] is None  # unlabeled patches come without labels
        # the score target is counted on exactly the (augmented) patch the network sees
        seen = (lab["target"] == 1).flatten(1).sum(1).float()
        assert torch.equal(lab["fg_seen"], seen)
        b = tr.compose(batch)
        assert b["sup_amount"][-1].item() == 0.0  # negative patch: target 0 (defect 1 fixed)
        assert torch.equal(b["sup_amount"][:2], seen)
        assert b["sup_x"].shape[0] == 3 and b["unl_x"].shape[0] == 1
        # NSB: calcium-free patches get w(epoch 0), calcium patches 1
        w0 = tr.current_nsb_weight()
        expect = torch.where(torch.cat([seen, torch.zeros(1)]) > 0, 1.0, w0)
        assert torch.allclose(b["sup_weights"], expect)


def test_faithful_switches_change_targets(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path, faithful_score_crop=True, faithful_negative_target=True)
    for _ in range(5):
        batch = next(tr.dataloader_train)
        b = tr.compose(batch)
        assert torch.equal(b["sup_amount"][:2], batch["labeled"]["fg_crop"])  # larger pre-augmentation crop
        assert b["sup_amount"][2] == batch["unlabeled"]["fg_crop"][0]  # defect 1: the unlabeled patch's count
    assert (tr.cfg.effective_score_target, tr.cfg.effective_score_weight) == ("log1p_volume_mm3", 1.0)


def test_unlabeled_loader_never_reads_labels(tiny_dataset, tmp_path, monkeypatch):  # noqa: F811
    from nnunetv2.training.dataloading import nnunet_dataset

    opened = []
    original = nnunet_dataset.nnUNetDatasetBlosc2.load_case

    def spy(self, identifier):
        opened.append(identifier)
        return original(self, identifier)

    monkeypatch.setattr(nnunet_dataset.nnUNetDatasetBlosc2, "load_case", spy)
    tr = _trainer(tiny_dataset, tmp_path)
    for _ in range(6):
        next(tr.dataloader_train)
    unlabeled = set(tiny_dataset[1]["unlabeled"])
    assert opened and not unlabeled & set(opened)


def test_each_unsupervised_term_reaches_student_not_teacher(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path)
    b = tr.compose(next(tr.dataloader_train))
    for term in ("cons", "sdc"):
        tr.network.zero_grad(set_to_none=True)
        terms = tr.compute_terms(b, consistency=1.0)
        assert terms[term].requires_grad
        terms[term].backward()
        grads = [p.grad for p in tr.network.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0, term
        assert all(p.grad is None for p in tr.teacher.parameters()), term
    # the unlabeled part alone (no supervised patches) still reaches the student through both terms
    b_unl = {**b, "sup_x": b["sup_x"][:1], "sup_y": b["sup_y"][:1], "sup_amount": b["sup_amount"][:1]}
    b_unl["sup_weights"] = torch.zeros(1)  # switch off every supervised contribution
    for term in ("cons", "sdc"):
        tr.network.zero_grad(set_to_none=True)
        tr.compute_terms(b_unl, consistency=1.0)[term].backward()
        assert sum(float(p.grad.abs().sum()) for p in tr.network.parameters() if p.grad is not None) > 0, term


def test_ema_step_in_trainer(tiny_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_dataset, tmp_path)
    tr.on_train_epoch_start()
    tr.train_step(next(tr.dataloader_train))  # step 0: alpha 0 -> teacher == student
    for t, s in zip(tr.teacher.parameters(), tr.network.parameters(), strict=True):
        assert torch.equal(t, s)
    before = [t.clone() for t in tr.teacher.parameters()]
    tr.train_step(next(tr.dataloader_train))  # step 1: alpha 0.5
    for t, t0, s in zip(tr.teacher.parameters(), before, tr.network.parameters(), strict=True):
        assert torch.allclose(t, 0.5 * t0 + 0.5 * s, atol=1e-6)


def _run(tiny_dataset, out, interrupt_at=None, **changes):  # noqa: F811
    from s2cac.training.run import train_model

    pre, split = tiny_dataset
    cfg = MethodConfig.from_dict({**TEST_CONFIG, **changes})
    if interrupt_at is not None:
        original = S2CACTrainer.on_train_epoch_start

        def crash(self):
            if self.current_epoch == interrupt_at:
                raise KeyboardInterrupt("simulated preemption")
            original(self)

        S2CACTrainer.on_train_epoch_start = crash
        try:
            with pytest.raises(KeyboardInterrupt):
                train_model(pre, split, cfg, out)
        finally:
            S2CACTrainer.on_train_epoch_start = original
        return None
    return train_model(pre, split, cfg, out)


def _losses(out):
    from s2cac.training.checkpoint import load_safe

    log = load_safe(out / "checkpoint_final.pth")["logging"]
    return log["train_losses"], log["mean_fg_dice"]


@pytest.mark.slow
def test_train_20_iterations_resume_and_determinism(tiny_dataset, tmp_path):  # noqa: F811
    ref = tmp_path / "ref"
    summary = _run(tiny_dataset, ref)  # 4 epochs x 5 iterations
    assert summary["status"] == "trained" and summary["epochs"] == 4
    for name in ("checkpoint_final.pth", "checkpoint_best.pth", "plans.json", "dataset.json", "config.yaml",
                 "split.json", "training_log.txt", "curves.png"):  # fmt: skip
        assert (ref / name).is_file(), name
    assert not (ref / "checkpoint_latest.pth").exists()
    plans = json.loads((ref / "plans.json").read_text(encoding="utf-8"))
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [8, 32, 32]
    log_lines = [
        ln for ln in (ref / "training_log.txt").read_text(encoding="utf-8").splitlines() if ln.startswith("epoch ")
    ]
    assert len(log_lines) == 4 and all("pseudo-Dice" in ln and "ETA" in ln and "nsb_w" in ln for ln in log_lines)
    ref_losses, ref_dice = _losses(ref)

    # interrupted after 2 epochs, then the same command again: resumes and ends like the uninterrupted run
    run = tmp_path / "run"
    _run(tiny_dataset, run, interrupt_at=2)
    assert (run / "checkpoint_latest.pth").is_file() and not (run / "checkpoint_final.pth").exists()
    summary = _run(tiny_dataset, run)
    assert summary["status"] == "resumed" and summary["epochs"] == 4
    losses, dice = _losses(run)
    assert losses[:2] == ref_losses[:2]  # same seed -> same losses
    assert losses == pytest.approx(ref_losses, rel=1e-4) and dice == pytest.approx(ref_dice, abs=1e-4)
    assert "resuming from" in (run / "training_log.txt").read_text(encoding="utf-8")
    assert _run(tiny_dataset, run)["status"] == "already_done"

    other = tmp_path / "other"
    _run(tiny_dataset, other, epochs=1, seed=4)
    assert _losses(other)[0][0] != ref_losses[0]


def test_changed_config_refuses_resume(tiny_dataset, tmp_path):  # noqa: F811
    out = tmp_path / "m"
    _run(tiny_dataset, out, interrupt_at=1, epochs=2)
    with pytest.raises(ValueError, match="different config"):
        _run(tiny_dataset, out, epochs=2, learning_rate=0.05)


def test_cli_and_inference_loading(tiny_dataset, tmp_path):  # noqa: F811
    from s2cac.cli import main
    from s2cac.inference import load_model
    from s2cac.training.checkpoint import load_safe

    pre, split = tiny_dataset
    (tmp_path / "split.json").write_text(json.dumps(split))
    exp = tmp_path / "config.yaml"
    exp.write_text(
        "experiments:\n  supervised:\n    use_teacher: false\n    use_negatives: false\n"
        "    use_score_head: false\n    score_consistency: false\n    nsb: {enabled: false}\n"
    )
    over = tmp_path / "over.json"
    over.write_text(json.dumps({**TEST_CONFIG, "epochs": 1}))
    args = ["train", "--preprocessed", str(pre), "--split", str(tmp_path / "split.json"), "--experiment",
            "supervised", "--experiments-file", str(exp), "--config", str(over), "--output", str(tmp_path / "m"),
            "--device", "cpu", "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    assert load_safe(tmp_path / "m" / "checkpoint_final.pth")["released_network"] == "student"
    model = load_model(tmp_path / "m", checkpoint="final")
    net = model.build_network()
    net.load_state_dict(model.state_dict)
    net.eval()
    net.segmentation_only = True
    with torch.no_grad():
        assert net(torch.rand(1, 1, 8, 32, 32)).shape == (1, 2, 8, 32, 32)
    bad = tmp_path / "bad.json"
    bad.write_text('{"learning_rat": 1}')
    assert main(args[:-8] + ["--config", str(bad), "--output", str(tmp_path / "b")]) == 2


def test_multiprocess_loaders(tiny_dataset, tmp_path):  # noqa: F811
    """The background-worker path used on GPUs (nnU-Net's NonDetMultiThreadedAugmenter) also trains."""
    summary = _run(tiny_dataset, tmp_path / "mp", epochs=1, data_workers=4)
    assert summary["status"] == "trained" and summary["epochs"] == 1
