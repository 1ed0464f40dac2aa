"""Minimal nnU-Net v2 plans and dataset.json for a model whose plans were not written by nnU-Net's planner.

Used by ``import-weights`` (the authors' plans describe their own normalisation class), by tests and by the
benchmark. The plans hold what nnU-Net's preprocessing and ``nnUNetPredictor`` read for ``3d_fullres``:
target spacing, patch size, our ``rgb_to_0_1`` channel normalisation, nnU-Net's default resampling, and no
transpose. The ``architecture`` entry names our network for information only: inference builds it from the
model's config, never from this entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from s2cac.nnunet import CHANNEL_SCHEME, CONFIGURATION, PLANS_IDENTIFIER, PLANS_SCHEME, data_identifier


def make_dataset_json(name: str = "S2CAC", n_training: int = 0) -> dict[str, Any]:
    """nnU-Net dataset.json: one CT channel (HU-windowed, ``rgb_to_0_1``), labels background 0 / calcium 1."""
    return {
        "name": name,
        "channel_names": {"0": CHANNEL_SCHEME},
        "labels": {"background": 0, "calcium": 1},
        "numTraining": int(n_training),
        "file_ending": ".nii.gz",
    }


def make_plans(
    patch_size: Sequence[int],
    spacing_zyx: Sequence[float],
    *,
    median_shape: Sequence[int] | None = None,
    dataset_name: str = "Dataset000_S2CAC",
    preset: str = "paper",
) -> dict[str, Any]:
    """Plans with one ``3d_fullres`` configuration.

    Args:
        patch_size: (z, y, x) training/inference patch, voxels.
        spacing_zyx: target spacing (z, y, x), mm (the paper's: 3.0, 0.369, 0.369).
        median_shape: median (z, y, x) image size after resampling (informative); default = patch size.
        dataset_name: nnU-Net dataset folder name.
        preset: our network preset (recorded for information).
    """
    patch = [int(p) for p in patch_size]
    spacing = [float(s) for s in spacing_zyx]
    if len(patch) != 3 or len(spacing) != 3:
        raise ValueError("patch_size and spacing_zyx must have 3 entries (z, y, x)")
    median = [int(s) for s in (median_shape or patch)]
    linear = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": dataset_name,
        "plans_name": PLANS_IDENTIFIER,
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": median,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            CONFIGURATION: {
                "data_identifier": data_identifier(),
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": patch,
                "median_image_size_in_voxels": median,
                "spacing": spacing,
                "normalization_schemes": [PLANS_SCHEME],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": linear,
                "resampling_fn_seg_kwargs": {**linear, "is_seg": True, "order": 1},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {**linear, "order": 1},
                "architecture": {
                    "network_class_name": "s2cac.nets.DualPathNet",
                    "arch_kwargs": {"preset": preset},
                    "_kw_requires_import": [],
                },
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "s2cac.inference.plans.make_plans",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 255.0,
                "mean": 0.0,
                "median": 0.0,
                "min": 0.0,
                "percentile_00_5": 0.0,
                "percentile_99_5": 255.0,
                "std": 1.0,
            }  # fmt: skip
        },
    }
