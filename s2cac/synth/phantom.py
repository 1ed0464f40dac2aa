"""Anatomy of the synthetic non-contrast cardiac CT: thorax, lungs, bones, aortae, heart and coronary paths.

The anatomy is laid out in an *adult frame* (mm; x towards the patient's left, y posterior, z superior, origin
at the thorax centre at the height of the heart centre), then scaled by ``scale``, rotated in-plane and shifted
into the world frame of the image. Coronary lumens keep their real size (mm) at any scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

from s2cac.synth.render import Curve, Grid, ellipse_sd, ellipsoid_box, paint, soft

# Typical non-contrast CT values (HU) at 120 kVp.
HU = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -95.0,
    "muscle": 45.0,
    "blood": 38.0,
    "myocardium": 48.0,
    "pericardium": 25.0,
    "liver": 60.0,
    "csf": 12.0,
    "disc": 85.0,
    "marrow": 250.0,
    "cortex": 800.0,
    "cartilage": 110.0,
}

ARTERIES = ("LM", "LAD", "LCX", "RCA")
ARTERY_LABEL = {"LM": 1, "LAD": 2, "LCX": 3, "RCA": 4}
# Lumen radius (mm) at the start and end of each artery (real size, tapering).
LUMEN_RADIUS_MM = {"LM": (2.1, 2.0), "LAD": (1.8, 0.9), "LCX": (1.6, 0.9), "RCA": (1.9, 1.0)}


@dataclass
class Heart:
    """The heart ellipsoid in world mm: ``centre`` (3,), ``axes`` (3, 3) rows (apex, anterior, left), ``semi``."""

    centre: np.ndarray
    axes: np.ndarray
    semi: np.ndarray
    fat_mm: float

    def local(self, pts: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> heart-frame coordinates (..., 3), mm."""
        return (pts - self.centre) @ self.axes.T

    def surface(self, u: float, phi: float, out_mm: float = 0.0) -> np.ndarray:
        """World point on the heart surface at long-axis fraction ``u`` (-1 base .. 1 apex) and angle ``phi``
        (0 anterior, +pi/2 left, -pi/2 right), pushed ``out_mm`` outwards along the normal."""
        r = np.sqrt(max(1 - u * u, 0.0))
        q = self.semi * np.array([u, r * np.cos(phi), r * np.sin(phi)])
        n = q / self.semi**2
        n /= np.linalg.norm(n)
        return self.centre + (q + out_mm * n) @ self.axes


@dataclass
class Anatomy:
    """Everything later stages need to place calcium and distractors, and the clean anatomy image.

    Attributes:
        image: (z, y, x) float32 HU, anatomy only (no calcium, no metal, no noise).
        heart_region: (z, y, x) bool, the pericardial sac + aortic root + coronary surroundings ("inside the
            heart" for the threshold baseline and motion blur).
        heart: the heart ellipsoid.
        arteries: name -> centre line (world mm).
        radius: name -> lumen radius (mm) per centre-line point.
        root_centre: aortic root centre (world mm); ``root_radius`` mm.
        ostia: "left"/"right" -> world point on the root wall.
        ascending: centre line of the ascending aorta (world mm); ``aorta_radius`` mm.
        descending: centre line of the descending aorta; ``descending_radius`` mm.
        svc: centre line of the superior vena cava.
        scale: anatomy scale (world mm per adult mm).
    """

    image: np.ndarray
    heart_region: np.ndarray
    heart: Heart
    arteries: dict[str, Curve]
    radius: dict[str, np.ndarray]
    root_centre: np.ndarray
    root_radius: float
    ostia: dict[str, np.ndarray]
    ascending: Curve
    aorta_radius: float
    descending: Curve
    descending_radius: float
    svc: Curve
    scale: float


def _rot_z(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])


