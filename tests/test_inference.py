"""s2cac predict / export-model: end to end on small synthetic scans with a tiny random model (CPU, seconds)."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from s2cac.cli import main
from s2cac.inference.batch import CSV_COLUMNS, find_cases
from s2cac.inference.model_io import ModelError, export_model, load_model, write_model_folder
from s2cac.inference.plans import make_dataset_json, make_plans
from s2cac.inference.predictor import make_predictor, predict_network_mask
from s2cac.inference.qc import qc_slices
from s2cac.io import Geometry, read_ct, read_image
from s2cac.nets import build_network
from s2cac.scoring import score_mask

SPACING = (3.0, 0.45, 0.45)  # z, y, x mm
SHAPE = (10, 72, 80)


def _ct(seed: int) -> np.ndarray:
    """(z, y, x) int16 HU: air, a soft-tissue ellipse, a few calcium blobs (>= 400 HU), some 100-129 HU tissue."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    hu = np.full(SHAPE, -1000.0)
    body = ((y - 36) / 30.0) ** 2 + ((x - 40) / 34.0) ** 2 <= 1
    hu[body] = rng.normal(40, 15, body.sum())
    for _ in range(4):
        cz, cy, cx = rng.integers(2, 8), rng.integers(20, 52), rng.integers(20, 60)
        hu[(z == cz) & ((y - cy) ** 2 + (x - cx) ** 2 <= 5)] = rng.uniform(400, 700)
    return np.rint(hu).astype(np.int16)


def _write(hu: np.ndarray, path: Path, origin=(-20.0, 15.5, 100.0)) -> Geometry:
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(SPACING[::-1])
    img.SetOrigin(origin)
    sitk.WriteImage(img, str(path))
    return Geometry.from_sitk(img)


