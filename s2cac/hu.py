"""The method's HU window: CT intensities (HU) -> the 0..255 images the network sees.

Used by every stage that feeds or shows the network's input: the nnU-Net raw dataset (:mod:`s2cac.data`),
training (candidate gating at a HU level), inference and its QC pictures. The window a model was trained with
is recorded in its ``dataset.json`` (``s2cac_hu_window``); :class:`HUWindow`'s defaults are the method's
(level 130, width 850 HU: [-295, 555] HU -> 0..255).

Optional further input channels see the same CT through other windows (``preprocess.extra_windows``;
``s2cac_extra_hu_windows`` in dataset.json). The method's window saturates at 555 HU, so dense calcium, bone
cortex and metal (stents, pacing leads: thousands of HU) all reach the network as the same 255; a second
channel such as [400, 3000] HU keeps them apart. Channel 0 stays the method's window in every case.
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


#: dataset.json keys: the first channel's window (the method's), and optional further channels' windows.
DATASET_JSON_KEY = "s2cac_hu_window"
EXTRA_DATASET_JSON_KEY = "s2cac_extra_hu_windows"


def windows_from_dataset_json(dataset_json: dict) -> tuple[HUWindow, ...]:
    """The HU windows of a model's input channels, in channel order, as recorded in its dataset.json.

    Channel 0 is ``s2cac_hu_window`` (the method's window when absent); channels 1.. are
    ``s2cac_extra_hu_windows`` (none when absent, as for every model trained before the key existed).
    """
    first = dataset_json.get(DATASET_JSON_KEY) or {}
    windows = [HUWindow(float(first.get("level", HUWindow.level)), float(first.get("width", HUWindow.width)))]
    for w in dataset_json.get(EXTRA_DATASET_JSON_KEY) or []:
        windows.append(HUWindow(float(w["level"]), float(w["width"])))
    return tuple(windows)


def window_channels(hu: np.ndarray, windows: tuple[HUWindow, ...] | list[HUWindow]) -> np.ndarray:
    """:func:`window_hu` once per window: (channels, *hu.shape) uint8, channel c through ``windows[c]``."""
    if not windows:
        raise ValueError("at least one HU window is needed")
    return np.stack([window_hu(hu, w) for w in windows])
