"""``s2cac download`` and ``s2cac import``: outputs and exit codes (0 ok, 1 some cases failed, 2 bad input)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from _cases import write_volume
from _coca import chest, write_dicom_series

from s2cac.cli import main


def test_import_folder_and_coca_exit_codes(tmp_path, capsys):
    hu = chest((4, 16, 16))
    write_volume(tmp_path / "i" / "a.nii.gz", hu)
    write_volume(tmp_path / "l" / "a.nii.gz", np.zeros(hu.shape, np.uint8))
    assert main(["import", "folder", "--images", str(tmp_path / "i"), "--labels", str(tmp_path / "l"),
                 "--out", str(tmp_path / "o")]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["cases"] == 1
    assert main(["import", "folder", "--images", str(tmp_path / "nope"), "--labels", str(tmp_path / "l"),
                 "--out", str(tmp_path / "o2")]) == 2  # fmt: skip
    assert "nope: image folder not found" in capsys.readouterr().err
    gated = tmp_path / "coca" / "Gated_release_final"
    (gated / "calcium_xml").mkdir(parents=True)
    write_dicom_series(gated / "patient" / "1" / "S", chest(seed=1))
    write_dicom_series(gated / "patient" / "2" / "S", chest(seed=2), skip=(3,))
    args = ["import", "coca", "--root", str(tmp_path / "coca"), "--out", str(tmp_path / "c")]
    assert main(args) == 2
    assert "uneven slice spacing" in capsys.readouterr().err
    assert main([*args, "--skip-bad-cases"]) == 1
    assert json.loads(capsys.readouterr().out)["failed_cases"] == 1


def test_download_exit_codes(tmp_path, capsys):
    src = tmp_path / "f.bin"
    src.write_bytes(b"data" * 100)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert main(["download", src.as_uri(), "--out", str(tmp_path / "d/f.bin"), "--sha256", sha, "--quiet"]) == 0
    assert sha in capsys.readouterr().out
    assert main(["download", src.as_uri(), "--out", str(tmp_path / "e/f.bin"), "--sha256", "1" * 64]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not (tmp_path / "e/f.bin").exists()