def _write_dicom_series(hu: np.ndarray, folder: Path, origin=(5.0, -7.0, 30.0)) -> None:
    folder.mkdir(parents=True)
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(SPACING[::-1])
    img.SetOrigin(origin)
    series_uid = "1.2.826.0.1.3680043.2.1125.1." + str(abs(hash(folder.name)) % 10**8)
    for k in range(hu.shape[0]):
        sl = img[:, :, k]
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "CT", "0020|000e": series_uid, "0020|000d": series_uid + ".0", "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.4f}" for p in pos), "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{SPACING[0]}", "0028|1052": "0", "0028|1053": "1", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
        }.items():  # fmt: skip
            sl.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random model folder whose calcium bias makes it predict some voxels (30 % prior)."""
    torch.manual_seed(0)
    net = build_network("tiny", fg_prior=0.3, fullres_kernel=(3, 3, 3))  # the random net the tests were written with
    overrides = {"fg_prior": 0.3, "fullres_kernel": [3, 3, 3]}
    config = {"network": "tiny", "network_overrides": overrides, "use_score_head": True}
    out = tmp_path_factory.mktemp("model") / "tiny_model"
    return write_model_folder(out, net.state_dict(), make_plans([8, 64, 64], SPACING), make_dataset_json(), config)


@pytest.fixture(scope="module")
def package(model_dir: Path, tmp_path_factory) -> Path:
    return export_model(model_dir, tmp_path_factory.mktemp("pkg") / "tiny.s2cac.zip")


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "scores.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


def _check_outputs(out: Path, inputs: dict[str, Path]) -> None:
    rows = {r["case"]: r for r in _rows(out)}
    assert set(rows) == set(inputs)
    for case, src in inputs.items():
        hu, geo = read_ct(src)
        mask, mgeo = read_image(out / f"{case}_cac.nii.gz")
        assert mask.dtype == np.uint8
        assert mgeo.size == geo.size and mgeo.compare(geo, tol=1e-6) == []
        assert np.all(hu[mask > 0] >= 130)  # HU rule
        row = rows[case]
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["mask_voxels"]) == int(mask.sum())
        expected = score_mask(hu, mask, geo.spacing_zyx).total
        assert float(row["agatston"]) == pytest.approx(expected.agatston, rel=1e-5)
        assert int(row["n_lesions"]) == expected.n_lesions and row["risk_category"] == expected.risk_category
        assert row["mass_mg"] == ""  # not calibrated
        assert float(row["runtime_s"]) > 0
        png = out / "qc" / f"{case}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_two_files_end_to_end(model_dir: Path, tmp_path: Path, capsys) -> None:
    inp = tmp_path / "scans"
    inp.mkdir()
    _write(_ct(1), inp / "case_a.nii.gz")
    _write(_ct(2), inp / "case_b.mha", origin=(1.0, 2.0, 3.0))
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(model_dir), "--input", str(inp), "--output", str(out), "--device", "cpu"])
    assert rc == 0
    _check_outputs(out, {"case_a": inp / "case_a.nii.gz", "case_b": inp / "case_b.mha"})
    err = capsys.readouterr().err
    assert "[1/2] case_a" in err and "[2/2] case_b" in err and "ETA" in err


def test_hu_threshold_removes_network_voxels_below_130(model_dir: Path, tmp_path: Path) -> None:
    """--decision voxel: the exported mask is the network's voxel mask AND HU >= the threshold."""
    hu = _ct(3)
    net_mask = predict_network_mask(make_predictor(load_model(model_dir), device="cpu", decision="voxel"), hu, SPACING)
    assert net_mask.shape == hu.shape
    assert (net_mask & (hu < 130)).any(), "the random model should also mark soft tissue"
    inp = tmp_path / "one.nii.gz"
    _write(hu, inp)
    common = ["predict", "--model", str(model_dir), "--input", str(inp), "--decision", "voxel"]
    assert main([*common, "--output", str(tmp_path / "o")]) == 0
    mask, _ = read_image(tmp_path / "o" / "one_cac.nii.gz")
    np.testing.assert_array_equal(mask.astype(bool), net_mask & (hu >= 130))
    assert 0 < mask.sum() < net_mask.sum()
    # a higher threshold keeps a subset
    assert main([*common, "--output", str(tmp_path / "o2"), "--threshold-hu", "500", "--no-qc"]) == 0
    mask500, _ = read_image(tmp_path / "o2" / "one_cac.nii.gz")
    np.testing.assert_array_equal(mask500.astype(bool), net_mask & (hu >= 500))
    assert not (tmp_path / "o2" / "qc" / "one.png").exists()


def test_lesion_decision_is_the_default_and_uses_the_hu_threshold(model_dir: Path, tmp_path: Path) -> None:
    """Without --decision the mask is the lesion rule's on candidates >= --threshold-hu (whole lesions)."""
    import cc3d

    hu = _ct(3)
    inp = tmp_path / "one.nii.gz"
    _write(hu, inp)
    model = load_model(model_dir)
    for threshold, out in ((130, tmp_path / "o"), (500, tmp_path / "o500")):
        expected = predict_network_mask(make_predictor(model, device="cpu", candidate_hu=threshold), hu, SPACING)
        assert main(["predict", "--model", str(model_dir), "--input", str(inp), "--output", str(out), "--no-qc",
                     "--threshold-hu", str(threshold)]) == 0  # fmt: skip
        mask, _ = read_image(out / "one_cac.nii.gz")
        np.testing.assert_array_equal(mask.astype(bool), expected)
        assert not (mask.astype(bool) & (hu < threshold)).any()
        components = cc3d.connected_components(hu >= threshold, connectivity=26)
        kept = np.unique(components[mask != 0])
        np.testing.assert_array_equal(np.isin(components, kept[kept > 0]), mask != 0)  # whole lesions
        assert len(kept) > 0, "the test needs kept lesions"


