"""Data-loader wiring: nnU-Net's loader over identifier subsets, plus each patch's calcium count.

Three training loaders feed one iteration (labeled, negative, unlabeled) and one loader feeds validation.
The unlabeled loader never opens a label file: its crops are random and its augmentation gets an all-zero
dummy segmentation (the original code's defect 4, docs/training.md). Only its defect 1 (``faithful_negative_target``)
needs the unlabeled patch's hidden calcium count; that is the single, explicit exception (``read_labels``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import blosc2
import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from threadpoolctl import ThreadpoolController

#: At most this many candidate voxels are kept per case for candidate-centred sampling.
MAX_CANDIDATES = 50_000

#: In-process loaders (``data_workers`` 0, the CPU default) keep up to this many bytes of decompressed cases in
#: memory, least recently used out first (the demo's 36 training and validation cases: 141 MiB). Workers never
#: cache (each process would hold its own copy).
CASE_CACHE_BYTES = 1 << 30

_CONTROLLER: ThreadpoolController | None = None


def one_thread():
    """A context in which every thread pool (OpenMP, BLAS) runs one thread, as nnU-Net's loaders do.

    ``threadpool_limits(...)`` finds the process's thread-pool libraries afresh on every call (reading the loaded
    shared objects): that was 4.5 ms per batch, a quarter of the in-process loader's time on a 2-core CPU. The
    libraries are found once per process here and the limit is set and restored on each use (the same limits,
    so the same batches)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api=None)


def open_image_only(dataset, identifier: str):
    """The preprocessed image (C, Z, Y, X) of one case, lazily, without touching its label file."""
    if not isinstance(dataset, nnUNetDatasetBlosc2):
        raise TypeError(f"unlabeled loading supports nnU-Net's blosc2 datasets only, got {type(dataset).__name__}")
    mmap = {} if os.name == "nt" else {"mmap_mode": "r"}
    path = os.path.join(dataset.source_folder, identifier + ".b2nd")
    return blosc2.open(urlpath=path, mode="r", dparams={"nthreads": 1}, **mmap)


def read_case(dataset, identifier: str, read_labels: bool) -> tuple:
    """(data, seg, props) of one case as nnU-Net's dataset gives them (blosc2 arrays, read lazily); seg and props
    are None when ``read_labels`` is False (the label file is never opened)."""
    if read_labels:
        data, seg, _, props = dataset.load_case(identifier)
        return data, seg, props
    return open_image_only(dataset, identifier), None, None


