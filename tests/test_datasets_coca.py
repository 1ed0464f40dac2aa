"""COCA importers on data written here in COCA's real formats (DICOM layout, plist ROIs, xlsx scores)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from _coca import ORIGIN_XYZ, chest, roi, square, write_calcium_xml, write_dicom_series

from s2cac.data.cases import check_cases, load_case_sheet
from s2cac.datasets.coca import CocaError, import_gated, import_nongated, parse_calcium_xml, verify_layout
from s2cac.datasets.polygons import fill_polygon, polygon_area
from s2cac.datasets.xlsx import read_xlsx

Z = [ORIGIN_XYZ[2] + 3.0 * k for k in range(6)]


def _positive_case() -> tuple[np.ndarray, dict[int, list[dict]]]:
    hu = chest(seed=1)
    hu[1, 10:14, 8:12] = 300
    hu[1, 12, 10] = 455  # the LM ROI's peak
    hu[4, 20:23, 20:25] = 220
    hu[4, 21, 22] = 250
    hu[2, 5:7, 20:22] = 500
    images = {
        1: [roi("Left Coronary Artery", square(8, 11, 10, 13), area_cm2=0.04, max_hu=455, z_mm=Z[1])],
        4: [
            roi("Left Anterior Descending Artery", square(20, 24, 20, 22), area_cm2=0.0375, max_hu=250, z_mm=Z[4]),
            {**roi("Right Coronary Artery", [], area_cm2=0.0, max_hu=0), "Point_px": [], "Point_mm": []},
        ],
        2: [roi("Right Coronary Artery", square(20, 21, 5, 6), area_cm2=0.01, max_hu=600, z_mm=Z[2])],  # wrong Max
    }
    return hu, images


def make_gated(root: Path) -> dict[str, np.ndarray]:
    gated = root / "Gated_release_final"
    hu1, images = _positive_case()
    write_dicom_series(gated / "patient" / "1" / "SE0001", hu1)
    write_calcium_xml(gated / "calcium_xml" / "1.xml", images)
    hu2 = chest(seed=2)
    write_dicom_series(gated / "patient" / "2" / "SE0002", hu2)  # no XML: a negative
    return {"1": hu1, "2": hu2}


def test_even_odd_fill_at_pixel_centres():
    square_mask = fill_polygon(np.array(square(2, 4, 1, 3)), (8, 8))
    assert square_mask.sum() == 9 and square_mask[1:4, 2:5].all()
    # a self-overlapping star: the even-odd rule leaves the centre pentagon empty
    angles = np.deg2rad(90 + 144 * np.arange(5))
    star = np.stack([50 + 40 * np.cos(angles), 50 + 40 * np.sin(angles)], axis=1)
    mask = fill_polygon(star, (100, 100))
    assert not mask[50, 50]  # the pentagon in the middle is crossed twice: outside
    assert mask[int(50 + 38 * np.sin(angles[0])) - 2, 50]  # inside a point of the star
    # a big polygon's filled pixel count approaches its area
    circle = np.stack(
        [50 + 30 * np.cos(np.linspace(0, 2 * np.pi, 200)), 50 + 30 * np.sin(np.linspace(0, 2 * np.pi, 200))], 1
    )
    assert abs(fill_polygon(circle, (100, 100)).sum() / polygon_area(circle) - 1) < 0.01


def test_parse_xml_skips_empty_rois(tmp_path):
    _, images = _positive_case()
    write_calcium_xml(tmp_path / "1.xml", images)
    xml = parse_calcium_xml(tmp_path / "1.xml")
    assert xml.skipped_empty == 1
    assert sorted((r.image_index, r.label) for r in xml.rois) == [(1, 1), (2, 4), (4, 2)]
    lm = next(r for r in xml.rois if r.label == 1)
    assert lm.points_px[0].tolist() == [7.6, 9.6] and lm.z_mm == pytest.approx(Z[1])


def test_gated_import_places_rois_by_ascending_z(tmp_path):
    hus = make_gated(tmp_path / "coca")
    out = tmp_path / "cohort"
    summary = import_gated(tmp_path / "coca", out, progress=False)
    assert summary["cases"] == 2 and summary["negatives"] == 1
    assert summary["rois_used"] == 3 and summary["rois_skipped_empty"] == 1
    assert summary["roi_mismatches"] == 1 and summary["max_hu_mismatches"] == 1 and summary["area_mismatches"] == 0
    sheet = load_case_sheet(out / "cases.tsv")
    assert list(sheet["case_id"]) == ["1", "2"] and list(sheet["negative"]) == [False, True]
    checks = check_cases(sheet, allowed_labels={0, 1, 2, 3, 4})
    assert checks[0].label_values == (0, 1, 2, 4) and checks[0].spacing_zyx == pytest.approx((3.0, 0.5, 0.5))
    label = sitk.GetArrayFromImage(sitk.ReadImage(sheet.loc[0, "label"]))
    expected = np.zeros_like(label)
    expected[1, 10:14, 8:12] = 1
    expected[4, 20:23, 20:25] = 2
    expected[2, 5:7, 20:22] = 4
    np.testing.assert_array_equal(label, expected)
    img = sitk.ReadImage(sheet.loc[0, "image"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), hus["1"])  # HU, ascending z
    assert img.GetOrigin() == pytest.approx(ORIGIN_XYZ)
    row = sheet.iloc[0]
    assert float(row["agatston_lm"]) > 0 and float(row["agatston_lad"]) > 0 and float(row["agatston_lcx"]) == 0
    total = sum(float(row[f"agatston_{a}"]) for a in ("lm", "lad", "lcx", "rca"))
    assert float(row["agatston"]) == pytest.approx(total)
    assert row["rois_skipped"] == "1" and row["roi_mismatches"] == "1"
    log = (out / "import_log.txt").read_text(encoding="utf-8")
    assert "ROI mismatch 1 ImageIndex 2 Right Coronary Artery: Max 600 HU but filled peak 500 HU" in log
    assert "rois_skipped_empty: 1" in log
    assert json.loads((out / "import_summary.json").read_text(encoding="utf-8")) == summary
    roi_table = pd.read_csv(out / "roi_checks.tsv", sep="\t")
    assert len(roi_table) == 3 and roi_table["n_pixels"].tolist() == [16, 4, 15]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(p.name in ("images", "labels", "cases.tsv") for p in out.iterdir())
    assert not out.exists() or not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_polygon_outside_the_image_is_refused(tmp_path):
    make_gated(tmp_path / "coca")
    bad = tmp_path / "coca/Gated_release_final/calcium_xml/1.xml"
    write_calcium_xml(bad, {1: [roi("Right Coronary Artery", square(28, 35, 2, 4), area_cm2=0.1, max_hu=300)]})
    with pytest.raises(CocaError, match=r"1\.xml: ImageIndex 1, ROI 'Right Coronary Artery': polygon outside"):
        import_gated(tmp_path / "coca", tmp_path / "out", progress=False)
    _assert_nothing_written(tmp_path / "out")


def test_unparsable_xml_and_unknown_artery(tmp_path):
    make_gated(tmp_path / "coca")
    bad = tmp_path / "coca/Gated_release_final/calcium_xml/1.xml"
    bad.write_text("<?xml version='1.0'?><plist><dict><key>Images</key><array>")
    with pytest.raises(CocaError, match=r"1\.xml: not a readable plist XML"):
        import_gated(tmp_path / "coca", tmp_path / "out", progress=False)
    _assert_nothing_written(tmp_path / "out")
    write_calcium_xml(bad, {0: [roi("Aorta", square(5, 6, 5, 6), area_cm2=0.01, max_hu=40)]})
    with pytest.raises(CocaError, match="unknown ROI name 'Aorta'"):
        parse_calcium_xml(bad)


def test_series_with_a_missing_slice_is_refused_or_skipped(tmp_path):
    make_gated(tmp_path / "coca")
    write_dicom_series(tmp_path / "coca/Gated_release_final/patient/3/SE3", chest(seed=3), skip=(2,))
    with pytest.raises(CocaError, match=r"case 3: .*patient/3/SE3: uneven slice spacing"):
        import_gated(tmp_path / "coca", tmp_path / "out", progress=False)
    _assert_nothing_written(tmp_path / "out")
    summary = import_gated(tmp_path / "coca", tmp_path / "out", skip_bad_cases=True, progress=False)
    assert summary["cases"] == 2 and summary["failed_cases"] == 1
    assert "failed case: case 3:" in (tmp_path / "out/import_log.txt").read_text(encoding="utf-8")


def test_missing_layout_says_what_to_fetch(tmp_path):
    with pytest.raises(CocaError, match="(?s)no Gated_release_final/patient folder.*Stanford AIMI.*dataset.download"):
        verify_layout(tmp_path / "nothing", "gated")
    (tmp_path / "c/Gated_release_final/patient/1").mkdir(parents=True)
    with pytest.raises(CocaError, match="calcium_xml: missing"):
        verify_layout(tmp_path / "c", "gated")
    with pytest.raises(CocaError, match="calcium_xml: missing"):
        import_gated(tmp_path / "c", tmp_path / "out", progress=False)
    make_gated(tmp_path / "ok")
    (tmp_path / "ok/Gated_release_final/calcium_xml/99.xml").write_text("x")
    counts = verify_layout(tmp_path / "ok", "gated")
    assert counts["patients"] == 2 and counts["annotations"] == 2 and counts["annotations_without_patient"] == ["99"]


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    """A minimal OOXML workbook (shared strings for text cells, numbers inline), as Excel writes them."""
    strings: list[str] = []

    def cell(ref: str, value) -> str:
        if isinstance(value, str):
            strings.append(value)
            return f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>'
        return f'<c r="{ref}"><v>{value}</v></c>'

    body = []
    for r, values in enumerate([header, *rows], 1):
        cells = "".join(cell(f"{chr(65 + c)}{r}", v) for c, v in enumerate(values))
        body.append(f'<row r="{r}">{cells}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel_ns = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            'spreadsheetml.sheet.main+xml"/></Types>',
        )
        zf.writestr(
            "xl/workbook.xml",
            f'<workbook {ns} {rel_ns}><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship '
            'Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>',
        )
        zf.writestr("xl/worksheets/sheet1.xml", f"<worksheet {ns}><sheetData>{''.join(body)}</sheetData></worksheet>")
        sst = "".join(f"<si><t>{s}</t></si>" for s in strings)
        zf.writestr("xl/sharedStrings.xml", f'<sst {ns} count="{len(strings)}">{sst}</sst>')


def test_nongated_score_only_import(tmp_path):
    ng = tmp_path / "coca" / "deidentified_nongated"
    write_dicom_series(ng / "101" / "101", chest(seed=4))
    write_dicom_series(ng / "ab7" / "ab7", chest(seed=5))
    header = ["filename ", "LCA", "LAD", "LCX", "RCA", "total"]
    write_xlsx(ng / "scores.xlsx", header, [[101, 0, 12.5, 0, 3, 15.5], ["ab7", 0, 0, 0, 0, 0]])
    table = read_xlsx(ng / "scores.xlsx")
    assert list(table.columns) == header and table.iloc[0, 0] == 101.0
    summary = import_nongated(tmp_path / "coca", tmp_path / "out", progress=False)
    assert summary == {"cases": 2, "negatives": 1, "failed_cases": 0}
    sheet = load_case_sheet(tmp_path / "out" / "cases.tsv")
    assert list(sheet["case_id"]) == ["101", "ab7"] and list(sheet["label"]) == ["", ""]
    assert sheet.loc[0, "agatston"] == "15.5" and sheet.loc[0, "agatston_lad"] == "12.5"
    assert sheet.loc[0, "risk_category"] == "11-100" and list(sheet["negative"]) == [False, True]
    assert Path(sheet.loc[0, "image"]).is_file()


def test_nongated_sheet_errors(tmp_path):
    ng = tmp_path / "coca" / "deidentified_nongated"
    write_dicom_series(ng / "101" / "101", chest(seed=4))
    write_xlsx(ng / "scores.xlsx", ["filename ", "LAD", "total"], [[101, 1, 1]])
    with pytest.raises(CocaError, match=r"scores\.xlsx: missing column\(s\) \['LCA', 'LCX', 'RCA'\]"):
        import_nongated(tmp_path / "coca", tmp_path / "out", progress=False)
    write_xlsx(ng / "scores.xlsx", ["filename ", "LCA", "LAD", "LCX", "RCA", "total"], [[102, 0, 0, 0, 0, 0]])
    with pytest.raises(CocaError, match="filename '102' has no series folder"):
        import_nongated(tmp_path / "coca", tmp_path / "out", progress=False)
    (ng / "scores.xlsx").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"scores\.xlsx: not a readable \.xlsx workbook"):
        import_nongated(tmp_path / "coca", tmp_path / "out", progress=False)
    _assert_nothing_written(tmp_path / "out")
