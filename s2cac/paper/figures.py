"""Paper figures (PNG and PDF, seaborn/matplotlib): Dice vs labeled ratio, Agatston agreement, risk-category
confusion matrices, a qualitative slice grid, training curves side by side and the NSB weight schedule. Every
figure carries its cohort in a footer line."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from s2cac.atomic import atomic_path
from s2cac.evaluation.stats import bland_altman
from s2cac.scoring import RISK_BOUNDS, risk_category_names
from s2cac.training.schedules import nsb_weight


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    return plt


def save(fig, stem: str | Path, cohort: str) -> list[Path]:
    """Write ``<stem>.png`` (200 dpi) and ``<stem>.pdf`` with the cohort in a footer; close the figure."""
    import matplotlib.pyplot as plt

    fig.text(0.005, 0.003, f"Cohort: {cohort}", fontsize=6, color="0.3", ha="left", va="bottom", wrap=True)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    with atomic_path(paths[0], suffix=".png") as tmp:
        fig.savefig(tmp, dpi=200, metadata={"Software": None})
    with atomic_path(paths[1], suffix=".pdf") as tmp:
        fig.savefig(tmp, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(fig)
    return paths


def dice_vs_ratio(
    metrics: pd.DataFrame, experiments: Sequence[str], labels: dict[str, str], cohort: str, stem: str | Path
) -> list[Path]:
    """Test Dice (mean +- sd over the runs) against the labeled ratio, one line per experiment."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for exp in experiments:
        sub = metrics[metrics["experiment"] == exp]
        if sub.empty:
            continue
        g = sub.groupby("ratio")["dice"]
        x = np.array([float(r) for r in g.mean().index])
        order = np.argsort(x)
        mean, sd = g.mean().to_numpy()[order], g.std(ddof=1).fillna(0).to_numpy()[order]
        ax.errorbar(x[order], mean, yerr=sd, marker="o", capsize=3, label=labels.get(exp, exp))
    ax.set(xlabel="labeled scans with calcium (%)", ylabel="test Dice (mean +- sd over runs)", ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, stem, cohort)


def agatston_agreement(per_case: pd.DataFrame, label: str, cohort: str, stem: str | Path) -> list[Path]:
    """Predicted vs reference Agatston (symmetric log axes) and Bland-Altman, pooling every test prediction of
    the given runs."""
    plt = _pyplot()
    p, r = per_case["agatston_pred"].to_numpy(float), per_case["agatston_ref"].to_numpy(float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 4.2))
    a1.scatter(r, p, s=14, alpha=0.6)
    top = max(float(np.nanmax(np.r_[p, r, 1.0])), 1.0) * 1.5
    a1.plot([0, top], [0, top], "k--", lw=0.8)
    a1.set(xscale="symlog", yscale="symlog", xlim=(0, top), ylim=(0, top))
    a1.set(xlabel="reference Agatston", ylabel=f"{label} Agatston", title=f"{label}: {len(p)} test predictions")
    ba = bland_altman(p, r)
    a2.scatter((p + r) / 2, p - r, s=14, alpha=0.6)
    for key, style in (("bias", "-"), ("loa_low", "--"), ("loa_high", "--")):
        if math.isfinite(ba[key]):
            a2.axhline(ba[key], color="k", ls=style, lw=0.8)
    a2.set(xlabel="mean of predicted and reference Agatston", ylabel="predicted - reference Agatston")
    a2.set_title(f"bias {ba['bias']:.1f}, limits {ba['loa_low']:.1f} .. {ba['loa_high']:.1f}", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, stem, cohort)


