"""The loaders' one-thread context and in-process case cache (s2cac.training.loaders)."""

from __future__ import annotations

import numpy as np
import torch
from _tiny_nnunet import TEST_CONFIG, tiny_dataset  # noqa: F401 - fixture
from threadpoolctl import threadpool_info, threadpool_limits

from s2cac.training import loaders


def _threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info()]


def test_one_thread_limits_every_pool_and_restores_it():
    np.ones(1) @ np.ones(1)  # the BLAS library is loaded
    with threadpool_limits(limits=2):
        before = _threads()
        assert any(n > 1 for n in before), "no pool with 2 threads: the test would not check anything"
        with loaders.one_thread():
            assert _threads() == [1] * len(before)
        assert _threads() == before


def test_one_thread_finds_the_libraries_once():
    with loaders.one_thread():
        pass
    controller = loaders._CONTROLLER
    assert controller is not None
    with loaders.one_thread():
        pass
    assert loaders._CONTROLLER is controller  # no fresh library discovery per batch


# ----- the in-process case cache -----
def _composite_batches(tiny_dataset, tmp_path, cached: bool, n: int = 6):  # noqa: F811
    from s2cac.training.config import MethodConfig
    from s2cac.training.trainer import create_trainer

    pre, split = tiny_dataset
    tr = create_trainer(pre, split, MethodConfig.from_dict({**TEST_CONFIG, "data_workers": 0}), tmp_path, device="cpu")
    tr.initialize()
    train, val = tr.get_dataloaders()
    parts = [src.data_loader for src in train.parts.values() if src is not None] + [val.data_loader]
    assert len(parts) == 4 and all(p.cache is not None for p in parts)  # every in-process loader uses the cache
    assert len({id(p.cache) for p in parts}) == 1  # one cache shared by them
    if not cached:
        for p in parts:
            p.cache = None
    tr._reseed(0)
    out = [next(train) for _ in range(n)] + [next(val) for _ in range(2)]
    return out, parts[0]


def _flat(batches):
    for b in batches:
        for part in b.values() if "data" not in b else [b]:
            if part is not None:
                yield part["data"], part["target"], part["fg_seen"], part["keys"]


def test_case_cache_gives_the_same_batches(tiny_dataset, tmp_path):  # noqa: F811
    plain, _ = _composite_batches(tiny_dataset, tmp_path / "plain", cached=False)
    cached, loader = _composite_batches(tiny_dataset, tmp_path / "cached", cached=True)
    assert loader.cache.nbytes > 0 and len(loader.cache._items) > 0  # the cache was used
    pairs = list(zip(_flat(plain), _flat(cached), strict=True))
    assert len(pairs) == 6 * 3 + 2
    for (d0, t0, s0, k0), (d1, t1, s1, k1) in pairs:
        assert k0 == k1 and torch.equal(d0, d1) and torch.equal(s0, s1)
        assert (t0 is None and t1 is None) or torch.equal(t0, t1)


def _dataset(tiny_dataset, keys):  # noqa: F811
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    folder = str(next(tiny_dataset[0].rglob("*.b2nd")).parent)  # the configuration's preprocessed cases
    return infer_dataset_class(folder)(folder, keys)


def test_case_cache_stays_within_its_budget_and_reuses_images(tiny_dataset):  # noqa: F811
    keys = tiny_dataset[1]["labeled"][:3]
    ds = _dataset(tiny_dataset, keys)
    one = sum(np.asarray(a[:]).nbytes for a in ds.load_case(keys[0])[:2])
    cache = loaders.CaseCache(max_bytes=2 * one)
    for k in keys:
        data, seg, props = cache.get(ds, k, read_labels=True)
        ref_data, ref_seg, _, ref_props = ds.load_case(k)
        assert np.array_equal(data, np.asarray(ref_data[:])) and np.array_equal(seg, np.asarray(ref_seg[:]))
        assert props["spacing"] == ref_props["spacing"]
        assert cache.nbytes <= cache.max_bytes
    assert list(cache._items) == keys[1:]  # least recently used out first
    image_only = cache.get(ds, keys[2], read_labels=False)
    assert image_only[1] is None and image_only[0] is cache._items[keys[2]][0]  # a labeled entry's image is reused
    data, seg, _ = cache.get(ds, keys[1], read_labels=True)  # a hit moves it to the end
    assert list(cache._items) == [keys[2], keys[1]] and seg is not None
    fresh = loaders.CaseCache()
    image, seg, props = fresh.get(ds, keys[0], read_labels=False)  # an image-only entry ...
    assert seg is None and props is None and fresh.nbytes == image.nbytes
    data, seg, props = fresh.get(ds, keys[0], read_labels=True)  # ... is replaced when labels are asked for
    assert seg is not None and props is not None and np.array_equal(data, image)
    assert list(fresh._items) == [keys[0]] and fresh.nbytes == data.nbytes + seg.nbytes
    tiny = loaders.CaseCache(max_bytes=1)  # a case larger than the budget is served, not kept
    assert tiny.get(ds, keys[0], read_labels=True)[1] is not None and tiny.nbytes == 0 and not tiny._items


def test_loaders_in_worker_processes_do_not_cache(tiny_dataset):  # noqa: F811
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    ds = _dataset(tiny_dataset, tiny_dataset[1]["labeled"])
    labels = LabelManager({"background": 0, "calcium": 1}, regions_class_order=None)
    loader = loaders.PatchLoader(ds, 2, (8, 32, 32), (8, 32, 32), labels, 0.5, None)
    in_process = loaders.wrap(loader, 0, False, loaders.CaseCache())
    assert in_process.data_loader.cache is not None
    loader2 = loaders.PatchLoader(ds, 2, (8, 32, 32), (8, 32, 32), labels, 0.5, None)
    workers = loaders.wrap(loader2, 1, False, loaders.CaseCache())
    try:
        assert loader2.cache is None
    finally:
        workers._finish()
