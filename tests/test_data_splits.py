"""Splits: every case has exactly one role, roles are disjoint, stratified, nested, deterministic."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2cac.data.splits import make_splits, ratio_tag, read_split, read_test_cases, stratified_order, write_splits

CATS = ["0", "1-10", "11-100", "101-400", ">400"]


def _sheet(n=60, seed=1):
    rng = np.random.default_rng(seed)
    cats = rng.choice(CATS, size=n, p=[0.25, 0.15, 0.25, 0.2, 0.15])
    return pd.DataFrame({"case_id": [f"c{i:03d}" for i in range(n)], "risk_category": cats, "negative": cats == "0"})


def test_roles_partition_the_cohort_and_respect_negatives():
    sheet = _sheet()
    folds, roles = make_splits(sheet, test_fraction=0.2, n_folds=5, labeled_ratios=[0.1, 0.5, 1.0], seed=3)
    neg = set(sheet.case_id[sheet.negative])
    all_ids = set(sheet.case_id)
    for (fold, ratio), r in roles.items():
        seen = [c for role in ("labeled", "unlabeled", "negative", "validation", "test") for c in r[role]]
        assert len(seen) == len(set(seen)) == len(all_ids)  # one role per case, none missing
        assert set(r["negative"]) <= neg
        assert not (set(r["labeled"]) | set(r["unlabeled"])) & neg
        assert set(r["validation"]) == set(folds[fold]["val"])
        train = set(r["labeled"]) | set(r["unlabeled"]) | set(r["negative"])
        assert train == set(folds[fold]["train"])
        if ratio == 1.0:
            assert r["unlabeled"] == []
    assert len(roles[(0, 0.1)]["test"]) == 12


def test_smaller_ratios_are_nested_and_counts_follow_the_ratio():
    _, roles = make_splits(_sheet(), test_fraction=0.2, n_folds=4, labeled_ratios=[0.1, 0.2, 0.5], seed=0)
    for f in range(4):
        a, b, c = (set(roles[(f, r)]["labeled"]) for r in (0.1, 0.2, 0.5))
        assert a <= b <= c
        n_pos = len(roles[(f, 0.5)]["labeled"]) + len(roles[(f, 0.5)]["unlabeled"])
        assert len(a) == max(1, int(np.ceil(0.1 * n_pos - 1e-9)))


def test_test_set_is_stratified_and_fixed_across_seeds():
    sheet = _sheet(n=100)
    _, r1 = make_splits(sheet, test_fraction=0.2, n_folds=5, labeled_ratios=[0.2], seed=1)
    _, r2 = make_splits(sheet, test_fraction=0.2, n_folds=5, labeled_ratios=[0.2], seed=2)
    assert r1[(0, 0.2)]["test"] == r2[(0, 0.2)]["test"]
    assert r1[(0, 0.2)]["labeled"] != r2[(0, 0.2)]["labeled"]
    cat = dict(zip(sheet.case_id, sheet.risk_category, strict=True))
    test_counts = Counter(cat[c] for c in r1[(0, 0.2)]["test"])
    for c, total in Counter(sheet.risk_category).items():
        assert abs(test_counts[c] - 0.2 * total) < 1.0 + 1e-9, (c, test_counts[c], total)


def test_folds_are_stratified():
    sheet = _sheet(n=100)
    folds, _ = make_splits(sheet, test_fraction=0.0, n_folds=5, labeled_ratios=[1.0], seed=0)
    cat = dict(zip(sheet.case_id, sheet.risk_category, strict=True))
    totals = Counter(sheet.risk_category)
    for f in folds:
        counts = Counter(cat[c] for c in f["val"])
        for c, total in totals.items():
            assert abs(counts[c] - total / 5) < 1.0


def test_stratified_order_prefix_is_balanced():
    strata = ["a"] * 30 + ["b"] * 10
    order = stratified_order(strata, np.random.default_rng(0))
    first = [strata[i] for i in order[:8]]
    assert first.count("b") == 2
    assert sorted(order) == list(range(40))


def test_files_are_deterministic(tmp_path):
    sheet = _sheet()
    kw = dict(test_fraction=0.25, n_folds=3, labeled_ratios=[0.5, 0.2], seed=7)
    a = write_splits(sheet, tmp_path / "a", **kw)
    b = write_splits(sheet, tmp_path / "b", **kw)
    assert [p.name for p in a] == [p.name for p in b]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert (tmp_path / "a" / "fold2" / "labeled20.json").is_file()
    folds = json.loads((tmp_path / "a" / "splits_final.json").read_text(encoding="utf-8"))
    assert len(folds) == 3 and set(folds[0]) == {"train", "val"}


def test_ratio_tags():
    assert [ratio_tag(r) for r in (0.1, 0.2, 0.5, 1.0, 0.125)] == ["10", "20", "50", "100", "12.5"]


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(test_fraction=1.0), "test_fraction"),
        (dict(n_folds=1), "n_folds"),
        (dict(labeled_ratios=[0.0]), "labeled_ratios"),
        (dict(labeled_ratios=[1.5]), "labeled_ratios"),
    ],
)
def test_bad_parameters(kw, msg):
    args = dict(test_fraction=0.2, n_folds=3, labeled_ratios=[0.5], seed=0) | kw
    with pytest.raises(ValueError, match=msg):
        make_splits(_sheet(), **args)


def test_too_few_cases():
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        make_splits(_sheet(n=4), test_fraction=0.0, n_folds=5, labeled_ratios=[0.5], seed=0)


def test_read_split_allows_metadata_rejects_unknown_lists(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(
        '{"seed": 0, "fold": 1, "labeled_ratio": 0.5, "labeled": ["a"], "validation": ["b"], "unlabeled": ["c"]}'
    )
    assert read_split(p) == {"labeled": ["a"], "unlabeled": ["c"], "negative": [], "validation": ["b"], "test": []}
    p.write_text('{"labeled": ["a"], "validation": ["b"], "extra": ["c"]}')
    with pytest.raises(ValueError, match=r"unknown split list\(s\) \['extra'\]"):
        read_split(p)
    p.write_text('{"labeled": ["a"], "validation": ["b"], "unlabeled": ["a"]}')
    with pytest.raises(ValueError, match="both unlabeled and labeled"):
        read_split(p)


def test_read_test_cases_keeps_the_sheet_order(tmp_path, cohort):
    sheet = pd.read_csv(cohort, sep="\t", dtype=str)
    ids = list(sheet["case_id"])
    split = tmp_path / "labeled50.json"
    split.write_text(json.dumps({"labeled": ids[:1], "validation": [], "test": [ids[3], ids[1], "not_in_sheet"]}))
    test = read_test_cases(cohort, split)
    assert list(test["case_id"]) == [ids[1], ids[3]]
    images = sheet.set_index("case_id").loc[[ids[1], ids[3]], "image"]  # relative to the sheet's folder
    assert [Path(p) for p in test["image"]] == [cohort.parent / p for p in images]
    split.write_text("{")
    with pytest.raises(ValueError, match="labeled50.json: not a valid split JSON"):
        read_test_cases(cohort, split)
