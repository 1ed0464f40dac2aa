"""Hand-computed Agatston, volume and mass scores on small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from s2cac.scoring import RISK_BOUNDS, agatston_weight, risk_category, risk_category_names, score_mask


def _vol(shape=(3, 8, 8)) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(shape, np.int16), np.zeros(shape, np.uint8)


@pytest.mark.parametrize(
    ("peak", "weight"),
    [(129, 0), (130, 1), (199, 1), (200, 2), (299, 2), (300, 3), (399, 3), (400, 4), (1500, 4)],
)
def test_weight_band_edges(peak: int, weight: int) -> None:
    hu, mask = _vol()
    mask[1] = 1
    # 2 x 2 lesion of 1 mm pixels (4 mm^2); its other voxels are at the lowest calcium HU (or below it).
    hu[1, 2:4, 2:4] = min(peak, 130)
    hu[1, 3, 3] = peak
    res = score_mask(hu, mask, (3.0, 1.0, 1.0))
    expected_area = 4 if peak >= 130 else 0
    assert res.total.agatston == pytest.approx(expected_area * weight)
    assert res.total.n_lesions == (1 if peak >= 130 else 0)
    assert res.per_label[1].agatston == res.total.agatston
    if peak >= 130:
        assert int(agatston_weight(peak)) == weight


@pytest.mark.parametrize(
    ("pixel_mm", "n_pixels", "kept"),
    [(0.5, 3, False), (0.5, 4, True), (0.7, 2, False), (0.7, 3, True), (1.2, 1, True)],
)
def test_min_area_rule_in_mm2(pixel_mm: float, n_pixels: int, kept: bool) -> None:
    hu, mask = _vol((1, 6, 6))
    mask[:] = 1
    hu[0, 1, 1 : 1 + n_pixels] = 250  # a row of pixels, weight 2
    res = score_mask(hu, mask, (3.0, pixel_mm, pixel_mm))
    area = n_pixels * pixel_mm**2
    assert res.total.agatston == pytest.approx(2 * area if kept else 0.0)
    assert res.total.volume_mm3 == pytest.approx(3.0 * area if kept else 0.0)
    assert res.total.n_lesions == int(kept)


def test_connectivity_8_vs_4() -> None:
    hu, mask = _vol((1, 5, 5))
    mask[:] = 1
    hu[0, 1, 1] = 150  # diagonal neighbours: one lesion with 8-connectivity, two with 4
    hu[0, 2, 2] = 450
    eight = score_mask(hu, mask, (3, 1, 1), connectivity=8)
    four = score_mask(hu, mask, (3, 1, 1), connectivity=4)
    assert eight.total.agatston == pytest.approx(2 * 4)  # area 2 mm^2, peak 450
    assert eight.total.n_lesions == 1
    assert four.total.agatston == pytest.approx(1 * 1 + 1 * 4)
    assert four.total.n_lesions == 2
    # With a 1.5 mm^2 minimum, only the 8-connected lesion survives.
    assert score_mask(hu, mask, (3, 1, 1), connectivity=4, min_area_mm2=1.5).total.agatston == 0
    assert score_mask(hu, mask, (3, 1, 1), connectivity=8, min_area_mm2=1.5).total.agatston == pytest.approx(8)


def test_lesion_spanning_slices_scored_per_slice() -> None:
    hu, mask = _vol((4, 6, 6))
    mask[:] = 1
    for z, peak in zip((0, 1, 2), (150, 250, 450), strict=True):
        hu[z, 2:4, 2:4] = 140
        hu[z, 2, 2] = peak
    res = score_mask(hu, mask, (3.0, 1.0, 1.0))
    assert res.total.agatston == pytest.approx(4 * 1 + 4 * 2 + 4 * 4)
    assert res.total.n_lesions == 3
    assert res.total.volume_mm3 == pytest.approx(12 * 3.0)


def test_slices_never_link_through_the_stacked_layout() -> None:
    # Last row of slice 0 and first row of slice 1 at the same x must stay two lesions.
    hu, mask = _vol((2, 4, 4))
    mask[:] = 1
    hu[0, 3, 3] = 450
    hu[1, 0, 3] = 150
    res = score_mask(hu, mask, (3.0, 1.0, 1.0))
    assert res.total.n_lesions == 2
    assert res.total.agatston == pytest.approx(4 + 1)


def test_slice_increment_normalisation_1p5_mm() -> None:
    hu, mask = _vol((2, 6, 6))
    mask[:] = 1
    hu[:, 2:4, 2:4] = 250  # two slices, 4 mm^2 each, weight 2
    res = score_mask(hu, mask, (1.5, 1.0, 1.0))
    assert res.total.agatston == pytest.approx((8 + 8) * 1.5 / 3.0)
    assert res.total.volume_mm3 == pytest.approx(8 * 1.5)
    # An explicit increment (e.g. overlapping reconstruction) overrides the spacing for the scaling only.
    res3 = score_mask(hu, mask, (1.5, 1.0, 1.0), slice_increment_mm=3.0)
    assert res3.total.agatston == pytest.approx(16.0)
    assert res3.total.volume_mm3 == pytest.approx(8 * 1.5)


def test_multi_label_and_union_total() -> None:
    hu, mask = _vol((1, 6, 6))
    hu[0, 2, 1:3] = 150
    mask[0, 2, 1:3] = 1  # LM: 2 mm^2, weight 1
    hu[0, 2, 3:5] = 450
    mask[0, 2, 3:5] = 2  # LAD: touching LM, 2 mm^2, weight 4
    mask[0, 5, 5] = 3  # a label without calcium still gets a row
    res = score_mask(hu, mask, (3.0, 1.0, 1.0))
    assert sorted(res.per_label) == [1, 2, 3]
    assert res.per_label[1].agatston == pytest.approx(2)
    assert res.per_label[2].agatston == pytest.approx(8)
    assert res.per_label[3].agatston == 0 and res.per_label[3].n_lesions == 0
    # The union has one 4 mm^2 lesion with peak 450: 16, not 2 + 8.
    assert res.total.agatston == pytest.approx(16)
    assert res.total.n_lesions == 1
    assert res.total.label == "total"
    # A 3 mm^2 minimum drops both per-label halves but keeps the union lesion.
    res3 = score_mask(hu, mask, (3.0, 1.0, 1.0), min_area_mm2=3.0)
    assert res3.per_label[1].agatston == 0 and res3.per_label[2].agatston == 0
    assert res3.total.agatston == pytest.approx(16)


def test_empty_mask_and_mask_without_calcium() -> None:
    hu, mask = _vol()
    hu[:] = 600
    res = score_mask(hu, mask, (3.0, 0.5, 0.5), mass_calibration=0.8)
    assert res.per_label == {}
    assert res.total.agatston == 0 and res.total.volume_mm3 == 0 and res.total.mass_mg == 0
    assert res.total.n_lesions == 0 and res.total.risk_category == "0"
    hu[:] = 40
    mask[1, 2:5, 2:5] = 4
    res = score_mask(hu, mask, (3.0, 0.5, 0.5))
    assert list(res.per_label) == [4]
    assert res.per_label[4].agatston == 0 and res.total.risk_category == "0"
    assert res.total.mass_mg is None


def test_mass_and_threshold() -> None:
    hu, mask = _vol((1, 5, 5))
    mask[:] = 1
    hu[0, 1, 1:4] = [200, 300, 400]  # 3 voxels of 0.5 x 0.5 x 2 mm = 1.5 mm^3, mean 300 HU
    hu[0, 3, 1] = 129  # only a candidate below the default threshold
    res = score_mask(hu, mask, (2.0, 0.5, 0.5), min_area_mm2=0.25, mass_calibration=0.8)
    assert res.total.volume_mm3 == pytest.approx(1.5)
    assert res.total.mass_mg == pytest.approx(0.8 * 1.5e-3 * 300)
    low = score_mask(hu, mask, (2.0, 0.5, 0.5), min_area_mm2=0.25, threshold_hu=100)
    assert low.total.n_lesions == 2
    assert low.total.volume_mm3 == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("score", "category"),
    [(0, "0"), (0.4, "1-10"), (10, "1-10"), (10.4, "11-100"), (100, "11-100"), (101, "101-400"), (400, "101-400")]
    + [(400.5, ">400"), (5000, ">400")],
)
def test_risk_category(score: float, category: str) -> None:
    assert risk_category(score) == category


def test_risk_category_names_and_errors() -> None:
    assert risk_category_names(RISK_BOUNDS) == ["0", "1-10", "11-100", "101-400", ">400"]
    assert risk_category(50, bounds=(0, 100)) == "1-100"
    with pytest.raises(ValueError, match=">= 0"):
        risk_category(-1)
    with pytest.raises(ValueError, match="increasing"):
        risk_category(1, bounds=(10, 0))


@pytest.mark.parametrize(
    ("mask_change", "kwargs", "message"),
    [
        (lambda m: m.astype(np.int16) - 1, {}, "labels must be >= 0"),
        (lambda m: m.astype(np.float32) + 0.5, {}, "non-integer"),
        (lambda m: m[:, :-1], {}, "differs from hu shape"),
        (lambda m: m, {"connectivity": 6}, "4 or 8"),
        (lambda m: m, {"spacing_zyx": (3, 0, 1)}, "positive"),
    ],
)
def test_bad_inputs(mask_change, kwargs, message: str) -> None:
    hu, mask = _vol()
    spacing = kwargs.pop("spacing_zyx", (3.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=message):
        score_mask(hu, mask_change(mask), spacing, **kwargs)


def test_bool_and_integral_float_masks_accepted() -> None:
    hu, mask = _vol((1, 4, 4))
    hu[0, 1:3, 1:3] = 320
    mask[0, 1:3, 1:3] = 1
    expected = score_mask(hu, mask, (3, 1, 1)).total
    assert score_mask(hu, mask.astype(bool), (3, 1, 1)).total == expected
    assert score_mask(hu, mask.astype(np.float32), (3, 1, 1)).total == expected


def _naive_scores(hu, mask, spacing, connectivity, min_area, threshold=130):
    """Independent per-slice, per-label reference: scipy labelling and plain loops."""
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    dz, dy, dx = spacing
    out = {}
    for lab in [*np.unique(mask[mask > 0]).tolist(), "total"]:
        region = mask > 0 if lab == "total" else mask == lab
        score = volume = 0.0
        for z in range(hu.shape[0]):
            comps, n = ndimage.label((hu[z] >= threshold) & region[z], structure)
            for i in range(1, n + 1):
                px = hu[z][comps == i]
                if px.size * dy * dx < min_area:
                    continue
                peak = px.max()
                weight = 1 if peak < 200 else 2 if peak < 300 else 3 if peak < 400 else 4
                score += px.size * dy * dx * weight
                volume += px.size * dz * dy * dx
        out[lab] = (score * dz / 3.0, volume)
    return out


@pytest.mark.parametrize("connectivity", [4, 8])
def test_random_volumes_match_naive_loop(connectivity: int) -> None:
    rng = np.random.default_rng(7)
    hu = rng.integers(-100, 700, size=(6, 24, 20)).astype(np.int16)
    mask = rng.integers(0, 4, size=hu.shape).astype(np.uint8)
    mask[:, :, :3] = 0
    spacing = (1.5, 0.6, 0.6)
    res = score_mask(hu, mask, spacing, connectivity=connectivity)
    ref = _naive_scores(hu, mask, spacing, connectivity, 1.0)
    for lab, row in [*res.per_label.items(), ("total", res.total)]:
        assert row.agatston == pytest.approx(ref[lab][0])
        assert row.volume_mm3 == pytest.approx(ref[lab][1])


def test_union_merges_chains_but_not_across_row_ends() -> None:
    hu, mask = _vol((1, 4, 6))
    hu[0, 1, 0:3] = [150, 250, 450]
    mask[0, 1, 0:3] = [1, 2, 1]  # label 1 | label 2 | label 1 in a row: one union lesion of 3 mm^2
    hu[0, 2, 5] = 450  # right end of row 2 and left end of row 3 are not neighbours
    mask[0, 2, 5] = 1
    hu[0, 3, 0] = 450
    mask[0, 3, 0] = 2
    res = score_mask(hu, mask, (3.0, 1.0, 1.0))
    assert res.per_label[1].n_lesions == 3 and res.per_label[2].n_lesions == 2
    assert res.total.n_lesions == 3
    assert res.total.agatston == pytest.approx(3 * 4 + 4 + 4)
    four = score_mask(hu, mask, (3.0, 1.0, 1.0), connectivity=4)
    assert four.total.n_lesions == 3


def test_diagonal_label_contact_depends_on_connectivity() -> None:
    hu, mask = _vol((1, 4, 4))
    hu[0, 1, 1], mask[0, 1, 1] = 150, 1
    hu[0, 2, 2], mask[0, 2, 2] = 450, 2
    assert score_mask(hu, mask, (3, 1, 1), connectivity=8).total.agatston == pytest.approx(8)
    assert score_mask(hu, mask, (3, 1, 1), connectivity=4).total.agatston == pytest.approx(5)


def test_large_label_values() -> None:
    hu, mask = _vol((1, 4, 4))
    mask = mask.astype(np.uint32)
    hu[0, 0, 0:2], mask[0, 0, 0:2] = 300, 70000
    hu[0, 3, 0:2], mask[0, 3, 0:2] = 300, 5
    res = score_mask(hu, mask, (3, 1, 1))
    assert sorted(res.per_label) == [5, 70000]
    assert res.per_label[70000].agatston == pytest.approx(6)
    assert res.total.agatston == pytest.approx(12)


@pytest.mark.parametrize(("seed", "connectivity"), [(1, 8), (2, 4), (3, 8)])
def test_random_sparse_multilabel_match_naive_loop(seed: int, connectivity: int) -> None:
    rng = np.random.default_rng(seed)
    hu = rng.integers(-100, 700, size=(5, 30, 17)).astype(np.int16)
    mask = ((rng.random(hu.shape) < 0.35) * rng.integers(1, 6, size=hu.shape)).astype(np.int32)
    spacing = (2.5, 0.8, 0.7)
    res = score_mask(hu, mask, spacing, connectivity=connectivity)
    # The union total is never below the per-label sum (documented in docs/scoring.md).
    assert res.total.agatston >= sum(r.agatston for r in res.per_label.values()) - 1e-9
    ref = _naive_scores(hu, mask, spacing, connectivity, 1.0)
    for lab, row in [*res.per_label.items(), ("total", res.total)]:
        assert row.agatston == pytest.approx(ref[lab][0])
        assert row.volume_mm3 == pytest.approx(ref[lab][1])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_dense_path_matches_sparse_path_and_naive_loop(monkeypatch, connectivity: int) -> None:
    """Above SPARSE_MAX_CANDIDATES the lesions are labelled with cc3d; both paths give the naive loop's scores."""
    import s2cac.scoring.agatston as agatston

    rng = np.random.default_rng(11)
    hu = rng.integers(-100, 700, size=(5, 30, 17)).astype(np.int16)
    mask = ((rng.random(hu.shape) < 0.5) * rng.integers(1, 4, size=hu.shape)).astype(np.uint8)
    spacing = (3.0, 0.7, 0.7)
    sparse = score_mask(hu, mask, spacing, connectivity=connectivity)
    monkeypatch.setattr(agatston, "SPARSE_MAX_CANDIDATES", 0)
    dense = score_mask(hu, mask, spacing, connectivity=connectivity)
    ref = _naive_scores(hu, mask, spacing, connectivity, 1.0)
    for lab in [*sparse.per_label, "total"]:
        a = sparse.total if lab == "total" else sparse.per_label[lab]
        b = dense.total if lab == "total" else dense.per_label[lab]
        assert (a.agatston, a.volume_mm3, a.n_lesions) == pytest.approx((b.agatston, b.volume_mm3, b.n_lesions))
        assert a.agatston == pytest.approx(ref[lab][0])