def test_dicom_series_input_with_package(package: Path, tmp_path: Path) -> None:
    inp = tmp_path / "dicom"
    _write_dicom_series(_ct(4), inp / "pat1")
    _write_dicom_series(_ct(5), inp / "pat2", origin=(0.0, 0.0, -50.0))
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(package), "--input", str(inp), "--output", str(out), "--no-qc",
               "--mass-calibration", "0.8"])  # fmt: skip
    assert rc == 0
    rows = {r["case"]: r for r in _rows(out)}
    for case in ("pat1", "pat2"):
        hu, geo = read_ct(inp / case)
        mask, mgeo = read_image(out / f"{case}_cac.nii.gz")
        assert mgeo.compare(geo, tol=1e-4) == [] and mgeo.size == geo.size
        assert rows[case]["status"] == "ok" and rows[case]["mass_mg"] != ""
        np.testing.assert_array_equal(hu, _ct(4 if case == "pat1" else 5))


def test_corrupt_and_badly_named_inputs_are_reported_others_finish(model_dir: Path, tmp_path: Path, capsys) -> None:
    inp = tmp_path / "scans"
    inp.mkdir()
    _write(_ct(6), inp / "good.nii.gz")
    (inp / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a gzip NIfTI")
    _write((_ct(7) > 0).astype(np.int16), inp / "notct.nii.gz")  # 0/1 data: refused as not HU
    _write(_ct(8), inp / "bad name.nii.gz")  # a space: invalid case id
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(model_dir), "--input", str(inp), "--output", str(out)])
    assert rc == 1
    rows = {r["case"]: r for r in _rows(out)}
    assert rows["good"]["status"] == "ok" and (out / "good_cac.nii.gz").exists()
    for bad in ("broken", "notct", "bad name"):
        assert rows[bad]["status"] == "failed" and rows[bad]["error"]
        assert rows[bad]["agatston"] == ""
    assert "cannot read" in rows["broken"]["error"]
    assert "invalid case id" in rows["bad name"]["error"]
    assert not any(p.name.startswith("bad") for p in out.iterdir())
    assert "FAILED" in capsys.readouterr().err


