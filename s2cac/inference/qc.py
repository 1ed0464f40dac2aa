"""QC pictures: the axial slices with the most calcium, CT-windowed, with the calcium mask outlined.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from s2cac.atomic import atomic_path
from s2cac.hu import HUWindow

#: outline colours of labels 1, 2, ... (e.g. LM, LAD, LCX, RCA), distinct on a grey CT
LABEL_COLOURS = ("yellow", "red", "cyan", "lime", "magenta", "orange")


def qc_slices(mask: np.ndarray, n: int = 3) -> list[int]:
    """Indices of up to ``n`` axial slices with the most mask voxels (ascending); the middle slice if empty."""
    counts = np.asarray(mask, dtype=bool).reshape(mask.shape[0], -1).sum(axis=1)
    if counts.max(initial=0) == 0:
        return [mask.shape[0] // 2]
    order = np.argsort(-counts, kind="stable")[:n]
    return sorted(int(z) for z in order if counts[z] > 0)


def save_qc_png(
    hu: np.ndarray,
    mask: np.ndarray,
    spacing_zyx: Sequence[float],
    path: str | Path,
    *,
    title: str = "",
    n_slices: int = 3,
    window: HUWindow | None = None,
    warnings: Sequence[str] = (),
    label_names: dict[int, str] | None = None,
) -> Path:
    """Write a PNG of the slices with the most calcium (atomically: temporary name, then rename).

    Args:
        hu: (z, y, x) CT in HU.
        mask: (z, y, x) calcium mask (non-zero = calcium), same shape.
        spacing_zyx: voxel spacing (z, y, x), mm; sets the pixel aspect ratio.
        path: output ``.png``.
        title: figure title (e.g. case name and Agatston score).
        n_slices: at most this many slices, side by side.
        window: display window in HU (default level 130, width 850).
        warnings: scan QC flags, written in red under the title.
        label_names: {label value: name} to outline each label in its own colour (e.g. arteries), with a
            legend; None = one red outline of every non-zero voxel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    path = Path(path)
    labels = np.asarray(mask)
    mask = labels != 0
    slices = qc_slices(mask, n_slices)
    lo, hi = (window or HUWindow()).bounds
    _, dy, dx = (float(s) for s in spacing_zyx)
    ny, nx = hu.shape[1:]
    fig = Figure(figsize=(4 * len(slices), 4.4 + 0.3 * bool(warnings)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(slices), squeeze=False)[0]
    for ax, z in zip(axes, slices, strict=True):
        ax.imshow(hu[z], cmap="gray", vmin=lo, vmax=hi, extent=(0, nx * dx, ny * dy, 0), interpolation="nearest")
        yy = (np.arange(ny) + 0.5) * dy
        xx = (np.arange(nx) + 0.5) * dx
        groups = (
            [(labels[z] == v, LABEL_COLOURS[i % len(LABEL_COLOURS)]) for i, v in enumerate(sorted(label_names))]
            if label_names
            else [(mask[z], "red")]
        )
        for region, colour in groups:
            if region.any():
                ax.contour(xx, yy, region.astype(np.float32), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(f"slice {z} ({int(mask[z].sum())} voxels)", fontsize=9)
        ax.set_axis_off()
    if label_names:
        handles = [
            Line2D([], [], color=LABEL_COLOURS[i % len(LABEL_COLOURS)], label=label_names[v])
            for i, v in enumerate(sorted(label_names))
        ]
        axes[-1].legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93) if warnings else None)
    if warnings:
        text = "QC: " + "; ".join(warnings)
        fig.text(0.5, 0.905, text, ha="center", va="top", color="red", fontsize=7, wrap=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
