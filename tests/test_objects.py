"""objects=, min_size=, max_size=: the per-object table equals regionprops_table on the
merged output, and the size filters equal removing those objects from it."""

from __future__ import annotations

import os
import tempfile
import threading

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.measure import regionprops_table

from conftest import same_partition
from patchworks import measure_labels, merge_tile_labels, read_objects, tile_process
from patchworks.errors import (
    IncompleteOutputError,
    InvalidParameterError,
    OutputExistsError,
    ParameterTypeError,
    TileFunctionError,
)

PROPS = (
    "label",
    "area",
    "bbox",
    "centroid",
    "intensity_mean",
    "intensity_min",
    "intensity_max",
    "intensity_std",
)


def reference(labels, image=None, properties=PROPS, **kw):
    """regionprops_table on the whole label image, as a DataFrame."""
    if image is None:
        properties = tuple(p for p in properties if not p.startswith("intensity"))
    return pd.DataFrame(regionprops_table(labels, image, properties=properties, **kw))


def assert_table(found, expected):
    assert list(found.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        found.reset_index(drop=True),
        expected.reset_index(drop=True),
        check_dtype=False,
        rtol=1e-9,
        atol=1e-9,
    )


class Threshold:
    """``label(tile > t)``, blind on the outermost voxel of its tile when ``rim`` (so
    stitch="iou" has owners to choose between)."""

    def __init__(self, t, ndim, rim=False):
        self.t, self.structure, self.rim = t, np.ones((3,) * ndim), rim

    def __call__(self, tile):
        labels = ndi.label(tile > self.t, structure=self.structure)[0]
        if self.rim:
            inner = np.zeros(labels.shape, dtype=bool)
            inner[tuple(slice(1, -1) if n > 2 else slice(None) for n in labels.shape)] = True
            labels = np.where(inner, labels, 0)
        return labels


@st.composite
def scenes(draw):
    ndim = draw(st.integers(2, 3))
    shape = tuple(draw(st.integers(2, 12 if ndim == 3 else 32)) for _ in range(ndim))
    tile_shape = tuple(draw(st.integers(1, n + 2)) for n in shape)
    overlap = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sigma = draw(st.floats(0.5, 2.0))
    image = ndi.gaussian_filter(rng.random(shape), sigma)
    image = ((image - image.min()) / (np.ptp(image) + 1e-12) * 4000).astype("uint16")
    return image, tile_shape, overlap


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.sampled_from(["touch", "iou"]), st.booleans(), st.booleans())
def test_table_equals_regionprops_on_the_merged_output(scene, stitch, sequential, rim):
    image, tile_shape, overlap = scene
    fn = Threshold(2000, image.ndim, rim=rim and stitch == "iou")
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "labels.zarr")
        labels = tile_process(
            image,
            fn,
            tile_shape=tile_shape,
            overlap=overlap if stitch == "iou" else 0,
            stitch=stitch,
            connectivity=image.ndim if stitch == "touch" else None,  # fn's: full
            sequential_labels=sequential,
            write_to=out,
            objects=True,
            compute=True,
        )
        table = read_objects(out)
        attrs = zarr.open_array(out).attrs["patchworks"]
    assert_table(table, reference(labels, image))
    assert attrs["n_labels"] == len(table) == np.unique(labels[labels > 0]).size
    if sequential:
        assert table["label"].tolist() == list(range(1, len(table) + 1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenes(),
    st.sampled_from(["touch", "iou"]),
    st.booleans(),
    st.integers(0, 30),
    st.one_of(st.none(), st.integers(0, 200)),
)
def test_size_filters_equal_removing_objects_from_the_whole_image(
    scene, stitch, sequential, min_size, max_size
):
    image, tile_shape, overlap = scene
    if max_size is not None and max_size < min_size:
        min_size, max_size = max_size, min_size
    fn = Threshold(2000, image.ndim)
    options = dict(
        tile_shape=tile_shape,
        overlap=overlap if stitch == "iou" else 0,
        stitch=stitch,
        connectivity=image.ndim if stitch == "touch" else None,  # fn's: full
        sequential_labels=sequential,
    )
    whole = tile_process(image, fn, compute=True, **options)
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "labels.zarr")
        kept = tile_process(
            image,
            fn,
            compute=True,
            write_to=out,
            objects=True,
            min_size=min_size,
            max_size=max_size,
            **options,
        )
        table = read_objects(out)
        n_labels = zarr.open_array(out).attrs["patchworks"]["n_labels"]
    ids, sizes = np.unique(whole[whole > 0], return_counts=True)
    small = ids[(sizes < min_size) | ((sizes > max_size) if max_size is not None else False)]
    expected = np.where(np.isin(whole, small), 0, whole)
    assert same_partition(kept, expected)
    assert_table(table, reference(kept, image))
    assert n_labels == len(table) == ids.size - small.size
    if sequential:
        assert np.unique(kept[kept > 0]).tolist() == list(range(1, len(table) + 1))