class CaseCache:
    """Decompressed cases kept in memory, least recently used out first, within ``max_bytes``.

    nnU-Net's blosc2 dataset opens both files, decompresses the crop's chunks and unpickles the properties for
    every patch: a quarter of an in-process loader's time on the demo. Serving the same arrays from memory gives the
    same patches (tests/test_loaders.py). One entry per case: the image, and the label and properties once a
    labeled loader has read them (an image-only read reuses a labeled entry's image)."""

    def __init__(self, max_bytes: int = CASE_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._items: OrderedDict[str, tuple] = OrderedDict()

    def get(self, dataset, identifier: str, read_labels: bool) -> tuple:
        """(data, seg, props) of one case; seg and props are None when ``read_labels`` is False."""
        hit = self._items.get(identifier)
        if hit is not None and (hit[1] is not None or not read_labels):
            self._items.move_to_end(identifier)
            return hit if read_labels else (hit[0], None, None)
        data, seg, props = read_case(dataset, identifier, read_labels)
        item = (np.asarray(data[:]), None if seg is None else np.asarray(seg[:]), props)
        size = sum(a.nbytes for a in item[:2] if a is not None)
        if size <= self.max_bytes:
            if hit is not None:
                self._drop(identifier)
            while self._items and self.nbytes + size > self.max_bytes:
                self._drop(next(iter(self._items)))
            self._items[identifier] = item
            self.nbytes += size
        return item

    def _drop(self, identifier: str) -> None:
        data, seg, _ = self._items.pop(identifier)
        self.nbytes -= data.nbytes + (seg.nbytes if seg is not None else 0)


class PatchLoader(nnUNetDataLoader):
    """nnU-Net's 3D loader with our patch-centre choice and each patch's calcium count.

    Every patch is centred, independently with these probabilities, on a calcium voxel
    (``foreground_fraction``; needs labels), on a *candidate* voxel (``candidate_fraction``: image value >=
    ``candidate_level``, i.e. a voxel that could be exported as calcium; with labels, calcium voxels are
    excluded so these are the hard negatives: bone, aortic and valve calcification, metal), or anywhere.

    Batch dict: ``data`` (B, C, Z, Y, X) float32, ``target`` (B, 1, Z, Y, X) int16 (None when
    ``read_labels`` is False), ``keys``, ``fg_seen`` (B,) calcium voxels (any label > 0: binary calcium or an
    artery) in the patch the network sees (after augmentation) and ``fg_crop`` (B,) calcium voxels in the original
    code's larger crop (defect 2, docs/training.md:
    the whole z range of the case over the in-plane extent of the crop before augmentation; 0 unless
    ``count_whole_z``, since only ``faithful_score_crop`` uses it).
    """

    def __init__(
        self,
        data,
        batch_size: int,
        patch_size: Sequence[int],
        final_patch_size: Sequence[int],
        label_manager,
        oversample_foreground_percent: float,
        transforms,
        read_labels: bool = True,
        candidate_fraction: float = 0.0,
        candidate_level: float | None = None,
        count_whole_z: bool = True,
    ) -> None:
        super().__init__(
            data,
            batch_size,
            patch_size,
            final_patch_size,
            label_manager,
            oversample_foreground_percent=0.0,
            transforms=transforms,
        )
        self.read_labels = read_labels
        self.foreground_fraction = float(oversample_foreground_percent) if read_labels else 0.0
        self.candidate_fraction = float(candidate_fraction) if candidate_level is not None else 0.0
        self.candidate_level = candidate_level
        self.candidates_use_labels = True  # False: candidates from the image alone (unlabeled scans)
        self.count_whole_z = bool(count_whole_z)  # False: fg_crop is not needed and stays 0 (saves a crop)
        self._candidates: dict[str, np.ndarray] = {}
        self.cache: CaseCache | None = None  # set by wrap() for in-process loading

    def candidate_locations(self, key: str, data, seg) -> np.ndarray:
        """(N, 4) (channel, z, y, x) voxels >= ``candidate_level`` that are not calcium (no label > 0; cached per
        case)."""
        if key not in self._candidates:
            mask = np.asarray(data[0]) >= self.candidate_level
            if seg is not None and self.candidates_use_labels:
                mask &= np.asarray(seg[0]) <= 0  # calcium is any label > 0 (arteries 1-4)
            coords = np.argwhere(mask)
            if len(coords) > MAX_CANDIDATES:  # a fixed, even subsample keeps memory bounded on big scans
                coords = coords[np.linspace(0, len(coords) - 1, MAX_CANDIDATES).astype(np.int64)]
            self._candidates[key] = np.concatenate([np.zeros((len(coords), 1), np.int64), coords], axis=1)
        return self._candidates[key]

    def _choose_bbox(self, key: str, data, seg, props):
        u = np.random.uniform()
        if u < self.foreground_fraction:
            return self.get_bbox(data.shape[1:], True, props["class_locations"])
        if u < self.foreground_fraction + self.candidate_fraction:
            coords = self.candidate_locations(key, data, seg)
            if len(coords):
                return self.get_bbox(data.shape[1:], True, {1: coords})
        return self.get_bbox(data.shape[1:], False, None)

    def generate_train_batch(self) -> dict:
        keys = self.get_indices()
        images, segs, seen, crop = [], [], [], []
        with torch.no_grad(), one_thread():
            for key in keys:
                read = read_case if self.cache is None else self.cache.get
                data, seg, props = read(self._data, key, self.read_labels)
                lbs, ubs = self._choose_bbox(key, data, seg, props)
                bbox = [[lo, hi] for lo, hi in zip(lbs, ubs, strict=True)]
                image = torch.from_numpy(crop_and_pad_nd(data, bbox, 0)).float()
                if seg is not None:
                    label = torch.from_numpy(crop_and_pad_nd(seg, bbox, -1, cast_cropped_to=np.int16)).to(torch.int16)
                    if self.count_whole_z:
                        big = [[0, seg.shape[1]], *bbox[1:]]  # the authors' crop: every slice of the case
                        crop.append(int((crop_and_pad_nd(seg, big, -1) > 0).sum()))
                    else:
                        crop.append(0)
                else:
                    label = torch.zeros((1, *image.shape[1:]), dtype=torch.int16)
                    crop.append(0)
                if self.transforms is not None:
                    out = self.transforms(image=image, segmentation=label)
                    image, label = out["image"], out["segmentation"]
                seen.append(int((label > 0).sum()))
                images.append(image)
                segs.append(label)
        return {
            "data": torch.stack(images),
            "target": torch.stack(segs) if self.read_labels else None,
            "keys": list(keys),
            "fg_seen": torch.tensor(seen, dtype=torch.float32),
            "fg_crop": torch.tensor(crop, dtype=torch.float32),
        }


def wrap(loader: PatchLoader, workers: int, pin_memory: bool, cache: CaseCache | None = None):
    """Single-threaded (deterministic) for ``workers`` 0, serving cases from ``cache`` when given, else nnU-Net's
    multi-process augmenter (no cache)."""
    if workers <= 0:
        loader.cache = cache
        return SingleThreadedAugmenter(loader, None)
    return NonDetMultiThreadedAugmenter(
        data_loader=loader,
        transform=None,
        num_processes=workers,
        num_cached=max(2, workers),
        seeds=None,
        pin_memory=pin_memory,
        wait_time=0.002,
    )


class CompositeBatches:
    """One S2CAC iteration's batch: ``{"labeled": ..., "negative": ... | None, "unlabeled": ... | None}``."""

    def __init__(self, labeled, negative=None, unlabeled=None) -> None:
        self.parts = {"labeled": labeled, "negative": negative, "unlabeled": unlabeled}

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return {name: (next(src) if src is not None else None) for name, src in self.parts.items()}

    def finish(self) -> None:
        """Stop background workers, if any."""
        for src in self.parts.values():
            if isinstance(src, NonDetMultiThreadedAugmenter):
                src._finish()
