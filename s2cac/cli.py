"""The ``s2cac`` command line: one entry point, lazily loaded subcommands.

Each subcommand lives in its own module that defines two functions::

    def configure_parser(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Only the module of the chosen subcommand is imported, so light commands (``score``) never pay for
heavy imports (torch, nnU-Net) that they do not use.

Exit codes, the same for every subcommand (:data:`EXIT_CODES`): 0 everything done; 1 some cases failed (the
others finished; see the command's output table); 2 bad usage or input (a message names the file, option or
key; nothing was written or replaced); 130 interrupted (Ctrl-C). Outputs are written atomically, so an
interrupted or refused command leaves no partial file behind.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence
from types import ModuleType

from s2cac import __version__

# name -> (module, one-line help). Order is the order shown by ``s2cac --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("s2cac.synth.cli", "generate the synthetic cardiac CT cohort (images, labels, case sheet)"),
    "download": ("s2cac.datasets.cli_download", "fetch a dataset file (resumable, sha256-checked), unpack it safely"),
    "import": ("s2cac.datasets.cli_import", "import COCA or a folder of images and label maps into a case sheet"),
    "check-cases": ("s2cac.data.cli_check", "validate a case sheet: ids, files, geometry, labels"),
    "nnunet-raw": ("s2cac.data.cli_raw", "write an nnU-Net v2 raw dataset (HU-windowed) from a case sheet"),
    "preprocess": ("s2cac.data.cli_preprocess", "run nnU-Net v2 fingerprint, planning and preprocessing"),
    "splits": ("s2cac.data.cli_splits", "write labeled/unlabeled/negative/validation/test splits"),
    "score": ("s2cac.scoring.cli", "Agatston, volume and mass scores of a calcium mask on a CT image"),
    "evaluate": ("s2cac.evaluation.cli", "segmentation and clinical agreement metrics against a reference"),
    "evaluate-scores": ("s2cac.evaluation.cli_scores", "Agatston and risk agreement for score-only cases (no masks)"),
    "train": ("s2cac.training.cli", "train an S2CAC (or baseline/ablation) model on a preprocessed dataset"),
    "predict": ("s2cac.inference.cli", "calcium masks, Agatston scores and QC pictures for your own CT scans"),
    "export-model": ("s2cac.inference.cli_export", "package a trained model folder into one verifiable file"),
    "import-weights": ("s2cac.inference.cli_import", "convert the authors' released S2CAC checkpoint"),
}


EXIT_OK, EXIT_CASES_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = {
    EXIT_OK: "everything done",
    EXIT_CASES_FAILED: "some cases failed, the others finished",
    EXIT_USAGE: "bad usage or input: nothing was run or written",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CommandError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""


def finite_float(text: str) -> float:
    """argparse type: a finite number (refuses nan, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def open_unit_float(text: str) -> float:
    """argparse type: a number strictly between 0 and 1 (a probability that is neither never nor always)."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def top_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in COMMANDS)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="s2cac",
        description="S2CAC: semi-supervised coronary artery calcium segmentation and Agatston scoring.",
        epilog=f"commands:\n{listing}\n\nRun 's2cac COMMAND --help' for the options of one command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="s2cac [--version] [--help] COMMAND [options]",
    )
    parser.add_argument("--version", action="version", version=f"s2cac {__version__}")
    parser.add_argument("command", nargs="?", metavar="COMMAND", help=argparse.SUPPRESS)
    return parser


def command_parser(name: str, module: ModuleType | None = None) -> argparse.ArgumentParser:
    """The argument parser of subcommand ``name`` (a key of :data:`COMMANDS`), exactly as ``s2cac name`` uses it.

    Args:
        name: the subcommand.
        module: its module when already imported (else it is imported here).
    """
    module_name, text = COMMANDS[name]
    module = module or importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"s2cac {name}",
        description=text[0].upper() + text[1:] + ".",
        epilog="exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()),
    )
    module.configure_parser(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``s2cac`` command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = top_parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        top.parse_args(argv)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        top.print_usage(sys.stderr)
        print(f"s2cac: error: unknown command {name!r}; choose from: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = command_parser(name, module)
    try:
        args = parser.parse_args(rest)
    except SystemExit as stop:  # --help (0) or a usage error (2, message printed by argparse)
        return int(stop.code or 0)
    try:
        return int(module.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"s2cac {name}: interrupted; finished outputs are kept, no partial file was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, ValueError, OSError) as err:
        # Library code raises these with messages that name the file, option or key; no traceback for users.
        # OSError covers FileNotFoundError, IsADirectoryError, PermissionError, a full disk, ...
        print(f"s2cac {name}: error: {_message(err)}", file=sys.stderr)
        return EXIT_USAGE


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"  # e.g. "out.csv: Is a directory"
    return str(err)