def _blobs(shape=(40, 48), seed=0):
    rng = np.random.default_rng(seed)
    image = ndi.gaussian_filter(rng.random(shape), 2)
    return ((image - image.min()) / np.ptp(image) * 255).astype("uint8")


def test_filters_without_a_table_and_lazy_results(tmp_path):
    image = _blobs()
    fn = Threshold(128, 2)
    lazy = tile_process(image, fn, tile_shape=(16, 16), min_size=10, sequential_labels=True)
    result = np.asarray(lazy.compute())
    whole = ndi.label(image > 128, structure=np.ones((3, 3)))[0]
    sizes = np.bincount(whole.ravel())
    expected = np.where(sizes[whole] < 10, 0, whole)
    assert same_partition(result, expected)
    assert result.max() == np.unique(expected[expected > 0]).size
    assert not os.listdir(tmp_path)  # no table was asked for, none is written


def test_objects_to_csv_and_parquet_without_an_output(tmp_path):
    image = _blobs()
    fn = Threshold(128, 2)
    for name in ("t.csv", "t.parquet"):
        labels = tile_process(
            image, fn, tile_shape=(16, 20), objects=True, objects_to=tmp_path / name, compute=True
        )
        assert_table(read_objects(tmp_path / name), reference(labels, image))
    assert (tmp_path / "t.csv").read_text().startswith("label,area,bbox-0")


def test_ome_zarr_output_table_opens_with_pandas_in_one_line(tmp_path):
    from patchworks.datasets import write_blobs_ome_zarr

    image_path = str(tmp_path / "image.ome.zarr")
    write_blobs_ome_zarr(image_path, (2, 48, 64), chunks=(1, 24, 32))
    fn = Threshold(0.5, 3)
    labels = tile_process(image_path, fn, objects=True, output_format="ome-zarr", compute=True)
    table = pd.read_parquet(tmp_path / "image.ome.zarr/labels/patchworks/objects.parquet")
    image = np.asarray(zarr.open_group(image_path)["0"])
    assert "area_physical" in table.columns and "centroid_physical-2" in table.columns
    assert_table(
        table.drop(columns=[c for c in table if "physical" in c]), reference(labels, image)
    )
    scale = tuple(zarr.open_group(image_path).attrs["ome"]["multiscales"][0]["datasets"][0][
        "coordinateTransformations"][0]["scale"])  # fmt: skip
    spaced = reference(labels, image, ("area", "centroid"), spacing=scale)
    np.testing.assert_allclose(table["area_physical"], spaced["area"])
    np.testing.assert_allclose(table["centroid_physical-1"], spaced["centroid-1"])
    assert len(read_objects(tmp_path / "image.ome.zarr")) == len(table)


def test_channels_give_one_column_per_channel(tmp_path):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (3, 30, 40)).astype("uint8")
    image[0] = _blobs((30, 40))

    def fn(tile):
        return ndi.label(tile[0] > 128)[0]

    labels = tile_process(
        image,
        fn,
        channel_axis=0,
        tile_shape=(10, 16),
        objects=["intensity_mean", "intensity_std"],
        objects_to=tmp_path / "t.parquet",
        compute=True,
    )
    expected = pd.DataFrame(
        regionprops_table(
            labels,
            np.moveaxis(image, 0, -1),
            properties=("label", "intensity_mean", "intensity_std"),
        )
    )
    assert "intensity_mean-2" in expected.columns
    assert_table(read_objects(tmp_path / "t.parquet"), expected)


