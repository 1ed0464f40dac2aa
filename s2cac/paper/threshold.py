"""The threshold-only reference method: every voxel >= 130 HU inside the heart region is calcium, no learning.

The region is, per case, the ``heart_region`` mask named in the case sheet (the synthetic cohort's
pericardial sac + aortic root + coronary surroundings, written by the ``heart_regions`` rule, or a mask the user
lists in an optional ``heart_region`` column); a case without one falls back to the *body* (the largest
connected component above -500 HU, holes filled slice by slice), which also counts bone, so the method's name
in the tables then says "body". ``regions.tsv`` beside the masks records which region each case used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from s2cac.atomic import atomic_write_text
from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU

#: Experiment name of the threshold-only method in result paths (reserved: no experiment may use it).
THRESHOLD_EXPERIMENT = "threshold"
BODY_MIN_HU = -500.0


@dataclass(frozen=True)
class ThresholdCase:
    """One case: its CT and (optionally) its heart-region mask."""

    case_id: str
    image: Path
    region: Path | None = None


def body_region(hu: np.ndarray, min_hu: float = BODY_MIN_HU) -> np.ndarray:
    """The patient's body in a (z, y, x) CT: the largest 3D connected component of voxels > ``min_hu`` (HU),
    with holes (lungs, airways) filled in every axial slice. Empty when no voxel is above ``min_hu``."""
    above = np.asarray(hu) > min_hu
    labels, n = ndimage.label(above)
    if n == 0:
        return above
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    for z in range(body.shape[0]):
        body[z] = ndimage.binary_fill_holes(body[z])
    return body


def threshold_mask(hu: np.ndarray, region: np.ndarray, threshold_hu: float = CALCIUM_THRESHOLD_HU) -> np.ndarray:
    """uint8 (z, y, x) mask of voxels with HU >= ``threshold_hu`` inside ``region`` (non-zero = inside)."""
    if np.shape(hu) != np.shape(region):
        raise ValueError(f"region shape {np.shape(region)} differs from the CT's {np.shape(hu)}")
    return ((np.asarray(hu) >= threshold_hu) & (np.asarray(region) != 0)).astype(np.uint8)


def predict_threshold(
    cases: Sequence[ThresholdCase], out_dir: str | Path, threshold_hu: float = CALCIUM_THRESHOLD_HU
) -> pd.DataFrame:
    """Write ``<case_id>_cac.nii.gz`` (the image's geometry) for every case and ``regions.tsv`` (case_id, region
    used: ``heart`` or ``body``, calcium voxels); returns that table."""
    from s2cac.inference.batch import case_output_paths, write_mask
    from s2cac.io.images import read_ct, read_label_map

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        hu, geom = read_ct(case.image, copy=False)
        if case.region is not None:
            region, _ = read_label_map(case.region, geom, copy=False)
            kind = "heart"
        else:
            region, kind = body_region(hu), "body"
        mask = threshold_mask(hu, region, threshold_hu)
        write_mask(mask, geom, case_output_paths(out_dir, case.case_id)[0])
        rows.append({"case_id": case.case_id, "region": kind, "voxels": int(mask.sum())})
    table = pd.DataFrame(rows, columns=["case_id", "region", "voxels"])
    atomic_write_text(out_dir / "regions.tsv", table.to_csv(sep="\t", index=False, lineterminator="\n"))
    return table


def threshold_label(regions: Sequence[str], threshold_hu: float = CALCIUM_THRESHOLD_HU) -> str:
    """Display name of the method from the regions its cases used (``heart``, ``body`` or both)."""
    where = sorted(set(regions)) or ["heart"]
    text = {"heart": "heart region", "body": "body, no heart mask"}
    return f"threshold >= {threshold_hu:g} HU ({'; '.join(text.get(w, w) for w in where)})"
