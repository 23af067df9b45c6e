"""The sinks patchworks ships pass the sink conformance suite (patchworks.testing)."""

from __future__ import annotations

import numpy as np
import zarr
from scipy import ndimage as ndi

from ngff import validate
from patchworks import tile_process
from patchworks.io import OmeZarrSink, ZarrSink
from patchworks.testing.conformance import SinkTests


def components(tile):
    return ndi.label(tile > 0, structure=np.ones((3,) * tile.ndim))[0].astype("int32")


class TestZarrSink(SinkTests):
    def make_sink(self, path):
        return ZarrSink(path)


class TestZarrSinkStrPath(SinkTests):
    def make_sink(self, path):
        return ZarrSink(str(path))


class TestOmeZarrSink(SinkTests):
    # A finished label image is never resumed over: resume=True refuses it
    # (tests/test_labels_out.py::test_finished_label_image_is_not_resumed_over).
    resume_returns_finished = False

    def make_sink(self, path):
        return OmeZarrSink(path)

    def read_output(self, path):
        # a label image: a group whose level "0" holds the full-resolution labels
        return np.asarray(zarr.open_group(path, mode="r")["0"][...])

    def test_label_image_is_valid_ngff(self, tmp_path):
        path = tmp_path / "labels.zarr"
        lazy = tile_process(
            self._image(), components, tile_shape=self.tile_shape, write_to=self.make_sink(path)
        )
        attrs = dict(zarr.open_group(path, mode="r").attrs)
        validate(attrs, "0.5", "image", "label")
        assert attrs["ome"]["multiscales"][0]["datasets"][0]["path"] == "0"
        assert np.array_equal(lazy.compute(), self.read_output(path))  # the level-0 array
