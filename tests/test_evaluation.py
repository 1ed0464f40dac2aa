"""Evaluation metrics against hand-computed and textbook values, and ``s2cac evaluate`` end to end."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2cac.cli import command_parser, main
from s2cac.evaluation import (
    bland_altman,
    bootstrap_ci,
    category_agreement,
    cohort_summary,
    evaluate_case,
    icc_a1,
    lesion_metrics,
    overlap_metrics,
    surface_distances,
)
from s2cac.evaluation.options import LESION_CONNECTIVITIES, EvaluationOptions
from s2cac.evaluation.run import evaluate

sys.path.insert(0, str(Path(__file__).parent))
from test_io_images import write_nifti  # noqa: E402

CATS = ["0", "1-10", "11-100", "101-400", ">400"]


def test_icc_shrout_fleiss_table2() -> None:
    # Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(2,1) = 0.29.
    ratings = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    assert icc_a1(ratings) == pytest.approx(0.29, abs=0.005)
    assert icc_a1(np.column_stack([np.arange(5.0), np.arange(5.0)])) == pytest.approx(1.0)


def test_linear_kappa_hand_computed() -> None:
    # Observed weighted disagreement 1/6, expected 4/9 -> kappa = 1 - (1/6)/(4/9) = 0.625.
    ref = ["0", "0", "1-10", "1-10", "11-100", "11-100"]
    pred = ["0", "1-10", "1-10", "11-100", "11-100", "11-100"]
    res = category_agreement(pred, ref, CATS)
    assert res["kappa_linear"] == pytest.approx(0.625)
    assert res["accuracy"] == pytest.approx(4 / 6)
    assert res["confusion_matrix"][0][:2] == [1, 1]  # reference "0": one right, one predicted "1-10"
    assert math.isnan(category_agreement(["0", "0"], ["0", "0"], CATS)["kappa_linear"])
    with pytest.raises(ValueError, match="unknown risk categories"):
        category_agreement(["low"], ["0"], CATS)


def test_bland_altman_and_bootstrap() -> None:
    ba = bland_altman(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert ba["bias"] == pytest.approx(2.0) and ba["sd"] == pytest.approx(1.0)
    assert ba["loa_low"] == pytest.approx(0.04) and ba["loa_high"] == pytest.approx(3.96)
    values = np.array([1.0, 2.0, np.nan, 3.0, 4.0, 10.0])
    est, lo, hi = bootstrap_ci(values, np.mean, n_boot=500, seed=1)
    assert est == pytest.approx(4.0) and lo <= est <= hi
    assert bootstrap_ci(values, np.mean, n_boot=500, seed=1) == (est, lo, hi)  # seeded
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([np.nan])))


def test_overlap_and_empty_conventions() -> None:
    ref = np.zeros((1, 4, 4), np.uint8)
    pred = np.zeros_like(ref)
    ref[0, 0, :3] = 1
    pred[0, 0, 1:4] = 1
    m = overlap_metrics(pred, ref)
    assert m["dice"] == pytest.approx(2 * 2 / 6) and m["sensitivity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["empty"] == "none"
    both = overlap_metrics(np.zeros_like(ref), np.zeros_like(ref))
    assert both["empty"] == "both" and math.isnan(both["dice"]) and math.isnan(both["sensitivity"])
    no_ref = overlap_metrics(pred, np.zeros_like(ref))
    assert no_ref["empty"] == "reference" and no_ref["dice"] == 0 and math.isnan(no_ref["sensitivity"])
    no_pred = overlap_metrics(np.zeros_like(ref), ref)
    assert no_pred["empty"] == "prediction" and no_pred["sensitivity"] == 0 and math.isnan(no_pred["precision"])
    assert all(math.isnan(v) for v in surface_distances(pred, np.zeros_like(ref), (1, 1, 1)).values())


def test_surface_distances_hand_made() -> None:
    ref = np.zeros((3, 5, 8), np.uint8)
    pred = np.zeros_like(ref)
    ref[1, 2, 2] = 1
    pred[1, 2, 2] = 1
    pred[1, 2, 4] = 1  # 2 voxels along x at 2 mm: 4 mm from the reference
    d = surface_distances(pred, ref, (3.0, 1.0, 2.0))
    # pooled distances: pred->ref [0, 4], ref->pred [0]
    assert d["msd_mm"] == pytest.approx(4 / 3)
    assert d["hd95_mm"] == pytest.approx(np.percentile([0, 0, 4], 95))
    assert d["hd_mm"] == pytest.approx(4.0)
    same = surface_distances(ref, ref, (3.0, 1.0, 2.0))
    assert same["hd95_mm"] == 0 and same["msd_mm"] == 0


def test_lesion_metrics() -> None:
    ref = np.zeros((2, 10, 10), np.uint8)
    pred = np.zeros_like(ref)
    ref[0, 1:3, 1:3] = 1  # found (4 voxels)
    ref[1, 7:9, 7] = 1  # missed (2 voxels)
    pred[0, 2, 2:5] = 1  # overlaps the first (3 voxels)
    pred[1, 1, 8] = 1  # false positive (1 voxel)
    m = lesion_metrics(pred, ref, (2.0, 0.5, 0.5))
    assert (m["lesion_tp"], m["lesion_fn"], m["lesion_tp_pred"], m["lesion_fp"]) == (1, 1, 1, 1)
    assert m["volume_tp_ref_mm3"] == pytest.approx(4 * 0.5) and m["volume_fn_mm3"] == pytest.approx(2 * 0.5)
    assert m["volume_tp_pred_mm3"] == pytest.approx(3 * 0.5) and m["volume_fp_mm3"] == pytest.approx(0.5)


def _case(seed: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hu = rng.integers(-900, 60, size=(4, 24, 24)).astype(np.int16)
    ref = np.zeros(hu.shape, np.uint8)
    for _ in range(seed % 4):
        z, y, x = rng.integers(0, 4), rng.integers(2, 18), rng.integers(2, 18)
        hu[z, y : y + 3, x : x + 3] = rng.integers(150, 900)
        ref[z, y : y + 3, x : x + 3] = 1
    pred = np.roll(ref, shift, axis=2)
    return hu, pred, ref


def test_cohort_summary_keys_and_values() -> None:
    rows = [evaluate_case(*_case(s, shift=s % 2), (3.0, 0.6, 0.6), mass_calibration=0.8) for s in range(8)]
    df = pd.DataFrame(rows)
    summary = cohort_summary(df, n_boot=200, seed=0)
    assert summary["n_cases"] == 8
    assert summary["empty_cases"]["both"] == 2  # seeds 0 and 4 have no calcium
    assert summary["metrics"]["dice"]["n"] == 6
    assert set(summary["agreement"]) == {"agatston", "volume_mm3", "mass_mg"}
    assert summary["agreement"]["agatston"]["icc_a1"] == pytest.approx(
        icc_a1(df[["agatston_ref", "agatston_pred"]].to_numpy())
    )
    assert np.array(summary["risk"]["confusion_matrix"]).sum() == 8
    exact = cohort_summary(pd.DataFrame([evaluate_case(*_case(s), (3.0, 0.6, 0.6)) for s in range(1, 4)]), n_boot=50)
    assert exact["lesion"]["sensitivity"] == 1 and exact["lesion"]["ppv"] == 1 and exact["lesion"]["f1"] == 1
    assert exact["agreement"]["agatston"]["bias"] == 0 and exact["risk"]["accuracy"] == 1


def _write_cohort(tmp_path: Path, n: int = 6) -> tuple[Path, Path, Path]:
    dirs = [tmp_path / d for d in ("images", "ref", "pred")]
    for d in dirs:
        d.mkdir()
    for s in range(n):
        hu, pred, ref = _case(s + 1, shift=s % 2)
        write_nifti(dirs[0] / f"c{s}_0000.nii.gz", hu)
        write_nifti(dirs[1] / f"c{s}.nii.gz", ref)
        write_nifti(dirs[2] / f"c{s}.nii.gz", pred)
    return tuple(dirs)


def test_evaluate_cli_folders_and_sheet(tmp_path: Path) -> None:
    images, ref, pred = _write_cohort(tmp_path)
    out = tmp_path / "eval"
    args = ["evaluate", "--images", str(images), "--ref", str(ref), "--pred", str(pred), "--out-dir", str(out)]
    assert main([*args, "--n-boot", "100", "--mass-calibration", "0.7"]) == 0
    per_case = pd.read_csv(out / "per_case.csv")
    assert len(per_case) == 6 and per_case["case_id"].tolist()[0] == "c0"
    for col in ("dice", "hd95_mm", "msd_mm", "lesion_tp", "agatston_pred", "agatston_ref", "mass_mg_ref", "risk_ref"):
        assert col in per_case.columns
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert {"metrics", "lesion", "agreement", "risk"} <= set(summary)
    assert summary["options"] == {**EvaluationOptions(mass_calibration=0.7).to_dict()}  # every option, by name
    assert not pd.read_csv(out / "summary.csv").empty
    for name in ("agatston_scatter", "agatston_bland_altman", "risk_confusion"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    sheet = tmp_path / "cases.tsv"
    sheet.write_text(
        "case_id\timage\tlabel\n" + "".join(f"c{s}\timages/c{s}_0000.nii.gz\tref/c{s}.nii.gz\n" for s in range(6))
    )
    out2 = tmp_path / "eval2"
    assert main(["evaluate", "--cases", str(sheet), "--pred", str(pred), "--out-dir", str(out2), "--no-figures"]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(out2 / "per_case.csv"), per_case.drop(columns=["mass_mg_pred", "mass_mg_ref"])
    )


def test_evaluate_cli_errors(tmp_path: Path, capsys) -> None:
    images, ref, pred = _write_cohort(tmp_path, n=2)
    assert main(["evaluate", "--ref", str(ref), "--out-dir", str(tmp_path / "o")]) == 2
    assert "give --cases" in capsys.readouterr().err
    (pred / "c1.nii.gz").unlink()
    args = ["evaluate", "--images", str(images), "--ref", str(ref), "--pred", str(pred), "--out-dir", str(tmp_path)]
    assert main(args) == 2
    assert "no prediction for case 'c1'" in capsys.readouterr().err


def test_evaluation_options_are_typed_and_checked() -> None:
    """A misspelled or wrong option is an error naming it, before any case is read."""
    with pytest.raises(ValueError, match=r"unknown evaluation option\(s\) \['lesion_conectivity'\]; known: "):
        EvaluationOptions.from_mapping({"lesion_conectivity": 18})
    with pytest.raises(TypeError, match="lesion_conectivity"):
        EvaluationOptions(lesion_conectivity=18)  # type: ignore[call-arg]
    for bad, needle in (
        ({"threshold_hu": float("nan")}, "threshold_hu must be a finite number"),
        ({"connectivity": 6}, "connectivity must be 8 or 4"),
        ({"min_area_mm2": -1}, "min_area_mm2 must be a number >= 0"),
        ({"mass_calibration": 0}, "mass_calibration must be a number > 0"),
        ({"lesion_connectivity": 8}, "lesion_connectivity must be one of (6, 18, 26)"),
        ({"per_artery": "yes"}, "per_artery must be true or false"),
    ):
        with pytest.raises(ValueError, match=re.escape(needle)):
            EvaluationOptions.from_mapping(bad)
    # the workflow's evaluate section (without its bootstrap/seed) plus predict's threshold
    opts = EvaluationOptions.from_mapping({"lesion_connectivity": 18, "per_artery": True, "threshold_hu": 150})
    assert opts.score_options() == {
        "threshold_hu": 150,
        "connectivity": 8,
        "min_area_mm2": 1.0,
        "mass_calibration": None,
    }
    with pytest.raises(TypeError, match="options must be EvaluationOptions, got dict"):
        evaluate([], Path("unused"), {"per_artery": True})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'threshold_hu'"):
        evaluate([], Path("unused"), threshold_hu=130)  # type: ignore[call-arg]


def test_evaluation_defaults_are_the_scoring_and_schema_defaults() -> None:
    """One source per parameter: the evaluation's defaults are score_mask's, and the workflow config's
    defaults for the same options are the library's."""
    import inspect

    import yaml

    from s2cac.scoring import score_mask

    opts = EvaluationOptions()
    scoring = {k: p.default for k, p in inspect.signature(score_mask).parameters.items() if k in opts.score_options()}
    assert opts.score_options() == scoring
    schema_file = Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    schema = yaml.safe_load(schema_file.read_text(encoding="utf-8"))["properties"]
    evaluate_schema = schema["evaluate"]["properties"]
    assert evaluate_schema["lesion_connectivity"]["default"] == opts.lesion_connectivity
    assert evaluate_schema["lesion_connectivity"]["enum"] == list(LESION_CONNECTIVITIES)
    assert schema["predict"]["properties"]["threshold_hu"]["default"] == opts.threshold_hu
    cli = command_parser("evaluate").parse_args(["--out-dir", "x"])
    n_boot = {
        "schema": evaluate_schema["bootstrap"]["default"],
        "evaluate": inspect.signature(evaluate).parameters["n_boot"].default,
        "cohort_summary": inspect.signature(cohort_summary).parameters["n_boot"].default,
        "s2cac evaluate": cli.n_boot,
    }
    assert set(n_boot.values()) == {2000}, n_boot
    assert (cli.threshold_hu, cli.connectivity, cli.min_area_mm2, cli.lesion_connectivity) == (
        opts.threshold_hu,
        opts.connectivity,
        opts.min_area_mm2,
        opts.lesion_connectivity,
    )
