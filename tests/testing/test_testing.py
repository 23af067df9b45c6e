"""patchworks.testing: the partition assertion and the hypothesis strategies."""

from __future__ import annotations

import importlib
import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

import conftest
from patchworks import tile_process
from patchworks._plan import normalize_overlap, normalize_tile_shape
from patchworks.errors import InvalidParameterError, MissingDependencyError, ParameterTypeError
from patchworks.testing import assert_same_partition, same_partition
from patchworks.testing import strategies as pst

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _message(actual, expected):
    with pytest.raises(AssertionError) as info:
        assert_same_partition(np.asarray(actual), np.asarray(expected))
    return str(info.value)


# --- same_partition / assert_same_partition -------------------------------------------


def test_renamed_labels_are_the_same_partition(rng):
    expected, _ = ndi.label(rng.random((20, 30)) < 0.5)
    permutation = rng.permutation(np.arange(1, expected.max() + 1)) * 7 + 1000
    renamed = np.where(expected > 0, np.concatenate([[0], permutation])[expected], 0)
    assert same_partition(renamed, expected)
    assert same_partition(expected, renamed)
    assert_same_partition(renamed.astype(np.uint64), expected)


def test_background_differences_are_counted_with_coordinates():
    expected = np.array([[1, 1, 0], [0, 2, 2]])
    actual = np.array([[0, 1, 1], [0, 2, 2]])
    assert not same_partition(actual, expected)
    assert _message(actual, expected) == (
        "label images of shape (2, 3) differ beyond renaming labels:\n"
        "- background differs at 2 of 6 voxels: 1 voxel is background in `actual` only "
        "(at (0, 0)); 1 voxel is background in `expected` only (at (0, 2))."
    )


def test_merged_labels_are_named():
    expected = np.array([1, 1, 0, 2, 0, 3, 3, 0, 4])
    actual = np.array([5, 5, 0, 5, 0, 6, 6, 0, 6])
    assert _message(actual, expected) == (
        "label images of shape (9,) differ beyond renaming labels:\n"
        "- 2 labels of `actual` merge several labels of `expected`: actual 5 covers "
        "expected 1, 2; actual 6 covers expected 3, 4."
    )


def test_split_labels_are_named():
    expected = np.array([[1, 1, 1, 1]])
    actual = np.array([[3, 3, 8, 9]])
    assert _message(actual, expected) == (
        "label images of shape (1, 4) differ beyond renaming labels:\n"
        "- 1 label of `expected` is split into several labels of `actual`: expected 1 is "
        "split into actual 3, 8, 9."
    )


def test_every_kind_of_difference_is_reported_together():
    expected = np.array([1, 1, 2, 2, 0, 3, 3])
    actual = np.array([4, 4, 4, 4, 9, 5, 6])
    message = _message(actual, expected)
    assert message.splitlines() == [
        "label images of shape (7,) differ beyond renaming labels:",
        "- background differs at 1 of 7 voxels: 1 voxel is background in `expected` only "
        "(at (4,)).",
        "- 1 label of `actual` merges several labels of `expected`: actual 4 covers expected 1, 2.",
        "- 1 label of `expected` is split into several labels of `actual`: expected 3 is "
        "split into actual 5, 6.",
    ]


def test_long_lists_are_cut_to_a_few_examples():
    expected = np.arange(1, 11)  # ten objects, one voxel each
    actual = np.ones(10, dtype=int)  # all merged into one
    message = _message(actual, expected)
    assert "actual 1 covers expected 1, 2, 3, ... (10 in all)." in message
    many = np.arange(40).reshape(10, 4) % 4  # 30 voxels of labels 1..3, 10 of background
    message = _message(np.zeros_like(many), many)
    assert "30 voxels are background in `actual` only (at (0, 1), (0, 2), (0, 3), ...)" in message
    pairs = np.repeat(np.arange(1, 9), 2)  # eight objects of two voxels
    message = _message(np.arange(1, 17), pairs)  # each split in two
    assert message.endswith(
        "8 labels of `expected` are split into several labels of `actual`: expected 1 is "
        "split into actual 1, 2; expected 2 is split into actual 3, 4; expected 3 is split "
        "into actual 5, 6; and 5 more."
    )


