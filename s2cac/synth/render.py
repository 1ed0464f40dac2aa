"""Rendering primitives of the phantom: voxel grid, soft-edged painting, supersampled partial volume, curves.

Conventions: arrays are ``(z, y, x)``; points are world coordinates ``(x, y, z)`` in mm (LPS: x towards the
patient's left, y posterior, z superior), voxel ``(k, j, i)`` sits at ``origin + (i*sx, j*sy, k*sz)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

# Sub-samples per voxel (z, y, x) for partial-volume rendering of small dense objects: a voxel's value is the
# mean over its box (the slice profile of a 3 mm slice is a 3 mm boxcar).
SUPERSAMPLE = (5, 3, 3)


@dataclass(frozen=True)
class Grid:
    """A voxel grid: ``shape`` (z, y, x), ``spacing`` (z, y, x) mm, ``origin`` world (x, y, z) mm of voxel 0."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates (mm) of the voxel centres along z, y and x (three 1D float64 arrays)."""
        nz, ny, nx = self.shape
        sz, sy, sx = self.spacing
        ox, oy, oz = self.origin
        return oz + sz * np.arange(nz), oy + sy * np.arange(ny), ox + sx * np.arange(nx)

    def index_box(self, lo_xyz: np.ndarray, hi_xyz: np.ndarray, pad: int = 1) -> tuple[slice, slice, slice] | None:
        """Voxel slices (z, y, x) covering the world box ``[lo, hi]`` (+ ``pad`` voxels); None if outside."""
        out = []
        for axis_xyz, axis_zyx in ((2, 0), (1, 1), (0, 2)):
            sp, o, n = self.spacing[axis_zyx], self.origin[axis_xyz], self.shape[axis_zyx]
            a = int(np.floor((lo_xyz[axis_xyz] - o) / sp)) - pad
            b = int(np.ceil((hi_xyz[axis_xyz] - o) / sp)) + pad + 1
            a, b = max(a, 0), min(b, n)
            if a >= b:
                return None
            out.append(slice(a, b))
        return out[0], out[1], out[2]

    def box_centres(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """World (x, y, z) of every voxel centre in ``box``, shape (nz*ny*nx, 3), C order of the box."""
        zw, yw, xw = self.axes
        z, y, x = np.meshgrid(zw[box[0]], yw[box[1]], xw[box[2]], indexing="ij")
        return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def soft(signed_distance_mm: np.ndarray, edge_mm: float = 1.0) -> np.ndarray:
    """Occupancy in [0, 1] from a signed distance (mm, negative inside) with a linear edge of ``edge_mm``."""
    return np.clip(0.5 - signed_distance_mm / edge_mm, 0.0, 1.0).astype(np.float32)


def paint(img: np.ndarray, occupancy: np.ndarray | float, value: float | np.ndarray, where=None) -> None:
    """Composite ``value`` over ``img`` in place: ``img = img * (1 - f) + value * f`` (``where`` = a box)."""
    if where is None:
        img *= 1 - occupancy
        img += occupancy * value
    else:
        sub = img[where]
        sub *= 1 - occupancy
        sub += occupancy * value


def ellipse_sd(u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Approximate signed distance (mm) to the ellipse ``(u/a)^2 + (v/b)^2 = 1`` along the ray from its centre."""
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    r = np.sqrt(u**2 + v**2)
    return r * (1 - 1 / np.maximum(rho, 1e-6))


def supersampled(
    grid: Grid,
    lo_xyz: np.ndarray,
    hi_xyz: np.ndarray,
    inside: Callable[[np.ndarray], np.ndarray],
    supersample: tuple[int, int, int] = SUPERSAMPLE,
    near: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Partial-volume occupancy of a small object inside the world box ``[lo, hi]``.

    Args:
        grid: the image grid.
        lo_xyz, hi_xyz: world (x, y, z) box holding the whole object, mm.
        inside: maps points (N, 3) world mm to a bool array (N,).
        supersample: sub-samples per voxel along (z, y, x).
        near: optional pre-filter on voxel centres (M, 3) -> bool; voxels it rejects get 0 without
            supersampling (it must accept every voxel that the object touches).

    Returns:
        ``(box, fraction)`` with ``fraction`` float32 of the box's shape (share of each voxel's box inside the
        object), or None when the object misses the grid.
    """
    box = grid.index_box(np.asarray(lo_xyz), np.asarray(hi_xyz))
    if box is None:
        return None
    centres = grid.box_centres(box)
    offsets = []
    for n, sp in zip(supersample, grid.spacing, strict=True):
        offsets.append(((np.arange(n) + 0.5) / n - 0.5) * sp)
    oz, oy, ox = np.meshgrid(*offsets, indexing="ij")
    sub = np.stack([ox.ravel(), oy.ravel(), oz.ravel()], axis=1)  # (S, 3) xyz
    keep = np.ones(len(centres), bool) if near is None else near(centres)
    frac = np.zeros(len(centres), np.float32)
    if keep.any():
        pts = (centres[keep][:, None, :] + sub[None, :, :]).reshape(-1, 3)
        frac[keep] = inside(pts).reshape(-1, len(sub)).mean(axis=1)
    shape = tuple(s.stop - s.start for s in box)
    return box, frac.reshape(shape)


def ellipsoid_inside(centre: np.ndarray, axes: np.ndarray, semi: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Inside test of an oriented ellipsoid: ``axes`` (3, 3) rows = unit axis vectors, ``semi`` (3,) mm."""

    def inside(pts: np.ndarray) -> np.ndarray:
        q = (pts - centre) @ axes.T / semi
        return np.einsum("ij,ij->i", q, q) <= 1.0

    return inside


def ellipsoid_box(centre: np.ndarray, axes: np.ndarray, semi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World (x, y, z) bounding box of an oriented ellipsoid."""
    half = np.sqrt(((axes * semi[:, None]) ** 2).sum(axis=0))
    return centre - half, centre + half


@dataclass(frozen=True)
class Curve:
    """A 3D curve sampled densely: ``points`` (N, 3) world mm, unit ``tangents`` (N, 3), arc length ``s`` (N,)."""

    points: np.ndarray
    tangents: np.ndarray
    s: np.ndarray

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @classmethod
    def through(cls, control: np.ndarray, step_mm: float = 0.25) -> Curve:
        """Smooth curve (cubic spline, chord-length parameter) through control points (M, 3), M >= 2."""
        control = np.asarray(control, dtype=float)
        chord = np.r_[0, np.cumsum(np.linalg.norm(np.diff(control, axis=0), axis=1))]
        spline = CubicSpline(chord, control, bc_type="natural")
        t = np.linspace(0, chord[-1], max(int(np.ceil(chord[-1] / step_mm)) * 2, 4))
        pts = spline(t)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        s = np.r_[0, np.cumsum(seg)]
        # Resample at (nearly) uniform arc length.
        n = max(int(np.ceil(s[-1] / step_mm)) + 1, 2)
        su = np.linspace(0, s[-1], n)
        pts = np.stack([np.interp(su, s, pts[:, i]) for i in range(3)], axis=1)
        return cls.from_points(pts)

    @classmethod
    def from_points(cls, pts: np.ndarray) -> Curve:
        pts = np.asarray(pts, dtype=float)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        s = np.r_[0, np.cumsum(seg)]
        tan = np.gradient(pts, axis=0)
        tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-9)
        return cls(pts, tan, s)

    def at(self, s_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Point and unit tangent at arc length ``s_mm`` (clipped to the curve)."""
        i = int(np.clip(np.searchsorted(self.s, s_mm), 0, len(self.s) - 1))
        return self.points[i], self.tangents[i]

    def segment(self, s0: float, s1: float) -> Curve:
        """The part between arc lengths ``s0`` and ``s1``."""
        keep = (self.s >= s0) & (self.s <= s1)
        return Curve.from_points(self.points[keep])


def tube_inside(
    curve: Curve, radius_mm: float, inner_mm: float = 0.0, margin_mm: float = 0.0
) -> Callable[[np.ndarray], np.ndarray]:
    """Inside test of a tube (or a tube wall when ``inner_mm`` > 0) of constant radius around ``curve``.

    With ``margin_mm`` > 0 the test is widened by that much on both sides (a pre-filter for voxel centres).
    """
    tree = cKDTree(curve.points)
    hi, lo = radius_mm + margin_mm, max(inner_mm - margin_mm, 0.0)

    def inside(pts: np.ndarray) -> np.ndarray:
        d, _ = tree.query(pts, distance_upper_bound=hi + 1.0)
        return (d <= hi) & (d >= lo)

    return inside


def tube_box(curve: Curve, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """World (x, y, z) bounding box of a tube around ``curve``."""
    return curve.points.min(0) - radius_mm, curve.points.max(0) + radius_mm


def half_diagonal(grid: Grid) -> float:
    """Half the diagonal of one voxel, mm (how far a voxel's box reaches from its centre)."""
    return 0.5 * float(np.linalg.norm(grid.spacing))


def perpendicular(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to unit ``t`` and to each other, rotated by a random angle about ``t``."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(t[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    a = np.cross(t, helper)
    a /= np.linalg.norm(a)
    b = np.cross(t, a)
    ang = rng.uniform(0, 2 * np.pi)
    return np.cos(ang) * a + np.sin(ang) * b, -np.sin(ang) * a + np.cos(ang) * b
