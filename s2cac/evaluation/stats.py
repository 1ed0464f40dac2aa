"""Agreement statistics for paired measurements (prediction vs reference) and ordinal categories."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score, confusion_matrix

NAN = float("nan")


def icc_a1(ratings: np.ndarray) -> float:
    """ICC(A,1): two-way random effects, absolute agreement, single rater (McGraw & Wong 1996; Shrout & Fleiss
    ICC(2,1)), from the two-way ANOVA mean squares.

    Args:
        ratings: (n subjects, k raters) array without NaN.

    Returns:
        (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n); NaN with fewer than 2 subjects or zero variance.
    """
    x = np.asarray(ratings, dtype=float)
    n, k = x.shape
    if n < 2 or k < 2:
        return NAN
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    msr, msc, mse = ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denom) if denom > 0 else NAN


def bland_altman(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Bias (mean of pred - ref) and 95% limits of agreement (bias -/+ 1.96 SD, SD with ddof=1)."""
    d = np.asarray(pred, float) - np.asarray(ref, float)
    if d.size < 2:
        return {"bias": float(d.mean()) if d.size else NAN, "sd": NAN, "loa_low": NAN, "loa_high": NAN}
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def correlations(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Pearson r and Spearman rho (NaN when undefined, e.g. a constant input or fewer than 3 pairs)."""
    x, y = np.asarray(pred, float), np.asarray(ref, float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson_r": NAN, "spearman_rho": NAN}
    return {"pearson_r": float(stats.pearsonr(x, y)[0]), "spearman_rho": float(stats.spearmanr(x, y)[0])}


def bootstrap_ci(
    values: np.ndarray, statistic=np.mean, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Statistic of the non-NaN ``values`` and its percentile bootstrap CI (resampling cases, seeded).

    Returns:
        (estimate, low, high); NaN for no values, CI NaN for a single value.
    """
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return NAN, NAN, NAN
    est = float(statistic(v))
    if v.size < 2:
        return est, NAN, NAN
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boot = statistic(v[idx], axis=1)
    alpha = (1 - level) / 2
    return est, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def category_agreement(pred: Sequence[str], ref: Sequence[str], categories: Sequence[str]) -> dict:
    """Confusion matrix (rows = reference, columns = prediction), accuracy and linearly weighted Cohen's kappa
    of ordinal categories (order as in ``categories``)."""
    order = {c: i for i, c in enumerate(categories)}
    unknown = sorted({*pred, *ref} - set(order))
    if unknown:
        raise ValueError(f"unknown risk categories {unknown}; expected {list(categories)}")
    p = np.array([order[c] for c in pred], int)
    r = np.array([order[c] for c in ref], int)
    labels = list(range(len(categories)))
    cm = confusion_matrix(r, p, labels=labels)
    if p.size == 0:
        return {"confusion_matrix": cm.tolist(), "accuracy": NAN, "kappa_linear": NAN, "categories": list(categories)}
    # Kappa is undefined (0/0) when both raters use one and the same category only: NaN, not 1.
    single = np.unique(np.concatenate([p, r])).size == 1
    kappa = NAN if single else float(cohen_kappa_score(r, p, labels=labels, weights="linear"))
    return {
        "confusion_matrix": cm.tolist(),
        "accuracy": float(np.mean(p == r)),
        "kappa_linear": kappa,
        "categories": list(categories),
    }
