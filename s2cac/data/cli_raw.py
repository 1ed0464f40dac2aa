"""``s2cac nnunet-raw``: case sheet -> nnU-Net v2 raw dataset with HU-windowed images."""

from __future__ import annotations

import argparse

from s2cac.data.nnunet_raw import HUWindow, write_raw_dataset


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", required=True, help="case sheet (TSV)")
    parser.add_argument("--raw-root", required=True, help="folder that will hold DatasetXXX_NAME")
    parser.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    parser.add_argument("--name", required=True, help="dataset name (letters, digits, _ or -)")
    default = HUWindow()  # the one source of the method's window
    parser.add_argument("--window-level", type=float, default=default.level, help="HU window level (130)")
    parser.add_argument("--window-width", type=float, default=default.width, help="HU window width (850)")
    parser.add_argument("--threads", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    out = write_raw_dataset(
        args.cases,
        args.raw_root,
        args.dataset_id,
        args.name,
        window=HUWindow(args.window_level, args.window_width),
        threads=args.threads,
    )
    print(out)
    return 0
