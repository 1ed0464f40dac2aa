"""Threshold-only reference method: heart region of the synthetic cohort, masks, body fallback, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from s2cac.data.cases import load_case_sheet
from s2cac.paper.threshold import ThresholdCase, body_region, predict_threshold, threshold_label, threshold_mask
from s2cac.synth import SynthConfig, heart_region, synthesize_case, threshold_baseline, write_heart_regions

SMALL = SynthConfig(n_cases=2, negative_fraction=0.0, seed=5, shape_zyx=(12, 96, 96), overview_cases=1)


def test_heart_region_is_the_generators_and_reproduces_its_baseline(tmp_path: Path) -> None:
    case = synthesize_case(SMALL, 1)
    region, grid = heart_region(SMALL, 1)
    assert grid == case.grid and np.array_equal(region, case.heart_region)
    pred = threshold_mask(case.hu, region)
    ref = case.label > 0
    dice = 2 * np.count_nonzero(pred & ref) / (pred.sum() + ref.sum())
    assert dice == threshold_baseline(case.hu, case.label, case.heart_region, 1.0)["baseline_dice"]
    (path,) = write_heart_regions(tmp_path, SMALL, [1])
    assert path.name == "syn_001.nii.gz"
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), region.astype(np.uint8))


def test_threshold_mask_and_body_region() -> None:
    hu = np.full((3, 20, 20), -1000, np.int16)
    hu[:, 2:18, 2:18] = 40  # body
    hu[:, 6:10, 6:10] = -800  # a lung inside it: filled
    hu[1, 4, 4] = 500  # calcium-like
    hu[1, 15, 15] = 129  # just below the threshold
    body = body_region(hu)
    assert body[:, 2:18, 2:18].all() and not body[:, :2].any()
    mask = threshold_mask(hu, body)
    assert mask.dtype == np.uint8 and mask.sum() == 1 and mask[1, 4, 4] == 1
    region = np.zeros_like(body)
    assert threshold_mask(hu, region).sum() == 0
    assert not body_region(np.full((2, 4, 4), -1000)).any()


def _write(array: np.ndarray, path: Path, spacing=(0.7, 0.7, 3.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def test_predict_threshold_writes_masks_and_says_which_region(tmp_path: Path) -> None:
    hu = np.full((3, 16, 16), -1000, np.int16)
    hu[:, 1:15, 1:15] = 40
    hu[1, 3, 3] = 400  # inside the heart region
    hu[1, 12, 12] = 900  # bone, outside it
    region = np.zeros(hu.shape, np.uint8)
    region[:, :8, :8] = 1
    img = _write(hu, tmp_path / "a.nii.gz")
    reg = _write(region, tmp_path / "a_heart.nii.gz")
    out = tmp_path / "pred"
    table = predict_threshold([ThresholdCase("a", img, reg), ThresholdCase("b", img, None)], out)
    assert table.to_dict("records") == [
        {"case_id": "a", "region": "heart", "voxels": 1},
        {"case_id": "b", "region": "body", "voxels": 2},
    ]
    a = sitk.ReadImage(str(out / "a_cac.nii.gz"))
    assert np.allclose(a.GetSpacing(), (0.7, 0.7, 3.0)) and sitk.GetArrayFromImage(a).sum() == 1
    assert pd.read_csv(out / "regions.tsv", sep="\t")["region"].tolist() == ["heart", "body"]
    assert threshold_label(table["region"]) == "threshold >= 130 HU (body, no heart mask; heart region)"
    assert threshold_label(["heart"]) == "threshold >= 130 HU (heart region)"


def test_case_sheet_heart_region_column_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    sheet = tmp_path / "s" / "cases.tsv"
    sheet.write_text("case_id\timage\tlabel\theart_region\nc1\ti.nii.gz\tl.nii.gz\theart/c1.nii.gz\n")
    df = load_case_sheet(sheet)
    assert df.loc[0, "heart_region"] == str((tmp_path / "s" / "heart" / "c1.nii.gz").resolve())
