"""TIFF and OME-TIFF input written by tifffile: lazy zarr reads, channels, pyramid levels."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from conftest import same_partition
from patchworks import tile_process
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import InvalidParameterError
from patchworks.io._source import open_image
from patchworks.io._tiff import TiffArray

FULL = np.ones((3, 3, 3), dtype=bool)


def fn(tile):
    return ndi.label(tile > THRESHOLD, structure=np.ones((3,) * tile.ndim))[0].astype("int32")


def test_ome_tiff_channel():
    image = np.stack([blobs((6, 64, 64), radius=4, seed=s) for s in (1, 2)], axis=1)  # z c y x
    tifffile.imwrite("img.ome.tif", image, ome=True, metadata={"axes": "ZCYX"})
    with pytest.raises(
        InvalidParameterError, match=r"`channel` is needed: .* 2 channels on axis 1"
    ):
        open_image("img.ome.tif")
    labels = tile_process(
        "img.ome.tif", fn, channel=1, tile_shape=(3, 32, 32), overlap=1, compute=True
    )
    assert same_partition(labels, ndi.label(image[:, 1] > THRESHOLD, structure=FULL)[0])


def test_pyramidal_ome_tiff_level():
    image = blobs((128, 128), radius=5, seed=3)
    with tifffile.TiffWriter("pyr.ome.tif") as tif:
        tif.write(image, subifds=1, tile=(64, 64), metadata={"axes": "YX"})
        tif.write(image[::2, ::2], subfiletype=1, tile=(64, 64))
    source = open_image("pyr.ome.tif", level=1)
    assert source.shape == (64, 64)
    labels = tile_process("pyr.ome.tif", fn, compute=True)  # tiles = the file's 64x64 tiles
    assert same_partition(labels, ndi.label(image > THRESHOLD, structure=np.ones((3, 3)))[0])
    with pytest.raises(InvalidParameterError, match=r"`level` must be an index in 0..1 .* got 2"):
        open_image("pyr.ome.tif", level=2)


def test_tiff_array_is_lazy_and_picklable():
    image = blobs((5, 32, 32), radius=3, seed=5)
    tifffile.imwrite("img.tif", image, photometric="minisblack")
    array = TiffArray("img.tif")
    assert array.chunks == (1, 32, 32)  # one page per chunk: reads touch only their pages
    copy = pickle.loads(pickle.dumps(array))
    assert copy._array is None
    assert np.array_equal(copy[1:3, 5:9], image[1:3, 5:9])
