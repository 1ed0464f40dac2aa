"""``s2cac predict``: calcium masks, Agatston scores and QC pictures for one's own CT scans."""

from __future__ import annotations

import argparse
import re

from s2cac.cli import CommandError, finite_float, open_unit_float, positive_float
from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
#: Patches above this many voxels are refused up front (the network's activations would need >100 GB).
MAX_PATCH_VOXELS = 64 * 512 * 512


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``s2cac predict``."""
    parser.add_argument("--model", required=True, help="model folder (from training) or packaged model file")
    parser.add_argument(
        "--input", required=True, help="an image file, a folder of NIfTI/MHA/NRRD files, or a folder of DICOM "
        "series (one series per subfolder)"
    )  # fmt: skip
    parser.add_argument(
        "--output", required=True, help="output folder (masks, scores.csv, qc/); predicting into a folder that "
        "already holds results merges scores.csv (one row per case, this run's row wins) and replaces only the "
        "files of the cases predicted again"
    )  # fmt: skip
    parser.add_argument(
        "--patch-size", type=int, nargs=3, metavar=("Z", "Y", "X"),
        help="sliding-window patch in voxels at the model's spacing (default: the training patch); "
        "Y and X must be divisible by the network's in-plane stride (16)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--step", type=positive_float, default=0.5, help="sliding-window step, fraction of the patch")
    parser.add_argument("--tta", action="store_true", help="mirroring test-time augmentation (8x slower)")
    parser.add_argument(
        "--threshold-hu",
        type=finite_float,
        default=CALCIUM_THRESHOLD_HU,
        help="calcium voxels below this HU are removed (default 130)",
    )
    parser.add_argument(
        "--calcium-probability", type=open_unit_float, default=0.5, metavar="P",
        help="the network's decision threshold: calcium when its calcium probability exceeds P (default 0.5); "
        "higher = fewer false positives, lower = more sensitive",
    )  # fmt: skip
    parser.add_argument(
        "--decision", choices=("lesion", "voxel"), default="lesion",
        help="lesion (default): each candidate lesion (3D connected voxels >= --threshold-hu) is calcium as a "
        "whole when its mean calcium probability exceeds P; voxel: each voxel on its own (the network's argmax)",
    )  # fmt: skip
    parser.add_argument(
        "--mass-calibration", type=positive_float, default=None, metavar="CF",
        help="calibration factor (mg HA/cm^3 per HU) for the mass score; without it mass_mg is empty",
    )  # fmt: skip
    parser.add_argument("--no-qc", action="store_true", help="do not write qc/<case>.png pictures")
    parser.add_argument(
        "--checkpoint", default=None, help="model folders only: best, final, or a checkpoint file (a name inside "
        "the model folder or a path); default: checkpoint_best.pth, else checkpoint_final.pth (teacher weights)"
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Predict every case; exit code 0 if all succeeded, 1 if any case failed."""
    import sys

    from s2cac.inference.batch import PredictOptions, predict_path
    from s2cac.inference.model_io import load_model

    _check_options(args)
    options = PredictOptions(  # checks threshold, calibration and step
        patch_size=tuple(args.patch_size) if args.patch_size else None,
        device=args.device,
        step=args.step,
        tta=args.tta,
        threshold_hu=args.threshold_hu,
        calcium_probability=args.calcium_probability,
        decision=args.decision,
        qc=not args.no_qc,
        mass_calibration=args.mass_calibration,
    )
    model = load_model(args.model, args.checkpoint)
    results = predict_path(model, args.input, args.output, options)
    failed = [r.case for r in results if r.status != "ok"]
    print(
        f"s2cac predict: {len(results) - len(failed)}/{len(results)} case(s) done; scores in {args.output}/scores.csv"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad options before the model is loaded or anything is written."""
    from pathlib import Path

    if not _DEVICE.match(args.device):
        raise CommandError(f"--device {args.device!r}: use auto, cpu, cuda or cuda:N (e.g. cuda:0)")
    if args.patch_size is not None:
        z, y, x = args.patch_size
        if min(args.patch_size) < 1:
            raise CommandError(f"--patch-size {z} {y} {x}: every size must be >= 1 voxel")
        if y % 16 or x % 16:
            raise CommandError(f"--patch-size {z} {y} {x}: Y and X must be divisible by 16 (the in-plane stride)")
        if z * y * x > MAX_PATCH_VOXELS:
            raise CommandError(
                f"--patch-size {z} {y} {x}: {z * y * x:,} voxels is far beyond any GPU's memory "
                f"(at most {MAX_PATCH_VOXELS:,}); the training patch (the default) is usually best"
            )
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"--output {output}: exists and is not a folder")
