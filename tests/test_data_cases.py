"""Case sheets: ids, duplicates, files, geometry and label checks, each with a message naming the culprit."""

import gzip
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from _cases import write_volume

from s2cac.data.cases import CaseSheetError, check_cases, load_case_sheet, validate_case_id


def _rewrite(sheet, old, new):
    sheet.write_text(sheet.read_text(encoding="utf-8").replace(old, new))


def test_loads_and_checks_a_good_sheet(cohort):
    sheet = load_case_sheet(cohort)
    assert list(sheet["case_id"]) == [f"case{i:02d}" for i in range(8)]
    assert sheet["negative"].tolist() == [i % 3 == 0 for i in range(8)]
    checks = check_cases(sheet)
    assert checks[0].shape_zyx == (12, 48, 48)
    assert checks[0].spacing_zyx == pytest.approx((3.0, 0.7, 0.7))
    assert checks[0].label_values == (0,) and checks[1].label_values == (0, 2)


@pytest.mark.parametrize("bad", ["../escape", "/abs/path", "a/b", "a..b", "", "x;rm -rf", ".hidden", "a b"])
def test_unsafe_case_ids_are_rejected(bad):
    with pytest.raises(CaseSheetError, match="invalid case id"):
        validate_case_id(bad)


def test_safe_case_ids_pass():
    for ok in ["case01", "syn_000", "A-1.2"]:
        assert validate_case_id(ok) == ok


def test_path_escaping_id_in_sheet_names_the_row(cohort):
    _rewrite(cohort, "case03\t", "../case03\t")
    with pytest.raises(CaseSheetError, match=r"row 5: invalid case id '\.\./case03'"):
        load_case_sheet(cohort)


def test_duplicate_ids(cohort):
    _rewrite(cohort, "case02\t", "case01\t")
    with pytest.raises(CaseSheetError, match="duplicate case id.*case01"):
        load_case_sheet(cohort)


def test_missing_sheet_and_columns(tmp_path, cohort):
    with pytest.raises(CaseSheetError, match="case sheet not found"):
        load_case_sheet(tmp_path / "nope.tsv")
    _rewrite(cohort, "case_id\timage\tlabel", "id\timage\tlabel")
    with pytest.raises(CaseSheetError, match="missing column.*case_id"):
        load_case_sheet(cohort)


def test_bad_yes_no(cohort):
    _rewrite(cohort, "\tyes\n", "\tmaybe\n")
    with pytest.raises(CaseSheetError, match="column negative: expected yes or no, got 'maybe'"):
        load_case_sheet(cohort)


def test_missing_image_file(cohort):
    (cohort.parent / "images" / "case04.nii.gz").unlink()
    with pytest.raises(CaseSheetError, match=r"case case04: image file not found: .*case04\.nii\.gz"):
        check_cases(load_case_sheet(cohort))


def test_corrupt_image(cohort):
    path = cohort.parent / "images" / "case05.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti file at all" * 20))
    with pytest.raises(CaseSheetError, match=r"case case05: cannot read image .*case05\.nii\.gz"):
        check_cases(load_case_sheet(cohort))


def test_label_size_mismatch(cohort):
    write_volume(cohort.parent / "labels" / "case01.nii.gz", np.zeros((12, 48, 40), np.uint8))
    with pytest.raises(CaseSheetError, match=r"case case01: label .*case01\.nii\.gz does not match image .*size"):
        check_cases(load_case_sheet(cohort))


def test_label_geometry_mismatch(cohort):
    path = cohort.parent / "labels" / "case02.nii.gz"
    write_volume(path, sitk.GetArrayFromImage(sitk.ReadImage(str(path))), spacing=(0.8, 0.8, 3.0))
    with pytest.raises(CaseSheetError, match="does not match image.*spacing"):
        check_cases(load_case_sheet(cohort))
    write_volume(path, np.zeros((12, 48, 48), np.uint8), origin=(0.0, 0.0, 0.0))
    with pytest.raises(CaseSheetError, match="does not match image.*origin"):
        check_cases(load_case_sheet(cohort))


def test_negative_and_fractional_labels(cohort):
    path = cohort.parent / "labels" / "case02.nii.gz"
    write_volume(path, np.full((12, 48, 48), -1, np.int16))
    with pytest.raises(CaseSheetError, match="case case02: label .* negative values"):
        check_cases(load_case_sheet(cohort))
    write_volume(path, np.full((12, 48, 48), 0.5, np.float32))
    with pytest.raises(CaseSheetError, match="non-integer values"):
        check_cases(load_case_sheet(cohort))


def test_cli_reports_error_with_exit_code(cohort):
    (cohort.parent / "labels" / "case06.nii.gz").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "s2cac", "check-cases", str(cohort)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "case case06: label file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
