"""The preview PNG: labels visible in their own colours, tile seams drawn, projections."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image
from scipy import ndimage as ndi

from patchworks import preview, tile_process
from patchworks._tools.preview import SEAM_RGB
from patchworks.datasets import THRESHOLD, write_blobs_ome_zarr
from patchworks.errors import InvalidParameterError


def fn(tile):
    return ndi.label(tile > THRESHOLD)[0].astype("int32")


def test_preview_of_a_run_inside_an_ome_zarr():
    write_blobs_ome_zarr("img.ome.zarr", (6, 120, 160), chunks=(3, 40, 40), radius=6, seed=2)
    tile_process("img.ome.zarr", fn, tile_shape=(3, 40, 40), overlap=2, output_format="ome-zarr")
    path = preview("img.ome.zarr", write_to="out/p.png", size=320)
    picture = Image.open(path)
    caption = picture.text["Description"]
    assert caption.startswith("plane 3 of 6 along z, 120 x 160 px; tiles (3, 40, 40)"), caption
    n_labels = zarr.open_array("img.ome.zarr/labels/patchworks/0").attrs["patchworks"]["n_labels"]
    assert caption.endswith(f" objects shown of {n_labels} in the labels")
    full = np.asarray(picture.convert("RGB"))
    assert full.shape[0] > 240 and full[240:].max() > 200  # a caption strip with text
    rgb = full[:240]
    assert rgb.shape == (240, 320, 3)  # enlarged 2x to the requested size
    seam = np.all(rgb == SEAM_RGB, axis=-1)
    assert seam[80].all() and seam[:, 80].all() and seam[:, 240].all()  # tiles of 40 px x2
    assert not seam[81].all()
    colourful = rgb[~seam]
    saturation = colourful.max(axis=-1).astype(int) - colourful.min(axis=-1)
    assert (saturation > 60).mean() > 0.05  # labels are drawn in colour over a grey image
    assert len(np.unique(colourful[saturation > 60], axis=0)) > 20  # many distinct objects


def test_projection_plane_and_explicit_labels(rng):
    image = np.zeros((5, 32, 32), dtype="uint8")
    image[1, 4:10, 4:10] = 200
    image[3, 20:28, 20:28] = 200
    labels = ndi.label(image > 0)[0]
    mip = np.asarray(
        Image.open(
            preview(
                image,
                labels=labels,
                projection="max",
                size=32,
                tile_shape=(5, 16, 16),
                write_to="m.png",
            )
        )
    )
    plane = np.asarray(
        Image.open(
            preview(
                image, labels=labels, plane=1, size=32, tile_shape=(5, 16, 16), write_to="p.png"
            )
        )
    )
    grey = np.ptp(mip[..., :3].astype(int), axis=-1) == 0
    assert not grey[24, 24] and not grey[6, 6]  # both objects in the projection
    assert np.ptp(plane[24, 24, :3].astype(int)) == 0  # plane 1 misses the second object
    with pytest.raises(
        InvalidParameterError, match=r"`plane` must be an index in 0..4 along the first axis; got 9"
    ):
        preview(image, plane=9)
    with pytest.raises(InvalidParameterError, match=r"`labels` must have the image's spatial"):
        preview(image, labels=labels[:, :16])
