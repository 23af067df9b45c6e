"""patchworks._engine.overlap: choosing, checking and reading back ``overlap``."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from patchworks._engine.overlap import (
    check_iou_halo,
    halo_plan,
    resolve_overlap,
    suggest_overlap,
)
from patchworks.errors import InvalidParameterError
from patchworks.io._source import open_image


def _label(tile):
    return ndi.label(tile)[0]


# --- halo_plan: a user's overlapping tiling --------------------------------------------


@pytest.mark.parametrize(
    ("shape", "tile_shape", "overlap"),
    [
        ((11,), (4,), 2),
        ((11, 10), (4, 10), 2),
        ((12, 9), (4, 3), (1, 2)),
        ((8, 8, 9), (3, 4, 5), (2, 0, 1)),
        ((5, 6), (5, 2), 1),
    ],
)
def test_halo_plan_reads_back_the_tiling_dask_overlap_makes(shape, tile_shape, overlap):
    depth = overlap if isinstance(overlap, int) else dict(enumerate(overlap))
    blocks = da.overlap.overlap(da.zeros(shape, chunks=tile_shape), depth=depth, boundary="none")
    plan = halo_plan(blocks.chunks, overlap)
    assert plan.shape == shape
    assert plan.tile_shape == tile_shape
    halo = (overlap,) * len(shape) if isinstance(overlap, int) else overlap
    assert plan.halo == tuple(0 if t == 1 else h for h, t in zip(halo, tile_shape, strict=True))
    for index in range(plan.n_tiles):
        block = tuple(c[p] for c, p in zip(blocks.chunks, plan.position(index), strict=True))
        assert plan.tile(index).halo_shape == block


@pytest.mark.parametrize(
    ("chunks", "overlap", "axis"),
    [
        (((6, 7, 5),), 2, 0),  # cores 4, 3, 3: not one tile length
        (((4, 4), (3, 5, 6)), 1, 1),  # cores 2, 3, 5 along axis 1
        (((2, 2),), 2, 0),  # cores 0 and 0: no voxel of its own
        (((4, 6),), 1, 0),  # cores 3, 5: the last tile is longer than the others
    ],
)
def test_halo_plan_rejects_blocks_that_are_not_an_overlapping_tiling(chunks, overlap, axis):
    with pytest.raises(InvalidParameterError) as info:
        halo_plan(chunks, overlap)
    assert str(info.value) == (
        f"`labeled` blocks must be overlapping tiles extended by `overlap` ({overlap}) on "
        f"every side with a neighbour; got chunks {chunks[axis]} along axis {axis}."
    )


def test_halo_plan_rejects_blocks_not_clipped_at_the_image_border():
    # cores 2 and 1: tile 0 reads rows 0:3 (its halo is clipped at the end), not 5 rows
    with pytest.raises(InvalidParameterError) as info:
        halo_plan(((5, 4),), 3)
    assert str(info.value) == (
        "`labeled` blocks must be overlapping tiles extended by `overlap` (3) on every "
        "side with a neighbour, clipped at the border; got chunks (5, 4) along axis 0, "
        "expected (3, 3)."
    )


def test_halo_plan_rejects_a_bad_overlap_value():
    with pytest.raises(InvalidParameterError, match=r"`overlap` entries must be >= 0; got -1\."):
        halo_plan(((4, 4),), -1)
    with pytest.raises(InvalidParameterError, match=r"one entry per image axis \(2\)"):
        halo_plan(((4, 4), (4,)), (1, 1, 1))


def test_halo_plan_without_overlap_on_a_split_image_cannot_stitch_by_iou():
    """halo_plan serves stitch="iou", which needs tiles that share voxels."""
    with pytest.raises(InvalidParameterError, match='`stitch="iou"` needs `overlap` > 0'):
        halo_plan(((4, 4),), 0)


# --- check_iou_halo -------------------------------------------------------------------


def test_check_iou_halo_needs_a_halo_only_when_the_image_is_split():
    check_iou_halo((0, 0), 0, (10, 10), (10, 10))  # one tile: nothing to stitch
    check_iou_halo((0, 2), (0, 2), (4, 4), (10, 10))
    with pytest.raises(InvalidParameterError) as info:
        check_iou_halo((0, 0), (0, 0), (4, 10), (10, 10))
    assert str(info.value) == (
        '`stitch="iou"` needs `overlap` > 0 (about one object diameter) so that '
        "neighbouring tiles predict a shared zone; got overlap=(0, 0)."
    )


# --- resolve_overlap -------------------------------------------------------------------


def _source():
    image = np.zeros((40, 40), dtype=np.uint8)
    image[18:24, 17:21] = 1  # one object of 6 rows by 4 columns at the centre
    return open_image(image)


@pytest.mark.parametrize("overlap", [0, 3, (1, 2)])
def test_resolve_overlap_returns_a_given_overlap_unchanged(overlap):
    assert resolve_overlap(overlap, _source(), _label, (20, 20)) == overlap


def test_resolve_overlap_auto_measures_objects_on_a_central_tile():
    calls = []

    def fn(tile):
        calls.append(tile.shape)
        return _label(tile)

    assert resolve_overlap("auto", _source(), fn, (20, 20)) == (6, 4)
    # the tile, then its two parts at each of the cuts at 1/3 and 2/3 of each axis
    assert calls[0] == (20, 20)
    assert sorted(calls[1:]) == sorted(
        [(6, 20), (14, 20), (13, 20), (7, 20), (20, 6), (20, 14), (20, 13), (20, 7)]
    )


def test_resolve_overlap_auto_for_touch_takes_the_reach_alone():
    assert resolve_overlap("auto", _source(), _label, (20, 20), stitch="touch") == (0, 0)


@pytest.mark.parametrize("overlap", ["Auto", "none", ""])
def test_resolve_overlap_rejects_other_strings(overlap):
    with pytest.raises(InvalidParameterError) as info:
        resolve_overlap(overlap, _source(), _label, (20, 20))
    assert str(info.value) == (
        f'`overlap` must be an integer, a tuple of integers or "auto"; got {overlap!r}.'
    )


# --- suggest_overlap ------------------------------------------------------------------


def test_suggest_overlap_ignores_objects_cut_by_the_sample_border():
    image = np.zeros((30, 30), dtype=np.uint8)
    image[0:20, 0:3] = 1  # touches the border: ignored while another object remains
    image[10:15, 10:13] = 1
    assert suggest_overlap(image, _label) == (5, 3)


def test_suggest_overlap_uses_cut_objects_when_no_other_remains():
    image = np.zeros((30, 30), dtype=np.uint8)
    image[0:20, 0:3] = 1
    assert suggest_overlap(image, _label) == (20, 3)


def test_suggest_overlap_takes_the_quantile_of_extents():
    image = np.zeros((60, 60), dtype=np.uint8)
    for k, height in enumerate((2, 4, 6, 8)):
        image[5 + 12 * k : 5 + 12 * k + height, 5:7] = 1
    assert suggest_overlap(image, _label, quantile=1.0) == (8, 2)
    assert suggest_overlap(image, _label, quantile=0.25) == (4, 2)  # ceil(3.5)


def test_suggest_overlap_without_objects_is_zero():
    assert suggest_overlap(np.zeros((8, 9, 10)), _label) == (0, 0, 0)


def test_suggest_overlap_gives_zero_on_a_one_voxel_thick_sample():
    image = np.zeros((1, 30, 30), dtype=np.uint8)
    image[0, 10:14, 10:12] = 1
    assert suggest_overlap(image, _label) == (0, 4, 2)


def test_suggest_overlap_samples_the_centre(rng):
    seen = []

    def fn(tile):
        seen.append(tile.copy())
        return np.zeros(tile.shape, dtype=np.int32)

    image = rng.integers(0, 100, size=(20, 30), dtype=np.uint16)
    suggest_overlap(image, fn, sample_shape=(10, 40))  # clipped to the image
    np.testing.assert_array_equal(seen[0], image[5:15, :])


@pytest.mark.parametrize("quantile", [0, -0.5, 1.5])
def test_suggest_overlap_rejects_a_quantile_outside_0_1(quantile):
    with pytest.raises(InvalidParameterError) as info:
        suggest_overlap(np.zeros((4, 4)), _label, quantile=quantile)
    assert str(info.value) == f"`quantile` must be in (0, 1]; got {quantile!r}."


def test_suggest_overlap_rejects_a_sample_shape_of_another_rank():
    with pytest.raises(InvalidParameterError) as info:
        suggest_overlap(np.zeros((4, 4)), _label, sample_shape=(4, 4, 4))
    assert str(info.value) == (
        "`sample_shape` must have one entry per image axis (2); got (4, 4, 4)."
    )
