"""Training curves PNG: losses, consistency weight lambda, NSB weight and pseudo-Dice per epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(log: dict[str, list], path: str | Path) -> None:
    """Write the four-panel curves figure from nnU-Net's local logger lists (one value per epoch)."""
    n = min(len(log.get(k, [])) for k in ("train_losses", "val_losses", "mean_fg_dice", "nsb_weight"))
    if n == 0:
        return
    epochs = list(range(1, n + 1))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    ax = axes[0, 0]
    for key, label in (
        ("train_losses", "train total"),
        ("val_losses", "val (CE+Dice)"),
        ("loss_seg", "seg"),
        ("loss_score", "score"),
        ("loss_cons", "consistency"),
        ("loss_sdc", "scoring-driven"),
    ):
        if len(log.get(key, [])) >= n:
            ax.plot(epochs, [float(v) for v in log[key][:n]], label=label)
    ax.set(title="losses", xlabel="epoch")
    ax.legend(fontsize=8)
    for ax, key, title in (
        (axes[0, 1], "consistency_weight", "consistency weight lambda"),
        (axes[1, 0], "nsb_weight", "NSB weight of calcium-free patches"),
    ):
        ax.plot(epochs, [float(v) for v in log[key][:n]])
        ax.set(title=title, xlabel="epoch")
    ax = axes[1, 1]
    ax.plot(epochs, [float(v) for v in log["mean_fg_dice"][:n]], ":", label="pseudo-Dice")
    ax.plot(epochs, [float(v) for v in log["ema_fg_dice"][:n]], label="moving average")
    ax.set(title="validation pseudo-Dice (teacher)", xlabel="epoch", ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=80)
    plt.close(fig)
