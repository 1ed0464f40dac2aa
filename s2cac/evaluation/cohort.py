"""Per-case evaluation rows and the cohort summary (a DataFrame in, a JSON-able dict and a flat table out)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from s2cac.evaluation.metrics import lesion_metrics, overlap_metrics, surface_distances
from s2cac.evaluation.options import EvaluationOptions
from s2cac.evaluation.stats import bland_altman, bootstrap_ci, category_agreement, correlations, icc_a1
from s2cac.scoring import RISK_BOUNDS, risk_category_names, score_mask

# Per-case columns summarised with mean/median and bootstrap CIs.
SUMMARY_METRICS = ("dice", "sensitivity", "precision", "hd95_mm", "msd_mm")
AGREEMENT_SCORES = ("agatston", "volume_mm3", "mass_mg")


def evaluate_case(
    hu: np.ndarray,
    pred: np.ndarray,
    ref: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    *,
    lesion_connectivity: int = EvaluationOptions.lesion_connectivity,
    arteries: dict[int, str] | None = None,
    **score_options: Any,
) -> dict[str, Any]:
    """All per-case metrics of a predicted vs a reference calcium mask on one CT.

    Args:
        hu: (z, y, x) CT, HU.
        pred, ref: (z, y, x) label maps (non-zero = calcium); scored as a whole (their union of labels).
        spacing_zyx: voxel spacing, mm.
        lesion_connectivity: 3D connectivity of lesions for detection metrics.
        arteries: {label value: artery name} when both maps hold artery labels (e.g. 1-4 = LM, LAD, LCX, RCA):
            adds ``agatston_<A>_pred``/``_ref`` per artery, ``n_vessels_pred``/``_ref`` (arteries with
            Agatston > 0) and the voxel Dice ``dice_<A>`` of each artery (NaN when neither map has it).
            None = calcium only.
        **score_options: options of :func:`s2cac.scoring.score_mask`.

    Returns:
        A flat dict: overlap, distances (mm), lesion counts/volumes, and ``agatston_pred``/``_ref``,
        ``volume_mm3_pred``/``_ref``, ``mass_mg_pred``/``_ref`` (with a calibration factor), ``risk_pred``/``_ref``.
    """
    row: dict[str, Any] = {}
    row.update(overlap_metrics(pred, ref))
    row.update(surface_distances(pred, ref, spacing_zyx))
    row.update(lesion_metrics(pred, ref, spacing_zyx, lesion_connectivity))
    for name, mask in (("pred", pred), ("ref", ref)):
        total = score_mask(hu, (mask != 0).view(np.uint8), spacing_zyx, **score_options).total
        row[f"agatston_{name}"] = total.agatston
        row[f"volume_mm3_{name}"] = total.volume_mm3
        if total.mass_mg is not None:
            row[f"mass_mg_{name}"] = total.mass_mg
        row[f"n_lesions2d_{name}"] = total.n_lesions
        row[f"risk_{name}"] = total.risk_category
        if arteries:
            per = score_mask(hu, mask, spacing_zyx, **score_options).per_label
            names = sorted(set(arteries.values()))
            for a in names:
                row[f"agatston_{a}_{name}"] = float(
                    sum(per[v].agatston for v, n in arteries.items() if n == a and v in per)
                )
            row[f"n_vessels_{name}"] = int(sum(row[f"agatston_{a}_{name}"] > 0 for a in names))
    if arteries:  # voxel Dice per artery (a lesion given to the wrong artery is an error); NaN when both are empty
        for a in sorted(set(arteries.values())):
            values = [v for v, n in arteries.items() if n == a]
            p, r = np.isin(pred, values), np.isin(ref, values)
            both = int(p.sum()) + int(r.sum())
            row[f"dice_{a}"] = 2.0 * int((p & r).sum()) / both if both else float("nan")
    return row


def _ci_dict(values: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    mean, mlo, mhi = bootstrap_ci(values, np.mean, n_boot, seed)
    med, dlo, dhi = bootstrap_ci(values, np.median, n_boot, seed)
    return {
        "n": int(np.sum(~np.isnan(values))),
        "mean": mean,
        "mean_ci_low": mlo,
        "mean_ci_high": mhi,
        "median": med,
        "median_ci_low": dlo,
        "median_ci_high": dhi,
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def cohort_summary(
    per_case: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, risk_bounds: tuple[float, ...] = RISK_BOUNDS
) -> dict[str, Any]:
    """Cohort statistics of the per-case table from :func:`evaluate_case` (one row per case).

    Returns:
        ``n_cases``, ``empty_cases`` (counts per ``empty`` status), ``metrics`` (mean/median with 95% bootstrap
        CIs, NaN cases excluded and counted in ``n``), ``lesion`` (pooled sensitivity/PPV by count and volume,
        F1), ``agreement`` per score (ICC(A,1), Bland-Altman, Pearson/Spearman) and ``risk`` (confusion matrix
        rows = reference, accuracy, linearly weighted kappa); with per-artery columns (``arteries`` in
        :func:`evaluate_case`) also ``per_artery``: per artery ICC(A,1), Bland-Altman and ``found`` (share of
        reference-positive cases where the prediction is positive too), ``dice_mean`` over the ``dice_n`` cases
        where either mask has the artery, and ``n_vessels`` exact agreement.
    """
    df = per_case
    out: dict[str, Any] = {"n_cases": len(df), "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95}}
    out["empty_cases"] = {k: int(v) for k, v in df["empty"].value_counts().items()} if "empty" in df else {}
    out["metrics"] = {m: _ci_dict(df[m].to_numpy(float), n_boot, seed) for m in SUMMARY_METRICS if m in df.columns}
    tp, fn, fp, tp_pred = (float(df[c].sum()) for c in ("lesion_tp", "lesion_fn", "lesion_fp", "lesion_tp_pred"))
    sens, ppv = _ratio(tp, tp + fn), _ratio(tp_pred, tp_pred + fp)
    v_tp, v_fn = float(df["volume_tp_ref_mm3"].sum()), float(df["volume_fn_mm3"].sum())
    v_tpp, v_fp = float(df["volume_tp_pred_mm3"].sum()), float(df["volume_fp_mm3"].sum())
    out["lesion"] = {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "tp_pred": tp_pred,
        "sensitivity": sens,
        "ppv": ppv,
        "f1": _ratio(2 * sens * ppv, sens + ppv) if sens == sens and ppv == ppv else float("nan"),
        "sensitivity_volume": _ratio(v_tp, v_tp + v_fn),
        "ppv_volume": _ratio(v_tpp, v_tpp + v_fp),
    }
    out["agreement"] = {}
    for score in AGREEMENT_SCORES:
        cp, cr = f"{score}_pred", f"{score}_ref"
        if cp not in df.columns or cr not in df.columns:
            continue
        p, r = df[cp].to_numpy(float), df[cr].to_numpy(float)
        out["agreement"][score] = {
            "icc_a1": icc_a1(np.column_stack([r, p])),
            **bland_altman(p, r),
            **correlations(p, r),
            "mean_pred": _ci_dict(p, n_boot, seed),
            "mean_ref": _ci_dict(r, n_boot, seed),
        }
    arteries = [
        c[len("agatston_") : -len("_pred")]
        for c in df.columns
        if c.startswith("agatston_") and c.endswith("_pred") and c != "agatston_pred" and f"{c[:-5]}_ref" in df
    ]
    if arteries:  # per-artery Agatston agreement and the number of vessels involved
        out["per_artery"] = {}
        for a in arteries:
            p, r = df[f"agatston_{a}_pred"].to_numpy(float), df[f"agatston_{a}_ref"].to_numpy(float)
            found = _ratio(float(((p > 0) & (r > 0)).sum()), float((r > 0).sum()))
            out["per_artery"][a] = {"icc_a1": icc_a1(np.column_stack([r, p])), **bland_altman(p, r), "found": found}
            if f"dice_{a}" in df.columns:  # mean voxel Dice over the cases where either mask has this artery
                d = df[f"dice_{a}"].to_numpy(float)
                out["per_artery"][a]["dice_mean"] = float(np.nanmean(d)) if (~np.isnan(d)).any() else float("nan")
                out["per_artery"][a]["dice_n"] = int((~np.isnan(d)).sum())
        if "n_vessels_pred" in df.columns:
            vp, vr = df["n_vessels_pred"].to_numpy(int), df["n_vessels_ref"].to_numpy(int)
            out["per_artery"]["n_vessels"] = {
                "exact": _ratio(float((vp == vr).sum()), float(len(vp))),
                "mean_abs_diff": float(np.abs(vp - vr).mean()) if len(vp) else float("nan"),
            }
    if "risk_pred" in df.columns:
        out["risk"] = category_agreement(
            df["risk_pred"].tolist(), df["risk_ref"].tolist(), risk_category_names(risk_bounds)
        )
    return out


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Flatten :func:`cohort_summary` into rows ``section, name, statistic, value`` (matrices left out)."""
    rows = [("cohort", "n_cases", "count", summary["n_cases"])]
    rows += [("cohort", f"empty_{k}", "count", v) for k, v in summary["empty_cases"].items()]
    for metric, vals in summary["metrics"].items():
        rows += [("metric", metric, k, v) for k, v in vals.items()]
    rows += [("lesion", k, "value", v) for k, v in summary["lesion"].items()]
    for score, vals in summary["agreement"].items():
        for k, v in vals.items():
            if isinstance(v, dict):
                rows += [("agreement", score, f"{k}_{kk}", vv) for kk, vv in v.items()]
            else:
                rows.append(("agreement", score, k, v))
    if "risk" in summary:
        rows += [("risk", "risk_category", k, summary["risk"][k]) for k in ("accuracy", "kappa_linear")]
    return pd.DataFrame(rows, columns=["section", "name", "statistic", "value"])
