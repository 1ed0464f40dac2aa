"""Paper tables on a small fixed results tree: values, best in bold, LaTeX structure, paired tests vs scipy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _paper import CASES, case_dice, plan, write_tree
from scipy import stats

from s2cac.paper.build import build_experiment_table, build_tables
from s2cac.paper.collect import cohort_note, load_runs, plan_runs
from s2cac.paper.tables import as_dict, comparison_table, holm, paired_tests, tex_escape, to_latex


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict]:
    p = plan()
    write_tree(tmp_path, p)
    return tmp_path, p


def test_plan_runs_ablations_only_at_the_main_ratio() -> None:
    runs = plan_runs(plan())
    assert {(r.experiment, r.ratio) for r in runs} == {
        ("threshold", "20"), ("threshold", "50"), ("supervised", "20"), ("supervised", "50"),
        ("s2cac", "20"), ("s2cac", "50"), ("s2cac_no_nsb", "50"),
    }  # fmt: skip
    assert len(runs) == 7 * 2  # two seeds each


def test_main_table_values_and_bold_best(tree) -> None:
    root, p = tree
    metrics, _ = load_runs(plan_runs(p), p["dataset"], root)
    t = comparison_table("main", "Main", metrics, ["threshold", "supervised", "s2cac"], "50", p["cohort"])
    d = as_dict(t)
    assert d["header"][:3] == ["Method", "n", "Dice"] and d["header"][5] == "HD95 (mm)"
    s2 = [np.nanmean(case_dice("s2cac", s)) for s in (0, 1)]
    row = dict(zip(d["header"], d["rows"][2], strict=True))
    assert row["Method"] == "s2cac" and row["n"] == "2"
    assert row["Dice"] == f"{np.mean(s2):.3f} +- {np.std(s2, ddof=1):.3f}"
    # HD95 = 10 / level + seed: lower is better, so s2cac (level 0.8) holds the best and is the bold one
    assert row["HD95 (mm)"] == f"{np.mean([12.5, 13.5]):.2f} +- {np.std([12.5, 13.5], ddof=1):.2f}"
    bold = {(i, j) for i, r in enumerate(t.rows) for j, c in enumerate(r) if c.bold}
    assert all((2, j) in bold for j in range(2, len(t.header)) if d["header"][j] != "Risk kappa (linear)")
    assert not any(i != 2 for i, _ in bold)
    # the threshold's risk kappa is undefined (null in summary.json): shown n/a, never bold
    assert dict(zip(d["header"], d["rows"][0], strict=True))["Risk kappa (linear)"] == "n/a"


def test_ties_are_all_bold(tree) -> None:
    root, p = tree
    metrics, _ = load_runs(plan_runs(p), p["dataset"], root)
    metrics.loc[metrics["experiment"] == "supervised", "lesion_f1"] = 0.8  # equals s2cac's
    t = comparison_table("main", "Main", metrics, ["supervised", "s2cac"], "50", p["cohort"])
    j = t.header.index("Lesion F1")
    assert t.rows[0][j].bold and t.rows[1][j].bold
    alone = comparison_table("one", "One", metrics, ["s2cac"], "50", p["cohort"])
    assert not any(c.bold for c in alone.rows[0])  # one row: nothing to be best against


def _check_latex(text: str) -> None:
    depth = 0
    for ch in re.sub(r"\\[{}%&_$#]", "", text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    assert text.count(r"\begin{table}") == text.count(r"\end{table}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", text).group(1)
    body = text.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert rows
    for line in rows:
        assert len(re.split(r"(?<!\\)&", line)) == len(spec), line
    assert text.count("$") % 2 == 0


def test_written_tables_state_the_cohort_and_are_valid_latex(tree) -> None:
    root, p = tree
    out = root / "results" / "paper" / "synthetic" / "tables"
    paths = build_tables(p, out, root)
    names = {x.name for x in paths}
    for stem in ("main", "ablation", "label_ratio", "wilcoxon"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= names
        tex = (out / f"{stem}.tex").read_text(encoding="utf-8")
        _check_latex(tex)
        assert "NOT clinical data" in tex and "NOT clinical data" in (out / f"{stem}.md").read_text(encoding="utf-8")
        assert (pd.read_csv(out / f"{stem}.csv")["cohort"] == p["cohort"]).all()
    ratio = pd.read_csv(out / "label_ratio.csv")
    assert set(ratio["labeled_pct"].astype(str)) == {"20", "50"} and "s2cac_no_nsb" not in set(ratio["experiment"])
    ablation = (out / "ablation.md").read_text(encoding="utf-8")
    assert "| s2cac_no_nsb |" in ablation and "supervised" not in ablation
    head = (out / "headline.txt").read_text(encoding="utf-8")
    for name in ("threshold", "supervised", "s2cac ", "s2cac_no_nsb", "Dice", "Agatston ICC", "Risk agreement"):
        assert name in head
    assert "NOT clinical data" in head


def test_paired_wilcoxon_matches_scipy(tree) -> None:
    root, p = tree
    _, per_case = load_runs(plan_runs(p), p["dataset"], root)
    tests = paired_tests(per_case, "s2cac", ["supervised", "threshold"], "50")
    row = tests[(tests["baseline"] == "supervised") & (tests["metric"] == "dice")].iloc[0]
    a = np.mean([case_dice("s2cac", s)[1:] for s in (0, 1)], axis=0)  # c0: Dice undefined, left out
    b = np.mean([case_dice("supervised", s)[1:] for s in (0, 1)], axis=0)
    want = stats.wilcoxon(a, b)
    assert row["n_cases"] == len(CASES) - 1
    assert row["p_value"] == pytest.approx(want.pvalue) and row["statistic"] == pytest.approx(want.statistic)
    assert row["median_difference"] == pytest.approx(np.median(a - b))
    err = tests[(tests["baseline"] == "supervised") & (tests["metric"] == "abs_agatston_error")].iloc[0]
    assert err["n_cases"] == len(CASES)  # c0: both 0, a defined pair
    # a known sample: scipy's exact two-sided p of these 10 differences
    x = np.array([0.71, 0.62, 0.80, 0.55, 0.90, 0.67, 0.74, 0.59, 0.83, 0.77])
    y = x - np.array([0.05, -0.02, 0.08, 0.01, 0.12, 0.03, -0.04, 0.06, 0.09, 0.07])
    known = pd.DataFrame({"experiment": ["m"] * 10 + ["b"] * 10, "case_id": [*range(10)] * 2,
                          "ratio": "50", "dice": [*x, *y], "abs_agatston_error": 0.0})  # fmt: skip
    got = paired_tests(known, "m", ["b"], "50")
    assert got.loc[got["metric"] == "dice", "p_value"].item() == pytest.approx(stats.wilcoxon(x, y).pvalue)
    # by hand: the negative differences have ranks 2 and 4, W = 6; of the 2^10 sign patterns 14 have a rank sum
    # <= 6 ({}, 1, 2, 3, 1+2, 4, 1+3, 5, 1+4, 2+3, 6, 1+5, 2+4, 1+2+3), so the exact two-sided p is 2 x 14 / 1024
    row = got.loc[got["metric"] == "dice"].iloc[0]
    assert row["statistic"] == 6 and row["p_value"] == pytest.approx(28 / 1024)
    assert np.isnan(got.loc[got["metric"] == "abs_agatston_error", "p_value"].item())  # all differences 0


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = holm([0.2, float("nan")])
    assert out[0] == pytest.approx(0.2) and np.isnan(out[1])


def test_tex_escape_and_cohort_note() -> None:
    assert tex_escape("s2cac_no_nsb >= 130 HU, 50 %") == r"s2cac\_no\_nsb $\geq$ 130 HU, 50 \%"
    assert tex_escape("|a|") == "$|$a$|$"
    assert "NOT clinical data" in cohort_note("synthetic", "synthetic", "whatever the user writes")
    assert cohort_note("coca", "coca") == "cohort 'coca' (dataset source: coca)"


def test_missing_evaluation_is_named(tree) -> None:
    root, p = tree
    with pytest.raises(FileNotFoundError, match="supervised/labeled20/fold0/seed7: no summary.json"):
        load_runs(plan_runs(p | {"seeds": [7]}, ["supervised"]), p["dataset"], root)


def test_experiment_table(tree) -> None:
    root, p = tree
    stem = root / "results" / "paper" / "synthetic" / "experiments" / "s2cac"
    build_experiment_table(p, "s2cac", stem, root)
    md = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert "labeled 20 %" in md and "labeled 50 %" in md and "NOT clinical data" in md
    assert sorted(pd.read_csv(stem.with_suffix(".csv"))["labeled_pct"]) == [20, 50]
    assert to_latex  # rendered by build_tables; imported here so the module's API stays covered
