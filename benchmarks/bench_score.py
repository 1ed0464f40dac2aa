"""Benchmark of Agatston scoring: ours vs a per-slice scipy loop vs one pass over the bytes; and end to end.

Run: ``.venv/bin/python benchmarks/bench_score.py [--lesions 300] [--repeats 3] [--ext .nii.gz]``

1. In process (arrays already in memory), a 512 x 512 x 80 int16 volume with a few hundred lesions in a
   4-label mask: :func:`s2cac.scoring.score_mask` against an idiomatic per-slice, per-label
   ``scipy.ndimage.label`` + ``find_objects`` loop (same scores asserted) and against one pass over the
   volume's bytes (``np.count_nonzero(hu >= 130)``, the limit).
2. End to end: ``s2cac score`` in a subprocess against a subprocess that only reads the two files with
   SimpleITK (target: ratio <= 1.2).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from s2cac.scoring import score_mask

SHAPE = (80, 512, 512)
SPACING = (3.0, 0.4, 0.4)


def make_case(n_lesions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Soft-tissue noise with ``n_lesions`` blobs (1-3 slices, 130-1000 HU) labelled 1-4 in the mask."""
    rng = np.random.default_rng(seed)
    hu = rng.normal(40, 30, SHAPE).astype(np.int16)
    mask = np.zeros(SHAPE, np.uint8)
    for _ in range(n_lesions):
        z = rng.integers(0, SHAPE[0] - 3)
        y, x = rng.integers(100, 412, size=2)
        r = rng.integers(1, 6)
        depth = rng.integers(1, 4)
        yy, xx = np.ogrid[-r : r + 1, -r : r + 1]
        disk = yy**2 + xx**2 <= r * r + rng.integers(0, 3)
        sl = (slice(z, z + depth), slice(y - r, y + r + 1), slice(x - r, x + r + 1))
        peak = rng.integers(130, 1000)
        values = rng.integers(100, peak + 1, size=(depth, *disk.shape))
        hu[sl] = np.where(disk, values, hu[sl])
        mask[sl] = np.where(disk, rng.integers(1, 5), mask[sl])
    return hu, mask


def per_slice_loop(hu: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]) -> dict:
    """Idiomatic reference: per label (and the union), per slice ndimage.label, per lesion find_objects."""
    structure = ndimage.generate_binary_structure(2, 2)
    dz, dy, dx = spacing
    out = {}
    for lab in [*(int(v) for v in np.unique(mask) if v), "total"]:
        region = mask > 0 if lab == "total" else mask == lab
        score = volume = 0.0
        for z in range(hu.shape[0]):
            comps, _ = ndimage.label((hu[z] >= 130) & region[z], structure)
            for i, box in enumerate(ndimage.find_objects(comps), start=1):
                px = hu[z][box][comps[box] == i]
                if px.size * dy * dx < 1.0:
                    continue
                peak = px.max()
                weight = 1 if peak < 200 else 2 if peak < 300 else 3 if peak < 400 else 4
                score += px.size * dy * dx * weight
                volume += px.size * dz * dy * dx
        out[lab] = (score * dz / 3.0, volume)
    return out


def best_of(repeats: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesions", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ext", default=".nii.gz", help="file format of the end-to-end inputs (.nii.gz, .nii, .mha)")
    args = parser.parse_args()

    hu, mask = make_case(args.lesions)
    t_ours, ours = best_of(args.repeats, lambda: score_mask(hu, mask, SPACING))
    t_loop, ref = best_of(1, lambda: per_slice_loop(hu, mask, SPACING))
    t_pass, _ = best_of(args.repeats, lambda: np.count_nonzero(hu >= 130))
    for lab, row in [*ours.per_label.items(), ("total", ours.total)]:
        assert np.isclose(row.agatston, ref[lab][0]) and np.isclose(row.volume_mm3, ref[lab][1]), lab
    print(f"volume {SHAPE} int16, {args.lesions} blobs -> {ours.total.n_lesions} 2D lesions in the union")
    print(f"total Agatston {ours.total.agatston:.1f}, labels {sorted(ours.per_label)}: same scores as the loop")
    print(f"score_mask            {t_ours * 1e3:8.1f} ms")
    print(f"per-slice scipy loop  {t_loop * 1e3:8.1f} ms   ratio loop/ours   {t_loop / t_ours:6.1f}x")
    print(f"one pass (hu >= 130)  {t_pass * 1e3:8.1f} ms   ratio ours/pass   {t_ours / t_pass:6.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        image, labels = Path(tmp) / f"ct{args.ext}", Path(tmp) / f"mask{args.ext}"
        for arr, path in ((hu, image), (mask, labels)):
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing(tuple(reversed(SPACING)))
            sitk.WriteImage(img, str(path))
        read_only = [
            sys.executable,
            "-c",
            f"import SimpleITK as s; s.ReadImage({str(image)!r}); s.ReadImage({str(labels)!r})",
        ]
        score_cmd = [sys.executable, "-m", "s2cac", "score", "--image", str(image), "--mask", str(labels)]
        score_cmd += ["--out", str(Path(tmp) / "scores.csv")]
        read_times, cli_times = [], []
        for _ in range(max(args.repeats, 5)):  # interleaved, so that machine load hits both alike
            for cmd, times in ((read_only, read_times), (score_cmd, cli_times)):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True)
                times.append(time.perf_counter() - t0)
    r_med, c_med = float(np.median(read_times)), float(np.median(cli_times))
    print(
        f"end to end ({args.ext}, median of {len(read_times)} interleaved runs): read only {r_med:.3f} s, "
        f"s2cac score {c_med:.3f} s, ratio {c_med / r_med:.2f} (min-based {min(cli_times) / min(read_times):.2f}; "
        "target <= 1.2)"
    )


if __name__ == "__main__":
    main()
