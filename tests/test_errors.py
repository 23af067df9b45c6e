"""Every bad input of SPEC §4 fails early, names the parameter and value, and writes nothing."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from patchworks import merge_tile_labels, tile_process
from patchworks.errors import (
    ClusterConfigurationError,
    ImageNotFoundError,
    InvalidImageError,
    InvalidLabelsError,
    InvalidParameterError,
    LabelOverflowError,
    OutputExistsError,
    ParameterTypeError,
    PatchworksError,
    StitchingWarning,
    TileFunctionError,
)


def label_fn(tile):
    return ndi.label(tile > 0)[0]


@pytest.fixture
def image():
    img = np.zeros((20, 24), dtype="uint8")
    img[2:18, 3:5] = 1
    img[5:7, 10:22] = 1
    return img


def folder_listing(path="."):
    return sorted(os.listdir(path))


def assert_nothing_written(before):
    assert folder_listing() == before


@pytest.mark.parametrize(
    ("tile_shape", "message"),
    [
        ((8,), "`tile_shape` must have one entry per image axis (2); got (8,)."),
        ((8, 8, 8), "`tile_shape` must have one entry per image axis (2); got (8, 8, 8)."),
        ((0, 8), "`tile_shape` entries must be positive; got (0, 8)."),
        ((-4, 8), "`tile_shape` entries must be positive; got (-4, 8)."),
        ((4.5, 8), "`tile_shape` entries must be integers; got (4.5, 8)."),
        (8, "`tile_shape` must be a tuple with one entry per image axis (2)"),
        ("big", "`tile_shape` must be a tuple, None or \"auto\"; got 'big'."),
    ],
)
def test_bad_tile_shape(image, tile_shape, message):
    before = folder_listing()
    with pytest.raises(InvalidParameterError) as info:
        tile_process(image, label_fn, tile_shape=tile_shape, write_to="out.zarr")
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)
    assert_nothing_written(before)


@pytest.mark.parametrize(
    ("overlap", "message"),
    [
        (-1, "`overlap` entries must be >= 0; got -1."),
        ((2, -3), "`overlap` entries must be >= 0; got (2, -3)."),
        ((1, 2, 3), "`overlap` must have one entry per image axis (2); got (1, 2, 3)."),
        ("wide", "`overlap` must be an integer, a tuple of integers or \"auto\"; got 'wide'."),
    ],
)
def test_bad_overlap(image, overlap, message):
    before = folder_listing()
    with pytest.raises(InvalidParameterError, match="overlap") as info:
        tile_process(image, label_fn, tile_shape=(8, 8), overlap=overlap, write_to="out.zarr")
    assert message in str(info.value)
    assert_nothing_written(before)


def test_unknown_stitch(image):
    with pytest.raises(InvalidParameterError) as info:
        tile_process(image, label_fn, tile_shape=(8, 8), stitch="glue")
    assert str(info.value) == "`stitch` must be one of 'touch', 'iou'; got 'glue'."


@pytest.mark.parametrize("connectivity", [0, 3, -1, True, 1.5])
def test_connectivity_outside_range(image, connectivity):
    with pytest.raises(InvalidParameterError) as info:
        tile_process(image, label_fn, tile_shape=(8, 8), connectivity=connectivity)
    assert "`connectivity` must be an integer in 1..2" in str(info.value)
    assert repr(connectivity) in str(info.value)


def test_bad_dtype_and_iou_threshold(image):
    with pytest.raises(InvalidParameterError, match="`dtype` must be an integer dtype"):
        tile_process(image, label_fn, tile_shape=(8, 8), dtype="float32")
    with pytest.raises(
        InvalidParameterError, match=r"`iou_threshold` must be a number in \(0, 1\]"
    ):
        tile_process(image, label_fn, tile_shape=(8, 8), iou_threshold=1.5)


def test_fn_not_callable(image):
    with pytest.raises(ParameterTypeError, match="`fn` must be a callable") as info:
        tile_process(image, "otsu", tile_shape=(8, 8))
    assert isinstance(info.value, TypeError)


def test_path_that_does_not_exist():
    with pytest.raises(
        ImageNotFoundError, match=re.escape("`image` path does not exist: 'nope.zarr'")
    ):
        tile_process("nope.zarr", label_fn)


def test_path_that_is_not_an_array(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InvalidImageError, match="`image` must be a zarr array or group"):
        tile_process("notes.txt", label_fn)
    os.mkdir("empty_folder")
    with pytest.raises(InvalidImageError, match="empty_folder"):
        tile_process("empty_folder", label_fn)
    group = zarr.open_group("two.zarr", mode="w")
    group.create_array("a", shape=(4, 4), dtype="uint8")
    group.create_array("b", shape=(4, 4), dtype="uint8")
    with pytest.raises(InvalidImageError, match=r"several arrays \['a', 'b'\]"):
        tile_process("two.zarr", label_fn)


def test_image_of_wrong_type():
    with pytest.raises(InvalidImageError, match="got an object of type list"):
        tile_process([[1, 2], [3, 4]], label_fn)
    with pytest.raises(InvalidImageError, match="numeric dtype"):
        tile_process(np.array([["a"]]), label_fn)


@pytest.mark.parametrize(
    ("fn", "error", "message"),
    [
        (
            lambda t: np.zeros((3, 3), "int32"),
            InvalidLabelsError,
            "`fn` must return labels with the tile's spatial shape (8, 8); got shape (3, 3)",
        ),
        (
            lambda t: np.zeros(t.shape, "float32"),
            InvalidLabelsError,
            "`fn` must return integer labels; got dtype float32",
        ),
        (lambda t: t > 0, InvalidLabelsError, "`fn` must return integer labels; got dtype bool"),
        (
            lambda t: -np.ones(t.shape, "int32"),
            InvalidLabelsError,
            "`fn` must return non-negative labels (0 = background); got minimum -1",
        ),
        (
            lambda t: None,
            InvalidLabelsError,
            "`fn` must return a NumPy array of integer labels; got an object of type NoneType",
        ),
        (
            lambda t: "labels",
            InvalidLabelsError,
            "`fn` must return a NumPy array of integer labels; got an object of type str",
        ),
    ],
)
def test_fn_returning_bad_labels(fn, error, message):
    before = folder_listing()
    with pytest.raises(error) as info:
        tile_process(np.ones((16, 24), "uint8"), fn, tile_shape=(8, 8), write_to="out.zarr")
    text = str(info.value)
    assert message in text
    # Tiles run in parallel: any tile may be the first to fail, but it is always named.
    assert re.search(r"for tile \d \(grid position \(\d, \d\), box \[\d+:\d+, \d+:\d+\]\)", text)
    assert_nothing_written(before)


def test_fn_returning_more_ids_than_dtype_holds(image):
    before = folder_listing()
    many = lambda t: np.arange(t.size, dtype="int64").reshape(t.shape) + 1  # noqa: E731
    with pytest.raises(LabelOverflowError, match="more than the output `dtype` uint8") as info:
        tile_process(
            np.ones((40, 40), "uint8"),
            many,
            tile_shape=(20, 20),
            dtype="uint8",
            write_to="out.zarr",
        )
    assert isinstance(info.value, OverflowError)
    assert_nothing_written(before)
    # Each tile fits, the merged image does not: caught before anything is published.
    few = lambda t: np.arange(t.size, dtype="int64").reshape(t.shape) % 200 + 1  # noqa: E731
    with pytest.raises(LabelOverflowError, match="the merged image has"):
        tile_process(
            np.ones((40, 40), "uint8"),
            few,
            tile_shape=(20, 20),
            dtype="uint8",
            connectivity=1,
            write_to="out.zarr",
        )
    assert_nothing_written(before)


def test_overflow_advice_fits_the_object_count():
    # 800 objects after the merge: sequential numbering cannot fit them into uint8 either,
    # so the message must not suggest it; 200 objects with gaps up to 400 would fit.
    many = lambda t: np.arange(t.size, dtype="int64").reshape(t.shape) % 200 + 1  # noqa: E731
    with pytest.raises(LabelOverflowError) as info:
        tile_process(
            np.ones((40, 40), "uint8"), many, tile_shape=(20, 20), dtype="uint8", connectivity=1
        )
    assert "sequential_labels" not in str(info.value)
    # Left tile: 100 rows (even ones); right tile: all 200 rows, one object per row. The even
    # rows join across the seam, leaving 200 objects whose largest label (300) only
    # sequential numbering brings into uint8.
    rows = np.ones((200, 4), "uint8")
    rows[1::2, :2] = 0

    def row_objects(t):
        return (t > 0) * (np.arange(t.shape[0])[:, None] + 1)

    with pytest.raises(LabelOverflowError, match="or sequential_labels=True"):
        tile_process(rows, row_objects, tile_shape=(200, 2), dtype="uint8", connectivity=1)
    with pytest.warns(StitchingWarning, match="touching face to face"):  # one per row
        out = tile_process(
            rows,
            row_objects,
            tile_shape=(200, 2),
            dtype="uint8",
            connectivity=1,
            sequential_labels=True,
            compute=True,
        )
    assert out.max() == 200


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"retries": -1}, "`retries` must be a non-negative integer; got -1."),
        ({"retries": "x"}, "`retries` must be a non-negative integer; got 'x'."),
        ({"empty_threshold": float("nan")}, "`empty_threshold` must be a number or None, not NaN"),
        (
            {"temp_dir": "no/such/dir"},
            "`temp_dir` must be an existing directory; got 'no/such/dir'.",
        ),
    ],
)
def test_bad_run_options(image, option, message):
    before = folder_listing()
    calls = []
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        tile_process(image, lambda t: calls.append(1) or label_fn(t), tile_shape=(10, 12), **option)
    assert calls == []
    assert_nothing_written(before)


def test_fn_raising_names_tile_and_chains(image):
    def broken(tile):
        if tile[0, 0] == 7:
            raise ZeroDivisionError("model exploded")
        return label_fn(tile)

    before = folder_listing()
    image[8, 16] = 7  # only tile 5 (grid position (1, 2)) breaks
    with pytest.raises(TileFunctionError) as info:
        tile_process(image, broken, tile_shape=(8, 8), write_to="out.zarr")
    assert str(info.value) == (
        "`fn` raised ZeroDivisionError: model exploded on tile 5 (grid position (1, 2), "
        "box [8:16, 16:24])."
    )
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert isinstance(info.value, PatchworksError) and isinstance(info.value, RuntimeError)
    assert_nothing_written(before)


def test_existing_write_to_is_refused_then_replaced_with_overwrite(image):
    tile_process(image, label_fn, tile_shape=(8, 8), write_to="out.zarr")
    with pytest.raises(
        OutputExistsError, match=re.escape("`write_to` 'out.zarr' already exists")
    ) as info:
        tile_process(image, label_fn, tile_shape=(8, 8), write_to="out.zarr")
    assert isinstance(info.value, FileExistsError)
    replaced = tile_process(
        np.zeros_like(image),
        label_fn,
        tile_shape=(8, 8),
        write_to="out.zarr",
        overwrite=True,
        compute=True,
    )
    assert replaced.max() == 0
    assert zarr.open_array("out.zarr")[...].max() == 0
    assert folder_listing() == ["out.zarr"]


def test_write_to_same_as_input(tmp_path):
    zarr.create_array("img.zarr", data=np.ones((4, 4), "uint8"))
    with pytest.raises(InvalidParameterError, match="`write_to` must differ from the input"):
        tile_process("img.zarr", label_fn, write_to="img.zarr", overwrite=True)


def test_in_process_client_is_refused(image):
    from distributed import Client, LocalCluster

    with (
        LocalCluster(processes=False, n_workers=1, dashboard_address=None) as cluster,
        Client(cluster),
        pytest.raises(ClusterConfigurationError, match="make_local_cluster"),
    ):
        tile_process(image, label_fn, tile_shape=(8, 8))


def test_merge_tile_labels_bad_inputs(image):
    import dask.array as da

    irregular = da.from_array(image, chunks=((5, 15), (12, 12)))
    with pytest.raises(InvalidParameterError, match=r"regular chunk grid.*\(5, 15\) along axis 0"):
        merge_tile_labels(irregular)
    with pytest.raises(InvalidImageError, match="integer labels; got dtype float64"):
        merge_tile_labels(da.from_array(image.astype(float), chunks=8))
    with pytest.raises(InvalidParameterError, match="`tile_shape` is needed for a NumPy input"):
        merge_tile_labels(image)
    group = zarr.open_group("g.zarr", mode="w")
    group.create_array("raw", data=image.astype("int32"), chunks=(8, 8))
    with pytest.raises(InvalidParameterError, match="`input_component` must name an array"):
        merge_tile_labels("g.zarr", input_component="nope")
    with pytest.raises(InvalidLabelsError, match="non-negative"):
        merge_tile_labels(-da.from_array(image.astype("int32"), chunks=8))