class _Frame:
    """Adult frame -> world: ``world = origin + scale * R @ adult``."""

    def __init__(self, origin: np.ndarray, scale: float, rot_deg: float) -> None:
        self.origin, self.scale, self.R = origin, scale, _rot_z(rot_deg)

    def world(self, adult: np.ndarray) -> np.ndarray:
        return self.origin + self.scale * (np.asarray(adult, dtype=float) @ self.R.T)

    def adult_plane(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """Adult-frame (x, y) of every (y, x) pixel centre, 2D float32 arrays (the rotation is in-plane)."""
        _, yw, xw = grid.axes
        dx = (xw[None, :] - self.origin[0]) / self.scale
        dy = (yw[:, None] - self.origin[1]) / self.scale
        ax = self.R[0, 0] * dx + self.R[1, 0] * dy
        ay = self.R[0, 1] * dx + self.R[1, 1] * dy
        return ax.astype(np.float32), ay.astype(np.float32)

    def adult_z(self, grid: Grid) -> np.ndarray:
        zw, _, _ = grid.axes
        return ((zw - self.origin[2]) / self.scale).astype(np.float32)


def _vertical_tube_sd(
    grid: Grid, centre_line: Curve, radius: float, z_lo: float = -np.inf, z_hi: float = np.inf
) -> np.ndarray:
    """Signed distance (mm) to a near-vertical tube, slice by slice (z, y, x); +inf outside ``[z_lo, z_hi]``."""
    zw, yw, xw = grid.axes
    pts = centre_line.points
    order = np.argsort(pts[:, 2])
    zs = pts[order, 2]
    cx = np.interp(zw, zs, pts[order, 0])
    cy = np.interp(zw, zs, pts[order, 1])
    d = np.sqrt((xw[None, None, :] - cx[:, None, None]) ** 2 + (yw[None, :, None] - cy[:, None, None]) ** 2)
    d = (d - radius).astype(np.float32)
    outside = (zw < max(z_lo, zs[0])) | (zw > min(z_hi, zs[-1]))
    d[outside] = np.inf
    return d


def build_anatomy(
    grid: Grid, rng: np.random.Generator, *, scale: float, jitter: float, rot_deg: float, shift_mm: float
) -> Anatomy:
    """Draw one patient's anatomy and render it (HU, float32) on ``grid``.

    Args:
        grid: image grid.
        rng: the case's random generator.
        scale: world mm per adult mm.
        jitter: relative size variation (+-).
        rot_deg: maximum in-plane rotation (+-), degrees.
        shift_mm: maximum shift of the anatomy (+-), adult mm.
    """
    nz, ny, nx = grid.shape
    zw, yw, xw = grid.axes
    centre_world = np.array([xw.mean(), yw.mean(), zw.mean()])
    # The field of view is centred on adult (12, 0, 8) (between heart and spine), plus a random shift.
    fov_centre_adult = np.array([10.0, 0.0, 8.0]) + rng.uniform(-shift_mm, shift_mm, 3) * np.array([1, 1, 0.6])
    rot = _rot_z(rng.uniform(-rot_deg, rot_deg))
    frame = _Frame(centre_world - scale * rot @ fov_centre_adult, scale, 0.0)
    frame.R = rot
    ax, ay = frame.adult_plane(grid)  # (ny, nx) adult mm
    az = frame.adult_z(grid)  # (nz,)
    edge = 0.8 / scale  # soft edge in adult mm (0.8 world mm)

    def j(v: float) -> float:
        return v * (1 + rng.uniform(-jitter, jitter))

    img = np.full(grid.shape, HU["air"], dtype=np.float32)

    def paint2d(sd_adult: np.ndarray, value: float) -> None:
        f = soft(sd_adult, edge)
        paint(img, f[None], value)

    # --- thorax (z-invariant outlines) ---------------------------------------------------------------------
    bw, bh = j(165), j(118)
    paint2d(ellipse_sd(ax, ay, bw, bh), HU["fat"])
    sub = rng.uniform(8, 20)  # subcutaneous fat, adult mm
    paint2d(ellipse_sd(ax, ay, bw - sub, bh - sub), HU["muscle"])
    cw, ch = bw - sub - 14, bh - sub - 12
    cavity = ellipse_sd(ax, ay - 2, cw, ch)
    paint2d(cavity, HU["lung"])
    # lung texture: vessels and a gentle gradient (dependent lung is denser)
    tex = gaussian_filter(rng.standard_normal(grid.shape).astype(np.float32), (0.6, 2.5, 2.5))
    tex /= tex.std() + 1e-6
    lung = np.clip(-cavity / 3, 0, 1)[None] * np.ones((nz, 1, 1), np.float32)
    img += lung * (25 * tex + 0.6 * np.clip(ay + 60, 0, None)[None])
    paint(img, lung * np.clip((tex - 2.0) * 2, 0, 1), -60.0)

    # mediastinal fat column from sternum to spine
    col = ellipse_sd(ax - 2, ay - 8, j(24), 64)
    paint2d(col, HU["fat"])

    # --- abdomen below the diaphragm domes (liver on the right) -------------------------------------------
    dome_r, dome_l = j(-38), j(-62)
    dome = np.where(ax < 0, dome_r, dome_l) - 0.004 * ((ax - np.where(ax < 0, -55, 50)) ** 2 + (ay - 5) ** 2)
    below = soft(az[:, None, None] - dome[None], 3.0 / scale) * soft(cavity + 2, edge)[None]
    paint(img, below, np.where(ax < 8, HU["liver"], HU["muscle"] - 5)[None])

    # --- heart ----------------------------------------------------------------------------------------------
    az_deg = rng.uniform(35, 55)  # long axis azimuth from the sagittal plane towards the left
    el_deg = rng.uniform(-35, -20)  # long axis elevation (apex points inferiorly)
    a, e = np.deg2rad(az_deg), np.deg2rad(el_deg)
    d = np.array([np.cos(e) * np.sin(a), -np.cos(e) * np.cos(a), np.sin(e)])
    d = frame.R @ d
    ant = frame.R @ np.array([0.0, -1.0, 0.0])
    v = ant - (ant @ d) * d
    v /= np.linalg.norm(v)
    w = np.cross(d, v)
    if (frame.R.T @ w)[0] < 0:  # +w must point to the patient's left
        w = -w
    axes = np.stack([d, v, w])
    hsize = 1 + rng.uniform(-jitter, jitter)
    semi = scale * hsize * np.array([66.0, 52.0, 46.0])
    heart_centre = frame.world([30 + rng.uniform(-6, 6), -25 + rng.uniform(-5, 5), 0.0])
    fat_mm = scale * rng.uniform(3.0, 9.0) + 1.5
    heart = Heart(heart_centre, axes, semi, fat_mm)

    # heart, sac and chambers: computed inside the bounding box of the pericardial sac only
    sac = np.full(grid.shape, np.inf, dtype=np.float32)
    hbox = grid.index_box(*ellipsoid_box(heart_centre, axes, semi + fat_mm + 3.0))
    if hbox is not None:
        cen = grid.box_centres(hbox).astype(np.float32)
        q = heart.local(cen)
        qs = [q[:, i].copy() for i in range(3)]
        bshape = tuple(sl.stop - sl.start for sl in hbox)
        del q, cen

        def ell_sd(centre_q: np.ndarray, s3: np.ndarray) -> np.ndarray:
            rel = [qs[i] - np.float32(centre_q[i]) for i in range(3)]
            rho = np.sqrt(sum((rel[i] / np.float32(s3[i])) ** 2 for i in range(3)))
            r = np.sqrt(sum(x * x for x in rel))
            return (r * (1 - 1 / np.maximum(rho, 1e-6))).reshape(bshape)

        zero = np.zeros(3)
        sac[hbox] = ell_sd(zero, semi + fat_mm)
        paint(img, soft(sac[hbox], 0.8), HU["pericardium"], hbox)
        paint(img, soft(sac[hbox] + 1.0, 0.8), HU["fat"], hbox)
        paint(img, soft(ell_sd(zero, semi), 0.8), HU["myocardium"], hbox)
        for off, s3 in (
            ((0.18, -0.1, 0.25), (0.62, 0.5, 0.45)),  # LV cavity
            ((0.0, 0.35, -0.35), (0.55, 0.45, 0.42)),  # RV cavity
            ((-0.72, -0.35, 0.1), (0.3, 0.45, 0.6)),  # atria
        ):
            paint(img, soft(ell_sd(semi * np.array(off), semi * np.array(s3)), 1.0), HU["blood"], hbox)

    # --- aortic root, ascending aorta, pulmonary trunk, SVC, descending aorta, esophagus -------------------
    r_ao = scale * j(14.0)
    root = heart.surface(-0.93, 0.25 + rng.uniform(-0.15, 0.15), out_mm=0.2 * r_ao)
    up = np.array([0.0, 0.0, 1.0])
    right_ant = frame.R @ np.array([-0.25, -0.35, 0.0])
    asc_ctrl = [root + up * scale * h + right_ant * scale * t for h, t in ((0, 0), (30, 6), (70, 9), (140, 8))]
    ascending = Curve.through(np.array(asc_ctrl), step_mm=1.0)
    pa_c = root + frame.R @ np.array([22.0, -16.0, 0.0]) * scale
    pulmonary = Curve.through(np.array([pa_c + up * scale * h for h in (8, 30, 55)]), step_mm=1.0)
    svc_c = root + frame.R @ np.array([-26.0, 6.0, 0.0]) * scale
    svc = Curve.through(np.array([svc_c + up * scale * h for h in (-14, 40, 150)]), step_mm=1.0)
    r_desc = scale * j(12.0)
    desc_xy = frame.world([22.0 + rng.uniform(-4, 4), 42.0 + rng.uniform(-4, 4), 0.0])
    descending = Curve.through(
        np.array([desc_xy + up * scale * h + frame.R @ np.array([h * 0.04, 0, 0]) * scale for h in (-150, 0, 150)]),
        step_mm=1.0,
    )
    eso_xy = frame.world([-3.0, 36.0, 0.0])
    esophagus = Curve.through(np.array([eso_xy + up * scale * h for h in (-150, 150)]), step_mm=1.0)

    tubes = (
        (ascending, r_ao, root[2], np.inf, HU["blood"]),
        (pulmonary, scale * j(13.0), root[2] + 3 * scale, np.inf, HU["blood"]),
        (svc, scale * 9.0, svc.points[0, 2], np.inf, HU["blood"]),
        (descending, r_desc, -np.inf, np.inf, HU["blood"]),
        (esophagus, scale * 7.0, -np.inf, np.inf, HU["muscle"]),
    )
    for curve, r, lo, hi, _ in tubes:  # mediastinal fat around every vessel
        paint(img, soft(_vertical_tube_sd(grid, curve, r + 4.5 * scale, lo, hi), 0.8), HU["fat"])
    for curve, r, lo, hi, val in tubes:
        paint(img, soft(_vertical_tube_sd(grid, curve, r, lo, hi), 0.8), val)
    root_sd = np.sqrt(
        (xw[None, None, :] - root[0]) ** 2 + (yw[None, :, None] - root[1]) ** 2 + (zw[:, None, None] - root[2]) ** 2
    ).astype(np.float32) - np.float32(r_ao)
    paint(img, soft(root_sd, 0.8), HU["blood"])
    if rng.random() < 0.5:  # a little air in the esophagus
        paint(img, soft(_vertical_tube_sd(grid, esophagus, scale * 2.0), 0.8), HU["air"])

    # --- coronary arteries ------------------------------------------------------------------------------------
    arteries, radius, ostia = _coronaries(heart, root, r_ao, rng)
    all_pts = np.concatenate([arteries[n].points for n in ARTERIES])
    all_r = np.concatenate([radius[n] for n in ARTERIES])
    lo, hi = all_pts.min(0) - 8, all_pts.max(0) + 8
    box = grid.index_box(lo, hi)
    cor_d = np.full(grid.shape, np.inf, dtype=np.float32)
    if box is not None:
        cent = grid.box_centres(box)
        dist, idx = cKDTree(all_pts).query(cent, distance_upper_bound=8.0)
        ok = np.isfinite(dist)
        sd = np.full(len(cent), np.inf, dtype=np.float32)
        sd[ok] = dist[ok] - all_r[idx[ok]]
        cor_d[box] = sd.reshape(tuple(s.stop - s.start for s in box))
    paint(img, soft(cor_d - 2.5, 0.8), HU["fat"])  # the fat of the grooves around each artery
    paint(img, soft(cor_d, 0.8), HU["blood"])

    # --- spine, ribs, sternum ---------------------------------------------------------------------------------
    _bones(img, ax, ay, az, cw, ch, edge, rng)

    heart_region = (sac < 2.0) | (root_sd < 3.0) | (cor_d < 4.0)
    # a heart ROI stays inside the thoracic cavity and in front of the spine (as a heart segmentation would)
    heart_region &= ((cavity < -1.0) & (ay < 38.0))[None]
    return Anatomy(
        image=img,
        heart_region=heart_region,
        heart=heart,
        arteries=arteries,
        radius=radius,
        root_centre=root,
        root_radius=r_ao,
        ostia=ostia,
        ascending=ascending,
        aorta_radius=r_ao,
        descending=descending,
        descending_radius=r_desc,
        svc=svc,
        scale=scale,
    )


def _drape(heart: Heart, pts: np.ndarray, clearance_mm: np.ndarray) -> np.ndarray:
    """Push points that lie inside the heart ellipsoid out to its surface + ``clearance_mm`` (per point)."""
    q = heart.local(pts)
    rho = np.sqrt(((q / heart.semi) ** 2).sum(1))
    mean_semi = np.linalg.norm(q, axis=1) / np.maximum(rho, 1e-6)
    target = 1 + clearance_mm / np.maximum(mean_semi, 1e-6)
    factor = np.where(rho < target, target / np.maximum(rho, 1e-6), 1.0)
    return heart.centre + (q * factor[:, None]) @ heart.axes


def _coronaries(
    heart: Heart, root: np.ndarray, r_ao: float, rng: np.random.Generator
) -> tuple[dict[str, Curve], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """LM/LAD/LCX from the left ostium, RCA from the right ostium, on the heart surface (world mm)."""
    av = -0.5 + rng.uniform(-0.06, 0.06)  # atrioventricular groove (long-axis fraction)
    phi_lad = 0.45 + rng.uniform(-0.15, 0.15)
    phi_bif = 0.85 + rng.uniform(-0.1, 0.1)
    out = 2.5

    def surf(u: float, phi: float) -> np.ndarray:
        return heart.surface(u, phi, out)

    bif = surf(av - 0.06, phi_bif)
    left_dir = bif - root
    left_dir[2] = 0.0
    left_dir /= np.linalg.norm(left_dir)
    ostium_l = root + r_ao * left_dir
    right_target = surf(av - 0.04, -0.75)
    right_dir = right_target - root
    right_dir[2] = 0.0
    right_dir /= np.linalg.norm(right_dir)
    ostium_r = root + r_ao * right_dir

    lm = [ostium_l, ostium_l + 0.5 * (bif - ostium_l) + np.array([0, 0, 1.0]), bif]
    lad = [bif] + [
        surf(u, phi_lad + 0.1 * np.sin(3 * u) + 0.05 * rng.standard_normal())
        for u in (av + 0.12, -0.15, 0.15, 0.45, 0.72, 0.9)
    ]
    phi_end = 2.4 + rng.uniform(-0.2, 0.3)
    lcx = [bif] + [surf(av + 0.02 * k, p) for k, p in enumerate(np.linspace(phi_bif + 0.35, phi_end, 4))]
    lcx.append(surf(av + 0.2, phi_end + 0.15))
    rca = [ostium_r, ostium_r + 0.5 * (right_target - ostium_r), right_target]
    rca += [surf(av + 0.01 * k, -p) for k, p in enumerate((1.3, 1.9, 2.5, 2.95))]
    rca += [surf(u, -np.pi + 0.05 * rng.standard_normal()) for u in (av + 0.15, -0.05, 0.3)]

    arteries, radius = {}, {}
    for name, ctrl in (("LM", lm), ("LAD", lad), ("LCX", lcx), ("RCA", rca)):
        curve = Curve.through(np.array(ctrl), step_mm=0.25)
        r0, r1 = LUMEN_RADIUS_MM[name]
        r = r0 + (r1 - r0) * curve.s / max(curve.length, 1e-6)
        if name != "LM":  # LM and the first millimetres of RCA leave the root; keep the rest on the surface
            keep_free = curve.s < (3.0 if name == "RCA" else 0.0)
            draped = _drape(heart, curve.points, r + 1.0)
            curve = Curve.from_points(np.where(keep_free[:, None], curve.points, draped))
        arteries[name] = curve
        radius[name] = r.astype(np.float32)
    return arteries, radius, {"left": ostium_l, "right": ostium_r}


def _bones(
    img: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    az: np.ndarray,
    cw: float,
    ch: float,
    edge: float,
    rng: np.random.Generator,
) -> None:
    """Spine (vertebral bodies, discs, posterior arch), ribs and sternum, painted in place (adult coordinates)."""
    nz = img.shape[0]
    # paraspinal muscles
    for sx in (-1, 1):
        paint(img, soft(ellipse_sd(ax - sx * 30, ay - 98, 24, 17), edge)[None], HU["muscle"])
    vb_y = 64 + rng.uniform(-4, 4)
    r_vb = 19 + rng.uniform(-2, 2)
    body = np.sqrt(ax**2 + (ay - vb_y) ** 2) - r_vb
    # vertebral bodies ~22 mm high, discs ~6 mm, phase random
    period, disc_h = 28.0, 6.0
    phase = rng.uniform(0, period)
    in_disc = (np.mod(az + phase, period) < disc_h).astype(np.float32)[:, None, None]
    paint(img, soft(body, edge)[None], HU["cortex"])
    marrow = HU["marrow"] + rng.uniform(-40, 40)
    paint(img, soft(body + 2.0, edge)[None] * (1 - in_disc), marrow)
    paint(img, soft(body, edge)[None] * in_disc, HU["disc"])
    canal = np.sqrt(ax**2 + (ay - vb_y - r_vb - 9) ** 2)
    arch = np.abs(canal - 11.5) - 3.0
    arch = np.where(ay > vb_y + r_vb - 2, arch, np.inf)
    paint(img, soft(arch, edge)[None], HU["cortex"] - 150)
    paint(img, soft(canal - 8.5, edge)[None], HU["csf"])
    spinous = ellipse_sd(ax, ay - (vb_y + r_vb + 30), 4, 9)
    paint(img, soft(spinous, edge)[None], HU["cortex"] - 200)

    # ribs: elliptical ring in the chest wall, sloping down anteriorly; cartilage joins them to the sternum
    ring = np.abs(ellipse_sd(ax, ay - 2, cw + 8, ch + 8))  # distance to the rib ring, adult mm
    theta = np.arctan2(ax, ay)  # 0 posterior, +-pi anterior
    frac = np.abs(theta) / np.pi
    spacing = 26.0 + rng.uniform(-3, 3)
    offset = rng.uniform(0, spacing)
    drop = 105.0 + rng.uniform(-10, 10)
    half_w, half_h = 3.5, 6.0
    z_lo, z_hi = float(az.min()) - drop - spacing, float(az.max()) + drop + spacing
    band = np.nonzero(ring < half_w + 2 * edge)  # only pixels near the rib ring can hold a rib
    ring_b, frac_b = ring[band], frac[band]
    z_slope = drop * frac_b**1.3
    is_rib = (frac_b < 0.8).astype(np.float32)
    cart = ((frac_b >= 0.8) & (frac_b < 0.93)).astype(np.float32)
    vals = img[:, band[0], band[1]]  # (nz, n_band)
    for z0 in np.arange(z_lo + offset, z_hi, spacing):
        zc = z0 - z_slope
        rows = np.nonzero((az >= zc.min() - half_h - 2 * edge) & (az <= zc.max() + half_h + 2 * edge))[0]
        if rows.size == 0:
            continue
        n = np.sqrt((ring_b / half_w)[None] ** 2 + ((az[rows, None] - zc[None]) / half_h) ** 2)
        sub = vals[rows]
        paint(sub, soft((n - 1) * half_w, edge) * is_rib, HU["cortex"])
        paint(sub, soft((n - 0.6) * half_w, edge) * is_rib, HU["marrow"])
        paint(sub, soft((n - 0.8) * half_w, edge) * cart, HU["cartilage"])
        vals[rows] = sub
    img[:, band[0], band[1]] = vals
    # sternum (anterior midline, in the chest wall in front of the cavity)
    st_y = -(ch + 2 + 6)
    st = ellipse_sd(ax, ay - st_y, 15 + rng.uniform(-2, 3), 6.5)
    paint(img, soft(st, edge)[None] * np.ones((nz, 1, 1), np.float32), HU["cortex"] - 100)
    paint(img, soft(st + 1.5, edge)[None] * np.ones((nz, 1, 1), np.float32), HU["marrow"] + 30)