def test_shapes_must_match():
    assert not same_partition(np.zeros((2, 3), int), np.zeros((3, 2), int))
    assert _message(np.zeros((2, 3), int), np.zeros((6,), int)) == (
        "`actual` has shape (2, 3) but `expected` has shape (6,)."
    )


def test_labels_must_be_integers():
    with pytest.raises(ParameterTypeError) as info:
        assert_same_partition(np.zeros(3), np.zeros(3, dtype=int))
    assert str(info.value) == "`actual` must be a label image of integers; got dtype float64."
    with pytest.raises(TypeError, match="`b` must be a label image"):
        same_partition(np.zeros(3, dtype=int), np.array(["a", "b", "c"]))


def test_boolean_masks_and_lazy_arrays_are_accepted():
    mask = np.array([[True, False], [True, True]])
    assert same_partition(mask, mask.astype(np.int32) * 4)
    assert same_partition(da.from_array(mask.astype(int), chunks=1), mask)


def test_images_without_labels_are_the_same_partition():
    assert same_partition(np.zeros((3, 3), int), np.zeros((3, 3), np.uint8))
    assert_same_partition(np.zeros(0, int), np.zeros(0, int))


def test_zero_dimensional_images():
    assert same_partition(np.array(3), np.array(1))
    assert _message(np.array(0), np.array(1)) == (
        "label images of shape () differ beyond renaming labels:\n"
        "- background differs at 1 of 1 voxels: 1 voxel is background in `actual` only (at ())."
    )


def _reference_same_partition(a, b):
    """The definition: a bijection between labels, background to background."""
    forward, backward = {}, {}
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist(), strict=True):
        if (x == 0) != (y == 0) or forward.setdefault(x, y) != y or backward.setdefault(y, x) != x:
            return False
    return True


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 30),
    st.integers(1, 4),
    st.integers(1, 4),
)
def test_same_partition_agrees_with_the_definition(seed, size, n_a, n_b):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_a + 1, size=size)
    b = np.where(rng.random(size) < 0.5, a, rng.integers(0, n_b + 1, size=size))
    expected = _reference_same_partition(a, b)
    assert same_partition(a, b) is expected
    if expected:
        assert_same_partition(a, b)
    else:
        with pytest.raises(AssertionError):
            assert_same_partition(a, b)


def test_the_suites_helper_is_the_public_one():
    assert conftest.same_partition is same_partition


def test_importing_patchworks_testing_does_not_import_hypothesis():
    code = "import sys, patchworks.testing; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_strategies_without_hypothesis_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "patchworks.testing.strategies")
    with pytest.raises(MissingDependencyError) as info:
        importlib.import_module("patchworks.testing.strategies")
    assert str(info.value) == (
        "patchworks.testing.strategies needs the optional package 'hypothesis', which is "
        'not installed; install it with: pip install "patchworks[testing]"'
    )
    assert isinstance(info.value, ImportError)


# --- strategies ------------------------------------------------------------------------


@FAST
@given(pst.images(min_ndim=2, max_ndim=3, min_side=2, max_side=9))
def test_images_are_binary_within_bounds(image):
    assert image.dtype == np.uint8
    assert 2 <= image.ndim <= 3
    assert all(2 <= n <= 9 for n in image.shape)
    assert set(np.unique(image).tolist()) <= {0, 1}


def test_images_of_each_kind_hold_objects():
    for kind in pst.KINDS:
        image = find(pst.images(min_side=6, kinds=(kind,)), lambda im: im.any() and not im.all())
        assert image.dtype == np.uint8


