"""nnU-Net's ``nnUNetPredictor`` wired to our network, constructed directly (no trainer lookup by class name).

nnU-Net does the rest as it does for its own models: crop to the non-zero region, resample to the plans'
spacing, divide by 255 (``rgb_to_0_1``), sliding window with Gaussian weighting, optional mirroring, then
undo resampling and cropping so that the mask is on the input's voxel grid. The predictor is nnU-Net's
subclass :class:`~s2cac.inference.window_skip.S2CACPredictor`, which skips, exactly, the windows that cannot
change any voxel >= the HU threshold (see that module). The decision is made per candidate lesion by default
(:mod:`s2cac.inference.lesions`), or per voxel.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from s2cac.hu import HUWindow, window_channels
from s2cac.inference.lesions import DECISIONS, lesion_labels
from s2cac.inference.model_io import LoadedModel, ModelError
from s2cac.nnunet import CONFIGURATION
from s2cac.scoring.agatston import CALCIUM_THRESHOLD_HU


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is refused."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA GPU is available (use --device cpu or auto)")
    return dev


def make_predictor(
    model: LoadedModel,
    *,
    device: str | torch.device = "auto",
    step: float = 0.5,
    tta: bool = False,
    patch_size: Sequence[int] | None = None,
    window_batch: int = 2,
    fuse: bool = True,
    calcium_probability: float = 0.5,
    decision: str = "lesion",
    candidate_hu: float = CALCIUM_THRESHOLD_HU,
) -> Any:
    """An initialised ``nnUNetPredictor`` for ``model``.

    Args:
        model: a verified model (:func:`~s2cac.inference.model_io.load_model`).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        step: sliding-window step as a fraction of the patch (0 < step <= 1; 0.5 = half-patch overlap).
        tta: mirror over the model's allowed axes (8 passes per window in 3D).
        patch_size: (z, y, x) window in voxels at the plans' spacing; None = the plans' (training) patch.
            Y and X must be divisible by the network's in-plane stride.
        window_batch: sliding windows per network call (>= 1; 1 = nnU-Net's own loop). 2 is ~7x faster than 1
            for ``tiny`` on CPU (torch's oneDNN convolutions instead of its slow path for batch 1); logits then
            differ from batch 1 by float rounding (~1e-5), which can flip an argmax tie.
        fuse: on a CPU, run :meth:`~s2cac.nets.dualpath.DualPathNet.fused_for_inference` (BatchNorm folded into
            the convolutions, channels-last memory): ~1.6x faster for ``tiny``; logits differ from the unfused
            network by float rounding (~1e-5). False = the network as trained. Ignored on a GPU.
        calcium_probability: decision threshold on the network's calcium probability (0.5 = argmax for
            ``decision="voxel"``). Higher = fewer false positives, lower = more sensitive.
        decision: ``lesion`` (the default): each candidate lesion (3D connected component of ``HU >=
            candidate_hu``) is calcium as a whole when its mean calcium probability exceeds
            ``calcium_probability`` (:mod:`s2cac.inference.lesions`); label maps are then 0 outside kept
            lesions. ``voxel``: nnU-Net's per-voxel rule; ``calcium_probability`` is applied as
            ``log(p / (1 - p))`` added to the background logit before nnU-Net's export (exact for a binary
            model; for an artery model background then wins when its logit plus that offset is the largest).
        candidate_hu: the candidate threshold of the lesion rule (HU); the same as the exported mask's.

    Returns:
        an ``nnUNetPredictor`` (:class:`~s2cac.inference.window_skip.S2CACPredictor`), ready for
        :func:`predict_network_mask` / :func:`predict_network_labels`.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from s2cac.inference.resampling import PredictionConfigurationManager
    from s2cac.inference.window_skip import S2CACPredictor

    if not 0.0 < float(step) <= 1.0:
        raise ValueError(f"step must be in (0, 1], got {step}")
    if int(window_batch) < 1:
        raise ValueError(f"window_batch must be >= 1, got {window_batch}")
    if not 0.0 < float(calcium_probability) < 1.0:
        raise ValueError(f"calcium_probability must be in (0, 1), got {calcium_probability}")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    if not math.isfinite(float(candidate_hu)):
        raise ValueError(f"candidate_hu must be a finite number of HU, got {candidate_hu}")
    plans = copy.deepcopy(model.plans)
    network = model.build_network()
    if patch_size is not None:
        patch = [int(p) for p in patch_size]
        try:
            network.check_patch(patch)
        except ValueError as err:
            raise ValueError(f"--patch-size: {err}") from err
        plans["configurations"][CONFIGURATION]["patch_size"] = patch
    network.segmentation_only = True  # nnU-Net expects logits only
    dev = resolve_device(device)
    params = model.state_dict
    if fuse and dev.type == "cpu":
        network.load_state_dict(params)  # the BatchNorm statistics are folded into the weights
        network = network.fused_for_inference()
        params = network.state_dict()  # what nnU-Net loads into the network before predicting
    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints a notice for CPU devices
        predictor = S2CACPredictor(
            tile_step_size=float(step),
            use_gaussian=True,
            use_mirroring=bool(tta),
            perform_everything_on_device=dev.type == "cuda",
            device=dev,
            verbose=False,
            allow_tqdm=False,
        )
    predictor.window_batch = int(window_batch)
    t = float(calcium_probability)
    predictor.decision, predictor.calcium_probability, predictor.candidate_hu = decision, t, float(candidate_hu)
    # the voxel rule moves the argmax; the lesion rule thresholds the mean of the unshifted probabilities
    predictor.background_offset = math.log(t / (1.0 - t)) if decision == "voxel" else 0.0  # 0.0 for 0.5
    predictor.hu_windows = model.hu_windows  # one per input channel (predict_network_labels windows the HU)
    plans_manager = PlansManager(plans)
    try:
        # the same resampling, slice blocks on torch's threads where that gives the same array (resampling.py)
        conf = PredictionConfigurationManager(plans_manager.get_configuration(CONFIGURATION).configuration)
    except Exception as err:  # noqa: BLE001 - nnU-Net raises assorted errors for malformed plans
        raise ModelError(f"{model.source}: plans.json cannot be used by nnU-Net: {err}") from err
    predictor.manual_initialization(
        network, plans_manager, conf, [params], model.dataset_json, type(network).__name__, model.mirror_axes
    )
    return predictor


