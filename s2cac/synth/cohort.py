"""One synthetic scan (:func:`synthesize_case`) and the whole cohort on disk (:func:`generate_cohort`).

Label definition: a voxel is coronary calcium of artery A (label 1 LM, 2 LAD, 3 LCX, 4 RCA) when, after
partial volume, motion and scanner blur, (a) A's plaques still cover >= 5 % of it (``SUPPORT_MIN``), (b) its
final HU (with noise) is >= 130 and (c) the image without any plaque is < 100 HU there (no bone, distractor
or metal under it). The label is therefore the >= 130 HU part of each plaque, blooming included, as an
annotator who grows lesions from 130 HU would draw it; ``label > 0`` is the binary calcium label.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from s2cac.atomic import atomic_write_text
from s2cac.inference.scan_qc import SYNTHETIC_MARK
from s2cac.io.images import Geometry, write_image
from s2cac.scoring import CALCIUM_THRESHOLD_HU, risk_category, score_mask
from s2cac.synth.config import SynthConfig
from s2cac.synth.distractors import Distractor, Tube, aortic_valve, aortic_wall, mitral_annulus, pacing_lead, stent
from s2cac.synth.phantom import ARTERIES, ARTERY_LABEL, Anatomy, build_anatomy
from s2cac.synth.plaques import Ellipsoid, Plaque, draw_plaques
from s2cac.synth.render import Grid, ellipsoid_box, ellipsoid_inside, half_diagonal, supersampled, tube_box, tube_inside

THRESHOLD_HU = CALCIUM_THRESHOLD_HU  # labels are the calcium an Agatston reader counts
SUPPORT_MIN = 0.05  # share of a voxel a plaque must still cover (after blur) to be labelled
BACKGROUND_MAX_HU = 100.0  # plaque-free image value above which a voxel is never labelled
PSF_SIGMA_MM = 0.35  # in-plane scanner blur (Gaussian sigma)
NOISE_CORRELATION_PX = 0.6  # in-plane correlation of the noise (Gaussian sigma, pixels)
REFERENCE_FOV_MM = 250.0  # adult field of view that anatomy_scale=None maps onto the image
HU_MIN, HU_MAX = -1024, 3071


@dataclass
class Case:
    """One synthetic scan.

    Attributes:
        case_id: e.g. ``syn_000``.
        hu: (z, y, x) int16 HU.
        label: (z, y, x) uint8, 0 background, 1 LM, 2 LAD, 3 LCX, 4 RCA.
        heart_region: (z, y, x) bool, pericardial sac + aortic root + coronary surroundings.
        grid: geometry (spacing z, y, x mm; origin x, y, z mm; identity direction).
        anatomy: the patient's anatomy (centre lines etc.; ``anatomy.image`` is dropped to save memory).
        plaques: the calcified plaques (empty for a negative scan).
        distractors: the non-coronary dense objects.
        info: scalars for the case sheet (noise, motion, scale, ...).
    """

    case_id: str
    hu: np.ndarray
    label: np.ndarray
    heart_region: np.ndarray
    grid: Grid
    anatomy: Anatomy
    plaques: list[Plaque]
    distractors: list[Distractor]
    info: dict = field(default_factory=dict)


def _occupancy(grid: Grid, shape: Ellipsoid | Tube):
    """Supersampled (box, fraction) of an ellipsoid or a tube; None if it misses the grid."""
    if isinstance(shape, Ellipsoid):
        lo, hi = ellipsoid_box(shape.centre, shape.axes, shape.semi)
        return supersampled(grid, lo, hi, ellipsoid_inside(shape.centre, shape.axes, shape.semi))
    lo, hi = tube_box(shape.curve, shape.radius_mm)
    near = tube_inside(shape.curve, shape.radius_mm, shape.inner_mm, margin_mm=half_diagonal(grid))
    return supersampled(grid, lo, hi, tube_inside(shape.curve, shape.radius_mm, shape.inner_mm), near=near)


def _composite(img: np.ndarray, box, frac: np.ndarray, hu: float) -> None:
    """``img = img * (1 - f) + hu * f`` in ``box``, but never darker than before (calcium over anything)."""
    sub = img[box]
    np.maximum(sub, sub * (1 - frac) + hu * frac, out=sub)


def _blur(vol: np.ndarray, sigma_zyx: tuple[float, float, float]) -> np.ndarray:
    if not any(sigma_zyx):
        return vol
    return gaussian_filter(vol, sigma_zyx, mode="nearest", truncate=3.0)


def _case_grid(cfg: SynthConfig, rng: np.random.Generator) -> Grid:
    nz, ny, nx = cfg.shape_zyx
    sp = float(np.round(rng.uniform(*cfg.spacing_xy_mm), 4))
    sz = float(cfg.spacing_z_mm)
    centre = np.array([rng.uniform(-25, 25), rng.uniform(-40, 0), rng.uniform(-260, -140)])
    origin = centre - 0.5 * np.array([(nx - 1) * sp, (ny - 1) * sp, (nz - 1) * sz])
    return Grid((nz, ny, nx), (sz, sp, sp), tuple(float(np.round(o, 3)) for o in origin))


def _finish(
    img: np.ndarray,
    grid: Grid,
    anatomy: Anatomy,
    plaques: list[Plaque],
    motion_sigma: float,
    motion_angle: float,
    noise_sigma: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Add plaques to the plaque-free image, blur (motion, scanner), add noise; return (hu int16, label uint8)."""
    img = img.copy()
    background = img.copy()
    per_artery: dict[str, np.ndarray] = {}
    for p in plaques:
        occ_a = per_artery.setdefault(p.artery, np.zeros(grid.shape, np.float32))
        for part in p.parts:
            occ = _occupancy(grid, part)
            if occ is None:
                continue
            box, frac = occ
            _composite(img, box, frac, p.hu)
            np.maximum(occ_a[box], frac, out=occ_a[box])
    stacks = [img, background, *per_artery.values()]
    if motion_sigma > 0:  # cardiac motion: directional blur inside the heart region only
        s_vox = (
            0.0,
            motion_sigma * abs(np.sin(motion_angle)) / grid.spacing[1],
            motion_sigma * abs(np.cos(motion_angle)) / grid.spacing[2],
        )
        weight = _blur(anatomy.heart_region.astype(np.float32), (0.5, 4.0, 4.0))
        stacks = [v + weight * (_blur(v, s_vox) - v) for v in stacks]
    psf = (0.0, PSF_SIGMA_MM / grid.spacing[1], PSF_SIGMA_MM / grid.spacing[2])
    stacks = [_blur(v, psf) for v in stacks]
    img, background, occs = stacks[0], stacks[1], stacks[2:]
    # spatially correlated Gaussian noise with standard deviation noise_sigma (HU)
    c = NOISE_CORRELATION_PX
    delta = np.zeros((1, 9, 9), np.float32)
    delta[0, 4, 4] = 1
    gain = float(np.sqrt((gaussian_filter(delta, (0, c, c), truncate=3.0) ** 2).sum()))
    noise = gaussian_filter(rng.standard_normal(grid.shape).astype(np.float32), (0, c, c), truncate=3.0)
    hu = np.clip(np.rint(img + noise * (noise_sigma / gain)), HU_MIN, HU_MAX).astype(np.int16)
    label = np.zeros(grid.shape, np.uint8)
    if per_artery:
        occ_stack = np.stack(occs)
        best = occ_stack.argmax(0)
        support = occ_stack.max(0) >= SUPPORT_MIN
        codes = np.array([ARTERY_LABEL[a] for a in per_artery], np.uint8)
        keep = support & (hu >= THRESHOLD_HU) & (background < BACKGROUND_MAX_HU)
        label[keep] = codes[best[keep]]
    return hu, label


