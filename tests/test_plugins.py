"""Cellpose and StarDist plugins, run for real on small models built in the test.

No weights can be downloaded here, so each test builds its own model: a freshly
initialised Cellpose network saved to a temporary file, and a tiny StarDist model
(8 rays, 1-level U-Net) with its untrained weights saved to a temporary folder. The
outputs are checked against the model called directly, so a plugin that mangled planes,
channels or dtypes would fail.
"""

from __future__ import annotations

import importlib.util
import json
import os

import cloudpickle
import numpy as np
import pytest

from patchworks import tile_process
from patchworks.errors import MissingDependencyError
from patchworks.plugins._models import LOADS

# Third-party noise on import and first use, under filterwarnings=error:
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Sparse invariant checks are implicitly disabled:UserWarning"
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:tensorflow.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

HAS_CELLPOSE = importlib.util.find_spec("cellpose") is not None
HAS_STARDIST = importlib.util.find_spec("stardist") is not None
needs_cellpose = pytest.mark.skipif(
    not HAS_CELLPOSE, reason='cellpose not installed (pip install "patchworks[cellpose]")'
)
needs_stardist = pytest.mark.skipif(
    not HAS_STARDIST, reason='stardist not installed (pip install "patchworks[stardist]")'
)


def blobs(shape, seed=0):
    """Bright round blobs on a dark background: something a segmenter can bite on."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    spots = np.zeros(shape, dtype=np.float32)
    spots[tuple(rng.integers(0, n, 12) for n in shape)] = 1
    return (ndi.gaussian_filter(spots, 3) * 100 + rng.random(shape) * 0.05).astype("float32")


@pytest.mark.parametrize(
    ("module", "factory", "extra"),
    [
        ("cellpose", "cellpose_fn", "cellpose"),
        ("stardist", "stardist_fn", "stardist"),
    ],
)
def test_missing_package_gives_the_pip_line(monkeypatch, module, factory, extra):
    import importlib

    plugin = importlib.import_module(f"patchworks.plugins.{module}")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=rf'pip install "patchworks\[{extra}\]"'):
        getattr(plugin, factory)()


# --------------------------------------------------------------------------- Cellpose


@pytest.fixture(scope="module")
def cellpose_weights(tmp_path_factory):
    from cellpose import models

    net = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None)
    path = str(tmp_path_factory.mktemp("cellpose") / "fresh_net")
    net.net.save_model(path)
    return path


@needs_cellpose
def test_cellpose_fn_runs_through_tile_process(cellpose_weights):
    from cellpose import models

    from patchworks.plugins.cellpose import cellpose_fn

    fn = cellpose_fn(cellpose_weights, diameter=30, channels=(0, 0), normalize="tile")
    image = blobs((48, 48))
    result = tile_process(image, fn, tile_shape=(24, 24), overlap=8, compute=True)
    assert result.shape == image.shape and result.dtype == np.int32
    key = ("cellpose", cellpose_weights, False)
    assert LOADS[key] == 1  # four tiles, one load

    direct = models.CellposeModel(gpu=False, pretrained_model=cellpose_weights)
    expected = direct.eval(image[:24, :24], diameter=30, channels=[0, 0])[0]
    labels = fn(image[:24, :24])
    assert labels.dtype == np.int32 and np.array_equal(labels, expected)

    shipped = cloudpickle.dumps(fn)
    assert len(shipped) < 10_000  # the network never travels, only its path
    again = cloudpickle.loads(shipped)
    assert np.array_equal(again(image[:24, :24]), labels)
    assert LOADS[key] == 1  # the copy shares this process's model


@needs_cellpose
def test_cellpose_fn_planes_and_channels(cellpose_weights):
    from patchworks.plugins.cellpose import cellpose_fn

    stack = np.stack([blobs((32, 32), seed=s) for s in range(3)])
    per_plane = cellpose_fn(cellpose_weights, diameter=30, do_3D=False, normalize="tile")
    labels = per_plane(stack)
    assert labels.shape == stack.shape and labels.dtype == np.int32
    assert np.array_equal(labels[1] > 0, per_plane(stack[1]) > 0)
    one_plane = per_plane(stack[:1])
    assert one_plane.shape == (1, 32, 32)
    two_channels = cellpose_fn(
        cellpose_weights, diameter=30, channels=(1, 2), channel_axis=0, normalize="tile"
    )
    assert two_channels(np.stack([stack[0], stack[1]])).shape == (32, 32)


# --------------------------------------------------------------------------- StarDist


@pytest.fixture(scope="module")
def stardist_folder(tmp_path_factory):
    from stardist.models import Config2D, StarDist2D

    base = tmp_path_factory.mktemp("stardist")
    config = Config2D(
        n_rays=8,
        grid=(2, 2),
        n_channel_in=1,
        unet_n_depth=1,
        unet_n_filter_base=4,
        train_patch_size=(32, 32),
    )
    model = StarDist2D(config, name="tiny", basedir=str(base))
    # Untrained weights, drawn from a seeded generator (Keras's own random initialisation
    # sometimes gave a model that finds no object), with a low probability threshold.
    rng = np.random.default_rng(0)
    weights = model.keras_model.get_weights()
    model.keras_model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in weights])
    model.keras_model.save_weights(str(base / "tiny" / "weights_best.h5"))
    with open(base / "tiny" / "thresholds.json", "w") as handle:
        json.dump({"prob": 0.1, "nms": 0.4}, handle)
    return str(base / "tiny")


@needs_stardist
def test_stardist_fn_runs_through_tile_process(stardist_folder):
    from csbdeep.utils import normalize
    from stardist.models import StarDist2D

    from patchworks.plugins.stardist import stardist_fn

    fn = stardist_fn(stardist_folder, normalize="tile")
    image = blobs((64, 64))
    result = tile_process(image, fn, tile_shape=(32, 32), overlap=8, stitch="iou", compute=True)
    assert result.shape == image.shape and result.dtype == np.int32
    key = ("stardist", "2D", "tiny", os.path.dirname(stardist_folder))
    assert LOADS[key] == 1

    direct = StarDist2D(None, name="tiny", basedir=os.path.dirname(stardist_folder))
    tile = image[:32, :32]
    expected = direct.predict_instances(normalize(tile, 1, 99.8), verbose=False)[0]
    labels = fn(tile)
    assert labels.dtype == np.int32 and np.array_equal(labels, expected)
    assert labels.max() > 0

    shipped = cloudpickle.dumps(fn)
    assert len(shipped) < 10_000
    assert np.array_equal(cloudpickle.loads(shipped)(tile), labels)
    assert LOADS[key] == 1


@needs_stardist
def test_stardist_2d_model_on_a_stack_goes_plane_by_plane(stardist_folder):
    from patchworks.plugins.stardist import stardist_fn

    fn = stardist_fn("tiny", basedir=os.path.dirname(stardist_folder), normalize="tile")
    stack = np.stack([blobs((32, 32), seed=s) for s in range(2)])
    labels = fn(stack)
    assert labels.shape == stack.shape and labels.dtype == np.int32
    first, second = set(np.unique(labels[0])) - {0}, set(np.unique(labels[1])) - {0}
    assert not first & second  # planes never share an ID
    assert np.array_equal(labels[1] > 0, fn(stack[1]) > 0)
    assert fn(stack[:1]).shape == (1, 32, 32)


@needs_cellpose
def test_cellpose_fn_hands_its_options_to_eval(cellpose_weights):
    """A model object is used as given, and every option reaches ``CellposeModel.eval``."""
    from cellpose import models

    from patchworks.plugins.cellpose import cellpose_fn

    calls = []

    class Recording(models.CellposeModel):
        def eval(self, x, **kwargs):
            calls.append((np.shape(x), kwargs))
            if kwargs.get("do_3D"):  # 3-D Cellpose on a CPU takes minutes; check the call only
                return np.zeros(np.shape(x)[:3], dtype=np.uint16), None, None
            return super().eval(x, **kwargs)

    model = Recording(gpu=False, pretrained_model=cellpose_weights)
    model.pretrained_model = None  # no file to reload from: the object itself is used
    fn = cellpose_fn(
        model, diameter=17, channels=(2, 1), channel_axis=0, normalize=False, flow_threshold=0.2
    )
    assert fn.model is model
    out = fn(np.stack([blobs((24, 24)), blobs((24, 24), seed=1)]))
    assert out.shape == (24, 24) and out.dtype == np.int32
    shape, kwargs = calls[-1]
    assert shape == (24, 24, 2)  # channels moved last
    assert kwargs == {
        "diameter": 17,
        "channels": [2, 1],
        "channel_axis": 2,
        "normalize": False,
        "flow_threshold": 0.2,
    }
    stack = np.stack([blobs((20, 20), seed=s) for s in range(2)])
    assert cellpose_fn(model, do_3D=True, diameter=30, normalize="tile")(stack).shape == stack.shape
    shape, kwargs = calls[-1]
    assert shape == (2, 20, 20) and kwargs["do_3D"] is True and kwargs["z_axis"] == 0


@needs_stardist
@pytest.mark.slow
def test_stardist_loads_once_per_worker_process_on_a_cluster(stardist_folder):
    from patchworks import make_local_cluster
    from patchworks.plugins.stardist import stardist_fn

    fn = stardist_fn(stardist_folder, normalize="tile")
    image = blobs((64, 96))
    client, cluster = make_local_cluster(n_workers=2, threads_per_worker=2, dashboard_address=None)
    try:
        result = tile_process(image, fn, tile_shape=(16, 16), overlap=4, stitch="iou", compute=True)
        loads = client.run(
            lambda: dict(__import__("patchworks.plugins._models", fromlist=["LOADS"]).LOADS)
        )
    finally:
        client.close()
        cluster.close()
    assert result.shape == image.shape
    key = ("stardist", "2D", "tiny", os.path.dirname(stardist_folder))
    per_worker = [counts.get(key, 0) for counts in loads.values()]
    assert sum(per_worker) >= 1 and max(per_worker) == 1  # 24 tiles, one load per process
