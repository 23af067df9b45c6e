"""Where a tile's labels wait for the relabel stage: staged by us, or the user's store."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from patchworks import merge_tile_labels
from patchworks._engine.staged import StagedLabels, UserLabels
from patchworks._plan import TilePlan
from patchworks.errors import StitchingWarning
from patchworks.testing import assert_same_partition


def _store(tmp_path, labels, chunks):
    z = zarr.create_array(
        str(tmp_path / "labels.zarr"), shape=labels.shape, chunks=chunks, dtype=labels.dtype
    )
    z[:] = labels
    return str(tmp_path / "labels.zarr")


def test_lazy_merge_of_a_label_store_keeps_objects_across_seams(tmp_path):
    """Dense IDs whose order of first appearance differs from their order of value: the
    lazy result (face store gone) must find each tile's local labels as the tile stage did."""
    labels = np.zeros((8, 8), dtype="int32")
    labels[0, 0] = 9  # first in the tile, but the larger ID
    labels[2, 2:4] = 4
    labels[2, 4:6] = 7  # the same object, in the next tile
    path = _store(tmp_path, labels, (4, 4))
    now = merge_tile_labels(path, connectivity=1, compute=True)
    lazy = np.asarray(merge_tile_labels(path, connectivity=1).compute())
    np.testing.assert_array_equal(lazy, now)
    assert lazy[2, 2] == lazy[2, 5] != lazy[0, 0]


def test_lazy_merge_of_a_label_store_matches_the_computed_one(tmp_path, rng):
    labels = rng.integers(0, 6, size=(12, 12)).astype("int32")
    path = _store(tmp_path, labels, (4, 4))
    with pytest.warns(StitchingWarning):  # random labels touch face to face
        now = merge_tile_labels(path, compute=True)
        lazy = merge_tile_labels(path)
    assert_same_partition(np.asarray(lazy.compute()), now)


def test_user_labels_map_ids_straight_or_renumber_the_same_way():
    tile = TilePlan((4,), (4,), (0,)).tile(0)
    block = np.array([0, 9, 4, 9], dtype="int32")
    lut = np.array([0, 10, 20], dtype="int32")  # local 1 (label 4) -> 10, 2 (label 9) -> 20
    users = UserLabels(array=block, tile_shape=(4,))
    ids = np.array([4, 9], dtype=np.uint64)
    with_ids = users.map_block(tile, block, lut, ids, None)
    without = users.map_block(tile, block, lut, None, None)
    assert with_ids.tolist() == without.tolist() == [0, 20, 10, 20]
    assert not users.in_place and users.keeps_ids


def test_staged_labels_are_local_labels_written_in_place(tmp_path):
    staged = StagedLabels(array=np.zeros((4,), "uint8"), tile_shape=(4,))
    tile = TilePlan((4,), (4,), (0,)).tile(0)
    lut = np.array([0, 5, 6], dtype="int32")
    out = staged.map_block(tile, np.array([0, 1, 2, 1], "uint8"), lut, None, None)
    assert out.tolist() == [0, 5, 6, 5]
    assert staged.in_place and not staged.keeps_ids
