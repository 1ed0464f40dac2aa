"""Dense objects that are not coronary calcium (never labelled): aortic wall and valve calcifications, mitral
annular calcification, coronary stents and pacing leads (metal)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2cac.synth.phantom import Anatomy
from s2cac.synth.plaques import Ellipsoid
from s2cac.synth.render import Curve


@dataclass
class Tube:
    """A tube (``inner_mm`` = 0) or a tube wall around ``curve``, radius in mm, intrinsic density ``hu``."""

    curve: Curve
    radius_mm: float
    inner_mm: float
    hu: float


@dataclass
class Distractor:
    """One non-coronary dense object: ``kind`` is aortic_wall, aortic_valve, mitral, stent or lead."""

    kind: str
    shape: Ellipsoid | Tube
    hu: float


def _horizontal_frame(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e1 = np.cross(t, [0.0, 0.0, 1.0]) if abs(t[2]) < 0.95 else np.array([1.0, 0.0, 0.0])
    e1 = e1 / np.linalg.norm(e1)
    return e1, np.cross(t, e1)


def aortic_wall(anatomy: Anatomy, rng: np.random.Generator, z_range: tuple[float, float]) -> list[Distractor]:
    """1-6 calcified patches on the wall of the ascending or descending aorta within ``z_range`` (world mm)."""
    out = []
    for _ in range(int(rng.integers(1, 7))):
        asc = rng.random() < 0.6
        curve, r = (anatomy.ascending, anatomy.aorta_radius) if asc else (anatomy.descending, anatomy.descending_radius)
        ok = (curve.points[:, 2] >= z_range[0]) & (curve.points[:, 2] <= z_range[1])
        if asc and rng.random() < 0.6:  # most ascending plaques sit low, at the sinotubular junction
            ok &= curve.s < 4 * r
        if not ok.any():
            continue
        i = int(rng.choice(np.flatnonzero(ok)))
        p, t = curve.points[i], curve.tangents[i]
        e1, e2 = _horizontal_frame(t)
        ang = rng.uniform(0, 2 * np.pi)
        radial = np.cos(ang) * e1 + np.sin(ang) * e2
        centre = p + radial * r
        if min(np.linalg.norm(centre - o) for o in anatomy.ostia.values()) < 6.0:
            continue  # keep the coronary ostia free
        circ = np.cross(t, radial)
        semi = np.array([rng.uniform(1.0, 5.0), rng.uniform(0.6, 1.6), rng.uniform(1.0, 4.5)])
        hu = float(rng.uniform(250, 1200))
        out.append(Distractor("aortic_wall", Ellipsoid(centre, np.stack([t, radial, circ]), semi), hu))
    return out


def aortic_valve(anatomy: Anatomy, rng: np.random.Generator) -> list[Distractor]:
    """1-4 nodules on the aortic valve cusps, inside the root just below the ostia."""
    out = []
    r = anatomy.root_radius
    for _ in range(int(rng.integers(1, 5))):
        ang = rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(0.35, 0.85) * r
        centre = anatomy.root_centre + np.array([rad * np.cos(ang), rad * np.sin(ang), -rng.uniform(0.2, 0.6) * r])
        axes = np.linalg.qr(rng.standard_normal((3, 3)))[0]
        semi = rng.uniform(1.0, 3.5, 3)
        out.append(Distractor("aortic_valve", Ellipsoid(centre, axes, semi), float(rng.uniform(300, 1300))))
    return out


def mitral_annulus(anatomy: Anatomy, rng: np.random.Generator) -> list[Distractor]:
    """A calcified arc of the mitral annulus (inside the heart, at the left atrioventricular junction)."""
    h = anatomy.heart
    u = -0.47 + rng.uniform(-0.04, 0.04)
    start = rng.uniform(1.3, 2.2)
    arc = rng.uniform(0.4, 1.6)
    phis = np.linspace(start, start + arc, 24)
    rr = np.sqrt(1 - u * u) * rng.uniform(0.6, 0.72)
    q = np.stack([np.full_like(phis, u * h.semi[0]), rr * h.semi[1] * np.cos(phis), rr * h.semi[2] * np.sin(phis)], 1)
    curve = Curve.through(h.centre + q @ h.axes, step_mm=0.2)
    radius = float(rng.uniform(1.0, 2.6))
    return [Distractor("mitral", Tube(curve, radius, 0.0, 0.0), float(rng.uniform(300, 1000)))]


def stent(anatomy: Anatomy, rng: np.random.Generator) -> tuple[Distractor, tuple[str, float, float]]:
    """A metal stent (a thin tube wall at the lumen edge) on a proximal/mid LAD, LCX or RCA segment.

    Returns the stent and the ``(artery, s0, s1)`` interval it covers (kept free of plaques).
    """
    artery = ["LAD", "RCA", "LCX"][int(rng.choice(3, p=[0.5, 0.35, 0.15]))]
    curve = anatomy.arteries[artery]
    length = float(rng.uniform(8.0, 20.0))
    s0 = float(rng.uniform(0.1, 0.45) * curve.length)
    s1 = min(s0 + length, curve.length - 0.5)
    seg = curve.segment(s0, s1)
    r = float(np.interp(s0, curve.s, anatomy.radius[artery]))
    # struts are ~0.1 mm of steel over a mesh: modelled as a 0.4 mm wall of effective density 4000-6000 HU
    return Distractor("stent", Tube(seg, r + 0.2, r - 0.2, 0.0), float(rng.uniform(4000, 6000))), (artery, s0, s1)


def pacing_lead(anatomy: Anatomy, rng: np.random.Generator, z_top: float) -> Distractor:
    """A pacing lead: from the SVC down through the right atrium to the right ventricular apex (metal)."""
    h = anatomy.heart
    svc = anatomy.svc.points
    top = svc[np.argmin(np.abs(svc[:, 2] - (z_top + 5)))]
    mid = svc[np.argmin(np.abs(svc[:, 2] - (anatomy.root_centre[2] - 5)))]
    ra = h.centre + (h.semi * np.array([-0.45, 0.15, -0.65])) @ h.axes
    apex = h.centre + (h.semi * np.array([0.72, 0.35, -0.2 + rng.uniform(-0.1, 0.1)])) @ h.axes
    curve = Curve.through(np.array([top, mid, ra, apex]), step_mm=0.25)
    return Distractor("lead", Tube(curve, float(rng.uniform(0.8, 1.1)), 0.0, 0.0), float(rng.uniform(3000, 5000)))
