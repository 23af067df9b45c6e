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


def _two_cells():
    image = np.zeros((4, 32, 32), "uint16")
    image[1:3, 5:20, 5:20] = 1000
    return image


@pytest.mark.parametrize("kind", ["ome", "imagej"])
def test_pixel_sizes_carry_into_the_label_image_and_info(kind, tmp_path):
    import zarr

    from patchworks._tools.info import describe, format_info

    path = str(tmp_path / f"img.{kind}.tif")
    if kind == "ome":
        meta = {"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0}
        tifffile.imwrite(path, _two_cells(), metadata=meta)
        expected = [2.0, 0.5, 0.5]
    else:
        meta = {"axes": "ZYX", "spacing": 3.0, "unit": "um"}
        tifffile.imwrite(path, _two_cells(), imagej=True, resolution=(4, 4), metadata=meta)
        expected = [3.0, 0.25, 0.25]
    out = tmp_path / "labels.zarr"
    fn = lambda t: ndi.label(t > 500)[0]  # noqa: E731
    tile_process(path, fn, tile_shape=(2, 16, 16), write_to=out, output_format="ome-zarr")
    multiscale = dict(zarr.open_group(out).attrs)["ome"]["multiscales"][0]
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == expected
    assert [a.get("unit") for a in multiscale["axes"]] == ["micrometer"] * 3
    info = describe(path)
    assert info["pixel_size"] == expected
    assert "pixel size (" in format_info(info) and "micrometer" in format_info(info)


def test_a_tiff_without_sizes_has_none(tmp_path):
    from patchworks._tools.info import describe

    path = str(tmp_path / "plain.tif")
    tifffile.imwrite(path, _two_cells(), photometric="minisblack")
    assert "pixel_size" not in describe(path)


def test_pixel_sizes_of_a_coarser_level_are_its_own(tmp_path):
    from patchworks.io._source import open_image

    path = str(tmp_path / "pyramid.ome.tif")
    image = _two_cells()[1]
    meta = {"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, subifds=1, metadata=meta)
        tif.write(image[::2, ::2], subfiletype=1)
    assert open_image(path).axes.scale == (0.5, 0.5)
    assert open_image(path, level=1).axes.scale == (1.0, 1.0)


def test_imagej_units_are_read_or_the_size_is_left_out(tmp_path):
    from patchworks.io._source import open_image

    def axes_of(**meta):
        path = str(tmp_path / f"ij-{len(list(tmp_path.iterdir()))}.tif")
        tifffile.imwrite(
            path,
            np.zeros((3, 8, 8), "uint16"),
            imagej=True,
            resolution=(4, 4),
            metadata={"axes": "TYX", **meta},
        )
        return open_image(path).axes

    timed = axes_of(unit="micron", finterval=5, tunit="min")  # minutes, not seconds
    assert timed.scale == (5.0, 0.25, 0.25)
    assert timed.units == ("minute", "micrometer", "micrometer")
    unknown = axes_of(unit="furlong")
    assert unknown.units[1:] == (None, None) and unknown.scale is None
    greek = str(tmp_path / "greek.ome.tif")  # U+03BC GREEK SMALL LETTER MU, not U+00B5
    meta = {"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "\u03bcm"}
    tifffile.imwrite(greek, np.zeros((8, 8), "uint16"), metadata=meta)
    assert open_image(greek).axes.units[1] == "micrometer"