def predict_network_labels(
    predictor: Any,
    hu: np.ndarray,
    spacing_zyx: Sequence[float],
    window: HUWindow | None = None,
    threshold_hu: float | None = None,
) -> tuple[np.ndarray, Any]:
    """The network's label map of one CT volume, on the volume's own voxel grid, and window counts.

    Args:
        predictor: from :func:`make_predictor`.
        hu: (z, y, x) CT in HU.
        spacing_zyx: voxel spacing (z, y, x), mm.
        window: HU window of input channel 0; default the one the model was trained with
            (``predictor.hu_windows`` from :func:`make_predictor`), else the method's (level 130, width 850).
            Further channels always use the model's further windows.
        threshold_hu: if given, windows that cannot change the class of any voxel with ``hu >= threshold_hu``
            are skipped: the labels are then exact where ``hu >= threshold_hu`` and background or arbitrary
            elsewhere (callers apply the HU rule). None = run every window.

    The predictor's decision rule (:func:`make_predictor`'s ``decision``) is applied here: with the lesion rule
    the labels are 0 outside the kept candidate lesions (``HU >= predictor.candidate_hu``).

    Returns:
        ((z, y, x) uint8 labels (0 = background; 1 = calcium, or 1-4 = LM/LAD/LCX/RCA for an artery model),
        :class:`~s2cac.inference.window_skip.WindowStats`, or None for a plain nnU-Net predictor).
    """
    hu = np.asarray(hu)
    windows = tuple(getattr(predictor, "hu_windows", None) or (HUWindow(),))
    if window is not None:
        windows = (window, *windows[1:])
    image = window_channels(hu, windows).astype(np.float32)  # (channels, z, y, x), 0..255
    if hasattr(predictor, "predict_labels"):
        if getattr(predictor, "decision", "voxel") == "lesion":
            lesion_candidates = hu >= predictor.candidate_hu
            # skipping keeps every window a candidate lesion's voxel depends on (their exact probabilities)
            if threshold_hu is None or float(threshold_hu) >= predictor.candidate_hu:
                candidates = None if threshold_hu is None else lesion_candidates
            else:
                candidates = hu >= threshold_hu
            _, stats, probabilities = predictor.predict_labels(image, spacing_zyx, candidates, True)
            seg = lesion_labels(probabilities, lesion_candidates, predictor.calcium_probability)
        else:
            candidates = None if threshold_hu is None else hu >= threshold_hu
            seg, stats = predictor.predict_labels(image, spacing_zyx, candidates)
    else:  # a plain nnUNetPredictor (e.g. the benchmark's baseline)
        props = {"spacing": [float(s) for s in spacing_zyx]}
        seg, stats = predictor.predict_single_npy_array(image, props, None, None, False), None
    seg = np.asarray(seg)
    if seg.shape != tuple(hu.shape):
        raise RuntimeError(f"prediction shape {seg.shape} differs from the input's {tuple(hu.shape)}")
    return seg.astype(np.uint8, copy=False), stats


def predict_network_mask(
    predictor: Any,
    hu: np.ndarray,
    spacing_zyx: Sequence[float],
    window: HUWindow | None = None,
    threshold_hu: float | None = None,
) -> np.ndarray:
    """The network's calcium mask of one CT volume, on the volume's own voxel grid.

    Args:
        predictor: from :func:`make_predictor`.
        hu: (z, y, x) CT in HU.
        spacing_zyx: voxel spacing (z, y, x), mm.
        window: HU window of channel 0 (see :func:`predict_network_labels`).
        threshold_hu: see :func:`predict_network_labels` (None = every window, exact everywhere).

    Returns:
        (z, y, x) bool array, True where the predictor's decision rule says calcium (any non-background
        label), same shape as ``hu``.
    """
    return predict_network_labels(predictor, hu, spacing_zyx, window, threshold_hu)[0] != 0
