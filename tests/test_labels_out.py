"""OME-Zarr label output: inside the image or at write_to, NGFF-valid, read by ome-zarr-py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from conftest import same_partition
from ngff import validate, write_ome_image
from patchworks import tile_process
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import InvalidParameterError, OutputExistsError, TileFunctionError
from patchworks.io._ngff import label_chunks

FULL = np.ones((3, 3, 3), dtype=bool)
OME = "ome-zarr"  # labels into the OME-Zarr input: only when asked


def fn(tile):
    return ndi.label(tile > THRESHOLD, structure=np.ones((3,) * tile.ndim))[0].astype("int32")


@pytest.fixture(scope="module")
def volume():
    return blobs((8, 160, 160), radius=4, seed=7)


def read_with_ome_zarr(path):
    """Nodes found by ome-zarr-py's reader, by name: (level shapes, metadata)."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    found = {}
    for node in Reader(parse_url(path))():
        found[str(node.zarr.path).rstrip("/").split("/")[-1]] = (
            [tuple(d.shape) for d in node.data],
            node.metadata,
        )
    return found


def group_attrs(path):
    return dict(zarr.open_group(path, mode="r").attrs)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_inside_image(volume, version):
    write_ome_image(
        "img.zarr",
        volume[None],
        axes="czyx",
        version=version,
        chunks=(1, 4, 64, 64),
        scale_factors=(2, 4),
    )
    result = tile_process(
        "img.zarr", fn, tile_shape=(4, 64, 64), overlap=2, output_format="ome-zarr"
    )
    expected = ndi.label(volume > THRESHOLD, structure=FULL)[0]
    assert same_partition(result.compute(), expected)

    nodes = read_with_ome_zarr("img.zarr")
    shapes, meta = nodes["patchworks"]
    assert shapes == [(8, 160, 160), (8, 80, 80), (8, 40, 40)]
    assert meta["name"] == "patchworks"
    label_attrs = group_attrs("img.zarr/labels/patchworks")
    validate(label_attrs, version, "image", "label")
    ome = label_attrs["ome"] if version == "0.5" else label_attrs
    datasets = ome["multiscales"][0]["datasets"]
    image_meta = group_attrs("img.zarr")
    image_meta = image_meta["ome"] if version == "0.5" else image_meta
    source_sets = image_meta["multiscales"][0]["datasets"]
    for ours, theirs in zip(datasets, source_sets, strict=True):
        for a, b in zip(
            ours["coordinateTransformations"], theirs["coordinateTransformations"], strict=False
        ):
            assert a["type"] == b["type"] and a[a["type"]] == b[b["type"]][1:]
    assert ome["image-label"]["source"] == {"image": "../../"}
    labels_list = group_attrs("img.zarr/labels")
    labels_list = labels_list["ome"]["labels"] if version == "0.5" else labels_list["labels"]
    assert labels_list == ["patchworks"]

    level0 = zarr.open_array("img.zarr/labels/patchworks/0", mode="r")
    assert level0.metadata.zarr_format == (2 if version == "0.4" else 3)
    assert all(t % c == 0 for t, c in zip((4, 64, 64), level0.chunks, strict=True))
    ids = set(np.unique(level0[...]))
    for k in (1, 2):
        coarse = zarr.open_array(f"img.zarr/labels/patchworks/{k}", mode="r")[...]
        assert set(np.unique(coarse)) <= ids  # downsampling never invents IDs
    assert not [n for n in os.listdir("img.zarr/labels") if "patchworks-" in n]  # no leftovers