def _case_anatomy(cfg: SynthConfig, index: int) -> tuple[np.random.Generator, Grid, Anatomy, float]:
    """The first draws of case ``index``: (its random generator, grid, anatomy, anatomy scale). Shared by
    :func:`synthesize_case` and :func:`heart_region`, so both see the same anatomy."""
    rng = np.random.default_rng([cfg.seed, index])
    grid = _case_grid(cfg, rng)
    fov = grid.shape[2] * grid.spacing[2]
    scale = cfg.anatomy_scale if cfg.anatomy_scale is not None else fov / REFERENCE_FOV_MM
    anatomy = build_anatomy(
        grid, rng, scale=scale, jitter=cfg.size_jitter, rot_deg=cfg.rotation_deg, shift_mm=cfg.shift_mm
    )
    return rng, grid, anatomy, scale


def heart_region(cfg: SynthConfig, index: int) -> tuple[np.ndarray, Grid]:
    """The heart region of case ``index`` (pericardial sac + aortic root + coronary surroundings, (z, y, x) bool)
    and its grid, without drawing the rest of the case (about a second). Equal to
    ``synthesize_case(cfg, index).heart_region``."""
    _, grid, anatomy, _ = _case_anatomy(cfg, index)
    return anatomy.heart_region, grid


def synthesize_case(cfg: SynthConfig, index: int) -> Case:
    """Generate case ``index`` of the cohort ``cfg`` from ``numpy.random.default_rng([cfg.seed, index])``."""
    negative = cfg.is_negative(index)
    rng, grid, anatomy, scale = _case_anatomy(cfg, index)
    img = anatomy.image
    anatomy.image = None  # type: ignore[assignment]
    zw = grid.axes[0]

    # --- distractors -------------------------------------------------------------------------------------------
    distractors: list[Distractor] = []
    avoid = []
    if rng.random() < cfg.aortic_calc_probability:
        distractors += aortic_wall(anatomy, rng, (float(zw[0]), float(zw[-1])))
    if rng.random() < cfg.aortic_valve_probability:
        distractors += aortic_valve(anatomy, rng)
    if rng.random() < cfg.mitral_probability:
        distractors += mitral_annulus(anatomy, rng)
    if rng.random() < cfg.stent_probability:
        st, seg = stent(anatomy, rng)
        distractors.append(st)
        avoid.append(seg)
    if rng.random() < cfg.lead_probability:
        distractors.append(pacing_lead(anatomy, rng, float(zw[-1])))
    for d in distractors:
        occ = _occupancy(grid, d.shape)
        if occ is not None:
            _composite(img, occ[0], occ[1], d.hu)

    # --- plaques, blur, noise, labels: redrawn (more plaques) in the rare case that a positive scan scores 0 ---
    info: dict = {"negative": negative, "spacing_xy_mm": grid.spacing[2], "anatomy_scale": round(scale, 4)}
    motion_sigma = float(rng.uniform(*cfg.motion_sigma_mm)) if rng.random() < cfg.motion_probability else 0.0
    motion_angle = rng.uniform(0, np.pi)
    noise_sigma = float(rng.uniform(*cfg.noise_sigma_hu))
    lo, hi = cfg.plaques_per_case
    burden = rng.random()  # the patient's calcium burden drives both the number and the size of plaques
    n = 0 if negative else lo + int(np.floor((hi - lo + 1) * burden**1.5))
    for attempt in range(10):
        plaques: list[Plaque] = []
        if n:
            plaques = draw_plaques(
                anatomy,
                rng,
                n + attempt,
                hu_range=tuple(cfg.plaque_hu),
                length_range=tuple(cfg.plaque_length_mm),
                thickness_range=tuple(cfg.plaque_thickness_mm),
                avoid=avoid,
                size_factor=0.7 + 0.9 * burden,
            )
        hu, label = _finish(img, grid, anatomy, plaques, motion_sigma, motion_angle, noise_sigma, rng)
        score = score_mask(hu, label, grid.spacing, threshold_hu=THRESHOLD_HU)
        if negative or score.total.agatston > 0:
            break
    else:  # pragma: no cover - ten redraws with a >= 3 mm, >= 350 HU plaque each never scoring is a bug
        raise RuntimeError(f"case {index}: could not draw a positive scan with Agatston > 0")
    info.update(
        motion_sigma_mm=round(motion_sigma, 3),
        noise_sigma_hu=round(noise_sigma, 2),
        agatston=round(score.total.agatston, 2),
        volume_mm3=round(score.total.volume_mm3, 2),
        n_lesions=score.total.n_lesions,
        risk_category=risk_category(score.total.agatston),
        label_voxels=int(np.count_nonzero(label)),
    )
    kinds = [d.kind for d in distractors]
    info.update(
        n_plaques=len(plaques),
        arteries_with_plaque=",".join(a for a in ARTERIES if any(p.artery == a for p in plaques)),
        has_stent=any(k == "stent" for k in kinds),
        has_lead=any(k == "lead" for k in kinds),
        n_aortic_calcs=kinds.count("aortic_wall"),
        n_valve_calcs=kinds.count("aortic_valve"),
        has_mitral_calc=any(k == "mitral" for k in kinds),
    )
    return Case(cfg.case_id(index), hu, label, anatomy.heart_region, grid, anatomy, plaques, distractors, info)


