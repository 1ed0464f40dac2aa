"""Paper figures on a small fixed results tree: every figure is written as a non-empty PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from _paper import CASES, plan, write_tree

from s2cac.paper.build import build_figures, nsb_schedules
from s2cac.paper.collect import plan_runs
from s2cac.paper.figures import read_training_log

LOG = """This is the configuration used by this training:
epoch 1/3 | loss 0.9000 (seg 0.4 score 0.4 cons 6.8 sdc 2.7) | lr 0.00300 | lambda 0.0014 | nsb_w 0.0013 | val loss 2.4 | pseudo-Dice 0.0000 (ema 0.0000) | 137.2 s/epoch | ETA 34m19s
epoch 2/3 | loss 0.7000 (seg 0.3 score 0.1 cons 8.8 sdc 2.8) | lr 0.00283 | lambda 0.0033 | nsb_w 0.0019 | val loss 1.3 | pseudo-Dice 0.3946 (ema 0.0395) | 140.0 s/epoch | ETA 32m40s
epoch 2/3 | loss 0.6000 (seg 0.3 score 0.1 cons 8.8 sdc 2.8) | lr 0.00283 | lambda 0.0033 | nsb_w 0.0019 | val loss 1.3 | pseudo-Dice 0.4000 (ema 0.0400) | 140.0 s/epoch | ETA 32m40s
epoch 3/3 | loss 0.5000 (seg 0.3 score 0.1 cons 8.8 sdc 2.8) | lr 0.00250 | lambda 0.0072 | nsb_w 0.0035 | val loss 1.4 | pseudo-Dice 0.5000 (ema 0.1000) | 131.9 s/epoch | ETA 0m00s
"""  # noqa: E501  (the trainer's line format, as written)


def _image(array: np.ndarray, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((0.7, 0.7, 3.0))
    sitk.WriteImage(img, str(path))
    return str(path)


def test_read_training_log_keeps_the_last_line_of_an_epoch(tmp_path: Path) -> None:
    (tmp_path / "training_log.txt").write_text(LOG)
    log = read_training_log(tmp_path / "training_log.txt")
    assert log["epoch"].tolist() == [1, 2, 3]
    assert log["loss"].tolist() == [0.9, 0.6, 0.5] and log["ema_dice"].tolist() == [0.0, 0.04, 0.1]


def test_build_figures_writes_png_and_pdf(tmp_path: Path) -> None:
    p = plan(nsb={"s2cac": {"a": 0.999, "b": 1.0, "tau": 8, "epochs": 16}}, qualitative_cases=2)
    write_tree(tmp_path, p)
    rows = ["case_id\timage\tlabel"]
    rng = np.random.default_rng(0)
    for i, cid in enumerate(CASES):
        hu = rng.normal(40, 10, (3, 40, 40)).astype(np.int16)
        hu[:, 0, :] = -1000
        ref = np.zeros(hu.shape, np.uint8)
        if i:
            ref[1, 10 + i : 14 + i, 12:16] = 1
            hu[ref > 0] = 400
        image, label = _image(hu, tmp_path / "data" / f"{cid}.nii.gz"), _image(ref, tmp_path / "lab" / f"{cid}.nii.gz")
        rows.append(f"{cid}\t{image}\t{label}")
        for run in plan_runs(p):
            if run.ratio == p["main_ratio"]:
                _image(ref, run.path("predict", p["dataset"], tmp_path) / f"{cid}_cac.nii.gz")
    (tmp_path / "cases.tsv").write_text("\n".join(rows) + "\n")
    for run in plan_runs(p):
        if run.experiment != "threshold":
            folder = run.path("models", p["dataset"], tmp_path)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "training_log.txt").write_text(LOG)
    out = tmp_path / "figures"
    paths = build_figures(p, out, tmp_path / "cases.tsv", tmp_path)
    stems = ("dice_vs_ratio", "agatston_agreement", "risk_confusion", "qualitative", "training_curves", "nsb_schedule")
    assert sorted(x.name for x in paths) == sorted(f"{s}.{e}" for s in stems for e in ("png", "pdf"))
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 5000, path
        assert data[:4] == (b"\x89PNG" if path.suffix == ".png" else b"%PDF"), path


def test_nsb_schedules_group_equal_ones_and_default_to_the_published() -> None:
    same = {"a": 0.999, "b": 0.03, "tau": 300, "epochs": 500}
    got = nsb_schedules({"nsb": {"s2cac": same, "s2cac_x": same, "s2cac_fast": same | {"b": 0.1}}})
    assert list(got) == ["s2cac, s2cac_x: a=0.999, b=0.03, tau=300", "s2cac_fast: a=0.999, b=0.1, tau=300"]
    assert list(nsb_schedules({})) == ["published schedule: a=0.999, b=0.03, tau=300"]