def test_existing_label_name_needs_overwrite(volume):
    write_ome_image("img.zarr", volume, axes="zyx")
    tile_process("img.zarr", fn, tile_shape=(4, 80, 80), label_name="cells", output_format=OME)
    with pytest.raises(OutputExistsError, match=r"`label_name` 'cells' already exists"):
        tile_process("img.zarr", fn, tile_shape=(4, 80, 80), label_name="cells", output_format=OME)
    tile_process(
        "img.zarr",
        fn,
        tile_shape=(4, 80, 80),
        label_name="cells",
        overwrite=True,
        output_format=OME,
    )
    tile_process(
        "img.zarr",
        fn,
        tile_shape=(4, 80, 80),
        label_name="nuclei",
        pyramid="nearest",
        output_format=OME,
    )
    assert group_attrs("img.zarr/labels")["ome"]["labels"] == ["cells", "nuclei"]
    assert set(read_with_ome_zarr("img.zarr")) >= {"cells", "nuclei"}


def test_standalone_label_image_at_write_to(volume):
    write_ome_image("img.zarr", volume, axes="zyx", version="0.4")
    out = tile_process(
        "img.zarr",
        fn,
        tile_shape=(4, 80, 80),
        write_to="out/seg.zarr",
        output_chunks=(4, 40, 40),
        compute=True,
    )
    assert not os.path.exists("img.zarr/labels")
    attrs = group_attrs("out/seg.zarr")
    validate(attrs, "0.4", "image", "label")
    assert attrs["image-label"]["source"]["image"] == os.path.relpath("img.zarr", "out/seg.zarr")
    level0 = zarr.open_array("out/seg.zarr/0", mode="r")
    assert level0.chunks == (4, 40, 40)
    assert np.array_equal(level0[...], out)
    with open("out/seg.zarr/0/.zarray") as f:
        meta = json.load(f)
    assert meta["compressor"]["id"] == "zstd" and meta["dimension_separator"] == "/"


def test_finished_label_image_is_not_resumed_over(volume):
    write_ome_image("img.zarr", volume, axes="zyx", version="0.4")
    tile_process("img.zarr", fn, tile_shape=(4, 80, 80), write_to="seg.zarr")
    before = sorted(os.listdir("."))
    calls = []

    def counting(tile):
        calls.append(1)
        return fn(tile)

    with pytest.raises(OutputExistsError, match=r"`write_to` 'seg.zarr' already exists"):
        tile_process("img.zarr", counting, tile_shape=(4, 80, 80), write_to="seg.zarr", resume=True)
    assert calls == []  # refused before any tile ran
    assert sorted(os.listdir(".")) == before  # and nothing left beside it


def test_ome_zarr_output_from_numpy(volume):
    tile_process(volume, fn, tile_shape=(4, 80, 80), write_to="seg.zarr", output_format="ome-zarr")
    attrs = group_attrs("seg.zarr")
    validate(attrs, "0.5", "image", "label")
    multiscale = attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert "source" not in attrs["ome"]["image-label"]
    assert read_with_ome_zarr("seg.zarr")["seg.zarr"][0][0] == (8, 160, 160)


def test_plain_zarr_output_and_no_write_inside(volume):
    write_ome_image("img.zarr", volume, axes="zyx")
    tile_process("img.zarr", fn, tile_shape=(4, 80, 80), output_format="zarr", compute=True)
    assert not os.path.exists("img.zarr/labels")
    tile_process(
        "img.zarr", fn, tile_shape=(4, 80, 80), output_format="zarr", write_to="plain.zarr"
    )
    assert zarr.open_array("plain.zarr").shape == (8, 160, 160)


def test_bad_output_options(volume):
    write_ome_image("img.zarr", volume, axes="zyx")
    with pytest.raises(
        InvalidParameterError,
        match=r"`output_chunks` must have one positive size per label axis \(3\); got \(0, 80, 80\)",
    ):
        tile_process("img.zarr", fn, tile_shape=(4, 80, 80), output_chunks=(0, 80, 80))
    with pytest.raises(InvalidParameterError, match=r"`output_format` must be one of"):
        tile_process("img.zarr", fn, output_format="tiff")
    with pytest.raises(InvalidParameterError, match=r"`pyramid` must be one of"):
        tile_process("img.zarr", fn, pyramid="mean")
    with pytest.raises(InvalidParameterError, match=r"`label_name` must be"):
        tile_process("img.zarr", fn, label_name="a/b")
    with pytest.raises(
        InvalidParameterError, match=r"`output_format=\"ome-zarr\"` needs `write_to`"
    ):
        tile_process(volume, fn, output_format="ome-zarr")
    with pytest.raises(InvalidParameterError, match=r"`output_compressors` must be codecs"):
        tile_process("img.zarr", fn, output_compressors="gzip-please", output_format=OME)


