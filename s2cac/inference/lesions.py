"""The lesion-level decision: each connected group of candidate voxels is calcium or not as a whole.

Agatston scoring, and the reference standards it is compared with (orCaScore: observers select lesions, i.e.
connected regions >= 130 HU), work on lesions, not voxels. A voxel-wise network decision (``P(calcium) > t``
per voxel) can cut one plaque into kept and dropped parts (under-segmented dense plaques, a lesion's rim
dropped) and keeps scattered voxels of bone edges, metal and aortic or valve calcification where a few of
their voxels look like plaque. The lesion rule decides per *candidate lesion*: every 3D connected component
(26-connectivity) of the candidate mask ``HU >= threshold`` is kept whole when the mean of the network's
calcium probability over its voxels exceeds ``t``, and dropped whole otherwise.

Exactness with window skipping: only the probabilities at candidate voxels enter the decision, and those are
exact with skipping (window_skip.py), so the masks are identical with and without skipping (tested).

Limitation: a coronary lesion that touches a non-coronary calcification above the threshold (e.g. aortic-wall
calcium at a coronary ostium, in 3D) forms one candidate lesion with it and is kept or dropped together;
``decision: voxel`` keeps the per-voxel rule.
"""

from __future__ import annotations

import cc3d
import numpy as np

DECISIONS = ("lesion", "voxel")
LESION_CONNECTIVITY = 26  # 3D, as the evaluation's lesions (EvaluationOptions.lesion_connectivity)


def candidate_components(candidates: np.ndarray, connectivity: int = LESION_CONNECTIVITY) -> np.ndarray:
    """The candidate lesions of one (z, y, x) bool volume: its connected components numbered 1..n, 0 outside
    (what the lesion rule keeps or drops whole, and what training's lesion loss judges).

    Labelled as uint8: cc3d 4.1.1 miscounts a bool volume one voxel thin in two axes (e.g. 1 x 1 x 8) with
    26-connectivity and raises "maximum length exception"; uint8 gives the same labels everywhere else."""
    voxels = np.ascontiguousarray(np.asarray(candidates, dtype=bool), dtype=np.uint8)
    return cc3d.connected_components(voxels, connectivity=int(connectivity))


def lesion_labels(
    probabilities: np.ndarray,
    candidates: np.ndarray,
    calcium_probability: float = 0.5,
    connectivity: int = LESION_CONNECTIVITY,
) -> np.ndarray:
    """Label map by the lesion rule.

    Args:
        probabilities: (classes, z, y, x) softmax probabilities; class 0 is background, classes 1.. are calcium
            (1 = calcium for a binary model; 1-4 = LM/LAD/LCX/RCA for an artery model).
        candidates: (z, y, x) bool, the candidate voxels (``HU >= threshold``).
        calcium_probability: a candidate lesion is calcium when the mean of ``1 - P(background)`` over its
            voxels exceeds this (in (0, 1)).
        connectivity: 3D connectivity of candidate lesions (6, 18 or 26).

    Returns:
        (z, y, x) uint8 labels: 0 outside kept lesions; inside, 1 for a binary model, else the most probable
        calcium class of each voxel (an artery model's lesion may span arteries where they meet).
    """
    probabilities = np.asarray(probabilities)
    candidates = np.asarray(candidates, dtype=bool)
    if probabilities.ndim != 4 or probabilities.shape[0] < 2 or probabilities.shape[1:] != candidates.shape:
        raise ValueError(
            f"probabilities {probabilities.shape} must be (classes >= 2, *{candidates.shape}) like the candidates"
        )
    if not 0.0 < float(calcium_probability) < 1.0:
        raise ValueError(f"calcium_probability must be in (0, 1), got {calcium_probability}")
    components = candidate_components(candidates, connectivity)
    n = int(components.max())
    labels = np.zeros(candidates.shape, dtype=np.uint8)
    if n == 0:
        return labels
    members = components[candidates]  # the lesion of each candidate voxel (1..n), in C order
    calcium = 1.0 - probabilities[0][candidates].astype(np.float64)
    sums = np.bincount(members, weights=calcium, minlength=n + 1)
    counts = np.bincount(members, minlength=n + 1)
    keep = sums > float(calcium_probability) * counts
    keep[0] = False
    kept = keep[components]
    if probabilities.shape[0] == 2:
        labels[kept] = 1
    else:
        labels[kept] = (1 + np.argmax(probabilities[1:, kept], axis=0)).astype(np.uint8)
    return labels