# --- the cohort on disk ---------------------------------------------------------------------------------------

CASE_COLUMNS = ("case_id", "image", "label", "agatston", "risk_category", "negative")


def _atomic_image(array: np.ndarray, grid: Grid, path: Path) -> None:
    """Write a (z, y, x) array as NIfTI with ``grid``'s geometry (axial), through a temporary file and a rename."""
    geometry = Geometry(
        tuple(grid.spacing), tuple(grid.origin), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), array.shape
    )
    # the NIfTI descrip carries the mark that lets predict's scan QC recognise the synthetic cohort
    write_image(array, geometry, path, notes=SYNTHETIC_MARK)


def write_heart_regions(out_dir: str | Path, cfg: SynthConfig, indices: list[int] | None = None) -> list[Path]:
    """Write the heart region of cases ``indices`` (default: all) as ``<out_dir>/<case_id>.nii.gz`` (uint8, 1 =
    inside), on each case's grid: the region of the threshold-only reference method (s2cac.paper.threshold)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(cfg.n_cases) if indices is None else indices:
        region, grid = heart_region(cfg, i)
        written.append(out_dir / f"{cfg.case_id(i)}.nii.gz")
        _atomic_image(region.astype(np.uint8), grid, written[-1])
    return written


def threshold_baseline(hu: np.ndarray, label: np.ndarray, heart_region: np.ndarray, voxel_mm3: float) -> dict:
    """The naive baseline "every voxel >= 130 HU inside the heart region is calcium" against ``label > 0``.

    Returns:
        ``dice`` (NaN when the label is empty: reported separately), the voxel counts, and the false-positive
        volume in mm^3.
    """
    pred = (hu >= THRESHOLD_HU) & heart_region
    ref = label > 0
    inter = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    dice = float("nan") if n_ref == 0 else 2.0 * inter / (n_pred + n_ref)
    return {
        "baseline_dice": dice,
        "baseline_voxels": n_pred,
        "label_voxels_in_region": inter,
        "baseline_fp_mm3": round((n_pred - inter) * voxel_mm3, 2),
    }


def _overview_slices(case: Case) -> list[int]:
    """Up to two slices worth showing: most calcium label, most non-coronary >= 130 HU inside the heart."""
    zs = []
    lab = (case.label > 0).sum(axis=(1, 2))
    if lab.any():
        zs.append(int(np.argmax(lab)))
    other = ((case.hu >= THRESHOLD_HU) & case.heart_region & (case.label == 0)).sum(axis=(1, 2))
    if other.any():
        z = int(np.argmax(other))
        if z not in zs:
            zs.append(z)
    if not zs:
        zs.append(case.hu.shape[0] // 2)
    return zs


def _make_case(cfg: SynthConfig, index: int, out_dir: Path) -> dict:
    """Generate case ``index``, write its image and label, return its case-sheet row (worker function)."""
    case = synthesize_case(cfg, index)
    _atomic_image(case.hu, case.grid, out_dir / "images" / f"{case.case_id}.nii.gz")
    _atomic_image(case.label, case.grid, out_dir / "labels" / f"{case.case_id}.nii.gz")
    voxel = float(np.prod(case.grid.spacing))
    info = dict(case.info)
    negative = info.pop("negative")
    row = {
        "case_id": case.case_id,
        "image": f"images/{case.case_id}.nii.gz",
        "label": f"labels/{case.case_id}.nii.gz",
        "agatston": info.pop("agatston"),
        "risk_category": info.pop("risk_category"),
        "negative": "yes" if negative else "no",
        **info,
        **threshold_baseline(case.hu, case.label, case.heart_region, voxel),
        "_overview_slices": _overview_slices(case),
    }
    return row


def _progress(done: int, total: int, row: dict, enabled: bool) -> None:
    if enabled:
        print(
            f"[synth] {done}/{total} {row['case_id']}: agatston {row['agatston']:.1f} ({row['risk_category']}), "
            f"negative {row['negative']}, plaques {row['n_plaques']}",
            file=sys.stderr,
            flush=True,
        )


def generate_cohort(out_dir: str | Path, cfg: SynthConfig, *, n_jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Generate the synthetic cohort into ``out_dir``.

    Writes ``images/<case_id>.nii.gz`` (int16 HU), ``labels/<case_id>.nii.gz`` (uint8, 0 background, 1 LM,
    2 LAD, 3 LCX, 4 RCA), ``cases.tsv`` (paths relative to ``out_dir``), ``threshold_baseline.tsv`` and
    ``overview.png``; every file through a temporary name and a rename. Stale ``<case_prefix>NNN.nii.gz``
    files of an earlier, larger cohort are removed from images/ and labels/.

    Args:
        out_dir: output folder (created).
        cfg: generator options.
        n_jobs: worker processes (1 = in this process). The output does not depend on it.
        progress: print one line per finished case to stderr.

    Returns:
        The case table (one row per case, as written to ``cases.tsv``).
    """
    from s2cac.synth.overview import write_overview

    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an integer >= 1, got {n_jobs!r}")
    out_dir = Path(out_dir)
    for sub in ("images", "labels"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    n = cfg.n_cases
    rows: list[dict | None] = [None] * n
    if n_jobs == 1 or n == 1:
        for i in range(n):
            rows[i] = _make_case(cfg, i, out_dir)
            _progress(i + 1, n, rows[i], progress)
    else:
        with ProcessPoolExecutor(max_workers=min(n_jobs, n)) as pool:
            futures = {pool.submit(_make_case, cfg, i, out_dir): i for i in range(n)}
            from concurrent.futures import as_completed

            for done, fut in enumerate(as_completed(futures), start=1):
                i = futures[fut]
                rows[i] = fut.result()
                _progress(done, n, rows[i], progress)
    keep = {cfg.case_id(i) for i in range(n)}
    pattern = f"{cfg.case_prefix}[0-9]*.nii.gz"
    for sub in ("images", "labels"):
        for stale in (out_dir / sub).glob(pattern):
            if stale.name[: -len(".nii.gz")] not in keep and stale.name[len(cfg.case_prefix) : -7].isdigit():
                stale.unlink()
    slices = {r["case_id"]: r.pop("_overview_slices") for r in rows}
    table = pd.DataFrame(rows)
    sheet = table.drop(columns=["baseline_voxels", "label_voxels_in_region", "baseline_fp_mm3"])
    atomic_write_text(out_dir / "cases.tsv", sheet.to_csv(sep="\t", index=False, lineterminator="\n"))
    _write_baseline(out_dir / "threshold_baseline.tsv", table)
    write_overview(out_dir / "overview.png", out_dir, table, slices, cfg.overview_cases)
    if progress:
        pos = table.loc[table["negative"] == "no", "baseline_dice"]
        print(
            f"[synth] wrote {n} cases to {out_dir}; threshold baseline (>= 130 HU in the heart) mean Dice "
            f"{pos.mean():.3f} over {len(pos)} positive cases",
            file=sys.stderr,
        )
    return sheet


def _write_baseline(path: Path, table: pd.DataFrame) -> None:
    """Per-case baseline rows, then summary comment lines (``#``) with the mean Dice (positives) and the false
    positives of the negatives (read with ``pandas.read_csv(path, sep="\\t", comment="#")``)."""
    cols = [
        "case_id",
        "negative",
        "label_voxels",
        "baseline_voxels",
        "label_voxels_in_region",
        "baseline_dice",
        "baseline_fp_mm3",
    ]
    per = table[cols].copy()
    per["baseline_dice"] = per["baseline_dice"].map(lambda v: "" if np.isnan(v) else f"{v:.4f}")
    pos = table.loc[table["negative"] == "no", "baseline_dice"].astype(float)
    neg = table.loc[table["negative"] == "yes", "baseline_fp_mm3"].astype(float)
    lines = [
        "# threshold baseline: every voxel >= 130 HU inside the heart region (pericardial sac, aortic root,",
        "# coronary surroundings) called calcium, compared with label > 0. Dice over positive scans only;",
        "# negative scans (empty label) are summarised by their false-positive volume.",
        f"# positives: n={len(pos)} mean_dice={pos.mean():.4f} median_dice={pos.median():.4f} "
        f"min={pos.min():.4f} max={pos.max():.4f}"
        if len(pos)
        else "# positives: n=0",
        f"# negatives: n={len(neg)} mean_fp_mm3={neg.mean():.2f} with_fp={(neg > 0).sum()}"
        if len(neg)
        else "# negatives: n=0",
    ]
    text = "\n".join(lines) + "\n" + per.to_csv(sep="\t", index=False, lineterminator="\n")
    atomic_write_text(path, text)
