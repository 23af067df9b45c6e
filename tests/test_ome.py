"""Reading OME-Zarr (NGFF 0.4 and 0.5) written by ome-zarr-py: levels, channels, axes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from conftest import same_partition
from ngff import write_ome_image
from patchworks import tile_process
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import InvalidParameterError
from patchworks.io._source import open_image

FULL = np.ones((3, 3, 3), dtype=bool)


def fn(tile):
    return ndi.label(tile > THRESHOLD, structure=np.ones((3,) * tile.ndim))[0].astype("int32")


@pytest.fixture(scope="module")
def two_channels():
    return np.stack([blobs((12, 64, 64), radius=4, seed=s) for s in (1, 2)])  # c z y x


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_channel_and_level_from_metadata(two_channels, version):
    write_ome_image("img.zarr", two_channels, axes="czyx", version=version, chunks=(1, 6, 32, 32))
    labels = tile_process("img.zarr", fn, channel=1, overlap=2, compute=True, output_format="zarr")
    expected = ndi.label(two_channels[1] > THRESHOLD, structure=FULL)[0]
    assert labels.shape == (12, 64, 64)
    assert same_partition(labels, expected)
    coarse = open_image("img.zarr", level=1, channel=0)
    assert coarse.shape == (12, 32, 32)
    assert coarse.ome.scale == (1.0, 2.0, 2.0) and coarse.ome.axes.names == ("z", "y", "x")
    assert open_image("img.zarr", level="s1", channel=0).shape == (12, 32, 32)


def test_all_channels_with_channel_axis(two_channels):
    write_ome_image("img.zarr", two_channels, axes="czyx")
    seen = []

    def both(tile):
        seen.append(tile.shape[0])
        return fn(tile.max(axis=0))

    labels = tile_process(
        "img.zarr", both, channel_axis=0, tile_shape=(6, 32, 32), compute=True, output_format="zarr"
    )
    assert labels.shape == (12, 64, 64) and set(seen) == {2}
    expected = ndi.label(two_channels.max(axis=0) > THRESHOLD, structure=FULL)[0]
    assert same_partition(labels, expected)


def test_channel_errors(two_channels):
    write_ome_image("img.zarr", two_channels, axes="czyx")
    with pytest.raises(
        InvalidParameterError, match=r"`channel` is needed: .* 2 channels on axis 0"
    ):
        open_image("img.zarr")
    with pytest.raises(InvalidParameterError, match=r"`channel` must be an index in 0..1 .* got 5"):
        open_image("img.zarr", channel=5)
    with pytest.raises(
        InvalidParameterError, match=r"`channel_axis` must be the image's channel axis .*got 1"
    ):
        open_image("img.zarr", channel_axis=1)
    with pytest.raises(InvalidParameterError, match=r"not both"):
        open_image("img.zarr", channel=0, channel_axis=0)
    with pytest.raises(InvalidParameterError, match=r"`level` must be an index in 0..1 .* got 7"):
        open_image("img.zarr", level=7, channel=0)


def test_singleton_time_and_channel_are_dropped():
    image = blobs((16, 48, 48), radius=4, seed=3)[None, None]  # t c z y x
    write_ome_image("img.zarr", image, axes="tczyx", version="0.4")
    source = open_image("img.zarr")
    assert source.shape == (16, 48, 48) and source.channel_axis is None
    assert source.ome.axes.names == ("z", "y", "x")
    labels = tile_process(
        "img.zarr", fn, tile_shape=(8, 24, 24), compute=True, output_format="zarr"
    )
    assert same_partition(labels, ndi.label(image[0, 0] > THRESHOLD, structure=FULL)[0])


def test_no_channel_axis_rejects_channel():
    write_ome_image("img.zarr", blobs((32, 32), radius=3, seed=4), axes="yx")
    with pytest.raises(InvalidParameterError, match=r"have no channel axis; got channel=0"):
        open_image("img.zarr", channel=0)


def test_channel_of_plain_array_needs_channel_axis(rng):
    image = rng.integers(0, 2, size=(3, 10, 10))
    assert open_image(image, channel_axis=0, channel=2).read((slice(0, 10),) * 2).tolist() == (
        image[2].tolist()
    )
    with pytest.raises(InvalidParameterError, match=r"pass channel_axis= too; got channel=1"):
        open_image(image, channel=1)
