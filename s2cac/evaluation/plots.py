"""Figures of Agatston agreement: log-scaled scatter, Bland-Altman and the risk-category confusion matrix (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scatter(pred: np.ndarray, ref: np.ndarray, path: str | Path, label: str = "Agatston") -> None:
    """Predicted vs reference on symmetric-log axes (linear below 1, so scores of 0 are shown)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(ref, pred, s=14, alpha=0.7)
    top = max(float(np.nanmax(np.r_[pred, ref, 1.0])), 1.0) * 1.5
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(f"reference {label}")
    ax.set_ylabel(f"predicted {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_bland_altman(pred: np.ndarray, ref: np.ndarray, ba: dict[str, float], path: str | Path) -> None:
    """Difference (pred - ref) vs mean, with bias and 95% limits of agreement."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter((pred + ref) / 2, pred - ref, s=14, alpha=0.7)
    for key, style in (("bias", "-"), ("loa_low", "--"), ("loa_high", "--")):
        if np.isfinite(ba.get(key, np.nan)):
            ax.axhline(ba[key], color="k", ls=style, lw=0.8)
    ax.set_xlabel("mean of predicted and reference Agatston")
    ax.set_ylabel("predicted - reference Agatston")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_confusion(risk: dict[str, Any], path: str | Path) -> None:
    """Risk-category confusion matrix (rows = reference, columns = prediction) with counts."""
    plt = _pyplot()
    cm = np.asarray(risk["confusion_matrix"])
    cats = risk["categories"]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="k")
    ax.set_xticks(range(len(cats)), cats)
    ax.set_yticks(range(len(cats)), cats)
    ax.set_xlabel("predicted risk category")
    ax.set_ylabel("reference risk category")
    ax.set_title(f"accuracy {risk['accuracy']:.2f}, linear kappa {risk['kappa_linear']:.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
