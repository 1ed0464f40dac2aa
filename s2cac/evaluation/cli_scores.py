"""``s2cac evaluate-scores``: predicted vs reference Agatston for score-only cases (no label maps).

Exit codes: 0 done; 1 done, but some cases had no (or a failed) prediction; 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=Path, required=True, help="case sheet with case_id and agatston (reference)")
    parser.add_argument("--scores", type=Path, required=True, help="scores.csv of s2cac predict on those cases")
    parser.add_argument("--out-dir", type=Path, required=True, help="writes per_case.csv and summary.json")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from s2cac.data.cases import load_case_sheet
    from s2cac.evaluation.score_only import compare_scores, write_comparison

    cases = load_case_sheet(args.cases)
    if not args.scores.is_file():
        raise FileNotFoundError(f"{args.scores}: scores table not found")
    try:
        predicted = pd.read_csv(args.scores, dtype={"case": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{args.scores}: not a readable CSV ({err})") from err
    try:
        per_case, summary = compare_scores(cases, predicted)
    except ValueError as err:
        raise ValueError(f"{args.cases} / {args.scores}: {err}") from err
    write_comparison(per_case, summary, args.out_dir)
    ag, risk = summary["agreement"]["agatston"], summary["risk"]
    print(
        f"{summary['n_cases']} cases -> {args.out_dir}: Agatston ICC(A,1) {ag['icc_a1']:.3f}, risk accuracy "
        f"{risk['accuracy']:.3f}, kappa {risk['kappa_linear']:.3f}; {summary['n_missing']} without a prediction"
    )
    return 1 if summary["n_missing"] else 0
