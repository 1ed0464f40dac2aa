"""Folder importer: pairing by case id, label mapping, geometry checks, id sanitising and refusals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _cases import write_volume
from _coca import chest, write_dicom_series

from s2cac.data.cases import check_cases, load_case_sheet
from s2cac.datasets.common import DatasetImportError, sanitize_case_id
from s2cac.datasets.folder import import_folder, list_entries, resolve_label_map


def _case(seed: int, labels: dict[int, tuple] | None = None) -> tuple[np.ndarray, np.ndarray]:
    hu = chest((5, 24, 24), seed)
    lab = np.zeros(hu.shape, np.uint8)
    for value, (z, y, x) in (labels or {}).items():
        hu[z, y : y + 3, x : x + 3] = 400
        lab[z, y : y + 3, x : x + 3] = value
    return hu, lab


def _orcascore_like(root: Path) -> None:
    """MetaImage pairs named like orCaScore (TRV1P1CTI.mhd / TRV1P1r.mhd), labels 1 LAD, 2 LCX, 3 RCA."""
    for i, labels in enumerate([{1: (1, 5, 5), 3: (3, 12, 12)}, {2: (2, 8, 8)}, {}]):
        hu, lab = _case(i, labels)
        write_volume(root / "images" / f"TRV1P{i + 1}CTI.mhd", hu)
        write_volume(root / "labels" / f"TRV1P{i + 1}r.mhd", lab)


def test_orcascore_style_pairs_with_label_mapping(tmp_path):
    _orcascore_like(tmp_path / "in")
    summary = import_folder(
        tmp_path / "in/images", tmp_path / "in/labels", tmp_path / "out",
        image_suffix="CTI", label_suffix="r", label_map="orcascore", progress=False,
    )  # fmt: skip
    assert summary == {"cases": 3, "negatives": 1, "images_without_label_skipped": 0}
    sheet = load_case_sheet(tmp_path / "out/cases.tsv")
    assert list(sheet["case_id"]) == ["TRV1P1", "TRV1P2", "TRV1P3"]
    assert [c.label_values for c in check_cases(sheet)] == [(0, 2, 4), (0, 3), (0,)]
    assert list(sheet["negative"]) == [False, False, True]
    assert float(sheet.loc[0, "agatston_lad"]) > 0 and float(sheet.loc[0, "agatston_rca"]) > 0
    assert sheet.loc[0, "image"].endswith("images/TRV1P1.nii.gz")


def test_dicom_series_folders_and_nifti_labels(tmp_path):
    hu, lab = _case(7, {4: (2, 10, 10)})
    write_dicom_series(tmp_path / "images" / "patient 01", hu, pixel_mm=0.7, origin_xyz=(-20.0, 15.0, 100.0))
    write_volume(tmp_path / "labels" / "patient_01.nii.gz", lab)  # 0.7 x 0.7 x 3 mm, same origin
    import_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "out", progress=False)
    sheet = load_case_sheet(tmp_path / "out/cases.tsv")
    assert list(sheet["case_id"]) == ["patient_01"]  # sanitised
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(sheet.loc[0, "label"])), lab)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(sheet.loc[0, "image"])), hu)


def test_refusals_name_the_file_and_leave_nothing(tmp_path):
    hu, lab = _case(0, {1: (1, 5, 5)})
    img_dir, lab_dir, out = tmp_path / "i", tmp_path / "l", tmp_path / "out"
    write_volume(img_dir / "a.nii.gz", hu)
    write_volume(img_dir / "b.nii.gz", hu)
    write_volume(lab_dir / "a.nii.gz", lab)
    with pytest.raises(DatasetImportError, match=r"image\(s\) without a label map in .*: b \(missing annotation"):
        import_folder(img_dir, lab_dir, out, progress=False)
    summary = import_folder(img_dir, lab_dir, out, missing_label="skip", progress=False)
    assert summary["cases"] == 1 and summary["images_without_label_skipped"] == 1
    write_volume(lab_dir / "b.nii.gz", lab, spacing=(0.8, 0.7, 3.0))
    with pytest.raises(DatasetImportError, match=r"case b: .*l/b\.nii\.gz: geometry differs from its image"):
        import_folder(img_dir, lab_dir, tmp_path / "out2", progress=False)
    write_volume(lab_dir / "b.nii.gz", lab * 7)
    with pytest.raises(DatasetImportError, match=r"b\.nii\.gz: label value\(s\) \[7\] are not in label_map"):
        import_folder(img_dir, lab_dir, tmp_path / "out2", label_map={1: 2}, progress=False)
    write_volume(lab_dir / "c.nii.gz", lab)
    with pytest.raises(DatasetImportError, match=r"label map\(s\) without an image in .*: c"):
        import_folder(img_dir, lab_dir, tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_duplicate_ids_and_links_out_are_refused(tmp_path):
    hu, _ = _case(0)
    write_volume(tmp_path / "i" / "case 1.nii.gz", hu)
    write_volume(tmp_path / "i" / "case_1.mha", hu)
    with pytest.raises(DatasetImportError, match="both give case id 'case_1'"):
        list_entries(tmp_path / "i")
    write_volume(tmp_path / "elsewhere" / "x.nii.gz", hu)
    (tmp_path / "j").mkdir()
    os.symlink(tmp_path / "elsewhere" / "x.nii.gz", tmp_path / "j" / "x.nii.gz")
    with pytest.raises(DatasetImportError, match="points outside"):
        list_entries(tmp_path / "j")


@pytest.mark.parametrize(
    ("name", "expected"), [("Pat 1/ä", "Pat_1__"), ("..hidden", "hidden"), ("a..b", "a_b"), ("x.y-z_1", "x.y-z_1")]
)
def test_sanitize_case_id(name, expected):
    assert sanitize_case_id(name) == expected


def test_label_map_config():
    assert resolve_label_map("orcascore") == {1: 2, 2: 3, 3: 4}
    assert resolve_label_map({"1": "4"}) == {1: 4}
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_label_map("coca")
    with pytest.raises(ValueError, match="not an integer pair"):
        resolve_label_map({"LAD": 2})
