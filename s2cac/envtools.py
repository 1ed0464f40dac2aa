"""Temporarily set environment variables (nnU-Net reads its folders from ``nnUNet_*`` variables)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def temporary_environ(**variables: str | Path) -> Iterator[None]:
    """Set ``variables`` in ``os.environ`` for the ``with`` block, then restore the previous values."""
    old = {k: os.environ.get(k) for k in variables}
    os.environ.update({k: str(v) for k, v in variables.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
