"""``s2cac splits``: labeled/unlabeled/negative/validation/test lists for one seed."""

from __future__ import annotations

import argparse

from s2cac.data.cases import load_case_sheet
from s2cac.data.splits import write_splits


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", required=True, help="case sheet (TSV; risk_category and negative used if present)")
    parser.add_argument("--out", required=True, help="output folder (splits_final.json, fold*/labeled*.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--labeled-ratios", type=float, nargs="+", default=[0.1, 0.2, 0.5, 1.0])


def run(args: argparse.Namespace) -> int:
    files = write_splits(
        load_case_sheet(args.cases),
        args.out,
        test_fraction=args.test_fraction,
        n_folds=args.n_folds,
        labeled_ratios=args.labeled_ratios,
        seed=args.seed,
        test_seed=args.test_seed,
    )
    print(f"wrote {len(files)} files to {args.out}")
    return 0
