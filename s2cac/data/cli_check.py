"""``s2cac check-cases``: validate a case sheet and every file it names."""

from __future__ import annotations

import argparse

from s2cac.data.cases import check_cases, load_case_sheet


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cases", help="case sheet (TSV with case_id, image, label)")


def run(args: argparse.Namespace) -> int:
    sheet = load_case_sheet(args.cases)
    checks = check_cases(sheet)
    for c in checks:
        print(
            f"{c.case_id}\tshape {c.shape_zyx}\tspacing {tuple(round(s, 3) for s in c.spacing_zyx)}\t"
            f"labels {list(c.label_values)}"
        )
    print(f"{len(checks)} cases OK: {args.cases}")
    return 0
