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

import cc3d
import numpy as np

RISK_BOUNDS = (0, 10, 100, 400)
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


def _bounding_box(fg: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Smallest box holding all True voxels of a (z, y, x) array, or None if there is none."""
    z_any = fg.reshape(fg.shape[0], -1).any(axis=1)
    if not z_any.any():
        return None
    zs = np.flatnonzero(z_any)
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    plane = fg[z0:z1].any(axis=0)
    ys = np.flatnonzero(plane.any(axis=1))
    xs = np.flatnonzero(plane.any(axis=0))
    return slice(z0, z1), slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)


def _lesions_2d(values: np.ndarray, cand: np.ndarray, hu: np.ndarray, connectivity: int) -> _Lesions:
    """Label 2D lesions of all slices in one pass and reduce them.

    Slices are stacked into one 2D image with a zero row between consecutive slices, so one 2D labelling
    (which never links different values) gives per-slice, per-value components.

    Args:
        values: (z, y, x) integer values to separate (labels), 0 outside the candidates.
        cand: (z, y, x) bool candidate voxels (``values != 0``).
        hu: (z, y, x) HU.
        connectivity: 4 or 8.
    """
    nz, ny, nx = values.shape
    padded = np.zeros((nz, ny + 1, nx), dtype=values.dtype)
    padded[:, :ny] = values
    comp = cc3d.connected_components(padded.reshape(nz * (ny + 1), nx), connectivity=connectivity)
    comp = comp.reshape(nz, ny + 1, nx)[:, :ny]
    ids = comp[cand].astype(np.int64)
    if ids.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Lesions(empty, empty, empty, np.zeros(0))
    hu_vals = hu[cand]
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    hu_sorted = hu_vals[order]
    n_voxels = np.diff(np.r_[starts, ids_sorted.size])
    peak = np.maximum.reduceat(hu_sorted, starts)
    sum_hu = np.add.reduceat(hu_sorted.astype(np.float64), starts)
    label = values[cand][order][starts].astype(np.int64)
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
    threshold_hu: float = 130,
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

    box = _bounding_box(mask != 0)
    if box is None:
        return ScoreResult({}, summarise(_Lesions(*(np.zeros(0, dtype=np.int64),) * 4), "total"))
    m, h = mask[box], hu[box]
    labels = _present_labels(m)
    cand = (h >= threshold_hu) & (m != 0)
    values = np.where(cand, m, 0)
    les = _keep(_lesions_2d(values, cand, h, connectivity), pixel_area, min_voxels_area)
    per_label = {int(lab): summarise(_select(les, les.label == lab), int(lab)) for lab in labels if lab != 0}
    if len(per_label) <= 1:
        total_les = les
    else:
        total_les = _keep(_lesions_2d(cand.view(np.uint8), cand, h, connectivity), pixel_area, min_voxels_area)
    return ScoreResult(per_label, summarise(total_les, "total"))


def _present_labels(m: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (bincount when small, else unique)."""
    top = int(m.max())
    if top < 1 << 16:
        return np.flatnonzero(np.bincount(m.ravel(), minlength=1))
    return np.unique(m)


def _select(les: _Lesions, keep: np.ndarray) -> _Lesions:
    return _Lesions(les.label[keep], les.n_voxels[keep], les.peak_hu[keep], les.sum_hu[keep])


def _keep(les: _Lesions, pixel_area: float, min_area: float) -> _Lesions:
    return _select(les, les.n_voxels * pixel_area >= min_area)