def test_chunks_not_dividing_tiles_are_copied(volume):
    write_ome_image("img.zarr", volume, axes="zyx")
    out = tile_process(
        "img.zarr",
        fn,
        tile_shape=(4, 80, 80),
        output_chunks=(3, 50, 50),
        compute=True,
        output_format=OME,
    )
    level0 = zarr.open_array("img.zarr/labels/patchworks/0", mode="r")
    assert level0.chunks == (3, 50, 50) and np.array_equal(level0[...], out)
    assert same_partition(out, ndi.label(volume > THRESHOLD, structure=FULL)[0])
    assert dict(level0.attrs)["patchworks"]["complete"] is True


CALLS: list[int] = []


def flaky(tile):
    CALLS.append(1)
    if len(CALLS) == 3:
        raise RuntimeError("node lost")
    return fn(tile)


def test_resume_inside_image(volume):
    write_ome_image("img.zarr", volume, axes="zyx")
    calls = CALLS
    calls.clear()
    with pytest.raises(TileFunctionError):
        tile_process("img.zarr", flaky, tile_shape=(4, 80, 80), resume=True, output_format=OME)
    assert not os.path.exists("img.zarr/labels/patchworks")
    first = len(calls)
    out = tile_process(
        "img.zarr", flaky, tile_shape=(4, 80, 80), resume=True, compute=True, output_format=OME
    )
    assert len(calls) - first < 8  # finished tiles were not run again
    assert same_partition(out, ndi.label(volume > THRESHOLD, structure=FULL)[0])
    validate(group_attrs("img.zarr/labels/patchworks"), "0.5", "image", "label")
    assert sorted(os.listdir("img.zarr/labels")) == ["patchworks", "zarr.json"]


def test_failed_run_leaves_no_label_image(volume):
    write_ome_image("img.zarr", volume, axes="zyx")

    def broken(tile):
        raise RuntimeError("model crashed")

    with pytest.raises(TileFunctionError):
        tile_process("img.zarr", broken, tile_shape=(4, 80, 80), output_format=OME)
    assert not os.path.exists("img.zarr/labels")


def test_label_chunks_divide_tiles():
    for tile in [(1, 2048, 2048), (64, 512, 512), (7, 100, 30)]:
        chunks = label_chunks(tile, np.dtype("int32"))
        assert all(t % c == 0 for t, c in zip(tile, chunks, strict=True))
    assert label_chunks((1, 2048, 2048), np.dtype("int32")) == (1, 512, 512)


def test_labels_of_a_coarser_level_carry_its_scale(volume):
    write_ome_image("img.zarr", volume, axes="zyx", scale_factors=(2, 4))
    tile_process("img.zarr", fn, level=1, tile_shape=(4, 40, 40), output_format=OME)
    ome = group_attrs("img.zarr/labels/patchworks")["ome"]
    source = group_attrs("img.zarr")["ome"]["multiscales"][0]["datasets"]
    datasets = ome["multiscales"][0]["datasets"]
    assert len(datasets) == 2  # the input's levels 1 and 2
    assert datasets[0]["coordinateTransformations"] == source[1]["coordinateTransformations"]
    assert zarr.open_array("img.zarr/labels/patchworks/0", mode="r").shape == (8, 80, 80)
    assert zarr.open_array("img.zarr/labels/patchworks/1", mode="r").shape == (8, 40, 40)
