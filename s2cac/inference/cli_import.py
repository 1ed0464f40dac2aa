"""``s2cac import-weights``: convert the authors' released checkpoint into an s2cac model."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``s2cac import-weights``."""
    parser.add_argument("checkpoint", help="the authors' checkpoint_S2CAC.pth (downloaded by you)")
    parser.add_argument("out", help="model folder to write, or a package file if it ends with .zip; must not exist")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing OUT; only an s2cac model package, model folder or empty folder is replaced",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Convert; exit code 0 (errors exit 2 with a message)."""
    import sys

    from s2cac.inference.import_weights import import_original_checkpoint

    out = import_original_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    print(f"s2cac import-weights: wrote {out}", file=sys.stderr)
    return 0
