"""Scan QC flags: each one triggered by a volume (or header) built for it, and quiet on a plain scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from s2cac.inference.scan_qc import (
    SYNTHETIC_MARK,
    ScanInfo,
    check_scan,
    contrast_fraction,
    describe_training_data,
    flag_names,
    read_scan_info,
)

SHAPE = (8, 96, 96)
TRAINING = describe_training_data("Dataset001_demo", "real", [(3.0, 0.7, 0.7), (3.0, 0.6, 0.6)], [SHAPE, SHAPE])


def _chest(blood_hu: float, seed: int = 0) -> np.ndarray:
    """(z, y, x) HU: air, body at 40 HU, a central heart whose blood pool is ``blood_hu``, a posterior spine."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    hu = np.full(SHAPE, -1000.0)
    hu[((y - 48) / 44.0) ** 2 + ((x - 48) / 46.0) ** 2 <= 1] = 40
    hu[((y - 45) / 16.0) ** 2 + ((x - 50) / 18.0) ** 2 <= 1] = blood_hu  # chambers + aortic root
    hu[((y - 84) / 7.0) ** 2 + ((x - 48) / 7.0) ** 2 <= 1] = 450  # vertebra, outside the central box
    hu[(z == 4) & ((y - 40) ** 2 + (x - 60) ** 2 <= 3)] = 600  # a calcification
    return np.rint(hu + rng.normal(0, 15, SHAPE)).astype(np.int16)


def _info(**kw) -> ScanInfo:
    return ScanInfo(**{"spacing_zyx": (3.0, 0.65, 0.65), "shape_zyx": SHAPE, **kw})


def test_plain_scan_has_no_flags() -> None:
    assert check_scan(_chest(40), _info(kvp=120.0, slice_thickness_mm=3.0), TRAINING) == []


@pytest.mark.parametrize(
    "flag, hu_blood, info, training",
    [
        ("training_data_unknown", 40, {}, None),
        ("synthetic_model", 40, {}, {**TRAINING, "kind": "synthetic"}),
        ("spacing_out_of_range", 40, {"spacing_zyx": (3.0, 0.4, 0.4), "shape_zyx": (8, 150, 150)}, TRAINING),
        ("fov_out_of_range", 40, {"shape_zyx": (8, 512, 512)}, TRAINING),
        ("contrast_enhanced", 350, {}, TRAINING),
        ("kvp_not_120", 40, {"kvp": 100.0}, TRAINING),
        ("slice_increment_not_3mm", 40, {"spacing_zyx": (2.5, 0.65, 0.65)}, TRAINING),
        ("slice_thickness_not_3mm", 40, {"slice_thickness_mm": 1.5}, TRAINING),
    ],
)
def test_each_flag(flag: str, hu_blood: float, info: dict, training) -> None:
    flags = check_scan(_chest(hu_blood), _info(**info), training)
    assert flag_names(flags) == [flag], flags


def test_synthetic_scan_with_synthetic_model_is_not_flagged() -> None:
    training = {**TRAINING, "kind": "synthetic"}
    assert check_scan(_chest(40), _info(synthetic=True), training) == []


def test_contrast_fraction_separates_blood_pools() -> None:
    assert contrast_fraction(_chest(40)) < 0.02
    assert contrast_fraction(_chest(350)) > 0.3


def _dicom_series(hu: np.ndarray, folder: Path, tags: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((0.65, 0.65, 3.0))
    uid = "1.2.826.0.1.3680043.2.1125.9.77"
    for k in range(hu.shape[0]):
        sl = img[:, :, k]
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        base = {
            "0008|0060": "CT", "0020|000e": uid, "0020|000d": uid + ".0", "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.4f}" for p in pos), "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|1052": "0", "0028|1053": "1", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
        }  # fmt: skip
        for tag, value in {**base, **tags}.items():
            sl.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"s{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_kvp_and_thickness_are_read_and_flagged(tmp_path: Path) -> None:
    hu = _chest(40)
    _dicom_series(hu, tmp_path / "low_kv", {"0018|0060": "100", "0018|0050": "1.5"})
    _dicom_series(hu, tmp_path / "ok", {"0018|0060": "120", "0018|0050": "3"})
    info = read_scan_info(tmp_path / "low_kv", (3.0, 0.65, 0.65), SHAPE)
    assert info.kvp == 100.0 and info.slice_thickness_mm == 1.5 and not info.synthetic
    assert flag_names(check_scan(hu, info, TRAINING)) == ["kvp_not_120", "slice_thickness_not_3mm"]
    assert check_scan(hu, read_scan_info(tmp_path / "ok", (3.0, 0.65, 0.65), SHAPE), TRAINING) == []


