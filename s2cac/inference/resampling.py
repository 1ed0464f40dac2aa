"""nnU-Net's resampling, run on several threads where that gives the same array.

For an anisotropic scan (slices much thicker than pixels) nnU-Net resamples every slice in-plane on its own
(``resample_data_or_seg`` with ``do_separate_z``, axis 0) and then interpolates along z only if the number of
slices changes. When it does not (the usual case for prediction: 3 mm scans and 3 mm plans), the result is the
stack of independently resampled slices, so resampling blocks of slices on separate threads and stacking them
gives the identical array; scipy's interpolation releases the GIL, so two threads take about half the time.
Everything else (isotropic resampling, a changed slice count, other resampling functions) runs nnU-Net's call
unchanged. Used by the predictor before the sliding window (image) and after it (logits back to the input
grid). ``tests/test_window_skip.py`` checks the arrays are identical.

:class:`PredictionConfigurationManager` also skips resampling the label map nnU-Net's preprocessor builds beside
the image, which prediction does not use.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import torch
from nnunetv2.preprocessing.resampling.default_resampling import (
    ANISO_THRESHOLD,
    determine_do_sep_z_and_axis,
    resample_data_or_seg_to_shape,
)
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager


def slicewise(fn: Any, data: Any, new_shape: Any, current_spacing: Any, new_spacing: Any) -> bool:
    """Whether ``fn(data, new_shape, current_spacing, new_spacing)`` resamples each z slice on its own."""
    if not isinstance(fn, partial) or fn.func is not resample_data_or_seg_to_shape or fn.args:
        return False
    kw = fn.keywords
    if kw.get("is_seg", False) or getattr(data, "ndim", 0) != 4 or int(new_shape[0]) != int(data.shape[1]):
        return False
    threshold = kw.get("separate_z_anisotropy_threshold", ANISO_THRESHOLD)
    separate, axis = determine_do_sep_z_and_axis(kw.get("force_separate_z", False), current_spacing, new_spacing,
                                                 threshold)  # fmt: skip
    return bool(separate) and axis == 0


def threaded(fn: Any, threads: int | None = None) -> Any:
    """``fn`` (an nnU-Net resampling partial) that splits slice-wise resampling over ``threads`` threads (None =
    torch's thread count) and otherwise calls ``fn`` as is."""

    def run(data, new_shape, current_spacing, new_spacing):
        n = torch.get_num_threads() if threads is None else int(threads)
        if n < 2 or not slicewise(fn, data, new_shape, current_spacing, new_spacing):
            return fn(data, new_shape, current_spacing, new_spacing)
        if isinstance(data, torch.Tensor):
            data = data.numpy()
        blocks = [b for b in np.array_split(np.arange(data.shape[1]), n) if len(b)]

        def one(block: np.ndarray) -> np.ndarray:
            part = data[:, int(block[0]) : int(block[-1]) + 1]
            return fn(part, (len(block), *[int(s) for s in new_shape[1:]]), current_spacing, new_spacing)

        with ThreadPoolExecutor(len(blocks)) as pool:
            return np.concatenate(list(pool.map(one, blocks)), axis=1)

    return run


def _discarded_seg(seg, new_shape, current_spacing, new_spacing):
    """Stands in for resampling the segmentation that nnU-Net's preprocessor builds beside the image at prediction
    time (from the crop's non-zero mask: no labels are given) and the predictor never reads: an empty int8 array of
    the resampled shape."""
    return None if seg is None else np.zeros((seg.shape[0], *[int(s) for s in new_shape]), dtype=np.int8)


class PredictionConfigurationManager(ConfigurationManager):
    """nnU-Net's ``ConfigurationManager`` for prediction: image and probability resampling use :func:`threaded`;
    the segmentation nnU-Net's preprocessor resamples beside the image (without labels: only the crop's non-zero
    mask, which prediction never reads; about half of the preprocessing time of a 512 x 512 scan) is not
    resampled. For the predictor only: training needs that segmentation."""

    @property
    def resampling_fn_data(self):
        return threaded(super().resampling_fn_data)

    @property
    def resampling_fn_probabilities(self):
        return threaded(super().resampling_fn_probabilities)

    @property
    def resampling_fn_seg(self):
        return _discarded_seg
