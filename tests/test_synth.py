"""Synthetic cohort generator: config, geometry, HU, labels vs artery paths, negatives, determinism, baseline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

from s2cac.cli import main
from s2cac.scoring import score_mask
from s2cac.synth import ARTERIES, ARTERY_LABEL, CASE_COLUMNS, SynthConfig, generate_cohort, synthesize_case

SMALL = {"shape_zyx": [24, 128, 128], "seed": 7}
# Every labelled voxel centre lies within this distance (mm) of its artery's centre line: lumen radius (<= 2.1)
# + plaque offset and half-thickness (<= 0.75 r + 1.75) + blur/partial-volume reach (half a 3 mm slice + ~1 mm).
LABEL_TO_PATH_MM = 7.0


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    generate_cohort(out, SynthConfig(n_cases=8, **SMALL), n_jobs=2, progress=False)
    return out


@pytest.fixture(scope="module")
def sheet(cohort: Path) -> pd.DataFrame:
    return pd.read_csv(cohort / "cases.tsv", sep="\t", dtype={"case_id": str})


# --- configuration ---------------------------------------------------------------------------------------------


def test_from_dict_rejects_unknown_key_by_name() -> None:
    with pytest.raises(ValueError, match="n_casez"):
        SynthConfig.from_dict({"n_casez": 3})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("negative_fraction", 1.5),
        ("n_cases", 0),
        ("shape_zyx", [4, 64, 64]),
        ("spacing_xy_mm", [0.8, 0.4]),
        ("noise_sigma_hu", [15]),
        ("case_prefix", "../x"),
        ("seed", -1),
    ],
)
def test_bad_values_name_the_option(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        SynthConfig.from_dict({key: value})


def test_config_round_trip_and_negative_spread() -> None:
    cfg = SynthConfig.from_dict({"n_cases": 20, "negative_fraction": 0.25})
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    negatives = [i for i in range(20) if cfg.is_negative(i)]
    assert len(negatives) == 5
    assert np.diff(negatives).min() >= 3  # spread, not bunched
    assert not any(SynthConfig(negative_fraction=0.0).is_negative(i) for i in range(10))
    assert all(SynthConfig(negative_fraction=1.0).is_negative(i) for i in range(10))


# --- one case in memory --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def positive_case():
    cfg = SynthConfig(negative_fraction=0.0, plaques_per_case=[8, 12], stent_probability=0.0, **SMALL)
    return synthesize_case(cfg, 0)


def test_hu_of_tissues(positive_case) -> None:
    hu = positive_case.hu
    assert hu.dtype == np.int16

    def share(lo: float, hi: float) -> float:
        return float(np.mean((hu >= lo) & (hu < hi)))

    assert share(-1100, -930) > 0.01  # air around the body
    assert share(-930, -700) > 0.05  # lung
    assert share(-160, -40) > 0.02  # fat (subcutaneous, mediastinal, epicardial)
    assert share(0, 90) > 0.15  # soft tissue and blood (heart, muscle, liver)
    h = positive_case.anatomy.heart
    zw, yw, xw = positive_case.grid.axes
    z, y, x = np.meshgrid(zw, yw, xw, indexing="ij")
    q = h.local(np.stack([x, y, z], axis=-1))
    inner = np.sqrt(((q / h.semi) ** 2).sum(-1)) < 0.8  # well inside the heart ellipsoid
    assert inner.sum() > 1000
    assert 25 < np.median(hu[inner]) < 60  # non-contrast: blood and myocardium ~40 HU


def test_bone_above_threshold_outside_label(positive_case) -> None:
    hu, label, heart = positive_case.hu, positive_case.label, positive_case.heart_region
    bone = (hu >= 130) & ~heart  # outside the heart: spine, ribs, sternum (and descending aortic calcium)
    assert bone.sum() > 1000  # what a plain 130 HU threshold would wrongly call calcium
    assert 200 <= np.percentile(hu[bone], 75) <= 1200
    assert not np.any(label[bone])  # never labelled


def test_labels_lie_on_their_artery_and_are_calcium(positive_case) -> None:
    case = positive_case
    assert set(np.unique(case.label)) <= {0, 1, 2, 3, 4}
    assert (case.label > 0).any()
    assert np.all(case.hu[case.label > 0] >= 130)
    zw, yw, xw = case.grid.axes
    for name in ARTERIES:
        k, j, i = np.nonzero(case.label == ARTERY_LABEL[name])
        if k.size == 0:
            continue
        assert any(p.artery == name for p in case.plaques)
        pts = np.stack([xw[i], yw[j], zw[k]], axis=1)
        d, _ = cKDTree(case.anatomy.arteries[name].points).query(pts)
        assert d.max() <= LABEL_TO_PATH_MM, (name, d.max())
    labelled = {name for name in ARTERIES if (case.label == ARTERY_LABEL[name]).any()}
    assert labelled <= {p.artery for p in case.plaques}


def test_metal_distractors_are_dense_and_never_labelled() -> None:
    cfg = SynthConfig(negative_fraction=0.0, stent_probability=1.0, lead_probability=1.0, **SMALL)
    case = synthesize_case(cfg, 1)
    kinds = {d.kind for d in case.distractors}
    assert {"stent", "lead"} <= kinds
    metal = case.hu > 1500
    assert metal.sum() > 5
    assert not np.any(case.label[metal])


# --- the cohort on disk ------------------------------------------------------------------------------------------


def test_case_sheet_columns_and_files(cohort: Path, sheet: pd.DataFrame) -> None:
    assert list(sheet.columns[: len(CASE_COLUMNS)]) == list(CASE_COLUMNS)
    for extra in ("n_plaques", "volume_mm3", "has_stent", "has_lead", "noise_sigma_hu", "baseline_dice"):
        assert extra in sheet.columns
    assert list(sheet["case_id"]) == [f"syn_{i:03d}" for i in range(8)]
    assert set(sheet["negative"]) == {"yes", "no"}
    assert (sheet["negative"] == "yes").sum() == 2
    for _, row in sheet.iterrows():
        assert (cohort / row["image"]).is_file() and (cohort / row["label"]).is_file()
    assert (cohort / "overview.png").stat().st_size > 10_000
    leftovers = [p.name for p in cohort.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_written_geometry(cohort: Path, sheet: pd.DataFrame) -> None:
    cfg = SynthConfig(n_cases=8, **SMALL)
    for idx in (0, 3):
        row = sheet.iloc[idx]
        grid = synthesize_case(cfg, idx).grid
        img = sitk.ReadImage(str(cohort / row["image"]))
        lab = sitk.ReadImage(str(cohort / row["label"]))
        assert img.GetPixelID() == sitk.sitkInt16 and lab.GetPixelID() == sitk.sitkUInt8
        nz, ny, nx = SMALL["shape_zyx"]
        assert img.GetSize() == (nx, ny, nz) == lab.GetSize()
        sp = img.GetSpacing()
        assert sp[2] == pytest.approx(3.0) and sp[0] == pytest.approx(sp[1]) and 0.4 <= sp[0] <= 0.8
        assert sp == pytest.approx(lab.GetSpacing())
        assert img.GetOrigin() == pytest.approx(grid.origin) == lab.GetOrigin()
        assert img.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
        assert sp == pytest.approx((grid.spacing[2], grid.spacing[1], grid.spacing[0]))


def test_negatives_empty_positives_scored(cohort: Path, sheet: pd.DataFrame) -> None:
    for _, row in sheet.iterrows():
        hu_img = sitk.ReadImage(str(cohort / row["image"]))
        hu = sitk.GetArrayFromImage(hu_img)
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / row["label"])))
        sx, sy, sz = hu_img.GetSpacing()
        score = score_mask(hu, lab, (sz, sy, sx))
        if row["negative"] == "yes":
            assert not lab.any() and row["agatston"] == 0 and row["risk_category"] == "0"
            assert row["n_plaques"] == 0
        else:
            assert lab.any() and row["agatston"] > 0 and row["n_plaques"] >= 1
        assert score.total.agatston == pytest.approx(row["agatston"], abs=0.01)
        assert score.total.risk_category == str(row["risk_category"])


def test_threshold_baseline_is_well_below_half(cohort: Path, sheet: pd.DataFrame) -> None:
    base = pd.read_csv(cohort / "threshold_baseline.tsv", sep="\t", comment="#", dtype={"case_id": str})
    assert list(base["case_id"]) == list(sheet["case_id"])
    pos = base[base["negative"] == "no"]
    assert pos["baseline_dice"].notna().all() and base.loc[base["negative"] == "yes", "baseline_dice"].isna().all()
    assert pos["baseline_dice"].between(0, 1).all()
    assert pos["baseline_dice"].mean() < 0.5
    summary = [
        ln for ln in (cohort / "threshold_baseline.tsv").read_text(encoding="utf-8").splitlines() if "mean_dice" in ln
    ]
    assert f"mean_dice={pos['baseline_dice'].mean():.4f}" in summary[0]


def test_bit_identical_per_seed(cohort: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    generate_cohort(again, SynthConfig(n_cases=3, **SMALL), n_jobs=1, progress=False)  # a prefix, one process
    generate_cohort(other, SynthConfig(n_cases=3, **{**SMALL, "seed": 8}), progress=False)
    for i in range(3):
        for sub in ("images", "labels"):
            name = f"{sub}/syn_{i:03d}.nii.gz"
            assert _md5(cohort / name) == _md5(again / name)
        assert _md5(cohort / f"images/syn_{i:03d}.nii.gz") != _md5(other / f"images/syn_{i:03d}.nii.gz")
    first = pd.read_csv(cohort / "cases.tsv", sep="\t").head(3)
    assert first.equals(pd.read_csv(again / "cases.tsv", sep="\t"))


def test_stale_cases_removed(tmp_path: Path) -> None:
    out = tmp_path / "c"
    cfg = {"shape_zyx": [12, 64, 64], "overview_cases": 1}
    generate_cohort(out, SynthConfig(n_cases=3, **cfg), progress=False)
    generate_cohort(out, SynthConfig(n_cases=2, **cfg), progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["syn_000.nii.gz", "syn_001.nii.gz"]


# --- command line --------------------------------------------------------------------------------------------------


def test_cli_config_and_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "synth.yaml"
    cfg.write_text("n_cases: 5\nshape_zyx: [12, 64, 64]\nnegative_fraction: 0.5\noverview_cases: 2\n")
    out = tmp_path / "out"
    assert main(["synth", "--out", str(out), "--config", str(cfg), "--n-cases", "2", "--quiet"]) == 0
    sheet = pd.read_csv(out / "cases.tsv", sep="\t")
    assert len(sheet) == 2 and list(sheet["negative"]) == ["no", "yes"]
    cfg.write_text("n_cases: 2\nnoise_sigma: 20\n")
    assert main(["synth", "--out", str(tmp_path / "bad"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "noise_sigma" in err and "synth.yaml" in err
    assert main(["synth", "--out", str(tmp_path / "bad"), "--config", str(tmp_path / "missing.yaml")]) == 2