@pytest.mark.parametrize("stitch", ["touch", "iou"])
def test_merge_tile_labels_measures_its_image(tmp_path, stitch):
    image = _blobs((36, 44))
    fn = Threshold(128, 2)
    depth = 4 if stitch == "iou" else 0
    blocks = da.from_array(image, chunks=(12, 16))
    if depth:
        blocks = da.overlap.overlap(blocks, depth=depth, boundary="none")
    tiles = blocks.map_blocks(fn, dtype="int32")
    labels = merge_tile_labels(
        tiles,
        stitch=stitch,
        overlap=depth,
        image=image,
        objects=True,
        objects_to=tmp_path / "t.parquet",
        compute=True,
    )
    assert_table(read_objects(tmp_path / "t.parquet"), reference(labels, image))


def test_merge_tile_labels_store_and_measure_labels(tmp_path):
    image = _blobs((36, 44))
    staged = da.from_array(image, chunks=(12, 11)).map_blocks(Threshold(128, 2), dtype="int32")
    zarr.create_array(tmp_path / "tiles.zarr", data=staged.compute(), chunks=(12, 11))
    out = tmp_path / "merged.zarr"
    labels = merge_tile_labels(
        str(tmp_path / "tiles.zarr"), write_to=out, objects=["area", "centroid"], compute=True
    )
    assert_table(read_objects(out), reference(labels, None, ("label", "area", "centroid")))
    measured = measure_labels(str(out), image=image, tile_shape=(7, 9))
    assert_table(measured, reference(labels, image))
    measure_labels(str(out), image=image, objects_to="inside", overwrite=True)
    assert_table(read_objects(out), reference(labels, image))


LOCK = threading.Lock()
CALLS = {"n": 0, "fail_after": None}


def flaky(tile):
    with LOCK:
        CALLS["n"] += 1
        if CALLS["fail_after"] is not None and CALLS["n"] > CALLS["fail_after"]:
            raise RuntimeError("simulated crash")
    return ndi.label(tile > 128)[0]


@pytest.mark.parametrize("stitch", ["touch", "iou"])
def test_resume_keeps_the_table_right(tmp_path, stitch):
    image = _blobs((40, 48), seed=2)
    out = tmp_path / "labels.zarr"
    options = dict(
        tile_shape=(10, 12),
        overlap=3 if stitch == "iou" else 0,
        stitch=stitch,
        write_to=out,
        objects=True,
        sequential_labels=True,
    )
    CALLS.update(n=0, fail_after=7)
    with pytest.raises(TileFunctionError):
        tile_process(image, flaky, resume=True, **options)
    CALLS.update(n=0, fail_after=None)
    labels = tile_process(image, flaky, resume=True, compute=True, **options)
    assert CALLS["n"] < 16  # finished tiles were not run again
    assert_table(read_objects(out), reference(labels, image))
    again = tile_process(image, flaky, resume=True, compute=True, **options)  # finished
    np.testing.assert_array_equal(again, labels)


def test_resume_refuses_tiles_staged_without_objects(tmp_path):
    image = _blobs()
    out = tmp_path / "labels.zarr"
    CALLS.update(n=0, fail_after=5)
    with pytest.raises(TileFunctionError):
        tile_process(image, flaky, tile_shape=(10, 12), write_to=out, resume=True)
    CALLS.update(n=0, fail_after=None)
    with pytest.raises(IncompleteOutputError, match="staged without measuring"):
        tile_process(image, flaky, tile_shape=(10, 12), write_to=out, resume=True, objects=True)


def test_finished_output_without_a_table_is_an_error(tmp_path):
    image = _blobs()
    out = tmp_path / "labels.zarr"
    tile_process(image, flaky, tile_shape=(10, 12), write_to=out, resume=True)
    with pytest.raises(IncompleteOutputError, match="no per-object table"):
        tile_process(image, flaky, tile_shape=(10, 12), write_to=out, resume=True, objects=True)


