"""What makes two runs "the same call" for resume=True (patchworks._store.fingerprint)."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import zarr
from scipy import ndimage as ndi

from patchworks._plan import TilePlan
from patchworks._store.fingerprint import differences, fn_identity, image_identity, run_fingerprint
from patchworks.io._source import open_image

THRESHOLD = 0.5


def segment(tile):
    return ndi.label(tile > THRESHOLD)[0]


class Model:
    """A callable object with a lazily loaded model, like the Cellpose plugin's fn."""

    def __init__(self, diameter):
        self.diameter = diameter
        self.model = None
        self.cache = []

    def __call__(self, tile):
        if self.model is None:
            self.model = object()
        self.cache.append(tile.shape)
        return segment(tile)


def test_fn_identity_follows_code_and_plain_values(monkeypatch):
    before = fn_identity(segment)
    assert fn_identity(segment) == before
    monkeypatch.setattr(sys.modules[__name__], "THRESHOLD", 0.4)
    assert fn_identity(segment) != before
    assert fn_identity(lambda t: t > 1) != fn_identity(lambda t: t > 2)
    partial = functools.partial(ndi.label, structure=np.ones((3, 3)))
    assert fn_identity(partial) != fn_identity(functools.partial(ndi.label))


def test_state_that_fills_during_a_run_does_not_change_the_identity():
    model = Model(diameter=30)
    before = fn_identity(model)
    model(np.zeros((4, 4)))
    assert fn_identity(model) == before
    assert fn_identity(Model(diameter=17)) != before


SCRIPT = """
from scipy import ndimage as ndi
from patchworks._store.fingerprint import fn_identity
LEVEL = 3
def helper(tile):
    return ndi.label(tile > LEVEL)[0]
class Seg:
    def __init__(self):
        self.level = 2
    def __call__(self, tile):
        return helper(tile)
print(fn_identity(helper), fn_identity(Seg()), fn_identity(lambda t: helper(t) + 1))
"""


def test_fn_identity_is_stable_across_processes():
    outputs = {
        subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outputs) == 1


def test_image_identity_sees_content_path_and_chunks(tmp_path):
    data = np.random.default_rng(0).random((20, 30)).astype("float32")
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(10, 10), dtype="f4")
    z[...] = data
    path = str(tmp_path / "a.zarr")
    first = image_identity(path, open_image(path))
    assert image_identity(path, open_image(path)) == first
    z[0, 0] = 5.0  # the first chunk is always sampled
    assert image_identity(path, open_image(path)) != first
    assert image_identity(data, open_image(data)) != image_identity(data + 1, open_image(data + 1))


def test_merge_only_options_are_not_part_of_the_fingerprint():
    image = np.zeros((8, 8), "uint8")
    source = open_image(image)
    plan = TilePlan((8, 8), (4, 4), (1, 1))
    common = {"labels_dtype": np.dtype("int32"), "skip_empty": False, "empty_threshold": None}
    touch = run_fingerprint(image, source, segment, plan, stitch="touch", **common)
    iou = run_fingerprint(image, source, segment, plan, stitch="iou", **common)
    assert differences(touch, iou) == ["stitch"]
    assert "sequential_labels" not in touch and "connectivity" not in touch
