"""Send a job's output to its log file (used by the workflow's scripts; no snakemake import here)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path


@contextmanager
def logged(path: str | Path) -> Iterator[None]:
    """Redirect stdout/stderr into ``path``; an exception is written there too, then re-raised.

    The exception's one-line summary is also printed on the real stderr so a failing job says why.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    real_err = sys.stderr
    with open(path, "a", buffering=1, encoding="utf-8") as fh:
        try:
            with redirect_stdout(fh), redirect_stderr(fh):
                yield
        except BaseException as err:
            traceback.print_exc(file=fh)
            print(f"error: {type(err).__name__}: {err} (log: {path})", file=real_err)
            raise
