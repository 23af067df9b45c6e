"""patchworks._store.chunkcache and halo reads through it."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import zarr

import patchworks._store.chunkio as chunkio
from patchworks._store.chunkcache import ChunkCache
from patchworks._store.chunkio import ChunkIO


def test_the_cache_stays_within_its_bound_and_evicts_the_least_recent():
    cache = ChunkCache(max_bytes=100)
    for k in range(10):
        cache.put((k,), np.zeros(30, "uint8"))
        assert cache.nbytes <= 100
    assert [cache.get((k,)) is not None for k in range(10)] == [False] * 7 + [True] * 3
    cache.put((99,), np.zeros(101, "uint8"))  # larger than the bound: not kept
    assert cache.get((99,)) is None


def test_cached_chunks_are_read_only_and_a_pickled_cache_is_empty():
    cache = ChunkCache(max_bytes=64)
    chunk = np.arange(4)
    cache.put((0,), chunk)
    with pytest.raises(ValueError, match="read-only"):
        cache.get((0,))[0] = 5
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.max_bytes == 64 and copy.get((0,)) is None and copy.nbytes == 0


def test_halo_boxes_read_through_the_cache_equal_zarr_and_read_each_chunk_once(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 1000, (12, 12, 12), dtype="uint16")
    array = zarr.create_array(str(tmp_path / "a.zarr"), data=data, chunks=(4, 4, 4))
    io = ChunkIO.of(array)
    reads = []
    original = chunkio.read_file
    monkeypatch.setattr(chunkio, "read_file", lambda path: reads.append(path) or original(path))
    cache = ChunkCache()
    for start in np.ndindex(3, 3, 3):  # every tile's core, grown by a halo of 2
        box = tuple(slice(max(4 * s - 2, 0), min(4 * s + 6, 12)) for s in start)
        np.testing.assert_array_equal(io.read_box(box, cache=cache), data[box])
    assert len(reads) == len(set(reads)) == 27
