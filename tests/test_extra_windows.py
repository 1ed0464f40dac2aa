"""Further input channels: the same CT through other HU windows (``preprocess.extra_windows``).

Channel 0 is always the method's window; each extra window adds a channel in the raw dataset, the network's
input, the teacher's input noise (in HU, per channel) and inference, and a model whose network does not take
as many channels as its dataset.json has windows is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from _tiny_nnunet import (  # noqa: F401 - fixtures
    EXTRA_WINDOW,
    TEST_CONFIG,
    image_hu,
    tiny_dataset,
    tiny_two_window_dataset,
)

from s2cac.hu import HUWindow, window_channels, window_hu, windows_from_dataset_json
from s2cac.inference.model_io import ModelError, load_model, write_model_folder
from s2cac.inference.plans import make_dataset_json, make_plans
from s2cac.nets import build_network

SPACING = (3.0, 0.5, 0.5)
HIGH = HUWindow(**EXTRA_WINDOW)  # [400, 3000] HU


def test_windows_from_dataset_json_and_window_channels() -> None:
    assert windows_from_dataset_json({}) == (HUWindow(),)  # models from before the key: the method's window only
    got = windows_from_dataset_json(
        {"s2cac_hu_window": {"level": 100, "width": 800}, "s2cac_extra_hu_windows": [EXTRA_WINDOW]}
    )
    assert got == (HUWindow(100, 800), HIGH)
    hu = np.array([[-1000, 130, 555, 1500, 3000, 5000]], np.int16)
    stack = window_channels(hu, (HUWindow(), HIGH))
    assert stack.shape == (2, *hu.shape) and stack.dtype == np.uint8
    assert np.array_equal(stack[0], window_hu(hu)) and np.array_equal(stack[1], window_hu(hu, HIGH))
    # what the second channel is for: 1500 HU (dense calcium) and 5000 HU (metal) are both 255 in channel 0
    assert stack[0, 0, 3] == stack[0, 0, 5] == 255 and stack[1, 0, 3] < stack[1, 0, 4] == stack[1, 0, 5] == 255
    with pytest.raises(ValueError, match="at least one"):
        window_channels(hu, ())


def _write_case(folder: Path, hu: np.ndarray) -> None:
    lab = (hu >= 300).astype(np.uint8)
    for name, arr in (("img.nii.gz", hu), ("lab.nii.gz", lab)):
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing(SPACING[::-1])
        sitk.WriteImage(im, str(folder / name))
    (folder / "cases.tsv").write_text("case_id\timage\tlabel\nc0\timg.nii.gz\tlab.nii.gz\n")


def test_raw_dataset_writes_one_channel_file_per_window(tmp_path: Path) -> None:
    from s2cac.data.nnunet_raw import write_raw_dataset

    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 4000, (4, 16, 16)).astype(np.int16)
    _write_case(tmp_path, hu)
    folder = write_raw_dataset(tmp_path / "cases.tsv", tmp_path / "raw", 7, "Two", extra_windows=[HIGH], progress=False)
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    assert info["channel_names"] == {"0": "rgb_to_0_1", "1": "rgb_to_0_1"}
    assert info["s2cac_extra_hu_windows"] == [EXTRA_WINDOW]
    assert windows_from_dataset_json(info) == (HUWindow(), HIGH)
    for channel, window in enumerate((HUWindow(), HIGH)):
        img = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "imagesTr" / f"c0_{channel:04d}.nii.gz")))
        assert np.array_equal(img, window_hu(hu, window))
    # without extra windows: one channel and no key, as before the option existed
    one = write_raw_dataset(tmp_path / "cases.tsv", tmp_path / "raw1", 8, "One", progress=False)
    info = json.loads((one / "dataset.json").read_text(encoding="utf-8"))
    assert info["channel_names"] == {"0": "rgb_to_0_1"} and "s2cac_extra_hu_windows" not in info
    assert sorted(p.name for p in (one / "imagesTr").iterdir()) == ["c0_0000.nii.gz"]


def test_cli_extra_window_option(tmp_path: Path) -> None:
    from s2cac.cli import main

    _write_case(tmp_path, np.full((4, 16, 16), 500, np.int16))
    args = ["nnunet-raw", "--cases", str(tmp_path / "cases.tsv"), "--raw-root", str(tmp_path / "raw")]
    assert main([*args, "--dataset-id", "9", "--name", "X", "--extra-window", "1700", "2600"]) == 0
    info = json.loads((tmp_path / "raw" / "Dataset009_X" / "dataset.json").read_text(encoding="utf-8"))
    assert info["s2cac_extra_hu_windows"] == [EXTRA_WINDOW]


def _trainer(dataset, tmp_path, **changes):
    from s2cac.training.config import MethodConfig
    from s2cac.training.trainer import create_trainer

    pre, split = dataset
    tr = create_trainer(pre, split, MethodConfig.from_dict({**TEST_CONFIG, **changes}), tmp_path / "m", device="cpu")
    tr.initialize()
    return tr


def test_network_and_teacher_noise_see_every_channel(tiny_two_window_dataset, tmp_path):  # noqa: F811
    tr = _trainer(tiny_two_window_dataset, tmp_path, teacher_noise_sigma_hu=1e6, teacher_noise_clip_hu=26.0)
    assert tr.hu_windows == (HUWindow(), HIGH)
    assert tr.network.stem[0].in_channels == 2
    noise = tr.teacher_noise(torch.zeros(3, 2, 4, 8, 8))
    # the clip is 26 HU in both channels: 26/850 of channel 0's unit, 26/2600 of channel 1's
    assert noise[:, 0].abs().max().item() == pytest.approx(26 / 850)
    assert noise[:, 1].abs().max().item() == pytest.approx(26 / 2600)


def test_teacher_noise_of_one_window_is_the_scalar_computation(tiny_dataset, tmp_path):  # noqa: F811
    """Models with one window keep the exact rounding of the scalar noise: training is chaotic enough that a
    last-bit change of the noise gave a different model (docs/training.md, "Input variants")."""
    tr = _trainer(tiny_dataset, tmp_path, teacher_noise_sigma_hu=20.0, teacher_noise_clip_hu=40.0)
    x = torch.zeros(2, 1, 4, 8, 8)
    torch.manual_seed(5)
    got = tr.teacher_noise(x)
    torch.manual_seed(5)
    assert torch.equal(got, (torch.randn_like(x) * (20.0 / 850)).clamp(-40.0 / 850, 40.0 / 850))


def test_train_and_predict_with_two_windows(tiny_two_window_dataset, tmp_path, monkeypatch):  # noqa: F811
    from s2cac.inference.batch import predict_path
    from s2cac.inference.window_skip import S2CACPredictor
    from s2cac.training.checkpoint import load_safe
    from s2cac.training.config import MethodConfig
    from s2cac.training.run import train_model

    pre, split = tiny_two_window_dataset
    fast = {"optimizer": "adam", "learning_rate": 0.01, "epochs": 2, "iterations_per_epoch": 5, "use_teacher": False}
    summary = train_model(pre, split, MethodConfig.from_dict({**TEST_CONFIG, **fast}), tmp_path / "m", device="cpu")
    assert summary["status"] == "trained"
    ckpt = load_safe(tmp_path / "m" / "checkpoint_final.pth")
    assert ckpt["network_kwargs"]["in_channels"] == 2 and ckpt["network_weights"]["stem.0.weight"].shape[1] == 2
    model = load_model(tmp_path / "m")
    assert model.hu_windows == (HUWindow(), HIGH)
    # a test case back in HU; inference must feed both windows of it
    raw = sorted((pre.parents[1] / "raw").glob("*/imagesTr"))[0] / f"{split['test'][0]}_0000.nii.gz"
    img = sitk.ReadImage(str(raw))
    hu = image_hu(sitk.GetArrayFromImage(img))
    scan = sitk.GetImageFromArray(hu)
    scan.CopyInformation(img)
    sitk.WriteImage(scan, str(tmp_path / "scan.nii.gz"))
    seen = []
    original = S2CACPredictor.predict_labels

    def spy(self, image, spacing, candidates=None, return_probabilities=False):
        seen.append(np.array(image))
        return original(self, image, spacing, candidates, return_probabilities)

    monkeypatch.setattr(S2CACPredictor, "predict_labels", spy)
    result = predict_path(tmp_path / "m", tmp_path / "scan.nii.gz", tmp_path / "out")[0]
    assert result.status == "ok", result.error
    assert len(seen) == 1 and np.array_equal(seen[0], window_channels(hu, (HUWindow(), HIGH)).astype(np.float32))


def test_model_refused_when_network_channels_and_windows_differ(tmp_path: Path) -> None:
    net = build_network("tiny")  # one input channel
    dataset = {**make_dataset_json(), "s2cac_extra_hu_windows": [EXTRA_WINDOW]}
    dataset["channel_names"] = {"0": "rgb_to_0_1", "1": "rgb_to_0_1"}
    plans = make_plans([4, 32, 32], SPACING)
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = ["RGBTo01Normalization"] * 2
    # write_model_folder checks what it writes, as load_model checks what it reads
    with pytest.raises(ModelError, match="1 input channel"):
        write_model_folder(tmp_path / "m", net.state_dict(), plans, dataset, {"network": "tiny"})
    # and dataset.json channels that do not match its windows
    dataset["channel_names"] = {"0": "rgb_to_0_1"}
    with pytest.raises(ModelError, match="2 HU-windowed channel"):
        write_model_folder(tmp_path / "m2", net.state_dict(), plans, dataset, {"network": "tiny"})
    assert not (tmp_path / "m").exists() and not (tmp_path / "m2").exists()
