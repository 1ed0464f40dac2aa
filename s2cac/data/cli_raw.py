"""``s2cac nnunet-raw``: case sheet -> nnU-Net v2 raw dataset with HU-windowed images."""

from __future__ import annotations

import argparse

from s2cac.data.nnunet_raw import write_raw_dataset
from s2cac.hu import HUWindow


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", required=True, help="case sheet (TSV)")
    parser.add_argument("--raw-root", required=True, help="folder that will hold DatasetXXX_NAME")
    parser.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    parser.add_argument("--name", required=True, help="dataset name (letters, digits, _ or -)")
    default = HUWindow()  # the one source of the method's window
    parser.add_argument("--window-level", type=float, default=default.level, help="HU window level (130)")
    parser.add_argument("--window-width", type=float, default=default.width, help="HU window width (850)")
    parser.add_argument(
        "--extra-window", nargs=2, type=float, action="append", default=[], metavar=("LEVEL", "WIDTH"),
        help="a further input channel through this HU window (repeatable; e.g. 1700 2600 = [400, 3000] HU)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--labels", choices=["binary", "arteries"], default="binary",
        help="binary calcium (default, the paper's) or artery labels 1-4 kept as LM, LAD, LCX, RCA",
    )  # fmt: skip
    parser.add_argument(
        "--data-kind", choices=["synthetic", "real", "unknown"], default=None,
        help="what the scans are, recorded for predict's QC (default: synthetic if s2cac synth made them all)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    out = write_raw_dataset(
        args.cases,
        args.raw_root,
        args.dataset_id,
        args.name,
        window=HUWindow(args.window_level, args.window_width),
        threads=args.threads,
        data_kind=args.data_kind,
        label_mode=args.labels,
        extra_windows=[HUWindow(level, width) for level, width in args.extra_window],
    )
    print(out)
    return 0
