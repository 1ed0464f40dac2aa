"""Per-case metrics on arrays: voxel overlap, surface distances (mm) and 3D lesion detection.

Empty masks (orCaScore-style reporting): every result carries ``empty`` in {"none", "reference", "prediction",
"both"}; metrics that are undefined for that case are NaN, never silently 0 or 1:

- both empty: Dice, sensitivity, precision, HD95 and MSD are NaN (a correct negative, counted separately);
- reference empty, prediction not: Dice 0, precision 0, sensitivity NaN, distances NaN;
- prediction empty, reference not: Dice 0, sensitivity 0, precision NaN, distances NaN.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage

NAN = float("nan")


def empty_status(pred: np.ndarray, ref: np.ndarray) -> str:
    """ "none", "reference", "prediction" or "both": which of the binary masks are empty."""
    p, r = bool(pred.any()), bool(ref.any())
    return {(True, True): "none", (True, False): "reference", (False, True): "prediction"}.get((p, r), "both")


def overlap_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float | str]:
    """Dice, sensitivity (recall) and precision of two (z, y, x) masks (non-zero = foreground).

    Returns:
        ``dice``, ``sensitivity``, ``precision`` (NaN where undefined, see module doc) and ``empty``.
    """
    p, r = pred != 0, ref != 0
    tp = float(np.count_nonzero(p & r))
    n_p, n_r = float(np.count_nonzero(p)), float(np.count_nonzero(r))
    return {
        "dice": 2 * tp / (n_p + n_r) if n_p + n_r else NAN,
        "sensitivity": tp / n_r if n_r else NAN,
        "precision": tp / n_p if n_p else NAN,
        "empty": empty_status(p, r),
    }


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a bool mask (voxels with a 6-neighbour outside the mask)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing_zyx: tuple[float, float, float]) -> dict[str, float]:
    """Symmetric surface distances in mm between two (z, y, x) masks.

    Distances from every boundary voxel of each mask to the nearest boundary voxel of the other are pooled
    (both directions); HD95 is their 95th percentile, MSD their mean. NaN when either mask is empty.

    Returns:
        ``hd95_mm``, ``msd_mm``, ``hd_mm`` (maximum).
    """
    p, r = pred != 0, ref != 0
    if not p.any() or not r.any():
        return {"hd95_mm": NAN, "msd_mm": NAN, "hd_mm": NAN}
    both = p | r
    box = tuple(
        slice(max(int(idx.min()) - 1, 0), int(idx.max()) + 2) for idx in np.nonzero(both)
    )  # every boundary voxel lies in this box, so distances computed inside it are exact
    sp, sr = _surface(p[box]), _surface(r[box])
    to_r = ndimage.distance_transform_edt(~sr, sampling=spacing_zyx)[sp]
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing_zyx)[sr]
    d = np.concatenate([to_r, to_p])
    return {"hd95_mm": float(np.percentile(d, 95)), "msd_mm": float(d.mean()), "hd_mm": float(d.max())}


def lesion_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing_zyx: tuple[float, float, float], connectivity: int = 26
) -> dict[str, float]:
    """3D lesion detection: a reference lesion is found (TP) if any predicted voxel overlaps it, else FN;
    a predicted lesion overlapping no reference voxel is a FP.

    Args:
        pred, ref: (z, y, x) masks (non-zero = calcium).
        spacing_zyx: voxel spacing, mm.
        connectivity: 3D connectivity of lesions (6, 18 or 26).

    Returns:
        Counts ``lesion_tp`` (found reference lesions), ``lesion_fn``, ``lesion_fp``, ``lesion_tp_pred``
        (predicted lesions that overlap the reference) and volumes in mm^3: ``volume_tp_ref_mm3``,
        ``volume_fn_mm3``, ``volume_tp_pred_mm3``, ``volume_fp_mm3``.
    """
    voxel = float(np.prod(spacing_zyx))
    p, r = pred != 0, ref != 0
    out = {}
    for name, a, b in (("ref", r, p), ("pred", p, r)):
        comp = cc3d.connected_components(a, connectivity=connectivity)
        n = int(comp.max())
        sizes = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        hit = np.zeros(n + 1, bool)
        hit[np.unique(comp[a & b])] = True
        hit = hit[1:]
        out[name] = (
            int(hit.sum()),
            int((~hit).sum()),
            float(sizes[hit].sum() * voxel),
            float(sizes[~hit].sum() * voxel),
        )
    (tp, fn, v_tp_ref, v_fn), (tp_pred, fp, v_tp_pred, v_fp) = out["ref"], out["pred"]
    return {
        "lesion_tp": tp,
        "lesion_fn": fn,
        "lesion_tp_pred": tp_pred,
        "lesion_fp": fp,
        "volume_tp_ref_mm3": v_tp_ref,
        "volume_fn_mm3": v_fn,
        "volume_tp_pred_mm3": v_tp_pred,
        "volume_fp_mm3": v_fp,
    }
