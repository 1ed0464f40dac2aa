"""Synthetic non-contrast, ECG-gated cardiac CT cohort with per-artery coronary calcium labels (docs/synthetic.md).

Public API: :class:`SynthConfig`, :func:`synthesize_case` (one scan in memory), :func:`generate_cohort` (the
cohort on disk), and the label codes :data:`ARTERY_LABEL` (1 LM, 2 LAD, 3 LCX, 4 RCA).
"""

from s2cac.synth.cohort import (
    CASE_COLUMNS,
    Case,
    generate_cohort,
    heart_region,
    synthesize_case,
    threshold_baseline,
    write_heart_regions,
)
from s2cac.synth.config import SynthConfig
from s2cac.synth.phantom import ARTERIES, ARTERY_LABEL

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
