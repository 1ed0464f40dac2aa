"""The lesion-level decision (s2cac.inference.lesions.lesion_labels) on hand-made probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from s2cac.inference.lesions import lesion_labels


def _binary(calcium_p: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - calcium_p, calcium_p]).astype(np.float32)


def test_each_candidate_lesion_is_kept_or_dropped_whole() -> None:
    cand = np.zeros((3, 10, 10), bool)
    p = np.zeros(cand.shape, np.float32)
    cand[1, 1:4, 1:4] = True  # lesion A: mean 0.6, three voxels below 0.5
    p[1, 1:4, 1:4] = 0.7
    p[1, 1, 1:4] = 0.4
    cand[1, 6:9, 6:9] = True  # lesion B: mean 0.4, three voxels above 0.5
    p[1, 6:9, 6:9] = 0.3
    p[1, 6, 6:9] = 0.6
    p[0] = 0.99  # confident voxels that are not candidates never count
    labels = lesion_labels(_binary(p), cand)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels != 0, cand & (np.arange(10)[None, :, None] < 5))
    assert labels[1, 1, 1] == 1 and labels[1, 6, 6] == 0  # the voxel rule would say the opposite for both
    # the threshold applies to the mean: both lesions at 0.35, none at 0.65
    assert (lesion_labels(_binary(p), cand, 0.35) != 0).sum() == 18
    assert not lesion_labels(_binary(p), cand, 0.65).any()


def test_lesions_are_26_connected_in_3d() -> None:
    cand = np.zeros((3, 5, 5), bool)
    cand[0, 1, 1] = cand[1, 2, 2] = True  # diagonal neighbours in 3D: one lesion
    p = np.zeros(cand.shape, np.float32)
    p[0, 1, 1], p[1, 2, 2] = 0.9, 0.3  # mean 0.6
    assert (lesion_labels(_binary(p), cand) != 0).sum() == 2
    assert (lesion_labels(_binary(p), cand, connectivity=6) != 0).sum() == 1  # face neighbours only: two lesions


def test_artery_model_keeps_each_voxels_most_probable_artery() -> None:
    cand = np.zeros((1, 4, 8), bool)
    cand[0, 1, 1:7] = True  # one lesion across an LAD/LCX junction
    probs = np.zeros((5, *cand.shape), np.float32)
    probs[0] = 0.3
    probs[2, 0, :, :4], probs[3, 0, :, :4] = 0.5, 0.2  # LAD on the left
    probs[2, 0, :, 4:], probs[3, 0, :, 4:] = 0.2, 0.5  # LCX on the right
    labels = lesion_labels(probs, cand)
    assert labels[0, 1, 1:7].tolist() == [2, 2, 2, 3, 3, 3] and not labels[~cand].any()


def test_no_candidates_and_bad_arguments() -> None:
    cand = np.zeros((2, 4, 4), bool)
    assert not lesion_labels(_binary(np.full(cand.shape, 0.9, np.float32)), cand).any()
    with pytest.raises(ValueError, match="must be"):
        lesion_labels(np.zeros((2, 3, 4, 4)), cand)
    with pytest.raises(ValueError, match="calcium_probability must be in"):
        lesion_labels(_binary(np.zeros(cand.shape, np.float32)), cand, 1.0)


def test_predict_options_check_the_decision() -> None:
    from s2cac.inference.batch import PredictOptions

    assert PredictOptions().decision == "lesion"
    assert PredictOptions(decision="voxel").decision == "voxel"
    with pytest.raises(ValueError, match="decision must be one of lesion, voxel, got 'component'"):
        PredictOptions(decision="component")


def test_thin_volumes_are_labelled() -> None:
    """A volume one voxel thin in two axes (cc3d 4.1.1 fails on it as bool with 26-connectivity)."""
    from s2cac.inference.lesions import candidate_components

    candidates = np.zeros((1, 1, 8), bool)
    candidates[0, 0, ::2] = True
    assert candidate_components(candidates).ravel().tolist() == [1, 0, 2, 0, 3, 0, 4, 0]
    probabilities = np.zeros((2, 1, 1, 8), np.float32)
    probabilities[1, 0, 0] = [0.9, 0, 0.1, 0, 0.8, 0, 0.2, 0]
    probabilities[0] = 1 - probabilities[1]
    labels = lesion_labels(probabilities, candidates)
    assert labels.ravel().tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
