"""``s2cac preprocess``: nnU-Net v2 fingerprint, planning (3d_fullres) and preprocessing."""

from __future__ import annotations

import argparse

from s2cac.data.preprocess import run_preprocessing


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw", required=True, help="raw dataset folder DatasetXXX_NAME")
    parser.add_argument("--preprocessed-root", required=True, help="folder that will hold DatasetXXX_NAME")
    parser.add_argument("--target-spacing", type=float, nargs=3, metavar=("Z", "Y", "X"), help="mm")
    parser.add_argument("--patch-size", type=int, nargs=3, metavar=("Z", "Y", "X"), help="voxels")
    parser.add_argument("--threads", type=int, default=1, help="nnU-Net worker processes")
    parser.add_argument("--log", help="append nnU-Net's output to this file")


def run(args: argparse.Namespace) -> int:
    out = run_preprocessing(
        args.raw,
        args.preprocessed_root,
        target_spacing_zyx=args.target_spacing,
        patch_size_zyx=args.patch_size,
        num_processes=args.threads,
        log=args.log,
    )
    print(out)
    return 0
