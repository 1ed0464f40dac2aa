"""A tiny hand-made CT cohort for data-pipeline tests (independent of the synthetic generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING_XYZ = (0.7, 0.7, 3.0)
ORIGIN = (-20.0, 15.0, 100.0)


def write_volume(path: Path, arr: np.ndarray, spacing=SPACING_XYZ, origin=ORIGIN) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def make_cohort(root: Path, n: int = 8, shape=(12, 48, 48), negative_every: int = 3) -> Path:
    """Write ``n`` cases (air, soft tissue, one bright bone bar, a calcium blob in positives) and cases.tsv.

    Every ``negative_every``-th case has no calcium. Risk categories alternate for stratification tests.
    """
    rows = ["case_id\timage\tlabel\trisk_category\tnegative"]
    cats = ["1-10", "11-100", "101-400"]
    for i in range(n):
        rng = np.random.default_rng(i)
        hu = np.full(shape, -800, np.int16)
        hu[:, 6:-6, 6:-6] = 40
        hu[:, -10:-8, 10:-10] = 700  # "bone": bright but not calcium
        hu += rng.normal(0, 15, shape).astype(np.int16)
        lab = np.zeros(shape, np.uint8)
        negative = i % negative_every == 0
        if not negative:
            z, y, x = rng.integers(2, shape[0] - 2), rng.integers(15, 30), rng.integers(15, 30)
            hu[z, y : y + 3, x : x + 3] = 450
            lab[z, y : y + 3, x : x + 3] = 1 + i % 4
        cid = f"case{i:02d}"
        write_volume(root / "images" / f"{cid}.nii.gz", hu)
        write_volume(root / "labels" / f"{cid}.nii.gz", lab)
        cat = "0" if negative else cats[i % 3]
        rows.append(f"{cid}\timages/{cid}.nii.gz\tlabels/{cid}.nii.gz\t{cat}\t{'yes' if negative else 'no'}")
    sheet = root / "cases.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet
