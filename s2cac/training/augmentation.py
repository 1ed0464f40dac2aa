"""Augmentation presets of the three training loaders (``MethodConfig.augmentation``).

* ``none``: the patch is cropped at its final size and only nnU-Net's border label (-1 -> 0) is cleaned up, as
  the authors train (centre crop only).
* ``light``: geometry that a gated cardiac CT really varies in, nothing that changes HU: an in-plane rotation of
  up to +-15 degrees (patient and heart orientation) and an in-plane scaling of 0.9-1.1 (body and heart size),
  each with probability 0.3. No mirroring (the anatomy is not left-right symmetric: the coronaries' positions
  relative to the aorta, valves and mitral annulus are what tells them apart) and no intensity transforms
  (Agatston's 130 HU threshold is an absolute HU value, so brightness, contrast and gamma changes would teach
  the network that calcium can look like soft tissue and the reverse).
* ``nnunet``: nnU-Net's default pipeline (rotation up to 180 degrees for anisotropic patches, scaling 0.7-1.4,
  noise, blur, brightness, contrast, low resolution, gamma, mirroring on every axis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTransform

LIGHT_ROTATION_DEG = 15.0
LIGHT_SCALING = (0.9, 1.1)
LIGHT_PROBABILITY = 0.3


def _inplane_rotation(image=None, dim: int = 0, **_) -> float:
    """Rotation angle (radians) per axis for batchgeneratorsv2: only about the slice axis (z, axis 0)."""
    if dim != 0:
        return 0.0
    limit = math.radians(LIGHT_ROTATION_DEG)
    return float(np.random.uniform(-limit, limit))


class _InplaneScale:
    """One in-plane scale factor per sample (drawn for y, reused for x); z is never scaled (3 mm slices)."""

    def __init__(self) -> None:
        self._last = 1.0

    def __call__(self, image=None, dim: int = 0, **_) -> float:
        if dim == 0:
            return 1.0
        if dim == 1:
            self._last = float(np.random.uniform(*LIGHT_SCALING))
        return self._last


def light_initial_patch(patch: Sequence[int]) -> list[int]:
    """Crop size that still covers ``patch`` after the light preset's largest rotation and smallest scale."""
    z, y, x = (int(p) for p in patch)
    a = math.radians(LIGHT_ROTATION_DEG)
    c, s = math.cos(a), math.sin(a)
    grow = 1.0 / LIGHT_SCALING[0]
    return [z, math.ceil((y * c + x * s) * grow), math.ceil((y * s + x * c) * grow)]


def light_transforms(patch: Sequence[int]) -> ComposeTransforms:
    """The ``light`` preset for a (z, y, x) ``patch`` (the loader crops :func:`light_initial_patch` first)."""
    return ComposeTransforms(
        [
            SpatialTransform(
                tuple(int(p) for p in patch),
                patch_center_dist_from_border=0,
                random_crop=False,
                p_elastic_deform=0,
                p_rotation=LIGHT_PROBABILITY,
                rotation=_inplane_rotation,
                p_scaling=LIGHT_PROBABILITY,
                scaling=_InplaneScale(),
                p_synchronize_scaling_across_axes=0,
                bg_style_seg_sampling=False,
                border_mode_seg="constant",
                padding_value_seg=-1,
            ),
            RemoveLabelTransform(-1, 0),
        ]
    )


def no_transforms() -> ComposeTransforms:
    """The ``none`` preset: only nnU-Net's padding label -1 becomes background."""
    return ComposeTransforms([RemoveLabelTransform(-1, 0)])
