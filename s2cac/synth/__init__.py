"""Synthetic non-contrast, ECG-gated cardiac CT cohort with per-artery coronary calcium labels (docs/synthetic.md).

Public API: :class:`SynthConfig`, :func:`synthesize_case` (one scan in memory), :func:`generate_cohort` (the
cohort on disk), and the label codes :data:`ARTERY_LABEL` (1 LM, 2 LAD, 3 LCX, 4 RCA).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from s2cac.synth.config import SynthConfig

if TYPE_CHECKING:
    from s2cac.synth.cohort import (
        CASE_COLUMNS,
        Case,
        generate_cohort,
        heart_region,
        synthesize_case,
        threshold_baseline,
        write_heart_regions,
    )
    from s2cac.synth.phantom import ARTERIES, ARTERY_LABEL

# imported on first use (scipy, SimpleITK): the Snakefile reads SynthConfig on every parse, once per job on a cluster
_LAZY = {name: "cohort" for name in ("CASE_COLUMNS", "Case", "generate_cohort", "heart_region", "synthesize_case",
                                     "threshold_baseline", "write_heart_regions")}  # fmt: skip
_LAZY |= {"ARTERIES": "phantom", "ARTERY_LABEL": "phantom"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"s2cac.synth.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ARTERIES",
    "ARTERY_LABEL",
    "CASE_COLUMNS",
    "Case",
    "SynthConfig",
    "generate_cohort",
    "heart_region",
    "synthesize_case",
    "threshold_baseline",
    "write_heart_regions",
]
