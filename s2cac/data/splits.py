"""Deterministic, stratified splits into labeled / unlabeled / negative / validation / test roles.

Scheme (all orderings come from ``numpy.random.default_rng`` with fixed seeds, so the files are identical
on every run):

* **test**: a held-out share of all cases, stratified by risk category (negative scans form one stratum):
  within every stratum the count is within one of the share. It depends on ``test_seed`` only, so every
  training seed, fold and labeled ratio meets the same test set.
* **folds**: the remaining cases are dealt round-robin into ``n_folds`` stratified folds, shuffled by
  ``seed``; fold ``f`` is the validation set of fold ``f``.
* in each fold's training part, negative scans (``negative == yes``) form the **negative** set; the scans with
  calcium are ranked in a stratified random order (by ``seed``), and the first ``ratio`` share of them
  (at least one) is **labeled**, the rest **unlabeled**. Smaller ratios are therefore subsets of larger ones.

No case has two roles; every case has exactly one role in every split file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from s2cac.atomic import atomic_write_json

ROLES = ("labeled", "unlabeled", "negative", "validation", "test")


def _strata(sheet: pd.DataFrame) -> np.ndarray:
    if "risk_category" in sheet.columns:
        strata = sheet["risk_category"].astype(str).to_numpy().copy()
    else:
        strata = np.array(["all"] * len(sheet), dtype=object)
    if "negative" in sheet.columns:
        strata[sheet["negative"].to_numpy(dtype=bool)] = "negative"
    return strata


def stratified_order(strata: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Indices ordered so that every prefix is (close to) stratified.

    Each member gets the key (rank within its stratum + u) / stratum size with u ~ U(0, 1), i.e. members of
    every stratum are spread evenly over the order; ties are broken at random.
    """
    strata = np.asarray(strata, dtype=object)
    keys = np.empty(len(strata))
    for s in sorted(set(strata)):
        idx = np.flatnonzero(strata == s)
        perm = rng.permutation(len(idx))
        keys[idx[perm]] = (np.arange(len(idx)) + rng.uniform(size=len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")


def grouped_order(strata: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Indices of stratum after stratum (strata in sorted order), shuffled within each stratum."""
    strata = np.asarray(strata, dtype=object)
    return np.concatenate([rng.permutation(np.flatnonzero(strata == s)) for s in sorted(set(strata))])


def make_splits(
    sheet: pd.DataFrame,
    *,
    test_fraction: float,
    n_folds: int,
    labeled_ratios: Iterable[float],
    seed: int,
    test_seed: int = 0,
) -> tuple[list[dict], dict[tuple[int, float], dict[str, list[str]]]]:
    """Compute nnU-Net folds and role lists for one seed.

    Args:
        sheet: case sheet with ``case_id`` and optionally ``risk_category`` and ``negative`` (bool).
        test_fraction: share of all cases held out for testing (0 <= f < 1).
        n_folds: number of cross-validation folds (>= 2).
        labeled_ratios: shares (0 < r <= 1) of the training scans with calcium that keep their labels.
        seed: orders folds and labeled subsets.
        test_seed: orders the test hold-out.

    Returns:
        (nnU-Net ``splits_final.json`` content, {(fold, ratio): {role: [case ids]}}).
    """
    ratios = sorted({float(r) for r in labeled_ratios})
    if not 0 <= test_fraction < 1:
        raise ValueError(f"splits.test_fraction must be in [0, 1), got {test_fraction}")
    if n_folds < 2:
        raise ValueError(f"splits.n_folds must be >= 2, got {n_folds}")
    if not ratios or not all(0 < r <= 1 for r in ratios):
        raise ValueError(f"splits.labeled_ratios must be in (0, 1], got {list(labeled_ratios)}")
    ids = sheet["case_id"].astype(str).to_numpy()
    strata = _strata(sheet)
    negative = strata == "negative"

    # Test: walk the strata one after another (shuffled within) and take every (1/f)-th case.
    order = grouped_order(strata, np.random.default_rng([test_seed, 7001]))
    pos = np.arange(len(ids))
    take = np.floor((pos + 1) * test_fraction + 1e-9) > np.floor(pos * test_fraction + 1e-9)
    is_test = np.zeros(len(ids), bool)
    is_test[order[take]] = True

    pool = np.flatnonzero(~is_test)
    if len(pool) < n_folds:
        raise ValueError(f"only {len(pool)} cases left after the test hold-out; cannot make {n_folds} folds")
    rng = np.random.default_rng([seed, 7002])
    fold_of = np.full(len(ids), -1)
    # Folds: deal the strata, one after another, round-robin: per-fold counts differ by at most one.
    fold_of[pool[grouped_order(strata[pool], rng)]] = np.arange(len(pool)) % n_folds

    nnunet_folds, roles = [], {}
    for f in range(n_folds):
        val = fold_of == f
        train = (fold_of >= 0) & ~val
        nnunet_folds.append({"train": sorted(ids[train]), "val": sorted(ids[val])})
        pos = np.flatnonzero(train & ~negative)
        if len(pos) == 0:
            raise ValueError(f"fold {f} has no training scan with calcium; add cases or lower n_folds")
        pos_order = pos[stratified_order(strata[pos], np.random.default_rng([seed, 7003, f]))]
        for r in ratios:
            n_lab = max(1, math.ceil(r * len(pos) - 1e-9))
            roles[(f, r)] = {
                "labeled": sorted(ids[pos_order[:n_lab]]),
                "unlabeled": sorted(ids[pos_order[n_lab:]]),
                "negative": sorted(ids[train & negative]),
                "validation": sorted(ids[val]),
                "test": sorted(ids[is_test]),
            }
    return nnunet_folds, roles


def read_split(path: str | Path) -> dict[str, list[str]]:
    """Read a split JSON (``labeled``/``unlabeled``/``negative``/``validation``/``test`` lists of identifiers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid split JSON ({err})") from err
    if not isinstance(split, dict) or "labeled" not in split or "validation" not in split:
        raise ValueError(f"{path}: a split needs at least 'labeled' and 'validation' lists")
    # scalar metadata (seed, fold, labeled_ratio) is allowed; an unknown list of cases is an error
    unknown = sorted(k for k, v in split.items() if k not in ROLES and isinstance(v, list))
    if unknown:
        raise ValueError(f"{path}: unknown split list(s) {unknown}; known: {list(ROLES)}")
    overlap = set(split.get("unlabeled", [])) & (set(split["labeled"]) | set(split["validation"]))
    if overlap:
        raise ValueError(f"{path}: case(s) {sorted(overlap)[:5]} are both unlabeled and labeled/validation")
    return {k: [str(i) for i in split.get(k, [])] for k in ROLES}


def read_test_cases(case_sheet: str | Path, split: str | Path) -> pd.DataFrame:
    """The rows of ``case_sheet`` (a validated case sheet) whose case is in the ``test`` list of split file
    ``split``, in the sheet's order: the cases a model is predicted on and evaluated on."""
    from s2cac.data.cases import load_case_sheet

    test = set(read_split(split)["test"])
    sheet = load_case_sheet(case_sheet)
    return sheet[sheet["case_id"].isin(test)].reset_index(drop=True)


def ratio_tag(ratio: float) -> str:
    """The labeled ratio as it appears in paths: percent, e.g. 0.2 -> ``"20"``, 0.125 -> ``"12.5"``."""
    pct = round(float(ratio) * 100, 6)
    return f"{pct:g}"


def write_splits(
    sheet: pd.DataFrame,
    out_dir: str | Path,
    *,
    test_fraction: float,
    n_folds: int,
    labeled_ratios: Iterable[float],
    seed: int,
    test_seed: int = 0,
) -> list[Path]:
    """Write ``out_dir/splits_final.json`` and ``out_dir/fold{f}/labeled{pct}.json`` for one seed.

    Returns:
        The written files.
    """
    out_dir = Path(out_dir)
    folds, roles = make_splits(
        sheet,
        test_fraction=test_fraction,
        n_folds=n_folds,
        labeled_ratios=labeled_ratios,
        seed=seed,
        test_seed=test_seed,
    )
    written = [out_dir / "splits_final.json"]
    atomic_write_json(written[0], folds)
    for (f, r), lists in sorted(roles.items()):
        path = out_dir / f"fold{f}" / f"labeled{ratio_tag(r)}.json"
        atomic_write_json(path, {"seed": seed, "fold": f, "labeled_ratio": r, **lists})
        written.append(path)
    return written
