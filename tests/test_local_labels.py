"""Renumbering a tile to local labels, the face store's frames and reusable buffers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from patchworks._engine.local import MIN_MEAN_RUN, LabelRuns, dense_limit, to_local_labels
from patchworks._plan import TilePlan
from patchworks._store.chunkfiles import REUSABLE_BYTES, reusable
from patchworks._store.facestore import FaceIndex, FaceStore, face_planes

TILE = TilePlan((4,), (4,), (0,)).tile(0)


def _expected_local(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels[labels > 0])
    local = np.searchsorted(ids, labels) + 1
    return ids, np.where(labels > 0, local, 0)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    top=st.integers(0, 300),
    runs=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_local_labels_are_ranks_of_the_labels(shape, top, runs, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, top + 1, size=shape).astype("int32")
    if runs:  # long runs of equal labels, as segmentations have
        labels = np.sort(labels, axis=-1)
    local = to_local_labels(labels, np.dtype("int32"), TILE)
    ids, expected = _expected_local(labels)
    assert local.n == ids.size and local.ids.tolist() == ids.tolist()
    assert np.array_equal(local.whole(), expected)
    for plane, want in zip(local.faces(), face_planes(expected), strict=True):
        assert np.array_equal(plane, want)


def test_labels_already_one_to_n_are_used_as_they_are():
    labels = np.array([[0, 2], [1, 2]], dtype="int32")
    local = to_local_labels(labels, np.dtype("int32"), TILE)
    assert local.table is None and local.n == 2
    assert np.array_equal(local.whole(), labels) and local.whole().dtype == np.uint8


def test_sparse_labels_are_renumbered_by_first_appearance():
    labels = np.array([0, 7 * 10**12, 5, 7 * 10**12], dtype="uint64")
    assert int(labels.max()) >= dense_limit(labels.size)
    local = to_local_labels(labels, np.dtype("int64"), TILE)
    assert local.whole().tolist() == [0, 1, 2, 1]
    assert local.ids.tolist() == [7 * 10**12, 5]


def test_label_runs_of_empty_and_constant_arrays():
    empty = LabelRuns.of(np.zeros(0, "uint8"))
    assert empty.starts.tolist() == [] and empty.values.tolist() == []
    constant = LabelRuns.of(np.full(40, 4, "uint16"))
    assert constant.starts.tolist() == [0] and constant.values.tolist() == [4]
    assert constant.long


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    top=st.integers(0, 300),
    mean_run=st.sampled_from([1, MIN_MEAN_RUN, 64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_run_lengths_expand_to_the_local_labels(shape, top, mean_run, seed):
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    runs = rng.integers(0, top + 1, size=max(1, size // mean_run))
    labels = np.resize(np.repeat(runs, mean_run), shape).astype("int32")
    local = to_local_labels(labels, np.dtype("int32"), TILE)
    expanded = local.run_lengths()
    if expanded is None:  # short runs: staged voxel by voxel
        assert np.count_nonzero(np.diff(labels.reshape(-1))) + 1 > size / MIN_MEAN_RUN
        return
    lengths, values = expanded
    assert np.array_equal(np.repeat(values, lengths).reshape(shape), local.whole())


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("top", [3, 300, 70_000])
def test_face_store_frames_round_trip(tmp_path, ndim, top):
    rng = np.random.default_rng(ndim)
    shape = tuple(rng.integers(1, 6, size=ndim))
    local = rng.integers(0, top + 1, size=shape)
    store = FaceStore.create(str(tmp_path))
    ids = np.arange(10, 10 + top, dtype=np.uint64)
    refs = [
        None,
        store.append(shape, face_planes(local), int(local.max()), ids),
        store.append(shape, face_planes(local), int(local.max())),
    ]
    index = FaceIndex.of(refs)
    with store.reader(index) as reader:
        assert reader.slab(0, 0, "lo") is None and reader.ids(0) is None
        for axis in range(ndim):
            for side, plane in (("lo", 0), ("hi", shape[axis] - 1)):
                want = np.take(local, [plane], axis=axis)
                assert np.array_equal(reader.slab(1, axis, side), want)
        assert reader.ids(1).tolist() == ids.tolist() and reader.ids(2) is None


def test_reusable_buffers_are_per_thread_and_purpose():
    a = reusable("t-a", (4, 4), "int32")
    assert reusable("t-a", (2, 2), "uint8").ctypes.data == a.ctypes.data  # reused
    assert reusable("t-b", (4, 4), "int32").ctypes.data != a.ctypes.data
    other = []
    thread = threading.Thread(target=lambda: other.append(reusable("t-a", (4, 4), "int32")))
    thread.start()
    thread.join()
    assert other[0].ctypes.data != a.ctypes.data
    big = (REUSABLE_BYTES + 1,)
    first, second = reusable("t-c", big, "uint8"), reusable("t-c", big, "uint8")
    assert first.ctypes.data != second.ctypes.data  # too big to keep: fresh each time


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "uint64"])
def test_apply_lut_into_a_buffer_and_bounds(dtype):
    from patchworks._engine.local import apply_lut

    local = np.array([[0, 2], [1, 2]], dtype=dtype)
    lut = np.array([0, 70_000, 9], dtype="int64")
    out = np.full((2, 2), -1, dtype="int64")
    assert apply_lut(local, lut, out) is out and out.tolist() == [[0, 9], [70_000, 9]]
    small = np.array([0, 7, 9], dtype="int16")  # 2-byte tables take NumPy's path
    assert apply_lut(local, small).tolist() == [[0, 9], [7, 9]]
    with pytest.raises(IndexError, match="label 3 outside a table of 3"):
        apply_lut(local + np.array(1, dtype=dtype), lut)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 600),
    n=st.integers(1, 300),  # tables longer than one-byte labels reach, too
    table_dtype=st.sampled_from(["int32", "uint32", "int64"]),
    step=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
@example(size=4, n=300, table_dtype="int32", step=1, seed=0)  # the two-voxel path, long table
def test_apply_lut_matches_numpy_gather(size, n, table_dtype, step, seed):
    from patchworks._engine.local import apply_lut

    rng = np.random.default_rng(seed)
    lut = rng.integers(0, np.iinfo(table_dtype).max, size=n, dtype=table_dtype)
    local = rng.integers(0, min(n, 256), size=size).astype("uint8")[::step]  # odd, strided
    assert np.array_equal(apply_lut(local, lut), lut[local])
    out = np.empty(local.shape, dtype=table_dtype)
    assert apply_lut(local, lut, out) is out and np.array_equal(out, lut[local])
