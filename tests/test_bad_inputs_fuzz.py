"""Property tests: any bad input gives the documented error and leaves nothing on disk.

Each example runs in a fresh folder holding only its inputs; after the error the folder
must hold exactly those inputs again — no output, no temporary data, no run directory —
except with ``resume=True``, where the resume state of the tiles that did finish is kept
on purpose (and only that).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import tempfile

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from patchworks import merge_tile_labels, tile_process
from patchworks._store.resume import run_dir_for
from patchworks.errors import (
    ImageNotFoundError,
    ImageReadError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidParameterError,
    LabelOverflowError,
    OutputExistsError,
    PatchworksError,
    TileFunctionError,
)

FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SHAPE = (12, 14)


def label_fn(tile):
    return ndi.label(tile > 0)[0]


def image():
    img = np.zeros(SHAPE, dtype="uint8")
    img[2:10, 3:5] = 1
    img[5:7, 6:13] = 1
    return img


@contextlib.contextmanager
def fresh_folder():
    """A new folder, made current; on exit it must hold only what was there on entry."""
    folder = tempfile.mkdtemp(prefix="patchworks-fuzz-")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder)


def listing():
    return sorted(os.listdir("."))


def expect_clean_error(error, call, *, keep=()):
    """``call()`` raises ``error`` (a PatchworksError) and the folder is as it was."""
    before = listing()
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, PatchworksError)
    assert listing() == sorted([*before, *keep])
    return info.value


wrong_rank = st.lists(st.integers(1, 8), min_size=1, max_size=4).filter(lambda t: len(t) != 2)
bad_tile_shapes = st.one_of(
    wrong_rank.map(tuple),
    st.tuples(st.integers(-5, 0), st.integers(1, 8)),
    st.tuples(st.integers(1, 8), st.integers(-5, 0)),
    st.tuples(st.floats(0.1, 8).filter(lambda f: not f.is_integer()), st.integers(1, 8)),
    st.tuples(st.booleans(), st.integers(1, 8)),
    st.integers(-3, 9),
    st.text(max_size=5).filter(lambda s: s != "auto"),
)


@FUZZ
@given(tile_shape=bad_tile_shapes, with_output=st.booleans())
def test_bad_tile_shape(tile_shape, with_output):
    with fresh_folder():
        error = expect_clean_error(
            InvalidParameterError,
            lambda: tile_process(
                image(),
                label_fn,
                tile_shape=tile_shape,
                write_to="out.zarr" if with_output else None,
            ),
        )
        assert "`tile_shape`" in str(error)


bad_overlaps = st.one_of(
    st.integers(-9, -1),
    st.tuples(st.integers(-9, -1), st.integers(0, 4)),
    wrong_rank.map(tuple),
    st.tuples(st.floats(0.1, 3).filter(lambda f: not f.is_integer()), st.integers(0, 3)),
    st.text(max_size=4).filter(lambda s: s != "auto"),
)


@FUZZ
@given(overlap=bad_overlaps)
def test_bad_overlap(overlap):
    with fresh_folder():
        error = expect_clean_error(
            InvalidParameterError,
            lambda: tile_process(
                image(), label_fn, tile_shape=(4, 4), overlap=overlap, write_to="out.zarr"
            ),
        )
        assert "`overlap`" in str(error)


@FUZZ
@given(
    dtype=st.sampled_from(["complex64", "object", "U3", "datetime64[s]", "V4"]),
    shape=st.sampled_from([(4, 4), (0, 5), (3, 0, 2)]),
)
def test_bad_image_dtype_or_empty_axis(dtype, shape):
    with fresh_folder():
        img = np.zeros(shape, dtype=dtype)
        expect_clean_error(
            InvalidImageError,
            lambda: tile_process(img, label_fn, tile_shape=(2,) * len(shape), write_to="out.zarr"),
        )


def wrong_shape(tile):
    return np.zeros((tile.shape[0] + 1, *tile.shape[1:]), dtype="int32")


def too_many_labels(tile):
    return np.arange(tile.size, dtype="int64").reshape(tile.shape) + 1000


BAD_FN = {
    # kind: (fn for the bad tile, error type, words the message must hold)
    "wrong shape": (wrong_shape, InvalidLabelsError, "the tile's spatial shape"),
    "float": (lambda t: label_fn(t).astype("float32"), InvalidLabelsError, "integer labels"),
    "bool": (lambda t: t > 0, InvalidLabelsError, "integer labels"),
    "negative": (lambda t: -label_fn(t) - 1, InvalidLabelsError, "non-negative"),
    "None": (lambda t: None, InvalidLabelsError, "NumPy array"),
    "list": (lambda t: label_fn(t).tolist(), InvalidLabelsError, "NumPy array"),
    "string": (lambda t: "labels", InvalidLabelsError, "NumPy array"),
    "overflow": (too_many_labels, LabelOverflowError, "more than the output `dtype`"),
    "raises": (lambda t: {}["missing"], TileFunctionError, "`fn` raised KeyError"),
    "raises MemoryError": (lambda t: np.empty(1 << 62), TileFunctionError, "`fn` raised"),
}


@settings(FUZZ, max_examples=15)
@given(
    kind=st.sampled_from(sorted(BAD_FN)),
    bad_call=st.integers(0, 3),
    overlap=st.integers(0, 2),
    resume=st.booleans(),
)
def test_bad_fn_output(kind, bad_call, overlap, resume):
    bad, error, words = BAD_FN[kind]
    img = np.ones((24, 28), dtype="uint8")
    calls = itertools.count()

    def fn(tile):  # the bad_call-th call (some tile of the four) goes wrong
        return bad(tile) if next(calls) == bad_call else label_fn(tile)

    with fresh_folder():
        keep = [os.path.basename(run_dir_for("out.zarr"))] if resume else []
        raised = expect_clean_error(
            error,
            lambda: tile_process(
                img,
                fn,
                tile_shape=(12, 14),
                overlap=overlap,
                write_to="out.zarr",
                resume=resume,
                dtype="int8",
            ),
            keep=keep,
        )
        assert words in str(raised)
        if error is not TileFunctionError:
            assert "tile " in str(raised) and "box [" in str(raised)
        else:
            assert raised.__cause__ is not None


def test_more_objects_than_the_dtype_holds_across_tiles():
    img = np.zeros((40, 40), "uint8")
    img[::2, ::2] = 1  # 400 separate dots, at most 25 per tile
    with fresh_folder():
        expect_clean_error(
            LabelOverflowError,
            lambda: tile_process(
                img, label_fn, tile_shape=(10, 10), write_to="out.zarr", dtype="uint8"
            ),
        )


def _zarr_image(path):
    z = zarr.create_array(path, shape=SHAPE, chunks=(6, 7), dtype="uint8")
    z[...] = image()
    return z


def damage(kind):
    """Make a damaged or missing store in the current folder; return its path."""
    if kind == "missing":
        return "nowhere.zarr"
    if kind == "empty folder":
        os.mkdir("empty.zarr")
        return "empty.zarr"
    if kind == "text file":
        with open("notes.txt", "w") as f:
            f.write("not an image")
        return "notes.txt"
    if kind == "fake tiff":
        with open("fake.tif", "wb") as f:
            f.write(b"II*\x00garbage")
        return "fake.tif"
    _zarr_image("img.zarr")
    if kind == "bad metadata":
        with open("img.zarr/zarr.json", "w") as f:
            f.write("{not json")
    elif kind == "metadata of another kind":
        with open("img.zarr/zarr.json", "w") as f:
            f.write('{"zarr_format": 3, "node_type": "teapot"}')
    elif kind == "garbage chunk":
        with open(sorted(glob.glob("img.zarr/c/*/*"))[-1], "wb") as f:
            f.write(b"\x00garbage")
    elif kind == "truncated chunk":
        chunk = sorted(glob.glob("img.zarr/c/*/*"))[0]
        with open(chunk, "rb") as f:
            data = f.read()
        with open(chunk, "wb") as f:
            f.write(data[: len(data) // 2])
    elif kind == "group of several arrays":
        group = zarr.open_group("img.zarr", mode="w")
        group.create_array("a", shape=SHAPE, dtype="uint8")
        group.create_array("b", shape=SHAPE, dtype="uint8")
    return "img.zarr"


STORE_ERRORS = {
    "missing": ImageNotFoundError,
    "empty folder": InvalidImageError,
    "text file": InvalidImageError,
    "fake tiff": InvalidImageError,
    "bad metadata": InvalidImageError,
    "metadata of another kind": InvalidImageError,
    "garbage chunk": ImageReadError,
    "truncated chunk": ImageReadError,
    "group of several arrays": InvalidImageError,
}


@pytest.mark.parametrize("kind", sorted(STORE_ERRORS))
@pytest.mark.parametrize("resume", [False, True])
def test_missing_or_damaged_store(kind, resume):
    with fresh_folder():
        path = damage(kind)
        error = expect_clean_error(
            STORE_ERRORS[kind],
            lambda: tile_process(
                path, label_fn, tile_shape=(6, 7), write_to="out.zarr", resume=resume
            ),
        )
        assert repr(path) in str(error) or "box [" in str(error)


@pytest.mark.parametrize("kind", ["garbage chunk", "missing", "bad metadata"])
def test_damaged_label_store_for_the_merge(kind):
    with fresh_folder():
        path = damage(kind)
        error = {
            "garbage chunk": ImageReadError,
            "missing": ImageNotFoundError,
            "bad metadata": InvalidImageError,
        }[kind]
        expect_clean_error(error, lambda: merge_tile_labels(path, write_to="out.zarr"))


@pytest.mark.parametrize(
    ("write_to", "error"),
    [
        (42, InvalidParameterError),
        ("existing.zarr", OutputExistsError),
        ("img.zarr", InvalidParameterError),
    ],
)
def test_bad_write_to(write_to, error):
    with fresh_folder():
        _zarr_image("img.zarr")
        _zarr_image("existing.zarr")
        expect_clean_error(error, lambda: tile_process("img.zarr", label_fn, write_to=write_to))
