"""Exact sliding-window skipping: windows that cannot change any exported voxel are not run.

The exported mask is ``network mask AND HU >= threshold``, so only the network's class at *candidate* voxels
(``HU >= threshold`` in the input image) matters. nnU-Net predicts on a cropped, resampled grid (the
*network grid*), averages Gaussian-weighted window logits there, resamples the logits back to the input grid
(order <= 1 interpolation, ``mode='edge'``/``'nearest'``) and takes the argmax. The class of an input voxel
``v`` therefore depends only on the network-grid voxels within the interpolation support of ``v``, and each of
those only on the windows that cover it. We keep every window that covers any network-grid voxel in the
support of any candidate voxel, and skip the others. Then every candidate's support is covered by exactly
the same windows as without skipping, the same window outputs are added in the same order (the same fp16
sums), and the exported mask is bit-identical. Proven by tests (``tests/test_window_skip.py``).

The support used is conservative: along an axis with ``N`` network and ``C`` input voxels, input index ``i``
sits at network coordinate ``c = (i + 0.5) N / C - 0.5`` (skimage/map_coordinates ``align_corners=False``),
whose order-0/1 taps are ``floor(c)`` and ``floor(c) + 1``; we take ``floor(c) - 1 .. floor(c) + 2``. Network
voxels covered by no kept window (their logits are 0/0) get background logits: the network mask returned with
skipping is exact at candidate voxels and meaningless only where ``HU < threshold``, which the HU rule removes.

Skipping is refused (every window runs) when the plans' back-resampling is not nnU-Net's default
``resample_data_or_seg_to_shape`` with order <= 1 (higher spline orders have global support), unless no
resampling happens at all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import torch
from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor


@dataclass
class WindowStats:
    """Counts and seconds of one prediction (see :meth:`S2CACPredictor.predict_labels`)."""

    windows_total: int = 0
    windows_run: int = 0
    skip_reason: str = ""  # why skipping was off ("" when it was on)
    network_shape: tuple[int, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def windows_skipped(self) -> int:
        return self.windows_total - self.windows_run


def dependency_bounds(n_net: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """For each input index ``i`` (0..n_in-1), the network indices ``[lo_i, hi_i]`` its back-resampled value
    may depend on (conservative; order <= 1 interpolation, edge clamping). Both arrays are non-decreasing."""
    i = np.arange(n_in, dtype=np.float64)
    f = np.floor((i + 0.5) * (n_net / n_in) - 0.5).astype(np.int64)
    return np.clip(f - 1, 0, n_net - 1), np.clip(f + 2, 0, n_net - 1)


def windows_to_keep(
    candidates: np.ndarray,
    network_shape: Sequence[int],
    pad_below: Sequence[int],
    window_starts: Sequence[Sequence[int]],
    patch: Sequence[int],
) -> np.ndarray:
    """Which windows can change the class of a candidate voxel.

    Args:
        candidates: (z, y, x) bool, ``HU >= threshold`` on the cropped input grid (before resampling).
        network_shape: (z, y, x) shape of the resampled image (before padding to the patch).
        pad_below: voxels of padding added before the image on each axis (nnU-Net pads up to the patch).
        window_starts: per window, its (z, y, x) start in the padded image.
        patch: (z, y, x) window size.

    Returns:
        (n_windows,) bool, True = run the window.
    """
    bounds = [dependency_bounds(int(n), int(c)) for n, c in zip(network_shape, candidates.shape, strict=True)]
    keep = np.zeros(len(window_starts), dtype=bool)
    for k, start in enumerate(window_starts):
        box = []
        for (lo, hi), s, p, pad, n in zip(bounds, start, patch, pad_below, network_shape, strict=True):
            a, b = max(int(s) - int(pad), 0), min(int(s) + int(p) - 1 - int(pad), int(n) - 1)
            if a > b:  # the window lies in padding on this axis
                break
            i0 = int(np.searchsorted(hi, a, side="left"))  # first input index whose support reaches a
            i1 = int(np.searchsorted(lo, b, side="right"))  # one past the last whose support starts <= b
            if i0 >= i1:
                break
            box.append(slice(i0, i1))
        else:
            keep[k] = bool(candidates[tuple(box)].any())
    return keep


def _skip_refusal(predictor: nnUNetPredictor, needs_resampling: bool) -> str:
    """Why skipping would not be exact for these plans ("" if it is)."""
    conf = predictor.configuration_manager
    if not needs_resampling:
        return ""
    fn = conf.configuration.get("resampling_fn_probabilities")
    kwargs = conf.configuration.get("resampling_fn_probabilities_kwargs") or {}
    if fn != "resample_data_or_seg_to_shape":
        return f"back-resampling {fn!r} is not nnU-Net's default"
    if int(kwargs.get("order", 3)) > 1 or int(kwargs.get("order_z", 0)) > 1:
        return f"back-resampling order {kwargs.get('order')}/{kwargs.get('order_z')} > 1 has global support"
    return ""


class S2CACPredictor(nnUNetPredictor):
    """nnU-Net's predictor with exact window skipping and a progress line within a long case.

    Everything but the choice of windows is nnU-Net's own code: preprocessing (``run_case_npy``: crop to the
    non-zero region, normalise, resample), the Gaussian-weighted sliding window and the export
    (``convert_predicted_logits_to_segmentation_with_correct_shape``).
    """

    #: windows per network call. On CPU, torch runs a batch of >= 2 through oneDNN (mkldnn) convolutions but a
    #: single small-channel window through its slow im2col path, ~7x slower for ``tiny``; the last batch is
    #: padded with copies so that every call has the same batch size (and every window the same arithmetic).
    window_batch: int = 1
    #: added to the background logit (network grid, before export): ``log(t / (1 - t))`` makes the decision
    #: "calcium probability > t" (make_predictor's ``calcium_probability``); a per-voxel rule, so skipping stays exact
    background_offset: float = 0.0
    progress_stream: IO[str] | None = None
    progress_interval_s: float = 10.0
    progress_label: str = ""

    _keep_ctx: dict[str, Any] | None = None
    _stats: WindowStats | None = None
    _t_progress: float = 0.0
    _done: int = 0

    # --- hooks into nnU-Net's sliding window ---------------------------------------------------------------------
    def _internal_get_sliding_window_slicers(self, image_size):
        slicers = super()._internal_get_sliding_window_slicers(image_size)
        stats, ctx = self._stats, self._keep_ctx
        if stats is not None:
            stats.windows_total = len(slicers)
        if ctx is not None:
            patch = [int(p) for p in self.configuration_manager.patch_size]
            net = ctx["network_shape"]
            pad_below = [(int(s) - int(n)) // 2 for s, n in zip(image_size, net, strict=True)]  # pad_nd_image
            starts = [[sl.start for sl in s[1:]] for s in slicers]
            keep = windows_to_keep(ctx["candidates"], net, pad_below, starts, patch)
            slicers = [s for s, k in zip(slicers, keep, strict=True) if k]
        if stats is not None:
            stats.windows_run = len(slicers)
        return slicers

    @torch.inference_mode()
    def _internal_predict_sliding_window_return_logits(self, data, slicers, do_on_device: bool = True):
        """nnU-Net's Gaussian-weighted accumulation (fp16 sums, window order kept), ``window_batch`` windows per
        network call; nnU-Net's own loop when ``window_batch`` is 1."""
        batch = int(self.window_batch)
        if batch <= 1 or not slicers:
            return super()._internal_predict_sliding_window_return_logits(data, slicers, do_on_device)
        from nnunetv2.inference.sliding_window_prediction import compute_gaussian
        from nnunetv2.utilities.helpers import empty_cache

        results_device = self.device if do_on_device else torch.device("cpu")
        empty_cache(self.device)
        data = data.to(results_device)
        heads = self.label_manager.num_segmentation_heads
        logits = torch.zeros((heads, *data.shape[1:]), dtype=torch.half, device=results_device)
        n_predictions = torch.zeros(data.shape[1:], dtype=torch.half, device=results_device)
        gaussian = 1
        if self.use_gaussian:
            patch = tuple(self.configuration_manager.patch_size)
            gaussian = compute_gaussian(patch, sigma_scale=1.0 / 8, value_scaling_factor=10, device=results_device)
        for k in range(0, len(slicers), batch):
            group = slicers[k : k + batch]
            x = torch.stack([data[sl] for sl in group])
            if len(group) < batch:
                x = torch.cat([x, x[-1:].expand(batch - len(group), *x.shape[1:])])
            pred = self._internal_maybe_mirror_and_predict(x.to(self.device))
            for j, sl in enumerate(group):
                prediction = pred[j].to(results_device)
                if self.use_gaussian:
                    prediction *= gaussian
                logits[sl] += prediction
                n_predictions[sl[1:]] += gaussian
        torch.div(logits, n_predictions, out=logits)
        if torch.any(torch.isinf(logits)):
            raise RuntimeError("inf in the predicted logits (fp16 overflow); run with window_batch 1 to compare")
        return logits

    def _internal_maybe_mirror_and_predict(self, x: torch.Tensor) -> torch.Tensor:
        out = super()._internal_maybe_mirror_and_predict(x)
        stats = self._stats
        if stats is not None:
            self._done = min(self._done + int(x.shape[0]), stats.windows_run)
            now = time.perf_counter()
            if self.progress_stream is not None and now - self._t_progress >= self.progress_interval_s:
                self._t_progress = now
                print(
                    f"  {self.progress_label}: window {self._done}/{stats.windows_run} "
                    f"({stats.windows_skipped} of {stats.windows_total} skipped)",
                    file=self.progress_stream,
                    flush=True,
                )
        return out

    def predict_sliding_window_return_logits(self, input_image: torch.Tensor):
        logits = super().predict_sliding_window_return_logits(input_image)
        if self._keep_ctx is not None:  # voxels no kept window covers are 0/0: make them background
            uncovered = torch.isnan(logits[0])
            if bool(uncovered.any()):
                logits[:, uncovered] = 0
                logits[0, uncovered] = 1
        if self.background_offset:
            logits[0] += self.background_offset
        return logits

    # --- one case ------------------------------------------------------------------------------------------------
    def predict_labels(
        self,
        image: np.ndarray,
        spacing_zyx: Sequence[float],
        candidates: np.ndarray | None = None,
        return_probabilities: bool = False,
    ) -> tuple[np.ndarray, WindowStats] | tuple[np.ndarray, WindowStats, np.ndarray]:
        """Label map of one image on its own grid (and the class probabilities).

        Args:
            image: (channels, z, y, x) network input before nnU-Net's normalisation (one HU window per channel,
                0..255), float32; a (z, y, x) array is one channel.
            spacing_zyx: voxel spacing (z, y, x), mm.
            candidates: (z, y, x) bool, the only voxels whose class must be exact (``HU >= threshold``);
                None = every voxel (no skipping).
            return_probabilities: also return nnU-Net's softmax probabilities on the image's grid.

        Returns:
            ((z, y, x) uint8 label map, :class:`WindowStats`), plus the (classes, z, y, x) float32 probabilities
            when ``return_probabilities``.
        """
        stats = WindowStats()
        t0 = time.perf_counter()
        props = {"spacing": [float(s) for s in spacing_zyx]}
        preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        data, _, props = preprocessor.run_case_npy(
            (image[None] if image.ndim == 3 else image).astype(np.float32, copy=False), None, props,
            self.plans_manager, self.configuration_manager, self.dataset_json,
        )  # fmt: skip
        stats.network_shape = tuple(int(s) for s in data.shape[1:])
        t1 = time.perf_counter()
        self._keep_ctx = None
        if candidates is not None:
            cropped_shape = tuple(int(s) for s in props["shape_after_cropping_and_before_resampling"])
            stats.skip_reason = _skip_refusal(self, cropped_shape != stats.network_shape)
            if list(self.plans_manager.transpose_forward) != [0, 1, 2]:
                candidates = np.transpose(candidates, self.plans_manager.transpose_forward)
            if not stats.skip_reason:
                bbox = props["bbox_used_for_cropping"]
                cand = np.asarray(candidates, dtype=bool)[tuple(slice(a, b) for a, b in bbox)]
                self._keep_ctx = {"candidates": cand, "network_shape": stats.network_shape}
        else:
            stats.skip_reason = "no candidates given"
        self._stats, self._t_progress, self._done = stats, time.perf_counter(), 0
        try:
            logits = self.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
        finally:
            self._keep_ctx, self._stats = None, None
        t2 = time.perf_counter()
        out = convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, self.plans_manager, self.configuration_manager, self.label_manager, props,
            return_probabilities=return_probabilities, num_threads_torch=torch.get_num_threads(),
        )  # fmt: skip
        t3 = time.perf_counter()
        stats.seconds = {"preprocess": t1 - t0, "windows": t2 - t1, "export": t3 - t2}
        if return_probabilities:
            seg, probabilities = out
            return np.asarray(seg), stats, np.asarray(probabilities, dtype=np.float32)
        return np.asarray(out), stats