def risk_confusions(
    per_case: pd.DataFrame, experiments: Sequence[str], labels: dict[str, str], cohort: str, stem: str | Path
) -> list[Path]:
    """One risk-category confusion matrix per experiment (rows reference, columns prediction), summed over runs."""
    plt = _pyplot()
    cats = risk_category_names(RISK_BOUNDS)
    exps = [e for e in experiments if (per_case["experiment"] == e).any()]
    fig, axes = plt.subplots(1, max(len(exps), 1), figsize=(3.3 * max(len(exps), 1), 3.6), squeeze=False)
    for ax, exp in zip(axes[0], exps, strict=False):
        sub = per_case[per_case["experiment"] == exp]
        cm = pd.crosstab(sub["risk_ref"], sub["risk_pred"]).reindex(index=cats, columns=cats, fill_value=0)
        acc = float(np.trace(cm.to_numpy()) / max(cm.to_numpy().sum(), 1))
        ax.imshow(cm.to_numpy(), cmap="Blues")
        for i in range(len(cats)):
            for j in range(len(cats)):
                ax.text(j, i, str(int(cm.iat[i, j])), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(cats)), cats, rotation=45, fontsize=7)
        ax.set_yticks(range(len(cats)), cats, fontsize=7)
        ax.grid(False)
        ax.set(xlabel="predicted", ylabel="reference")
        ax.set_title(f"{labels.get(exp, exp)} (accuracy {acc:.2f})", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save(fig, stem, cohort)


@dataclass(frozen=True)
class QualitativeCase:
    """One row of the qualitative grid: the CT, the reference and each method's mask (column title -> file)."""

    case_id: str
    image: Path
    reference: Path
    predictions: dict[str, Path]


def _crop(mask2d: np.ndarray, spacing_yx: tuple[float, float], half_mm: float = 30.0) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask2d)
    cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (mask2d.shape[0] // 2, mask2d.shape[1] // 2)
    hy, hx = int(half_mm / spacing_yx[0]), int(half_mm / spacing_yx[1])
    y0, x0 = max(0, cy - hy), max(0, cx - hx)
    return slice(y0, min(mask2d.shape[0], y0 + 2 * hy)), slice(x0, min(mask2d.shape[1], x0 + 2 * hx))


def qualitative_grid(cases: Sequence[QualitativeCase], cohort: str, stem: str | Path) -> list[Path]:
    """Rows = cases, columns = CT, reference, then each method: the axial slice with the most reference calcium
    (cropped to 60 mm around it), masks in colour over the CT (window -200..800 HU)."""
    from s2cac.io.images import read_ct, read_label_map

    plt = _pyplot()
    names = list(cases[0].predictions) if cases else []
    ncol = 2 + len(names)
    fig, axes = plt.subplots(max(len(cases), 1), ncol, figsize=(2.2 * ncol, 2.3 * max(len(cases), 1)), squeeze=False)
    for row, case in zip(axes, cases, strict=False):
        hu, geom = read_ct(case.image)
        ref, _ = read_label_map(case.reference, geom)
        z = int(np.argmax((ref > 0).sum(axis=(1, 2))))
        ys, xs = _crop(ref[z] > 0, geom.spacing_zyx[1:])
        ct = np.clip(hu[z, ys, xs].astype(float), -200, 800)
        panels = [("CT", None), ("reference", ref)] + [
            (n, read_label_map(p, geom)[0]) for n, p in case.predictions.items()
        ]
        for ax, (title, mask) in zip(row, panels, strict=True):
            ax.imshow(ct, cmap="gray", vmin=-200, vmax=800)
            if mask is not None:
                m = np.ma.masked_where(mask[z, ys, xs] == 0, np.ones_like(ct))
                ax.imshow(m, cmap="autumn" if title != "reference" else "winter", alpha=0.7, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(title if title != "CT" else f"{case.case_id}, slice {z}", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, stem, cohort)


_EPOCH = re.compile(
    r"epoch (\d+)/\d+ \| loss ([-\d.eE+naif]+) .*?\| pseudo-Dice ([-\d.naif]+) \(ema ([-\d.naif]+)\)", re.IGNORECASE
)


def read_training_log(path: str | Path) -> pd.DataFrame:
    """Per-epoch ``epoch``, ``loss`` (training total), ``pseudo_dice`` and ``ema_dice`` (teacher, validation)
    from a model folder's ``training_log.txt``; a resumed run's repeated epochs keep their last line."""
    rows = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        m = _EPOCH.search(line)
        if m:
            rows[int(m.group(1))] = tuple(float(g) for g in m.groups()[1:])
    return pd.DataFrame(
        [(e, *v) for e, v in sorted(rows.items())], columns=["epoch", "loss", "pseudo_dice", "ema_dice"]
    )


def training_curves(curves: dict[str, list[pd.DataFrame]], cohort: str, stem: str | Path) -> list[Path]:
    """Columns = experiments; top the teacher's moving-average validation pseudo-Dice, bottom the training loss,
    one thin line per run."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    n = max(len(curves), 1)
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 5.0), squeeze=False, sharey="row")
    for j, (name, runs) in enumerate(curves.items()):
        for run in runs:
            axes[0, j].plot(run["epoch"], run["ema_dice"], lw=1)
            axes[1, j].plot(run["epoch"], run["loss"], lw=1)
        axes[0, j].set_title(f"{name} ({len(runs)} runs)", fontsize=8)
        axes[0, j].set(ylim=(0, 1), xlabel="epoch")
        axes[1, j].set(xlabel="epoch")
        for ax in axes[:, j]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("val pseudo-Dice (moving avg.)")
    axes[1, 0].set_ylabel("training loss")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, stem, cohort)


def nsb_schedule(schedules: dict[str, dict], cohort: str, stem: str | Path) -> list[Path]:
    """The negative-sample-boosting weight w(e) = 1 - a (1 - sigmoid(b (e - tau))) of each schedule
    (label -> {a, b, tau, epochs}) over its training epochs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, s in schedules.items():
        e = np.linspace(0, float(s["epochs"]), 400)
        ax.plot(e, [nsb_weight(x, s["a"], s["b"], s["tau"]) for x in e], label=label)
    ax.set(xlabel="epoch", ylabel="weight of calcium-free patches", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save(fig, stem, cohort)
