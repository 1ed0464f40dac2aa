"""The loaders' one-thread context (s2cac.training.loaders.one_thread)."""

from __future__ import annotations

import numpy as np
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
