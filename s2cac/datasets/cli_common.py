"""Shared by ``s2cac download`` and ``s2cac import``.

Exit codes: 0 done; 1 done, but some cases failed and were left out (``--skip-bad-cases``); 2 bad usage or
input (the message names the file); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from s2cac.cli import EXIT_INTERRUPTED


def interruptible(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Exit code 130 with a short message on Ctrl-C instead of a traceback."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except KeyboardInterrupt:
            print("interrupted; rerun to resume (finished downloads and imports are kept, half-written ones are not)",
                  file=sys.stderr)  # fmt: skip
            return EXIT_INTERRUPTED

    return wrapper
