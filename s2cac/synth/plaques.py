"""Calcified coronary plaques: eccentric, irregular ellipsoid clusters in the wall of LM/LAD/LCX/RCA."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from s2cac.synth.phantom import ARTERIES, Anatomy
from s2cac.synth.render import perpendicular

# How often each artery carries a plaque (LAD most, LM least), and the proximal bias of their position.
ARTERY_WEIGHT = {"LM": 0.1, "LAD": 0.4, "LCX": 0.2, "RCA": 0.3}


@dataclass
class Ellipsoid:
    """An oriented ellipsoid in world mm: ``axes`` (3, 3) rows are unit vectors, ``semi`` (3,) mm."""

    centre: np.ndarray
    axes: np.ndarray
    semi: np.ndarray


@dataclass
class Plaque:
    """One calcified plaque on ``artery`` at arc length ``s_mm`` of its centre line, made of ``parts``.

    ``hu`` is the intrinsic density (what a voxel fully inside would show); ``length_mm`` is along the artery.
    """

    artery: str
    s_mm: float
    hu: float
    length_mm: float
    thickness_mm: float
    parts: list[Ellipsoid] = field(default_factory=list)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_plaques(
    anatomy: Anatomy,
    rng: np.random.Generator,
    n: int,
    *,
    hu_range: tuple[float, float],
    length_range: tuple[float, float],
    thickness_range: tuple[float, float],
    avoid: list[tuple[str, float, float]] | None = None,
    visible_first: bool = True,
    size_factor: float = 1.0,
) -> list[Plaque]:
    """Draw ``n`` plaques on the coronary centre lines of ``anatomy``.

    Args:
        anatomy: the patient (centre lines and lumen radii).
        rng: the case's generator.
        n: number of plaques.
        hu_range: intrinsic density range, HU (log-uniform).
        length_range: extent along the artery, mm (log-uniform).
        thickness_range: extent across the artery, mm (log-uniform).
        avoid: ``(artery, s0, s1)`` arc-length intervals kept free (e.g. a stented segment).
        size_factor: multiplies length and thickness (clipped to their ranges): the patient's calcium burden.
        visible_first: make the first plaque large and dense enough to be scored (>= 3 mm long, >= 1.5 mm
            thick, >= 350 HU), so that a positive scan has a positive Agatston score.
    """
    avoid = avoid or []
    names = list(ARTERIES)
    p = np.array([ARTERY_WEIGHT[a] for a in names])
    plaques = []
    for k in range(n):
        for _ in range(20):
            artery = names[rng.choice(len(names), p=p / p.sum())]
            curve = anatomy.arteries[artery]
            s = float(np.clip(curve.length * rng.beta(1.3, 2.2), 0.5, max(curve.length - 0.5, 0.5)))
            if not any(a == artery and s0 - 3 <= s <= s1 + 3 for a, s0, s1 in avoid):
                break
        big = visible_first and k == 0
        length = _log_uniform(rng, max(length_range[0], 3.0) if big else length_range[0], length_range[1])
        thick = _log_uniform(rng, max(thickness_range[0], 1.5) if big else thickness_range[0], thickness_range[1])
        length = float(np.clip(length * size_factor, length_range[0], length_range[1]))
        thick = float(np.clip(thick * size_factor, thickness_range[0], thickness_range[1]))
        thick = min(thick, 1.5 * length)
        hu = _log_uniform(rng, max(hu_range[0], 350.0) if big else hu_range[0], hu_range[1])
        plaque = Plaque(artery, s, hu, length, thick)
        n_parts = 1 if length < 4 else int(rng.integers(1, 4))
        point, tangent = curve.at(s)
        r = float(np.interp(s, curve.s, anatomy.radius[artery]))
        normal, binormal = perpendicular(tangent, rng)
        for part in range(n_parts):
            shift = 0.0 if part == 0 else rng.uniform(-0.45, 0.45) * length
            pt, tg = curve.at(s + shift)
            # rotate the wall direction a little per part: an irregular, partly circumferential plaque
            ang = rng.uniform(-0.6, 0.6) if part else 0.0
            nrm = np.cos(ang) * normal + np.sin(ang) * binormal
            nrm -= (nrm @ tg) * tg
            nrm /= np.linalg.norm(nrm)
            bnm = np.cross(tg, nrm)
            size = 1.0 if part == 0 else rng.uniform(0.5, 0.8)
            semi = np.array(
                [
                    0.5 * length * size / (1 if n_parts == 1 else 1.3),
                    0.5 * thick * size,
                    0.5 * min(thick * rng.uniform(0.9, 2.0), 2.6 * r) * size,
                ]
            )
            semi = np.maximum(semi, 0.2)
            centre = pt + nrm * (0.75 * r)
            plaque.parts.append(Ellipsoid(centre, np.stack([tg, nrm, bnm]), semi))
        plaques.append(plaque)
    return plaques
