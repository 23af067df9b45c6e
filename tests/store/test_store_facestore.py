"""patchworks._store.facestore: face slabs and label IDs round-trip through segments."""

from __future__ import annotations

import itertools
import os
import pickle
import threading

import numpy as np
import pytest

from patchworks._store.facestore import (
    IDS_DTYPE,
    FaceIndex,
    FaceRef,
    FaceStore,
    face_planes,
)
from patchworks.errors import StagedDataMissingError


def _slabs_of(labels):
    """What the reader must give back: every (axis, side) slab of ``labels``."""
    planes = face_planes(labels)
    return {
        (axis, side): planes[2 * axis + k]
        for axis in range(labels.ndim)
        for k, side in enumerate(("lo", "hi"))
    }


def test_face_planes_are_the_first_and_last_plane_of_every_axis_as_views(rng):
    labels = rng.integers(0, 9, size=(3, 4, 5))
    planes = face_planes(labels)
    assert len(planes) == 6
    np.testing.assert_array_equal(planes[0], labels[:1])
    np.testing.assert_array_equal(planes[1], labels[-1:])
    np.testing.assert_array_equal(planes[2], labels[:, :1])
    np.testing.assert_array_equal(planes[3], labels[:, -1:])
    np.testing.assert_array_equal(planes[4], labels[:, :, :1])
    np.testing.assert_array_equal(planes[5], labels[:, :, -1:])
    assert all(np.shares_memory(p, labels) for p in planes)


def test_face_planes_of_a_one_voxel_axis_are_the_same_plane_twice():
    labels = np.arange(4).reshape(1, 4)
    lo, hi, *_ = face_planes(labels)
    np.testing.assert_array_equal(lo, hi)


def test_create_makes_nested_folders_and_accepts_an_existing_one(tmp_path):
    root = tmp_path / "a" / "b" / "faces"
    store = FaceStore.create(str(root))
    assert root.is_dir()
    assert FaceStore.create(str(root)) == store


@pytest.mark.parametrize(
    ("shape", "top"),
    [((7,), 3), ((4, 5), 200), ((3, 4, 5), 300), ((2, 3, 4), 70_000), ((1, 6, 1), 1)],
)
def test_slabs_round_trip_in_the_narrowest_type(tmp_path, rng, shape, top):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = rng.integers(0, top + 1, size=shape)
    index = FaceIndex.of([store.append(shape, face_planes(labels), top)])
    with store.reader(index) as reader:
        for (axis, side), expected in _slabs_of(labels).items():
            slab = reader.slab(0, axis, side)
            assert slab.shape == expected.shape
            assert slab.dtype == np.min_scalar_type(top).newbyteorder("<")
            np.testing.assert_array_equal(slab, expected)
        assert reader.ids(0) is None


def test_many_tiles_share_one_segment_per_thread_at_increasing_offsets(tmp_path, rng):
    store = FaceStore.create(str(tmp_path / "faces"))
    tiles = [rng.integers(0, 5, size=(3, 4)) for _ in range(5)]
    ids = [None, rng.integers(1, 2**40, size=4, dtype=np.uint64), None, None, np.arange(1, 5)]
    refs = [store.append(t.shape, face_planes(t), 4, i) for t, i in zip(tiles, ids, strict=True)]
    assert len({r.segment for r in refs}) == 1
    for before, after in itertools.pairwise(refs):
        assert after.offset == before.offset + before.size + before.ids_size
    assert (
        os.path.getsize(store.path(refs[-1])) == refs[-1].offset + refs[-1].size + refs[-1].ids_size
    )
    index = FaceIndex.of(refs)
    with store.reader(index) as reader:
        for t, (labels, tile_ids) in enumerate(zip(tiles, ids, strict=True)):
            for (axis, side), expected in _slabs_of(labels).items():
                np.testing.assert_array_equal(reader.slab(t, axis, side), expected)
            got = reader.ids(t)
            if tile_ids is None:
                assert got is None
            else:
                assert got.dtype == IDS_DTYPE
                np.testing.assert_array_equal(got, tile_ids)


def test_tiles_without_labels_read_back_as_none(tmp_path):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = np.ones((2, 2), dtype=np.uint8)
    ref = store.append(labels.shape, face_planes(labels), 1)
    index = FaceIndex.of([None, ref, None])
    assert index.segment.tolist() == [-1, 0, -1]
    assert index.sizes[0] == index.sizes[2] == 0
    with store.reader(index) as reader:
        assert reader.slab(0, 1, "hi") is None
        assert reader.ids(2) is None
        np.testing.assert_array_equal(reader.slab(1, 1, "hi"), labels[:, -1:])


def test_face_index_numbers_each_segment_once_in_order_of_first_use():
    refs = [FaceRef("b.slabs", 0, 10), FaceRef("a.slabs", 0, 5, 3), FaceRef("b.slabs", 10, 4)]
    index = FaceIndex.of(refs)
    assert index.segments == ("b.slabs", "a.slabs")
    assert index.segment.tolist() == [0, 1, 0]
    assert index.starts.tolist() == [0, 0, 10]
    assert index.sizes.tolist() == [10, 5, 4]
    assert index.ids_sizes.tolist() == [0, 3, 0]


