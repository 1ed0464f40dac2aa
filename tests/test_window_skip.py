"""Exact window skipping: masks (network AND HU >= threshold) identical with and without skipping."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg

from s2cac.hu import HUWindow, window_hu
from s2cac.inference.model_io import LoadedModel
from s2cac.inference.plans import make_dataset_json, make_plans
from s2cac.inference.predictor import make_predictor, predict_network_labels
from s2cac.inference.window_skip import dependency_bounds, windows_to_keep
from s2cac.nets import build_network
from s2cac.nnunet import CONFIGURATION

PLANS_SPACING = (3.0, 0.45, 0.45)
PATCH = (4, 32, 32)
THRESHOLD = 130.0


def _model(num_classes: int = 2, order: int = 1, fg_prior: float = 0.3) -> LoadedModel:
    torch.manual_seed(0)
    # the random network these tests were written with (tiny's full-resolution kernels were (3, 3, 3) then): it
    # marks voxels of both classes on either side of the threshold, which the comparisons need to mean anything
    net = build_network("tiny", fg_prior=fg_prior, num_classes=num_classes, fullres_kernel=(3, 3, 3))
    plans = make_plans(PATCH, PLANS_SPACING)
    if order != 1:
        plans["configurations"][CONFIGURATION]["resampling_fn_probabilities_kwargs"]["order"] = order
    dataset = make_dataset_json()
    if num_classes > 2:
        dataset["labels"] = {"background": 0, **{f"c{k}": k for k in range(1, num_classes)}}
    overrides = {"fg_prior": fg_prior, "num_classes": num_classes, "fullres_kernel": [3, 3, 3]}
    config = {"network": "tiny", "network_overrides": overrides}
    return LoadedModel(net.state_dict(), plans, dataset, config, "test")


def _body(shape, seed: int, n_blobs: int) -> np.ndarray:
    """Air around a soft-tissue ellipse (noise sigma 20 HU, never >= 130) with ``n_blobs`` calcium blobs."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    ny, nx = shape[1:]
    hu = np.full(shape, -1000.0)
    body = ((y - ny / 2) / (0.42 * ny)) ** 2 + ((x - nx / 2) / (0.45 * nx)) ** 2 <= 1
    hu[body] = rng.normal(20, 20, body.sum()).clip(-100, 100)
    for _ in range(n_blobs):
        cz, cy, cx = rng.integers(1, shape[0] - 1), rng.integers(ny // 3, 2 * ny // 3), rng.integers(nx // 3, nx // 2)
        hu[(z == cz) & ((y - cy) ** 2 + (x - cx) ** 2 <= 6)] = rng.uniform(200, 600)
    return np.rint(hu).astype(np.int16)


def _plain_labels(predictor, hu, spacing) -> np.ndarray:
    """nnU-Net's own predict_single_npy_array, every window (nnU-Net's loop when window_batch is 1)."""
    image = window_hu(hu, HUWindow())[None].astype(np.float32)
    return np.asarray(nnUNetPredictor.predict_single_npy_array(predictor, image, {"spacing": list(spacing)}))


@pytest.fixture(scope="module")
def predictor():
    return make_predictor(_model(), device="cpu", step=0.5, window_batch=2, decision="voxel")


def test_dependency_bounds_cover_nnunet_back_resampling() -> None:
    """A NaN at one network voxel reaches, through nnU-Net's own back-resampling, only the input voxels whose
    dependency bounds contain it (separate-z, order 1 in-plane, order 0 in z; and plain 3D order 1)."""
    rng = np.random.default_rng(1)
    for net_shape, in_shape, sep in [((7, 23, 19), (5, 17, 25), True), ((6, 9, 11), (6, 13, 7), False)]:
        lo_hi = [dependency_bounds(n, c) for n, c in zip(net_shape, in_shape, strict=True)]
        n_hits = 0
        for _ in range(12):
            j = [int(rng.integers(0, n)) for n in net_shape]
            data = np.zeros((1, *net_shape))
            data[(0, *j)] = np.nan
            out = resample_data_or_seg(data, in_shape, False, 0 if sep else None, 1, sep, order_z=0)
            hit = np.argwhere(np.isnan(out[0]))  # (order 0 in z may skip a network slice: then no hit)
            n_hits += len(hit)
            for idx in hit:
                for ax, i in enumerate(idx):
                    lo, hi = lo_hi[ax]
                    assert lo[i] <= j[ax] <= hi[i], (net_shape, in_shape, j, idx)
        assert n_hits > 0


def test_windows_to_keep_box_logic() -> None:
    cand = np.zeros((4, 40, 40), bool)
    cand[2, 5, 5] = True
    starts = [(0, y, x) for y in (0, 12, 24) for x in (0, 12, 24)]
    keep = windows_to_keep(cand, (4, 40, 40), (0, 0, 0), starts, (4, 16, 16))
    assert keep.tolist() == [True] + [False] * 8
    assert not windows_to_keep(np.zeros_like(cand), (4, 40, 40), (0, 0, 0), starts, (4, 16, 16)).any()


@pytest.mark.parametrize(
    "case, spacing, window_batch",
    [
        ("sparse", PLANS_SPACING, 2),
        ("sparse", (2.5, 0.6, 0.55), 2),
        ("sparse", (3.0, 0.5, 0.4), 1),
        ("dense", PLANS_SPACING, 2),
        ("dense", (3.0, 0.4, 0.5), 1),
    ],
)
def test_masks_identical_with_and_without_skipping(predictor, case: str, spacing, window_batch: int) -> None:
    """Skipping keeps the exported mask bit-identical, with resampling and cropping, batched or nnU-Net's loop."""
    predictor = copy.copy(predictor)
    predictor.window_batch = window_batch
    shape = (6, 128, 128)
    if case == "sparse":  # air, soft tissue and two small calcium blobs: most windows can be skipped
        hu = _body(shape, seed=3, n_blobs=2)
    else:  # bone-like noise everywhere: every window holds voxels >= 130 HU, none can be skipped
        hu = np.rint(np.random.default_rng(4).normal(100, 120, shape)).astype(np.int16)
    candidates = hu >= THRESHOLD
    skipped, stats = predict_network_labels(predictor, hu, spacing, threshold_hu=THRESHOLD)
    full, stats_full = predict_network_labels(predictor, hu, spacing)
    plain = _plain_labels(predictor, hu, spacing)
    assert stats_full.windows_skipped == 0 and stats.windows_total == stats_full.windows_total
    np.testing.assert_array_equal(full, plain)  # our predictor without skipping is nnU-Net's
    np.testing.assert_array_equal(skipped & candidates, plain & candidates)  # exported masks: identical
    assert (plain != 0).any() and (plain == 0).any(), "the test needs both classes to mean anything"
    if window_batch == 2:
        assert ((plain != 0) & candidates).any() and ((plain == 0) & candidates).any()
    if case == "sparse":
        assert stats.windows_skipped >= stats.windows_total // 2, stats
    else:
        assert stats.windows_skipped == 0, stats


def test_multiclass_labels_identical_with_skipping() -> None:
    # fg_prior 6/7 over 4 arteries: each artery's bias log((6/7) / (4 * 1/7)) = log 1.5, as before the split
    predictor = make_predictor(_model(num_classes=5, fg_prior=6 / 7), device="cpu", decision="voxel")
    hu = _body((6, 128, 128), seed=5, n_blobs=4)
    cand = hu >= THRESHOLD
    skipped, stats = predict_network_labels(predictor, hu, PLANS_SPACING, threshold_hu=THRESHOLD)
    plain = _plain_labels(predictor, hu, PLANS_SPACING)
    np.testing.assert_array_equal(np.where(cand, skipped, 0), np.where(cand, plain, 0))
    assert stats.windows_skipped > 0 and len(np.unique(plain[cand])) > 1


def test_skipping_refused_for_cubic_back_resampling() -> None:
    predictor = make_predictor(_model(order=3), device="cpu")
    hu = _body((6, 80, 96), seed=3, n_blobs=2)
    _, stats = predict_network_labels(predictor, hu, (3.0, 0.6, 0.6), threshold_hu=THRESHOLD)
    assert stats.windows_skipped == 0 and "order" in stats.skip_reason
    # without resampling the order does not matter: skipping is exact again
    _, stats = predict_network_labels(predictor, hu, PLANS_SPACING, threshold_hu=THRESHOLD)
    assert stats.windows_skipped > 0 and stats.skip_reason == ""


def test_progress_line_within_a_case(predictor, capsys) -> None:
    import sys

    p = copy.copy(predictor)
    p.progress_stream, p.progress_interval_s, p.progress_label = sys.stderr, 0.0, "caseX"
    predict_network_labels(p, _body((6, 80, 96), seed=3, n_blobs=2), PLANS_SPACING, threshold_hu=THRESHOLD)
    err = capsys.readouterr().err
    assert "caseX: window " in err and " skipped)" in err


def test_cpu_predictor_runs_the_fused_network_with_the_same_labels() -> None:
    """On a CPU the predictor runs the network with BatchNorm folded and channels-last memory (fuse=True, the
    default); its labels equal the unfused network's up to float-rounding ties."""
    model = _model()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that folding them is not the identity
        gen = torch.Generator().manual_seed(2)
        for key, value in model.state_dict.items():
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=gen) * 1.5 + 0.5)
            elif key.endswith("running_mean"):
                value.copy_(torch.rand(value.shape, generator=gen) - 0.5)
    fused = make_predictor(model, device="cpu", decision="voxel")
    plain = make_predictor(model, device="cpu", fuse=False, decision="voxel")
    is_bn = lambda m: isinstance(m, torch.nn.BatchNorm3d)  # noqa: E731
    assert not any(map(is_bn, fused.network.modules())) and any(map(is_bn, plain.network.modules()))
    hu = _body((6, 128, 128), seed=3, n_blobs=4)
    a = predict_network_labels(fused, hu, PLANS_SPACING)[0]
    b = predict_network_labels(plain, hu, PLANS_SPACING)[0]
    assert (b != 0).any() and (b == 0).any(), "the test needs both classes to mean anything"
    assert (a != b).mean() <= 1e-4, int((a != b).sum())