def test_synthetic_mark_is_read_from_nifti(tmp_path: Path) -> None:
    img = sitk.GetImageFromArray(_chest(40))
    sitk.WriteImage(img, str(tmp_path / "real.nii.gz"))
    img.SetMetaData("ITK_FileNotes", SYNTHETIC_MARK)
    sitk.WriteImage(img, str(tmp_path / "syn.nii.gz"))
    assert read_scan_info(tmp_path / "syn.nii.gz", (3, 1, 1), SHAPE).synthetic
    info = read_scan_info(tmp_path / "real.nii.gz", (3, 1, 1), SHAPE)
    assert not info.synthetic and info.kvp is None and info.slice_thickness_mm is None


def test_raw_dataset_records_training_data(tmp_path: Path) -> None:
    from s2cac.data.nnunet_raw import write_raw_dataset

    rows = ["case_id\timage\tlabel"]
    for i, spacing in enumerate((0.6, 0.8)):
        hu = _chest(40, seed=i)
        for name, arr in (("img", hu), ("lab", (hu > 500).astype(np.uint8))):
            im = sitk.GetImageFromArray(arr)
            im.SetSpacing((spacing, spacing, 3.0))
            im.SetMetaData("ITK_FileNotes", SYNTHETIC_MARK)
            sitk.WriteImage(im, str(tmp_path / f"{name}{i}.nii.gz"))
        rows.append(f"c{i}\timg{i}.nii.gz\tlab{i}.nii.gz")
    (tmp_path / "cases.tsv").write_text("\n".join(rows) + "\n")
    folder = write_raw_dataset(tmp_path / "cases.tsv", tmp_path / "raw", 5, "Demo", progress=False)
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["s2cac_training_data"]
    assert info["kind"] == "synthetic" and info["n_scans"] == 2 and info["dataset"] == "Demo"
    assert info["spacing_xy_mm"] == [0.6, 0.8] and info["fov_mm"] == [round(96 * 0.6, 4), round(96 * 0.8, 4)]


def test_predict_reports_flags_in_scores_log_and_picture(tmp_path: Path, monkeypatch) -> None:
    """``s2cac predict`` with a model trained only on synthetic scans, on a real (unmarked) scan: the flag
    reaches scores.csv's ``qc_flags``, a WARNING line of the log and the QC picture; the score is not changed."""
    import csv
    import io

    import torch

    import s2cac.inference.qc as qc_module
    from s2cac.inference.batch import predict_path
    from s2cac.inference.model_io import write_model_folder
    from s2cac.inference.plans import make_dataset_json, make_plans
    from s2cac.nets import build_network

    torch.manual_seed(0)
    spacing = (3.0, 0.65, 0.65)
    config = {"network": "tiny", "network_overrides": {"fg_prior": 0.3}}
    dataset = {**make_dataset_json(), "s2cac_training_data": {**TRAINING, "kind": "synthetic"}}
    net = build_network("tiny", fg_prior=0.3)
    model = write_model_folder(tmp_path / "m", net.state_dict(), make_plans([4, 32, 32], spacing), dataset, config)
    for name, note in (("real", None), ("syn", SYNTHETIC_MARK)):
        img = sitk.GetImageFromArray(_chest(40))
        img.SetSpacing(spacing[::-1])
        if note:
            img.SetMetaData("ITK_FileNotes", note)
        sitk.WriteImage(img, str(tmp_path / f"{name}.nii.gz"))
    drawn = {}

    def save_qc_png(hu, mask, spacing, path, **kw) -> None:  # records what the picture would say
        drawn[Path(path).stem] = list(kw["warnings"])

    monkeypatch.setattr(qc_module, "save_qc_png", save_qc_png)
    log = io.StringIO()
    for name in ("real", "syn"):
        assert predict_path(model, tmp_path / f"{name}.nii.gz", tmp_path / name, log=log)[0].status == "ok"
    rows = {}
    for name in ("real", "syn"):
        with open(tmp_path / name / "scores.csv", newline="") as f:
            rows[name] = next(csv.DictReader(f))
    assert flag_names(rows["real"]["qc_flags"].split("; ")) == ["synthetic_model"]
    assert rows["syn"]["qc_flags"] == ""
    assert rows["real"]["agatston"] == rows["syn"]["agatston"]  # a warning, never a changed score
    assert "WARNING real: QC: synthetic_model(" in log.getvalue() and "WARNING syn" not in log.getvalue()
    assert flag_names(drawn["real"]) == ["synthetic_model"] and drawn["syn"] == []