def test_tampered_or_wrong_model_is_refused(package: Path, model_dir: Path, tmp_path: Path, capsys) -> None:
    assert load_model(package).network_spec["preset"] == "tiny"
    # 1) one weight changed, manifest kept
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "weights.pt":
                data = data[:-200] + bytes(b ^ 0xFF for b in data[-200:-100]) + data[-100:]
            dst.writestr(name, data)
    with pytest.raises(ModelError, match="checksum mismatch.*weights.pt"):
        load_model(tampered)
    scans = tmp_path / "scans"
    scans.mkdir()
    _write(_ct(9), scans / "x.nii.gz")
    rc = main(["predict", "--model", str(tampered), "--input", str(scans), "--output", str(tmp_path / "o")])
    assert rc == 2 and "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "o" / "x_cac.nii.gz").exists()
    # 2) an extra member smuggled in
    extra = tmp_path / "extra.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(extra, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("evil.py", "print('hi')")
    with pytest.raises(ModelError, match="members"):
        load_model(extra)
    # 3) config says another network than the weights hold (manifest and checksums made consistent)
    folder = tmp_path / "wrong_model"
    import shutil

    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**cfg, "network": "paper", "network_overrides": {}}))
    with pytest.raises(ModelError, match="weights do not match"):
        load_model(folder)
    # 4) plans declare another normalisation than our HU window
    plans = json.loads((model_dir / "plans.json").read_text(encoding="utf-8"))
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = ["CTNormalization"]
    shutil.copytree(model_dir, tmp_path / "ct_norm")
    (tmp_path / "ct_norm" / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(ModelError, match="normalisation"):
        load_model(tmp_path / "ct_norm")
    # 5) not a package at all
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 nothing")
    with pytest.raises(ModelError, match="not an s2cac model package"):
        load_model(junk)


def test_export_model_cli_and_patch_size_tta(model_dir: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "m.zip"
    assert main(["export-model", str(model_dir), str(pkg)]) == 0
    manifest = json.loads(zipfile.ZipFile(pkg).read("manifest.json"))
    assert set(manifest["sha256"]) == {"weights.pt", "plans.json", "dataset.json", "config.json"}
    assert manifest["network"]["preset"] == "tiny" and manifest["s2cac_version"]
    inp = tmp_path / "c.nii.gz"
    _write(_ct(10), inp)
    out = tmp_path / "o"
    assert main(["predict", "--model", str(pkg), "--input", str(inp), "--output", str(out), "--patch-size", "4",
                 "32", "48", "--tta", "--step", "0.75", "--no-qc"]) == 0  # fmt: skip
    assert _rows(out)[0]["status"] == "ok"
    # in-plane size not divisible by the network's stride: refused before any case runs
    assert main(["predict", "--model", str(pkg), "--input", str(inp), "--output", str(tmp_path / "o2"),
                 "--patch-size", "4", "30", "30"]) == 2  # fmt: skip


def test_find_cases_layouts(tmp_path: Path) -> None:
    f = tmp_path / "scan.nii.gz"
    _write(_ct(11), f)
    assert [(c.name, c.path) for c in find_cases(f)] == [("scan", f)]
    series = tmp_path / "series"
    _write_dicom_series(_ct(12)[:3], series / "s1")
    assert [c.name for c in find_cases(series)] == ["s1"]
    assert [c.name for c in find_cases(series / "s1")] == ["s1"]  # the folder itself is one series
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        find_cases(tmp_path / "empty")


def test_qc_slices_pick_most_calcium() -> None:
    mask = np.zeros((6, 4, 4), bool)
    mask[1, :2, :2] = True
    mask[4] = True
    mask[2, 0, 0] = True
    assert qc_slices(mask, 2) == [1, 4]
    assert qc_slices(np.zeros((5, 3, 3), bool)) == [2]


def test_trainer_model_folder_layout(tmp_path: Path) -> None:
    """The folder ``s2cac train`` writes (docs/training.md): checkpoint_best/final.pth with network_kwargs."""
    import yaml

    torch.manual_seed(1)
    kwargs = {"in_channels": 1, "num_classes": 2, "use_score_head": False, "fg_prior": 0.2}
    net = build_network("tiny", **kwargs)
    folder = tmp_path / "trained"
    folder.mkdir()
    method = {"network": "tiny", "network_overrides": {}, "use_score_head": False, "epochs": 1}
    for which, scale in (("final", 1.0), ("best", 2.0)):
        sd = {k: v * scale if v.is_floating_point() else v for k, v in net.state_dict().items()}
        torch.save({"network_weights": sd, "teacher_weights": sd, "student_weights": sd, "method_config": method,
                    "network_kwargs": kwargs, "inference_allowed_mirroring_axes": [1, 2], "current_epoch": 1},
                   folder / f"checkpoint_{which}.pth")  # fmt: skip
    (folder / "plans.json").write_text(json.dumps(make_plans([8, 64, 64], SPACING)))
    (folder / "dataset.json").write_text(json.dumps(make_dataset_json()))
    (folder / "config.yaml").write_text(yaml.safe_dump(method))
    model = load_model(folder)
    assert model.mirror_axes == (1, 2) and model.network_spec["use_score_head"] is False
    assert torch.equal(model.state_dict["head.weight"], 2.0 * net.state_dict()["head.weight"])  # best preferred
    assert torch.equal(load_model(folder, "final").state_dict["head.weight"], net.state_dict()["head.weight"])
    pkg = export_model(folder, tmp_path / "t.zip")
    assert load_model(pkg).network_spec == model.network_spec
    (folder / "config.yaml").write_text(yaml.safe_dump({**method, "network": "paper"}))
    with pytest.raises(ModelError, match="trained with network='tiny'"):
        load_model(folder)
