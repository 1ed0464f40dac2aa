"""The method's HU window: CT intensities (HU) -> the 0..255 images the network sees.

Used by every stage that feeds or shows the network's input: the nnU-Net raw dataset (:mod:`s2cac.data`),
training (candidate gating at a HU level), inference and its QC pictures. The window a model was trained with
is recorded in its ``dataset.json`` (``s2cac_hu_window``); :class:`HUWindow`'s defaults are the method's
(level 130, width 850 HU: [-295, 555] HU -> 0..255).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HUWindow:
    """A CT window in HU: ``level`` (centre) and ``width``; the defaults are the method's."""

    level: float = 130.0
    width: float = 850.0

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"HU window width must be > 0, got {self.width}")

    @property
    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) HU of the window."""
        return self.level - self.width / 2, self.level + self.width / 2


def window_hu(hu: np.ndarray, window: HUWindow = HUWindow()) -> np.ndarray:
    """Clip HU to the window and map it linearly onto 0..255 (uint8, rounded).

    Args:
        hu: CT intensities in HU, any shape.
        window: level/width in HU.

    Returns:
        uint8 array of the same shape; window bottom -> 0, top -> 255.
    """
    lo, hi = window.bounds
    scaled = (np.clip(hu.astype(np.float32), lo, hi) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)