def test_bad_objects_options_are_refused_early(tmp_path):
    image = _blobs()
    fn = Threshold(128, 2)
    out = tmp_path / "o.zarr"
    cases = [
        (dict(objects="area", write_to=out), ParameterTypeError, "sequence of property names"),
        (dict(objects=["area", "perimeter"], write_to=out), InvalidParameterError, "perimeter"),
        (dict(objects=True), InvalidParameterError, "somewhere to write"),
        (dict(objects=["area_physical"], write_to=out), InvalidParameterError, "pixel sizes"),
        (dict(min_size=-1), InvalidParameterError, "`min_size` must be a non-negative"),
        (dict(min_size=5, max_size=4), InvalidParameterError, "must not exceed"),
        (dict(objects_to=tmp_path / "t.csv"), InvalidParameterError, "needs objects="),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            tile_process(image, fn, tile_shape=(16, 16), **options)
    (tmp_path / "t.parquet").write_text("")
    with pytest.raises(OutputExistsError, match="objects_to"):
        tile_process(image, fn, objects=True, objects_to=tmp_path / "t.parquet")
    with pytest.raises(InvalidParameterError, match="need an image"):
        merge_tile_labels(np.zeros((4, 4), "int32"), tile_shape=(2, 2), objects=PROPS,
                          objects_to=tmp_path / "u.parquet")  # fmt: skip
    with pytest.raises(InvalidParameterError, match="labels' shape"):
        merge_tile_labels(np.zeros((4, 4), "int32"), tile_shape=(2, 2), objects=True,
                          image=np.zeros((4, 5)), objects_to=tmp_path / "u.parquet")  # fmt: skip
    with pytest.raises(InvalidParameterError, match="no per-object table"):
        read_objects(tmp_path)


def test_command_line_objects_on_run_merge_and_an_existing_label_image(
    tmp_path, monkeypatch, capsys
):
    from patchworks._cli.main import main
    from patchworks.datasets import write_blobs_ome_zarr, write_blobs_zarr

    monkeypatch.chdir(tmp_path)
    (tmp_path / "seg.py").write_text(
        "from scipy import ndimage as ndi\n\ndef fn(tile):\n    return ndi.label(tile > 400)[0]\n"
    )
    write_blobs_ome_zarr("img.ome.zarr", (4, 48, 48), chunks=(2, 24, 24), radius=4)
    assert main(["run", "img.ome.zarr", "--fn", "seg:fn", "--objects", "--min-size", "3"]) == 0
    table = pd.read_parquet("img.ome.zarr/labels/patchworks/objects.parquet")
    labels = np.asarray(zarr.open_array("img.ome.zarr/labels/patchworks/0"))
    image = np.asarray(zarr.open_group("img.ome.zarr")["0"])
    assert_table(
        table.drop(columns=[c for c in table if "physical" in c]), reference(labels, image)
    )
    assert table["area"].min() >= 3
    # measure the existing label image again, into a CSV
    args = ["objects", "img.ome.zarr/labels/patchworks", "--image", "img.ome.zarr/0"]
    assert main([*args, "--out", "again.csv", "--objects", "label,area"]) == 0
    assert "objects" in capsys.readouterr().out
    assert_table(pd.read_csv("again.csv"), reference(labels, None, ("label", "area")))
    # merge with --objects: the table goes inside the merged output
    write_blobs_zarr("plain.zarr", (4, 48, 48), chunks=(2, 24, 24), radius=4)
    tiles = da.from_zarr("plain.zarr").map_blocks(lambda t: ndi.label(t > 400)[0], dtype="int32")
    zarr.create_array("staged.zarr", data=tiles.compute(), chunks=(2, 24, 24))
    merge = ["merge", "staged.zarr", "--out", "merged.zarr", "--image", "plain.zarr"]
    assert main([*merge, "--objects"]) == 0
    merged = np.asarray(zarr.open_array("merged.zarr"))
    assert_table(
        read_objects("merged.zarr"), reference(merged, np.asarray(zarr.open_array("plain.zarr")))
    )
