"""Looking at a result in napari: layers at the image's scale, every level, lazily."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from scipy import ndimage as ndi

from patchworks import tile_process, view
from patchworks._tools.view import napari_layers
from patchworks.datasets import THRESHOLD, write_blobs_ome_zarr
from patchworks.errors import MissingDependencyError


def fn(tile):
    return ndi.label(tile > THRESHOLD)[0]


@pytest.fixture
def result():
    write_blobs_ome_zarr(
        "img.ome.zarr", (4, 64, 64), chunks=(2, 32, 32), voxel_size=(2.0, 0.5, 0.5)
    )
    tile_process("img.ome.zarr", fn, tile_shape=(2, 32, 32), output_format="ome-zarr")
    return "img.ome.zarr"


def test_layers_line_up_at_the_image_scale(result):
    (image, image_opts, kind), (labels, label_opts, label_kind) = napari_layers(result)
    assert (kind, label_kind) == ("image", "labels")
    assert image_opts == {"name": "image", "multiscale": True, "scale": [2.0, 0.5, 0.5]}
    assert label_opts["scale"] == image_opts["scale"] and label_opts["multiscale"]
    assert [a.shape for a in image] == [(4, 64, 64), (4, 32, 32), (4, 16, 16)]
    assert labels[0].shape == (4, 64, 64) and len(labels) >= 2
    expected = ndi.label(np.asarray(image[0][...]) > THRESHOLD)[0]
    assert (np.asarray(labels[0][...]) > 0).sum() == (expected > 0).sum()


def test_plain_arrays_and_explicit_labels():
    image = np.zeros((16, 16), dtype="uint8")
    labels = np.ones((16, 16), dtype="int32")
    layers = napari_layers(image, labels)
    assert [kind for *_, kind in layers] == ["image", "labels"]
    assert layers[1][0] is labels and "scale" not in layers[1][1]


def test_view_adds_the_layers_to_a_viewer(result, monkeypatch):
    added = []

    class Viewer:  # napari's API as view() uses it; no window is opened
        def add_image(self, data, **options):
            added.append(("image", options))

        def add_labels(self, data, **options):
            added.append(("labels", options))

    monkeypatch.setitem(sys.modules, "napari", types.SimpleNamespace(Viewer=Viewer))
    assert isinstance(view(result), Viewer)
    assert [kind for kind, _ in added] == ["image", "labels"]
    assert added[1][1]["scale"] == [2.0, 0.5, 0.5]


def test_view_without_napari_names_the_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "napari", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "patchworks\[napari\]"'):
        view(result)
