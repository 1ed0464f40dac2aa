"""Agatston, volume and mass scores of a calcium label map on a CT volume (Agatston et al., JACC 1990).

Conventions (see ``docs/scoring.md``):

- Arrays are ``(z, y, x)`` as ``SimpleITK.GetArrayFromImage`` returns them; spacing is ``(z, y, x)`` in mm.
- Candidate voxels: ``hu >= threshold_hu`` inside the mask (label != 0).
- Lesions: 2D connected components of candidate voxels within one axial slice (8- or 4-connectivity); a lesion
  never links two slices. Per label, a lesion never links two labels (a component that touches two labels is
  two lesions). The ``total`` row scores the union of all labels (mask != 0), so a component that touches two
  labels is one lesion there and the total can differ from the sum of the per-label rows.
- Lesions with area < ``min_area_mm2`` are dropped from every score (Agatston, volume, mass, count).
- Weight from the lesion's peak HU: < 200 -> 1, 200-299 -> 2, 300-399 -> 3, >= 400 -> 4.
- Agatston = sum over lesions of area (mm^2) x weight, times slice increment / 3 mm.
- Volume (mm^3) = lesion voxels x voxel volume; mass (mg) = CF x sum over lesions of volume (cm^3) x mean HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RISK_BOUNDS = (0, 10, 100, 400)
#: Calcium is >= 130 HU (Agatston 1990, at 120 kVp): the one default of every threshold_hu in s2cac.
CALCIUM_THRESHOLD_HU = 130.0
#: Up to this many candidate voxels, lesions are labelled on the sparse candidates with numpy alone (fast for
#: calcium masks, no labelling library to import); above it (e.g. a large region of interest), with cc3d on a
#: dense image of their bounding box, which is faster there.
SPARSE_MAX_CANDIDATES = 200_000
# Lower HU edge of the weights 2, 3 and 4; below the first edge the weight is 1.
WEIGHT_EDGES_HU = (200, 300, 400)
_AREA_RTOL = 1e-9  # area rule tolerance, so that e.g. 4 pixels of 0.5 x 0.5 mm are exactly 1 mm^2


def risk_category(agatston: float, bounds: tuple[float, ...] = RISK_BOUNDS) -> str:
    """Risk category of an Agatston score.

    Args:
        agatston: score (>= 0).
        bounds: increasing upper bounds (inclusive) of all categories but the last; the default gives
            ``"0"``, ``"1-10"``, ``"11-100"``, ``"101-400"``, ``">400"``.

    Returns:
        The category name; a score in ``(b[i], b[i+1]]`` is ``f"{b[i] + 1}-{b[i+1]}"`` (fractional scores such
        as 10.4 after slice-increment scaling fall in the next category, ``"11-100"``).
    """
    value = float(agatston)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"Agatston score must be a finite number >= 0, got {agatston!r}")
    if list(bounds) != sorted(bounds) or len(set(bounds)) != len(bounds) or not bounds:
        raise ValueError(f"risk bounds must be strictly increasing, got {bounds!r}")
    names = risk_category_names(bounds)
    for bound, name in zip(bounds, names[:-1], strict=True):
        if value <= bound:
            return name
    return names[-1]


def risk_category_names(bounds: tuple[float, ...] = RISK_BOUNDS) -> list[str]:
    """All category names of ``bounds``, lowest first (``len(bounds) + 1`` names)."""

    def fmt(v: float) -> str:
        return f"{v:g}"

    names = [fmt(bounds[0])] if bounds[0] == 0 else [f"<={fmt(bounds[0])}"]
    names += [f"{fmt(lo + 1)}-{fmt(hi)}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    names.append(f">{fmt(bounds[-1])}")
    return names


@dataclass(frozen=True)
class LabelScore:
    """Scores of one label (or of the union, ``label == "total"``).

    Attributes:
        label: the mask value, or ``"total"``.
        agatston: Agatston score (slice-increment normalised).
        volume_mm3: calcium volume, mm^3.
        mass_mg: calcium mass, mg HA; ``None`` without a calibration factor.
        n_lesions: number of 2D (per-slice) lesions that passed the area rule.
        risk_category: category of ``agatston`` under the default bounds.
    """

    label: int | str
    agatston: float
    volume_mm3: float
    mass_mg: float | None
    n_lesions: int
    risk_category: str


@dataclass(frozen=True)
class ScoreResult:
    """Scores per non-zero label present in the mask (ascending) and of the union (``total``)."""

    per_label: dict[int, LabelScore]
    total: LabelScore

    def rows(self) -> list[LabelScore]:
        """Per-label scores followed by the total."""
        return [*self.per_label.values(), self.total]


@dataclass(frozen=True)
class _Lesions:
    """Per-lesion reductions (1D arrays, one entry per 2D lesion that passed the area rule)."""

    label: np.ndarray  # mask value of the lesion (0 for the union labelling)
    n_voxels: np.ndarray
    peak_hu: np.ndarray
    sum_hu: np.ndarray


def agatston_weight(peak_hu: np.ndarray | float) -> np.ndarray:
    """Agatston density weight (1-4) from a lesion's peak HU (130-199: 1, 200-299: 2, 300-399: 3, >= 400: 4)."""
    peak = np.asarray(peak_hu)
    weight = np.ones(peak.shape, dtype=np.int64)
    for edge in WEIGHT_EDGES_HU:
        weight += peak >= edge
    return weight


