"""``s2cac export-model``: package a model folder into one verifiable file."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``s2cac export-model``."""
    parser.add_argument("model_dir", help="model folder written by training")
    parser.add_argument("out_file", help="package to write (a zip; e.g. model.s2cac.zip); must not exist")
    parser.add_argument(
        "--checkpoint", default=None, help="best, final, or a checkpoint file (a name inside the model folder or "
        "a path); default: checkpoint_best.pth, else checkpoint_final.pth (teacher weights)"
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing OUT_FILE if it is an s2cac model package"
    )


def run(args: argparse.Namespace) -> int:
    """Write the package; exit code 0."""
    import sys

    from s2cac.inference.model_io import export_model, load_package

    out = export_model(args.model_dir, args.out_file, args.checkpoint, overwrite=args.overwrite)
    model = load_package(out)  # read back: proves the file verifies
    spec = model.network_spec
    print(f"s2cac export-model: wrote {out} (network {spec['preset']}, patch {model.patch_size})", file=sys.stderr)
    return 0
