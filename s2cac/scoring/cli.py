"""``s2cac score``: Agatston, volume and mass of a calcium label map on a CT image, per label and in total."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2cac.cli import finite_float, non_negative_float, positive_float
from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU
from s2cac.scoring.files import score_files, write_scores


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``s2cac score``."""
    parser.add_argument("--image", required=True, type=Path, help="CT in HU: NIfTI/MHA/NRRD file or DICOM folder")
    parser.add_argument("--mask", required=True, type=Path, help="label map in the image's geometry (0 = background)")
    parser.add_argument("--out", type=Path, help="output file (CSV, or JSON with --json); default: stdout")
    parser.add_argument("--json", action="store_true", help="write JSON (scores plus the options used)")
    parser.add_argument("--threshold-hu", type=finite_float, default=CALCIUM_THRESHOLD_HU, help="calcium HU (130)")
    parser.add_argument("--connectivity", type=int, choices=(8, 4), default=8, help="2D lesion connectivity (8)")
    parser.add_argument(
        "--min-area-mm2", type=non_negative_float, default=1.0, help="drop lesions smaller than this (1.0 mm^2)"
    )
    parser.add_argument(
        "--mass-calibration", type=positive_float, metavar="CF", help="mg HA/cm^3 per HU; adds the mass_mg column"
    )
    parser.add_argument(
        "--slice-increment-mm",
        type=positive_float,
        help="distance between slices for the /3 mm scaling (default: z spacing)",
    )
    parser.add_argument(
        "--geometry-tol", type=non_negative_float, default=1e-3, help="mask/image geometry tolerance, mm (1e-3)"
    )


def run(args: argparse.Namespace) -> int:
    """Score the mask and write the table."""
    options = {
        "threshold_hu": args.threshold_hu,
        "connectivity": args.connectivity,
        "min_area_mm2": args.min_area_mm2,
        "mass_calibration": args.mass_calibration,
        "slice_increment_mm": args.slice_increment_mm,
    }
    if args.out is not None:
        for given, what in ((args.image, "--image"), (args.mask, "--mask")):
            if args.out.resolve() == given.resolve():
                raise ValueError(f"--out {args.out} is the {what} file: refusing to overwrite an input")
        if args.out.is_dir():
            raise ValueError(f"--out {args.out} is a folder; give a file name")
    result = score_files(args.image, args.mask, geometry_tol=args.geometry_tol, **options)
    meta = {"image": str(args.image), "mask": str(args.mask), "options": options}
    write_scores(result, args.out, as_json=args.json, meta=meta)
    return 0
