"""``s2cac evaluate``: segmentation and clinical agreement metrics of predicted vs reference calcium masks."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2cac.cli import CommandError, finite_float, non_negative_float, positive_float
from s2cac.evaluation.options import LESION_CONNECTIVITIES, EvaluationOptions

_DEFAULT = EvaluationOptions()  # the one source of the defaults shown and used here


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``s2cac evaluate``."""
    src = parser.add_argument_group("cases (a case sheet, or three folders)")
    src.add_argument("--cases", type=Path, help="case sheet TSV: case_id, image, label[, prediction]")
    src.add_argument("--images", type=Path, help="folder of CT images (<case>.nii.gz or <case>_0000.nii.gz)")
    src.add_argument("--ref", type=Path, help="folder of reference masks (<case>.nii.gz); names the cases")
    src.add_argument("--pred", type=Path, help="folder of predicted masks (<case>.nii.gz or <case>_cac.nii.gz)")
    parser.add_argument("--out-dir", type=Path, required=True, help="writes per_case.csv, summary.json/.csv, figures/")
    parser.add_argument(
        "--threshold-hu", type=finite_float, default=_DEFAULT.threshold_hu, help="calcium HU (%(default)g)"
    )
    parser.add_argument(
        "--connectivity",
        type=int,
        choices=(8, 4),
        default=_DEFAULT.connectivity,
        help="2D Agatston lesions (%(default)s)",
    )
    parser.add_argument(
        "--min-area-mm2",
        type=non_negative_float,
        default=_DEFAULT.min_area_mm2,
        help="Agatston min lesion area, mm^2 (%(default)g)",
    )
    parser.add_argument("--mass-calibration", type=positive_float, metavar="CF", help="mg HA/cm^3 per HU; adds mass")
    parser.add_argument(
        "--lesion-connectivity",
        type=int,
        choices=LESION_CONNECTIVITIES,
        default=_DEFAULT.lesion_connectivity,
        help="3D lesions (%(default)s)",
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for 95%% CIs (2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")


def run(args: argparse.Namespace) -> int:
    """Find the cases, evaluate them and write the outputs."""
    from s2cac.evaluation.run import cases_from_folders, cases_from_sheet, evaluate

    if args.cases is not None:
        cases = cases_from_sheet(args.cases, args.pred)
    elif args.images and args.ref and args.pred:
        cases = cases_from_folders(args.images, args.ref, args.pred)
    else:
        raise CommandError("give --cases SHEET [--pred DIR], or all of --images DIR --ref DIR --pred DIR")
    if args.n_boot < 1:
        raise CommandError(f"--n-boot must be >= 1, got {args.n_boot}")
    options = EvaluationOptions(
        threshold_hu=args.threshold_hu,
        connectivity=args.connectivity,
        min_area_mm2=args.min_area_mm2,
        mass_calibration=args.mass_calibration,
        lesion_connectivity=args.lesion_connectivity,
    )
    summary = evaluate(cases, args.out_dir, options, n_boot=args.n_boot, seed=args.seed, figures=not args.no_figures)
    agreement = summary["agreement"]["agatston"]
    print(
        f"{summary['n_cases']} cases -> {args.out_dir}: Agatston ICC(A,1) {agreement['icc_a1']:.3f}, "
        f"risk accuracy {summary['risk']['accuracy']:.3f}, linear kappa {summary['risk']['kappa_linear']:.3f}"
    )
    return 0
