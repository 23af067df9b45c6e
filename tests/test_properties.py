"""The central property: tiled labeling equals whole-image scipy.ndimage.label."""

from __future__ import annotations

from unittest import mock

import dask.array as da
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from conftest import same_partition
from patchworks import merge_tile_labels, tile_process
from patchworks._engine.faces import BLOCK_VOXELS


@st.composite
def scenes(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 14 if ndim == 3 else 30)) for _ in range(ndim))
    tile_shape = tuple(draw(st.integers(1, n + 2)) for n in shape)
    overlap = draw(
        st.one_of(st.integers(0, 5), st.tuples(*[st.integers(0, 6) for _ in range(ndim)]))
    )
    connectivity = draw(st.integers(1, ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.1, 0.9))
    binary = np.random.default_rng(seed).random(shape) < density
    return binary, tile_shape, overlap, connectivity


def _labeler(connectivity: int, ndim: int):
    structure = ndi.generate_binary_structure(ndim, connectivity)

    def fn(tile):
        return ndi.label(tile, structure=structure)[0]

    return fn, structure


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.booleans(), st.one_of(st.none(), st.integers(1, 40)))
def test_tile_process_equals_whole_image_label(scene, sequential, block_voxels):
    """``block_voxels``: big images split each boundary plane of the tile grid into blocks
    for the face stage; small blocks make that happen on small images too."""
    binary, tile_shape, overlap, connectivity = scene
    fn, structure = _labeler(connectivity, binary.ndim)
    expected, n_expected = ndi.label(binary, structure=structure)
    with mock.patch("patchworks._engine.faces.BLOCK_VOXELS", block_voxels or BLOCK_VOXELS):
        result = tile_process(
            binary.astype("uint8"),
            fn,
            tile_shape=tile_shape,
            overlap=overlap,
            connectivity=connectivity,
            sequential_labels=sequential,
            compute=True,
        )
    assert same_partition(result, expected)
    assert result.min() >= 0
    if sequential:
        assert np.array_equal(np.unique(result[result > 0]), np.arange(1, n_expected + 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.booleans())
def test_merge_tile_labels_on_user_tiling_equals_whole_image_label(scene, sequential):
    binary, tile_shape, _, connectivity = scene
    fn, structure = _labeler(connectivity, binary.ndim)
    expected, n_expected = ndi.label(binary, structure=structure)
    labeled = da.from_array(binary, chunks=tile_shape).map_blocks(fn, dtype="int32")
    result = merge_tile_labels(
        labeled, connectivity=connectivity, sequential_labels=sequential, compute=True
    )
    assert same_partition(result, expected)
    if sequential:
        assert np.array_equal(np.unique(result[result > 0]), np.arange(1, n_expected + 1))


def test_objects_joined_only_across_tile_corners_in_small_blocks():
    """A diagonal line crosses the tile grid at corners only: with one tile per block, the
    lower side of each block must reach into its neighbours for the pairs to be found."""
    binary = np.eye(12, dtype="uint8")
    fn, _ = _labeler(2, 2)
    with mock.patch("patchworks._engine.faces.BLOCK_VOXELS", 1):
        result = tile_process(binary, fn, tile_shape=(3, 3), connectivity=2, compute=True)
    assert np.unique(result[binary > 0]).size == 1