def test_each_thread_appends_to_its_own_segment(tmp_path, rng):
    store = FaceStore.create(str(tmp_path / "faces"))
    tiles = [rng.integers(0, 3, size=(4, 4)) for _ in range(4)]
    refs: list[FaceRef | None] = [None] * len(tiles)
    errors = []

    def work(t):
        try:
            refs[t] = store.append(tiles[t].shape, face_planes(tiles[t]), 2)
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(tiles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({r.segment for r in refs}) == len(tiles)
    assert sorted(os.listdir(store.root)) == sorted(r.segment for r in refs)
    with store.reader(FaceIndex.of(refs)) as reader:
        for t, labels in enumerate(tiles):
            np.testing.assert_array_equal(reader.slab(t, 0, "lo"), labels[:1])


def test_a_second_store_in_the_same_thread_gets_its_own_segment(tmp_path):
    one = FaceStore.create(str(tmp_path / "one"))
    two = FaceStore.create(str(tmp_path / "two"))
    labels = np.ones((2, 2), dtype=np.uint8)
    ref_one = one.append(labels.shape, face_planes(labels), 1)
    ref_two = two.append(labels.shape, face_planes(labels), 1)
    assert os.path.exists(one.path(ref_one)) and os.path.exists(two.path(ref_two))
    assert os.listdir(one.root) == [ref_one.segment]
    assert os.listdir(two.root) == [ref_two.segment]


def test_a_store_deleted_and_made_again_starts_a_new_segment(tmp_path):
    import shutil

    root = str(tmp_path / "faces")
    labels = np.full((2, 3), 2, dtype=np.uint8)
    first = FaceStore.create(root).append(labels.shape, face_planes(labels), 2)
    shutil.rmtree(root)
    store = FaceStore.create(root)
    second = store.append(labels.shape, face_planes(labels), 2)
    assert second.segment != first.segment
    assert second.offset == 0
    with store.reader(FaceIndex.of([second])) as reader:
        np.testing.assert_array_equal(reader.slab(0, 0, "hi"), labels[-1:])


def test_truncated_face_data_names_the_tile_and_the_store(tmp_path):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = np.arange(16).reshape(4, 4)
    ref = store.append(labels.shape, face_planes(labels), 15)
    os.truncate(store.path(ref), ref.size - 1)
    with store.reader(FaceIndex.of([None, ref])) as reader, pytest.raises(OSError) as info:
        reader.slab(1, 0, "lo")
    assert isinstance(info.value, StagedDataMissingError)
    assert str(info.value).startswith(
        f"the face frame of tile 1 is truncated ({ref.size - 1} of {ref.size} bytes) at "
        f"{store.path(ref)!r}; "
    )
    with pytest.raises(StagedDataMissingError, match="is truncated"):
        store.verify(FaceIndex.of([None, ref]))


def test_a_missing_face_segment_names_the_tile_the_path_and_the_fix(tmp_path):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = np.arange(16).reshape(4, 4)
    ref = store.append(labels.shape, face_planes(labels), 15)
    os.remove(store.path(ref))  # written on a worker's private disk: not here
    index = FaceIndex.of([None, None, ref])
    with store.reader(index) as reader, pytest.raises(StagedDataMissingError) as info:
        reader.slab(2, 0, "lo")
    assert str(info.value).startswith(
        f"the face frame of tile 2 is missing at {store.path(ref)!r}; the run's staged data "
        "must be on storage that the client and every dask worker see"
    )
    assert "`write_to`" in str(info.value) and "`temp_dir`" in str(info.value)
    with pytest.raises(StagedDataMissingError, match="tile 2 is missing as the client sees"):
        store.verify(index)
    assert isinstance(info.value, FileNotFoundError)


def test_verify_accepts_a_complete_face_store(tmp_path):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = np.arange(16).reshape(4, 4)
    refs = [store.append(labels.shape, face_planes(labels), 15) for _ in range(3)]
    store.verify(FaceIndex.of([refs[0], None, *refs[1:]]))
    store.verify(FaceIndex.of([None]))


def test_reader_closes_its_files(tmp_path):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = np.ones((2, 2), dtype=np.uint8)
    index = FaceIndex.of([store.append(labels.shape, face_planes(labels), 1)])
    with store.reader(index) as reader:
        reader.slab(0, 0, "lo")
        (fd,) = reader._fds.values()
    assert reader._fds == {}
    with pytest.raises(OSError):
        os.fstat(fd)


def test_store_and_refs_pickle_for_workers(tmp_path):
    store = FaceStore.create(str(tmp_path / "faces"))
    labels = np.ones((3, 3), dtype=np.uint8)
    ref = store.append(labels.shape, face_planes(labels), 1)
    assert pickle.loads(pickle.dumps(store)) == store
    assert pickle.loads(pickle.dumps(ref)) == ref