@FAST
@given(st.data())
def test_tilings_and_overlaps_are_valid_parameters(data):
    shape = data.draw(st.tuples(*[st.integers(1, 20)] * data.draw(st.integers(1, 3))))
    tile_shape = data.draw(pst.tilings(shape))
    assert normalize_tile_shape(tile_shape, shape) == tuple(
        min(t, n) for t, n in zip(tile_shape, shape, strict=True)
    )
    assert all(t <= n + 2 for t, n in zip(tile_shape, shape, strict=True))
    overlap = data.draw(pst.overlaps(tile_shape, max_overlap=3))
    halo = normalize_overlap(overlap, tile_shape)
    assert len(halo) == len(shape) and max(halo) <= 3
    connectivity = data.draw(pst.connectivities(len(shape)))
    assert 1 <= connectivity <= len(shape)


@FAST
@given(st.data())
def test_tilings_within_the_image(data):
    shape = (5, 1, 12)
    tile_shape = data.draw(pst.tilings(shape, min_side=2, beyond=0))
    assert tile_shape[1] == 1 and 2 <= tile_shape[0] <= 5 and 2 <= tile_shape[2] <= 12


@FAST
@given(pst.tiled_images(max_ndim=2, max_side=10, max_overlap=2))
def test_tiled_images_fit_together(case):
    image, tile_shape, overlap, connectivity = case
    assert case.image is image
    assert len(tile_shape) == image.ndim <= 2
    assert max(normalize_overlap(overlap, tile_shape)) <= 2
    assert 1 <= connectivity <= image.ndim


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pst.images(min_ndim=0), "`min_ndim` must be an integer >= 1; got 0."),
        (lambda: pst.images(max_side=2.5), "`max_side` must be an integer >= 1; got 2.5."),
        (
            lambda: pst.images(min_side=5, max_side=4),
            "`min_side` must be at most `max_side`; got 5 > 4.",
        ),
        (
            lambda: pst.images(kinds=("noise", "cells")),
            "`kinds` must be a non-empty sequence of ('noise', 'blobs'); got ('noise', 'cells').",
        ),
        (
            lambda: pst.images(kinds=()),
            "`kinds` must be a non-empty sequence of ('noise', 'blobs'); got ().",
        ),
        (
            lambda: pst.tilings((4, 0)),
            "`shape` must be a sequence of positive integers; got (4, 0).",
        ),
        (lambda: pst.tilings(4), "`shape` must be a sequence of positive integers; got 4."),
        (lambda: pst.tilings((4,), beyond=-1), "`beyond` must be an integer >= 0; got -1."),
        (
            lambda: pst.overlaps(()),
            "`tile_shape` must be a sequence of positive integers; got ().",
        ),
        (
            lambda: pst.overlaps((4,), max_overlap=-2),
            "`max_overlap` must be an integer >= 0; got -2.",
        ),
        (lambda: pst.connectivities(True), "`ndim` must be an integer >= 1; got True."),
        (
            lambda: pst.tiled_images(max_overlap=None),
            "`max_overlap` must be an integer >= 0; got None.",
        ),
    ],
)
def test_strategy_options_are_checked_when_the_strategy_is_made(make, message):
    with pytest.raises(InvalidParameterError) as info:
        make()
    assert str(info.value) == message


# --- the central property, with the public strategies ---------------------------------


@FAST
@given(pst.tiled_images(max_side=10, max_overlap=3))
def test_tile_process_equals_whole_image_label(case):
    structure = ndi.generate_binary_structure(case.image.ndim, case.connectivity)
    result = tile_process(
        case.image,
        lambda tile: ndi.label(tile, structure=structure)[0],
        tile_shape=case.tile_shape,
        overlap=case.overlap,
        connectivity=case.connectivity,
        compute=True,
    )
    assert_same_partition(result, ndi.label(case.image, structure=structure)[0])
