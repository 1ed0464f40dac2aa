"""nnU-Net raw conversion (our HU window) and nnU-Net's own preprocessing run through s2cac."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from s2cac.data.cases import CaseSheetError
from s2cac.data.nnunet_raw import dataset_folder_name, write_raw_dataset
from s2cac.data.preprocess import load_plans, run_preprocessing
from s2cac.hu import HUWindow, window_hu


def test_window_maps_the_method_window_onto_0_255():
    hu = np.array([-1000, -295, 130, 555, 3000, 0], np.int16)
    out = window_hu(hu)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 255, 255, round(295 / 850 * 255)]
    assert HUWindow().bounds == (-295.0, 555.0)
    with pytest.raises(ValueError, match="width"):
        HUWindow(130, 0)


def test_dataset_folder_name():
    assert dataset_folder_name(7, "synthetic") == "Dataset007_synthetic"
    with pytest.raises(ValueError, match="1..999"):
        dataset_folder_name(1000, "x")


def test_raw_dataset_keeps_geometry_windows_images_and_binarises_labels(cohort, tmp_path):
    raw = write_raw_dataset(cohort, tmp_path / "raw", 42, "tiny", threads=2, progress=False)
    assert raw.name == "Dataset042_tiny"
    meta = json.loads((raw / "dataset.json").read_text(encoding="utf-8"))
    assert meta["channel_names"] == {"0": "rgb_to_0_1"} and meta["numTraining"] == 8
    src = sitk.ReadImage(str(cohort.parent / "images" / "case01.nii.gz"))
    img = sitk.ReadImage(str(raw / "imagesTr" / "case01_0000.nii.gz"))
    lab = sitk.ReadImage(str(raw / "labelsTr" / "case01.nii.gz"))
    for out in (img, lab):
        assert out.GetSize() == src.GetSize()
        assert np.allclose(out.GetSpacing(), src.GetSpacing()) and np.allclose(out.GetOrigin(), src.GetOrigin())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), window_hu(sitk.GetArrayFromImage(src)))
    labels = sitk.GetArrayFromImage(lab)
    assert set(np.unique(labels)) == {0, 1}  # artery label 2 became calcium = 1
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["Dataset042_tiny"]  # no temp leftovers


def test_raw_refuses_non_hu_images_and_leaves_nothing(cohort, tmp_path):
    from _cases import write_volume

    write_volume(cohort.parent / "images" / "case03.nii.gz", np.full((12, 48, 48), 200, np.int16))
    with pytest.raises(CaseSheetError, match="case case03: image .* not CT in HU"):
        write_raw_dataset(cohort, tmp_path / "raw", 42, "tiny", progress=False)
    assert list((tmp_path / "raw").iterdir()) == []


def test_nnunet_preprocessing_with_overrides(cohort, tmp_path):
    raw = write_raw_dataset(cohort, tmp_path / "raw", 42, "tiny", threads=2, progress=False)
    log = tmp_path / "pre.log"
    out = run_preprocessing(
        raw, tmp_path / "pre", target_spacing_zyx=(3.0, 1.4, 1.4), patch_size_zyx=(8, 16, 16), num_processes=2, log=log
    )
    plans = load_plans(out)
    cfg = plans["configurations"]["3d_fullres"]
    assert list(plans["configurations"]) == ["3d_fullres"]
    assert cfg["patch_size"] == [8, 16, 16]
    assert cfg["spacing"] == [3.0, 1.4, 1.4]
    assert cfg["normalization_schemes"] == ["RGBTo01Normalization"]
    data = sorted(p.name for p in (out / "nnUNetPlans_3d_fullres").glob("*.b2nd"))
    assert len(data) == 16 and "case01_seg.b2nd" in data
    assert (out / "gt_segmentations" / "case01.nii.gz").is_file()
    assert "[preprocess] done" in log.read_text(encoding="utf-8")

    import blosc2

    arr = blosc2.open(str(out / "nnUNetPlans_3d_fullres" / "case01.b2nd"))[:]
    assert arr.shape[0] == 1 and arr.shape[2] < 48  # resampled in-plane to 1.4 mm: about half the pixels
    assert 0.0 <= arr.min() and arr.max() <= 1.0  # rgb_to_0_1: our window / 255, nothing else
    assert arr.max() > 0.9  # the 700 HU bone bar survives (nnU-Net's CT scheme would not change it, but ...)
    assert (arr > 0.3).mean() > 0.2  # ... soft tissue (40 HU -> 0.39) is still there: the anatomy is not erased


def test_preprocessing_failure_is_reported(tmp_path):
    bad = tmp_path / "raw" / "Dataset043_bad"
    (bad / "imagesTr").mkdir(parents=True)
    (bad / "labelsTr").mkdir()
    (bad / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "rgb_to_0_1"},
                "labels": {"background": 0, "calcium": 1},
                "numTraining": 2,
                "file_ending": ".nii.gz",
            }
        )
    )
    with pytest.raises(RuntimeError, match="nnU-Net preprocessing of .*Dataset043_bad failed"):
        run_preprocessing(bad, tmp_path / "pre", log=tmp_path / "log")
    assert not (tmp_path / "pre" / "Dataset043_bad").exists()
    with pytest.raises(FileNotFoundError, match="no dataset.json"):
        run_preprocessing(tmp_path, tmp_path / "pre")
