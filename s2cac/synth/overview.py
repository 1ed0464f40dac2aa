"""overview.png: axial slices of a few cases, CT-windowed, with the per-artery calcium labels overlaid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from s2cac.atomic import atomic_path

# label -> (name, RGB colour)
ARTERY_COLOURS = {
    1: ("LM", (1.0, 0.9, 0.0)),
    2: ("LAD", (1.0, 0.15, 0.15)),
    3: ("LCX", (0.1, 0.9, 0.2)),
    4: ("RCA", (0.2, 0.5, 1.0)),
}
WINDOW = (40.0, 400.0)  # mediastinal window (level, width), HU: fat dark grey, calcium and bone white


def _pick_cases(table: pd.DataFrame, n: int) -> list[str]:
    """Positives with the most varied distractors first, then one negative if there is room."""
    pos = table[table["negative"] == "no"].copy()
    pos["_interest"] = (
        pos["has_stent"].astype(int) * 4
        + pos["has_lead"].astype(int) * 3
        + pos["has_mitral_calc"].astype(int) * 2
        + (pos["n_valve_calcs"] > 0).astype(int)
        + (pos["motion_sigma_mm"] > 0).astype(int)
    )
    ids = list(pos.sort_values(["_interest", "case_id"], ascending=[False, True])["case_id"])
    neg = list(table.loc[table["negative"] == "yes", "case_id"])
    chosen = ids[: max(n - 1, 1)] if neg else ids[:n]
    chosen += neg[: n - len(chosen)]
    chosen += [c for c in ids if c not in chosen][: n - len(chosen)]
    return sorted(chosen)


def write_overview(path: Path, root: Path, table: pd.DataFrame, slices: dict[str, list[int]], n_cases: int) -> None:
    """Render ``n_cases`` cases (rows) x 2 slices (columns) into ``path`` (PNG, written atomically).

    Args:
        path: output PNG.
        root: folder that the table's image/label paths are relative to.
        table: the case table (needs case_id, image, label, negative, agatston and the distractor columns).
        slices: case_id -> slice indices worth showing (the first two are used).
        n_cases: number of cases to show.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ids = _pick_cases(table, n_cases)
    level, width = WINDOW
    fig, axes = plt.subplots(len(ids), 2, figsize=(8, 4 * len(ids)), squeeze=False)
    for r, cid in enumerate(ids):
        row = table.set_index("case_id").loc[cid]
        hu = sitk.GetArrayFromImage(sitk.ReadImage(str(root / row["image"])))
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(root / row["label"])))
        zs = (slices.get(cid, []) + [hu.shape[0] // 2, hu.shape[0] // 3])[:2]
        extras = [
            k
            for k, flag in (
                ("stent", row["has_stent"]),
                ("lead", row["has_lead"]),
                ("MAC", row["has_mitral_calc"]),
                ("AV calc", row["n_valve_calcs"] > 0),
                ("motion", row["motion_sigma_mm"] > 0),
            )
            if flag
        ]
        for c, z in enumerate(zs):
            ax = axes[r, c]
            ax.imshow(hu[z], cmap="gray", vmin=level - width / 2, vmax=level + width / 2, interpolation="nearest")
            rgba = np.zeros((*lab[z].shape, 4))
            for value, (_, colour) in ARTERY_COLOURS.items():
                rgba[lab[z] == value] = (*colour, 0.85)
            ax.imshow(rgba, interpolation="nearest")
            ax.set_title(
                f"{cid} z={z}  Agatston {row['agatston']:.0f}"
                + (" (negative)" if row["negative"] == "yes" else "")
                + ("\n" + ", ".join(extras) if extras and c == 0 else ""),
                fontsize=8,
            )
            ax.axis("off")
    handles = [Patch(color=col, label=name) for name, col in ARTERY_COLOURS.values()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"Synthetic cohort: axial slices, window L{level:.0f}/W{width:.0f} HU; labels by artery", fontsize=9)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=90, metadata={"Software": None})
    finally:
        plt.close(fig)