@pytest.mark.parametrize(
    ("shape", "new_shape", "current", "new", "threaded_path"),
    [
        ((1, 7, 40, 44), (7, 47, 51), (3.0, 0.5, 0.5), (3.0, 0.43, 0.43), True),  # thick slices, same count
        ((2, 7, 40, 44), (7, 31, 33), (3.0, 0.5, 0.5), (3.0, 0.65, 0.65), True),  # two channels (logits)
        ((1, 7, 40, 44), (9, 47, 51), (3.0, 0.5, 0.5), (2.5, 0.43, 0.43), False),  # slice count changes
        ((1, 12, 40, 44), (14, 47, 51), (0.6, 0.5, 0.5), (0.5, 0.43, 0.43), False),  # isotropic: 3D resampling
    ],
)
@pytest.mark.parametrize("order", [1, 3])
def test_threaded_resampling_is_nnunets(shape, new_shape, current, new, threaded_path, order) -> None:
    """Slice blocks on threads give nnU-Net's array exactly; other cases run nnU-Net's call as is."""
    from functools import partial

    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape

    from s2cac.inference.resampling import slicewise, threaded

    fn = partial(resample_data_or_seg_to_shape, is_seg=False, order=order, order_z=0, force_separate_z=None)
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    assert slicewise(fn, data, new_shape, current, new) == threaded_path
    ref = fn(data, new_shape, current, new)
    for threads in (2, 3):
        out = threaded(fn, threads)(torch.from_numpy(data) if shape[0] == 2 else data, new_shape, current, new)
        assert out.dtype == ref.dtype
        np.testing.assert_array_equal(out, ref)


