"""patchworks._engine.reach and ``overlap="auto"``: the overlap follows how far ``fn``
reaches, so a tiled run with it gives the untiled labels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from patchworks import suggest_overlap, tile_process
from patchworks._engine.reach import disagreement
from patchworks.errors import InvalidParameterError, StitchingWarning
from patchworks.testing import assert_same_partition


def _noisy(shape, seed=0):
    """Smooth noise: many voxels near any threshold, so every border effect shows."""
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 1.5).astype(np.float32)


def _smoothed(size, level=0.52):
    """A labeler behind a ``size``-wide mean filter: it reaches ``size // 2`` voxels.
    (``level`` keeps the objects apart: at 0.5 the smoothed noise percolates.)"""

    def fn(tile):
        return ndi.label(ndi.uniform_filter(tile, size) > level)[0]

    return fn


# --- disagreement ---------------------------------------------------------------------


def test_disagreement_ignores_a_renaming(rng):
    labels = ndi.label(_noisy((40, 50)) > 0.5)[0]
    permutation = np.concatenate([[0], rng.permutation(np.arange(1, labels.max() + 1)) + 100])
    assert not disagreement(labels, permutation[labels]).any()


def test_disagreement_marks_the_smaller_side_of_a_join_and_of_a_split():
    reference = np.array([[1, 1, 1, 0, 2]])
    joined = np.array([[3, 3, 3, 0, 3]])
    np.testing.assert_array_equal(disagreement(reference, joined), [[0, 0, 0, 0, 1]])
    split = np.array([[3, 3, 4, 0, 5]])
    np.testing.assert_array_equal(disagreement(reference, split), [[0, 0, 1, 0, 0]])


# --- the measured reach ---------------------------------------------------------------


@pytest.mark.parametrize("size", [5, 9, 13])
def test_suggest_overlap_follows_a_filters_width(size):
    image = _noisy((96, 96))
    overlap = suggest_overlap(image, _smoothed(size), stitch="touch", margin=1)
    assert overlap[0] == overlap[1]
    assert size // 2 <= overlap[0] <= size  # a label change can reach past the filter


def test_a_plain_labeler_reaches_nowhere_even_when_cuts_split_its_components():
    image = _noisy((90, 90))
    assert suggest_overlap(image, lambda t: ndi.label(t > 0.5)[0], stitch="touch") == (0, 0)


def test_overlap_auto_gives_the_untiled_labels_where_a_smaller_overlap_does_not():
    image = _noisy((144, 144), seed=3)
    fn = _smoothed(11)
    untiled = fn(image)
    tiled = tile_process(
        image, fn, tile_shape=(48, 48), overlap="auto", connectivity=1, compute=True
    )
    assert_same_partition(np.asarray(tiled), untiled)
    short = tile_process(image, fn, tile_shape=(48, 48), overlap=2, connectivity=1, compute=True)
    assert disagreement(untiled, np.asarray(short)).any()  # the filter reaches 5


def test_overlap_auto_for_iou_covers_an_instance_fn_with_a_wide_background_filter():
    rng = np.random.default_rng(5)
    image = np.zeros((160, 160), np.float32)
    yy, xx = np.mgrid[:160, :160]
    for cy, cx in rng.integers(4, 156, size=(60, 2)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 9] = 1
    image = ndi.gaussian_filter(image, 1) + xx / 320 + rng.normal(0, 0.03, image.shape)

    def fn(tile):
        tile = tile.astype(np.float32)
        return ndi.label(tile - ndi.gaussian_filter(tile, 4) > 0.2)[0]

    tiled = tile_process(image, fn, tile_shape=(64, 64), overlap="auto", stitch="iou", compute=True)
    assert_same_partition(np.asarray(tiled), fn(image))


def test_a_per_tile_threshold_is_reported_as_not_local():
    image = _noisy((90, 90)) + np.linspace(0, 0.3, 90)[None, :]

    def fn(tile):
        return ndi.label(tile > tile.mean())[0]  # each tile its own threshold

    with pytest.warns(StitchingWarning, match="not local"):
        suggest_overlap(image, fn, stitch="touch")


def test_suggest_overlap_reads_channels_as_the_run_does():
    image = np.stack([_noisy((60, 60)), np.zeros((60, 60), np.float32)], axis=-1)
    shapes = []

    def fn(tile):
        shapes.append(tile.shape)
        return _smoothed(7)(tile[..., 0])

    overlap = suggest_overlap(image, fn, stitch="touch", channel_axis=-1, margin=1)
    assert all(s[-1] == 2 for s in shapes)
    assert 3 <= overlap[0] <= 7


@pytest.mark.parametrize("margin", [0.5, "2", None])
def test_suggest_overlap_rejects_a_margin_below_1(margin):
    with pytest.raises(InvalidParameterError, match=r"`margin` must be a number >= 1"):
        suggest_overlap(np.zeros((8, 8)), lambda t: np.zeros(t.shape, int), margin=margin)


# --- a model's downsampling grid ------------------------------------------------------


class _GridFn:
    """A stand-in for a model plugin: labels a smoothed image, declares ``grid``."""

    grid = (8, 8)

    def __call__(self, tile):
        return _smoothed(9)(tile)


def test_overlap_auto_and_a_chosen_tile_shape_land_on_the_models_grid():
    image = _noisy((100, 100))
    overlap = suggest_overlap(image, _GridFn(), stitch="touch")
    assert all(o % 8 == 0 and o > 0 for o in overlap)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StitchingWarning)
        labels = tile_process(image, _GridFn(), overlap="auto", connectivity=1, compute=True)
    assert_same_partition(np.asarray(labels), _GridFn()(image))


def test_an_explicit_tiling_off_the_models_grid_is_warned_of():
    image = _noisy((100, 100))
    with pytest.warns(StitchingWarning, match=r"`tile_shape` and `overlap` not on the model"):
        tile_process(image, _GridFn(), tile_shape=(30, 30), overlap=5, compute=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StitchingWarning)
        tile_process(image, _GridFn(), tile_shape=(32, 32), overlap=8, connectivity=1, compute=True)