def _lesions_2d(
    flat: np.ndarray, lab: np.ndarray, hu_vals: np.ndarray, shape: tuple[int, int, int], connectivity: int
) -> tuple[_Lesions, _Lesions]:
    """2D lesions per slice and per label, and the lesions of the union of all labels.

    Works on the sparse candidate voxels. Their bounding box is stacked slice by slice into one 2D image with a
    zero row between consecutive slices, so a single 2D labelling (which never links different values) gives
    per-slice, per-label components. Union lesions are groups of per-label lesions that touch across a label
    boundary, so the union needs no second labelling pass. Lesions are not yet filtered by area.

    Args:
        flat: sorted linear indices of the candidate voxels in a (z, y, x) volume of ``shape``.
        lab: (n,) their non-zero labels.
        hu_vals: (n,) their HU.
        shape: the volume's (z, y, x) shape.
        connectivity: 4 or 8.

    Returns:
        Per-label lesions and union lesions (``label`` 0).
    """
    if flat.size == 0:
        empty = _Lesions(*(np.zeros(0, dtype=np.int64),) * 4)
        return empty, empty
    z, y, x = np.unravel_index(flat, shape)
    z, y, x = z - z[0], y - y.min(), x - x.min()  # flat is sorted, so z[0] is the lowest slice
    nz, ny, nx = int(z[-1]) + 1, int(y.max()) + 1, int(x.max()) + 1
    pidx = (z * (ny + 1) + y) * nx + x  # linear index in a (nz * (ny + 1), nx) image with a gap row per slice
    # In-slice neighbour pairs (i, j) of candidates: pidx[j] == pidx[i] + offset. The gap row keeps slices apart.
    # Few candidates: all pairs (the same-label ones give the per-label lesions); many: cc3d labels the lesions
    # and only the pairs across labels are needed (for the union).
    sparse = flat.size <= SPARSE_MAX_CANDIDATES
    offsets = [(1, x < nx - 1), (nx, None)]
    if connectivity == 8:
        offsets += [(nx + 1, x < nx - 1), (nx - 1, x > 0)]
    src, dst = [], []
    for off, valid in offsets:
        pos = np.minimum(np.searchsorted(pidx, pidx + off), pidx.size - 1)
        hit = pidx[pos] == pidx + off
        if valid is not None:
            hit &= valid
        if not sparse:
            hit &= lab[pos] != lab
        src.append(np.flatnonzero(hit))
        dst.append(pos[hit])
    src, dst = np.concatenate(src), np.concatenate(dst)
    if sparse:  # per-label 2D lesions
        same = lab[src] == lab[dst]
        lesion = _components(flat.size, src[same], dst[same])
        src, dst = src[~same], dst[~same]
    else:
        lesion = _label_dense(pidx, lab, nz * (ny + 1), nx, connectivity)
    n = int(lesion.max()) + 1
    per_label = _reduce(lesion, n, hu_vals, lab)
    # Union: merge per-label lesions that are neighbours with another label.
    code = np.unique(lesion[src] * n + lesion[dst])
    if code.size == 0:
        return per_label, _Lesions(np.zeros(n, np.int64), per_label.n_voxels, per_label.peak_hu, per_label.sum_hu)
    group = _components(n, code // n, code % n)
    return per_label, _reduce(group[lesion], int(group.max()) + 1, hu_vals, None)


def _label_dense(pidx: np.ndarray, lab: np.ndarray, rows: int, nx: int, connectivity: int) -> np.ndarray:
    """Per-label 2D components of many candidates: one cc3d labelling of the (rows, nx) stacked image, whose
    labelling never links different values. Returns 0-based component indices of the candidates."""
    import cc3d  # imported here only: typical calcium masks take the sparse path, and `s2cac score` stays light

    padded = np.zeros(rows * nx, dtype=lab.dtype)
    padded[pidx] = lab
    comp = cc3d.connected_components(padded.reshape(rows, nx), connectivity=connectivity).ravel()
    return comp[pidx].astype(np.int64) - 1  # cc3d numbers components 1..n; each holds a candidate


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes under the undirected edges (a[k], b[k]), numbered 0..k-1.

    Vectorised hooking and pointer jumping (each node points to the smallest node index of its component at
    the end); a few numpy passes for lesion-sized components, no Python loop over nodes or edges.
    """
    parent = np.arange(n)
    while True:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            break
        lo, hi = np.minimum(pa, pb)[differ], np.maximum(pa, pb)[differ]
        np.minimum.at(parent, hi, lo)  # hook the larger root under the smaller
        while True:  # pointer jumping until every node points at a root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return np.unique(parent, return_inverse=True)[1]


def _reduce(lesion: np.ndarray, n: int, hu_vals: np.ndarray, lab: np.ndarray | None) -> _Lesions:
    """Per-lesion voxel count, peak HU, HU sum (and label) from per-voxel lesion indices 0..n-1."""
    order = np.argsort(lesion, kind="stable")
    sorted_lesion = lesion[order]
    starts = np.searchsorted(sorted_lesion, np.arange(n))
    hu_sorted = hu_vals[order]
    n_voxels = np.bincount(lesion, minlength=n).astype(np.int64)
    peak = np.maximum.reduceat(hu_sorted, starts)
    sum_hu = np.bincount(lesion, weights=hu_vals, minlength=n)
    label = np.zeros(n, np.int64) if lab is None else lab[order][starts].astype(np.int64)
    return _Lesions(label, n_voxels, peak, sum_hu)


def _summarise(
    les: _Lesions, label: int | str, pixel_area: float, voxel_volume: float, scale: float, cf: float | None
) -> LabelScore:
    agatston = float(np.sum(les.n_voxels * pixel_area * agatston_weight(les.peak_hu)) * scale)
    volume = float(np.sum(les.n_voxels) * voxel_volume)
    mass = None if cf is None else float(cf * voxel_volume / 1000.0 * np.sum(les.sum_hu))
    return LabelScore(label, agatston, volume, mass, int(les.n_voxels.size), risk_category(agatston))


def _check_inputs(
    hu: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float], connectivity: int
) -> np.ndarray:
    if hu.ndim != 3:
        raise ValueError(f"hu must be a 3D (z, y, x) array, got shape {hu.shape}")
    if mask.shape != hu.shape:
        raise ValueError(f"mask shape {mask.shape} differs from hu shape {hu.shape}")
    if len(spacing_zyx) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_zyx):
        raise ValueError(f"spacing_zyx must be three positive numbers (mm), got {spacing_zyx!r}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8 (2D, per axial slice), got {connectivity!r}")
    if mask.dtype == bool:
        return mask.view(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        if not np.issubdtype(mask.dtype, np.floating) or not np.all(np.isfinite(mask)):
            raise ValueError(f"mask must hold integer labels, got dtype {mask.dtype}")
        if np.any(mask != np.round(mask)):
            raise ValueError("mask must hold integer labels, found non-integer values")
        mask = mask.astype(np.int64)
    if np.issubdtype(mask.dtype, np.signedinteger) and mask.size and mask.min() < 0:
        raise ValueError(f"mask labels must be >= 0, found {int(mask.min())}")
    return mask


def score_mask(
    hu: np.ndarray,
    mask: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    *,
    threshold_hu: float = CALCIUM_THRESHOLD_HU,
    connectivity: int = 8,
    min_area_mm2: float = 1.0,
    mass_calibration: float | None = None,
    slice_increment_mm: float | None = None,
) -> ScoreResult:
    """Agatston, volume and mass scores of every non-zero label of ``mask`` and of their union.

    Args:
        hu: (z, y, x) CT intensities in HU (integer).
        mask: (z, y, x) non-negative integer label map, 0 = background.
        spacing_zyx: voxel spacing (z, y, x) in mm.
        threshold_hu: lowest calcium HU (inclusive).
        connectivity: 2D connectivity of lesions in an axial slice, 8 or 4.
        min_area_mm2: lesions with a smaller area (mm^2) are dropped.
        mass_calibration: calibration factor CF (mg HA/cm^3 per HU); without it mass is ``None``.
        slice_increment_mm: distance between slice centres (mm) for the slice / 3 mm normalisation;
            defaults to ``spacing_zyx[0]``.

    Returns:
        Per-label scores (every non-zero label present in ``mask``, ascending) and the total of the union.
    """
    hu = np.asarray(hu)
    mask = _check_inputs(hu, np.asarray(mask), spacing_zyx, connectivity)
    dz, dy, dx = (float(s) for s in spacing_zyx)
    increment = dz if slice_increment_mm is None else float(slice_increment_mm)
    if not increment > 0:
        raise ValueError(f"slice_increment_mm must be > 0, got {slice_increment_mm!r}")
    if mass_calibration is not None and not np.isfinite(mass_calibration):
        raise ValueError(f"mass_calibration must be a finite number, got {mass_calibration!r}")
    pixel_area, voxel_volume, scale = dy * dx, dz * dy * dx, increment / 3.0
    min_voxels_area = float(min_area_mm2) * (1 - _AREA_RTOL)

    def summarise(les: _Lesions, label: int | str) -> LabelScore:
        return _summarise(les, label, pixel_area, voxel_volume, scale, mass_calibration)

    mask_flat = mask.ravel()  # a view for C-contiguous input
    in_mask = np.flatnonzero(mask_flat != 0)  # much faster than nonzero() on an integer array
    labels = _present_labels(mask_flat[in_mask]) if in_mask.size else np.zeros(0, np.int64)
    hu_in = hu.ravel()[in_mask]
    is_cand = hu_in >= threshold_hu
    flat = in_mask[is_cand]
    per_lesion, union = _lesions_2d(flat, mask_flat[flat], hu_in[is_cand], mask.shape, connectivity)
    les = _keep(per_lesion, pixel_area, min_voxels_area)
    per_label = {int(lab): summarise(_select(les, les.label == lab), int(lab)) for lab in labels}
    return ScoreResult(per_label, summarise(_keep(union, pixel_area, min_voxels_area), "total"))


def _present_labels(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1D non-negative integer array (bincount when small, else unique)."""
    if int(values.max()) < 1 << 16:
        return np.flatnonzero(np.bincount(values))
    return np.unique(values)


def _select(les: _Lesions, keep: np.ndarray) -> _Lesions:
    return _Lesions(les.label[keep], les.n_voxels[keep], les.peak_hu[keep], les.sum_hu[keep])


def _keep(les: _Lesions, pixel_area: float, min_area: float) -> _Lesions:
    return _select(les, les.n_voxels * pixel_area >= min_area)