def test_predictor_resamples_on_threads() -> None:
    from s2cac.inference.resampling import PredictionConfigurationManager

    predictor = make_predictor(_model(), device="cpu")
    assert isinstance(predictor.configuration_manager, PredictionConfigurationManager)


def test_calcium_probability_is_the_probability_decision_and_skipping_stays_exact() -> None:
    """``calcium_probability`` t marks a voxel when nnU-Net's exported calcium probability exceeds t (binary
    model), masks shrink as t grows, and skipping still gives the exported mask without skipping."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    model = _model()
    hu = _body((6, 128, 128), seed=3, n_blobs=4)
    base = make_predictor(model, device="cpu", decision="voxel")
    image = window_hu(hu, HUWindow())[None].astype(np.float32)
    pre = base.configuration_manager.preprocessor_class(verbose=False)
    data, _, props = pre.run_case_npy(
        image, None, {"spacing": list(PLANS_SPACING)}, base.plans_manager, base.configuration_manager, base.dataset_json
    )
    logits = base.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
    _, probs = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, base.plans_manager, base.configuration_manager, base.label_manager, props, return_probabilities=True
    )
    calcium_p = 1.0 - probs[0]
    candidates = hu >= THRESHOLD
    masks = {}
    for t in (0.2, 0.5, 0.8):
        predictor = make_predictor(model, device="cpu", calcium_probability=t, decision="voxel")
        labels = predict_network_labels(predictor, hu, PLANS_SPACING)[0] != 0
        skipped = predict_network_labels(predictor, hu, PLANS_SPACING, threshold_hu=THRESHOLD)[0] != 0
        np.testing.assert_array_equal(skipped & candidates, labels & candidates)
        expected = calcium_p > t
        near = np.abs(calcium_p - t) < 2e-3  # fp16 logits: the two rules may differ right at the boundary
        assert np.array_equal(labels[~near], expected[~near]), t
        masks[t] = labels
    assert masks[0.8].sum() < masks[0.5].sum() < masks[0.2].sum()
    assert not (masks[0.8] & ~masks[0.5]).any() and not (masks[0.5] & ~masks[0.2]).any()
    with pytest.raises(ValueError, match="calcium_probability must be in"):
        make_predictor(model, device="cpu", calcium_probability=1.0)


def _plain_probabilities(predictor, hu, spacing) -> np.ndarray:
    """nnU-Net's own predict_single_npy_array's softmax probabilities, every window."""
    image = window_hu(hu, HUWindow())[None].astype(np.float32)
    _, probs = nnUNetPredictor.predict_single_npy_array(predictor, image, {"spacing": list(spacing)}, None, None, True)
    return np.asarray(probs)


@pytest.mark.parametrize(("case", "num_classes"), [("sparse", 2), ("dense", 2), ("sparse", 5)])
def test_lesion_rule_masks_identical_with_and_without_skipping(case: str, num_classes: int) -> None:
    """The lesion rule (the default decision) on nnU-Net's probabilities: the same labels with and without
    skipping, each candidate lesion kept or dropped whole, and not the voxel rule's labels."""
    import cc3d

    from s2cac.inference.lesions import lesion_labels

    model = _model(num_classes=num_classes, fg_prior=0.3 if num_classes == 2 else 6 / 7)
    shape = (6, 128, 128)
    if case == "sparse":
        hu = _body(shape, seed=3, n_blobs=8)
    else:  # candidates everywhere (7 %, many components of all sizes): no window can be skipped
        hu = np.rint(np.random.default_rng(4).normal(-50, 120, shape)).astype(np.int16)
    cand = hu >= THRESHOLD
    voxel = make_predictor(model, device="cpu", decision="voxel")  # t = 0.5: no logit offset
    probs = _plain_probabilities(voxel, hu, PLANS_SPACING)
    components = cc3d.connected_components(cand, connectivity=26)
    means = np.bincount(components.ravel(), 1 - probs[0].ravel(), components.max() + 1)[1:]
    means /= np.bincount(components.ravel())[1:]
    t = float(np.median(means))  # a threshold at which some lesions are kept and others dropped
    predictor = make_predictor(model, device="cpu", calcium_probability=t)
    assert predictor.decision == "lesion" and predictor.background_offset == 0.0
    skipped, stats = predict_network_labels(predictor, hu, PLANS_SPACING, threshold_hu=THRESHOLD)
    full, _ = predict_network_labels(predictor, hu, PLANS_SPACING)
    np.testing.assert_array_equal(skipped, full)
    np.testing.assert_array_equal(full, lesion_labels(probs, cand, t))
    assert not (full.astype(bool) & ~cand).any()
    kept = np.unique(components[full != 0])
    assert len(kept) > 0 and len(np.setdiff1d(np.unique(components[cand]), kept)) > 0, "both outcomes needed"
    assert np.array_equal(np.isin(components, kept) & cand, full != 0)  # whole lesions only
    voxel = make_predictor(model, device="cpu", calcium_probability=t, decision="voxel")
    voxel_labels, _ = predict_network_labels(voxel, hu, PLANS_SPACING, threshold_hu=THRESHOLD)
    assert ((voxel_labels != 0) & cand != (full != 0)).any(), "the rules should differ on this volume"
    assert (stats.windows_skipped > 0) == (case == "sparse"), stats
    if num_classes > 2:
        assert len(np.unique(full[full != 0])) > 1


def test_make_predictor_refuses_an_unknown_decision() -> None:
    with pytest.raises(ValueError, match="decision must be one of lesion, voxel"):
        make_predictor(_model(), device="cpu", decision="component")


def test_lesion_rule_keeps_every_window_its_candidate_lesions_need() -> None:
    """Skipping for a higher threshold than the lesion rule's candidates still runs every window that a
    candidate lesion's voxel depends on: the labels equal those without skipping."""
    model = _model()
    hu = _body((6, 128, 128), seed=3, n_blobs=8)
    hu[2, 40:44, 40:44] = 140  # a faint lesion below the skipping threshold, far from the bright blobs
    predictor = make_predictor(model, device="cpu", calcium_probability=0.3)  # candidates >= 130 HU
    full, _ = predict_network_labels(predictor, hu, PLANS_SPACING)
    skipped, stats = predict_network_labels(predictor, hu, PLANS_SPACING, threshold_hu=700.0)
    np.testing.assert_array_equal(skipped, full)
    assert full.any() and stats.windows_skipped > 0
