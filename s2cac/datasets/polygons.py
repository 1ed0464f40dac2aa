"""Polygon rasterisation: the even-odd rule evaluated at pixel centres (numpy only)."""

from __future__ import annotations

import numpy as np


def fill_polygon(points_xy: np.ndarray, shape_yx: tuple[int, int], centre_offset: float = 0.0) -> np.ndarray:
    """Boolean mask of the pixels whose centre lies inside a polygon (even-odd rule).

    Args:
        points_xy: (N, 2) vertices in pixel units, x = column, y = row (fractional); the polygon is closed
            implicitly (last vertex -> first).
        shape_yx: (rows, columns) of the image.
        centre_offset: coordinate of pixel (0, 0)'s centre along both axes: 0.0 when integer coordinates are
            pixel centres (OsiriX, scikit-image), 0.5 when they are pixel corners.

    Returns:
        (rows, columns) bool mask. A centre exactly on a left/bottom edge counts as inside, on a right/top edge
        as outside (the usual half-open crossing test), so adjacent polygons never share a pixel.
    """
    pts = np.asarray(points_xy, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"polygon vertices must be an (N, 2) array, got shape {pts.shape}")
    rows, cols = int(shape_yx[0]), int(shape_yx[1])
    mask = np.zeros((rows, cols), bool)
    if len(pts) < 3:
        return mask
    x, y = pts[:, 0] - centre_offset, pts[:, 1] - centre_offset  # now integer coordinates are pixel centres
    r0, r1 = max(int(np.ceil(y.min())), 0), min(int(np.floor(y.max())), rows - 1)
    c0, c1 = max(int(np.ceil(x.min())), 0), min(int(np.floor(x.max())), cols - 1)
    if r0 > r1 or c0 > c1:
        return mask
    py = np.arange(r0, r1 + 1, dtype=float)[:, None]
    px = np.arange(c0, c1 + 1, dtype=float)[None, :]
    inside = np.zeros((r1 - r0 + 1, c1 - c0 + 1), bool)
    xj, yj = np.roll(x, 1), np.roll(y, 1)
    for xa, ya, xb, yb in zip(x, y, xj, yj, strict=True):
        if ya == yb:
            continue  # horizontal edges never cross a horizontal ray
        crosses = (ya > py) != (yb > py)  # (rows, 1)
        x_at = xa + (py - ya) * (xb - xa) / (yb - ya)  # (rows, 1)
        inside ^= crosses & (px < x_at)
    mask[r0 : r1 + 1, c0 : c1 + 1] = inside
    return mask


def polygon_area(points_xy: np.ndarray) -> float:
    """Area of a simple polygon (shoelace formula), in squared pixel units."""
    pts = np.asarray(points_xy, dtype=float)
    if len(pts) < 3:
        return 0.0
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)
