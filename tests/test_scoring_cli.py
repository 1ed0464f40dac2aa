"""``s2cac score`` end to end: CSV/JSON output, DICOM input, clear errors, no heavy imports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from s2cac.cli import main
from s2cac.io import Geometry, read_image

sys.path.insert(0, str(Path(__file__).parent))
from test_io_images import write_dicom_series, write_nifti  # noqa: E402


@pytest.fixture()
def case(tmp_path: Path) -> tuple[Path, Path]:
    hu = np.full((3, 16, 16), -900, np.int16)
    hu[1, 2:5, 2:5] = 250  # 9 px x 0.25 mm^2 = 2.25 mm^2, weight 2 -> 4.5 at 3 mm
    hu[1, 10:12, 10:12] = 420  # 1 mm^2, weight 4 -> 4
    mask = np.zeros(hu.shape, np.uint8)
    mask[1, 1:6, 1:6] = 1
    mask[1, 9:13, 9:13] = 2
    return write_nifti(tmp_path / "ct.nii.gz", hu), write_nifti(tmp_path / "mask.nii.gz", mask)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_score_csv(case, tmp_path: Path) -> None:
    image, mask = case
    out = tmp_path / "scores.csv"
    assert main(["score", "--image", str(image), "--mask", str(mask), "--out", str(out)]) == 0
    rows = _read_csv(out)
    assert list(rows[0]) == ["label", "agatston", "volume_mm3", "n_lesions", "risk_category"]
    assert [r["label"] for r in rows] == ["1", "2", "total"]
    assert float(rows[0]["agatston"]) == pytest.approx(4.5)
    assert float(rows[1]["agatston"]) == pytest.approx(4.0)
    assert float(rows[2]["agatston"]) == pytest.approx(8.5)
    assert float(rows[2]["volume_mm3"]) == pytest.approx(13 * 0.75)
    assert rows[2]["risk_category"] == "1-10"


def test_score_json_with_mass_and_options(case, tmp_path: Path) -> None:
    image, mask = case
    out = tmp_path / "scores.json"
    args = ["score", "--image", str(image), "--mask", str(mask), "--out", str(out), "--json"]
    assert main([*args, "--mass-calibration", "0.8", "--min-area-mm2", "2"]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    total = data["scores"][-1]
    assert total["label"] == "total"
    assert total["agatston"] == pytest.approx(4.5)  # the 1 mm^2 lesion is dropped
    assert total["mass_mg"] == pytest.approx(0.8 * 9 * 0.75e-3 * 250)
    assert data["options"]["min_area_mm2"] == 2


def test_score_dicom_series(tmp_path: Path, capsys) -> None:
    hu = np.full((4, 10, 10), -1000, np.int16)
    hu[2, 3:6, 3:6] = 310
    write_dicom_series(tmp_path / "dcm", hu, spacing_zyx=(1.5, 0.5, 0.5), slope=1.0, intercept=-1024.0)
    _, geom = read_image(tmp_path / "dcm")
    mask = np.zeros(hu.shape, np.uint8)
    mask[2] = 1
    sitk.WriteImage(geom.apply_to(sitk.GetImageFromArray(mask)), str(tmp_path / "m.nii.gz"))
    assert main(["score", "--image", str(tmp_path / "dcm"), "--mask", str(tmp_path / "m.nii.gz")]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    # 9 px x 0.25 mm^2 x weight 3 x 1.5/3
    assert float(rows[-1]["agatston"]) == pytest.approx(9 * 0.25 * 3 * 0.5)


def _bad_inputs(tmp_path: Path, image: Path, mask: Path) -> list[tuple[list[str], str]]:
    shape = sitk.ReadImage(str(image)).GetSize()[::-1]
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.dcm").write_bytes(b"\0" * 300)
    scaled = write_nifti(tmp_path / "u8.nii.gz", np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8))
    neg = write_nifti(tmp_path / "neg.nii.gz", -np.ones(shape, np.int16))
    frac = write_nifti(tmp_path / "frac.nii.gz", np.full(shape, 0.5, np.float32))
    moved = write_nifti(tmp_path / "moved.nii.gz", np.zeros(shape, np.uint8), origin=(1.0, 2.0, 7.0))
    return [
        (["--image", str(tmp_path / "missing.nii.gz"), "--mask", str(mask)], "missing.nii.gz: no such file"),
        (["--image", str(junk), "--mask", str(mask)], "no readable DICOM series"),
        (["--image", str(scaled), "--mask", str(mask)], "does not look like CT in HU"),
        (["--image", str(image), "--mask", str(neg)], "negative labels"),
        (["--image", str(image), "--mask", str(frac)], "non-integer"),
        (["--image", str(image), "--mask", str(moved)], "geometry differs from its image: origin"),
    ]


def test_bad_inputs_clear_errors(case, tmp_path: Path, capsys) -> None:
    image, mask = case
    for args, message in _bad_inputs(tmp_path, image, mask):
        rc = main(["score", *args])
        err = capsys.readouterr().err
        assert rc == 2, args
        assert message in err, (args, err)
        assert err.startswith("s2cac score: error:") and "Traceback" not in err


def test_score_imports_nothing_heavy(case) -> None:
    image, mask = case
    code = (
        "import sys\nfrom s2cac.cli import main\n"
        f"rc = main(['score', '--image', {str(image)!r}, '--mask', {str(mask)!r}])\n"
        "heavy = [m for m in ('torch', 'nnunetv2', 'pandas', 'matplotlib', 'sklearn', 'scipy', 'pydicom',"
        " 'seaborn', 'snakemake') if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY [] 0" in proc.stdout, proc.stdout + proc.stderr


def test_geometry_roundtrip_helper() -> None:
    geom = Geometry((2.0, 0.5, 0.4), (1.0, 2.0, 3.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), (2, 3, 4))
    image = geom.apply_to(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.uint8)))
    assert Geometry.from_sitk(image).compare(geom) == []
