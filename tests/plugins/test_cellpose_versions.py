"""``cellpose_fn`` on Cellpose 3 and on Cellpose 4 (``cpsam``): loading, the options that
differ between them, and clear errors for a model of the other version.

The normal suite's Cellpose is 3 (the shared really trained model is a Cellpose 3
network, /work/shared/models/README.md); the Cellpose 4 tests skip there and run in an
environment with ``cellpose>=4`` (``pip install "patchworks[cellpose4]"``), on a Cellpose
4 network built here: no weights can be downloaded.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

from patchworks import tile_process
from patchworks.errors import InvalidParameterError
from patchworks.plugins import ModelNotFoundError

# Third-party noise on import and first use, under filterwarnings=error:
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Sparse invariant checks are implicitly disabled:UserWarning"
    ),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

MODELS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "models"
CELLPOSE3_MODEL = MODELS / "cellpose3-dsb-nuclei" / "cellpose3_dsb_nuclei_scratch"
HAS_CELLPOSE = importlib.util.find_spec("cellpose") is not None


def major():
    from patchworks.plugins.cellpose import cellpose_major

    return cellpose_major()


needs_cellpose3 = pytest.mark.skipif(
    not HAS_CELLPOSE or major() != 3, reason="needs Cellpose 3 (patchworks[cellpose3])"
)
needs_cellpose4 = pytest.mark.skipif(
    not HAS_CELLPOSE or major() < 4, reason="needs Cellpose >= 4 (patchworks[cellpose4])"
)


def blobs(shape, seed=0):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    spots = np.zeros(shape, dtype=np.float32)
    spots[tuple(rng.integers(0, n, 12) for n in shape)] = 1
    return (ndi.gaussian_filter(spots, 3) * 100 + rng.random(shape) * 0.05).astype("float32")


def cellpose4_weights(path, *, cellprob, squares=False):
    """A Cellpose 4 weights file with a known answer: CP-SAM's readout with no input weight
    (the encoder keeps its seeded random weights; Cellpose loads the file non-strictly),
    a constant cell probability and, with ``squares``, flows that point to the centre of
    each 8 x 8 patch, so Cellpose finds one square cell per patch."""
    import torch

    ps, nout, features = 8, 3, 256
    bias = torch.zeros(nout * ps**2)  # channel c, row y, column x of a patch: c*64 + y*8 + x
    if squares:
        rows, cols = np.mgrid[0:ps, 0:ps]
        bias[: ps**2] = torch.tensor(np.sign(3.5 - rows).ravel(), dtype=torch.float32)
        bias[ps**2 : 2 * ps**2] = torch.tensor(np.sign(3.5 - cols).ravel(), dtype=torch.float32)
    bias[2 * ps**2 :] = cellprob  # channels: flow y, flow x, cell probability
    state = {
        "W2": torch.eye(nout * ps**2).reshape(nout * ps**2, nout, ps, ps),
        "out.weight": torch.zeros(nout * ps**2, features, 1, 1),
        "out.bias": bias,
    }
    torch.save(state, path)
    return str(path)


# ------------------------------------------------------------------------- Cellpose 3


@needs_cellpose3
def test_cellpose3_default_model_and_channels():
    from patchworks.plugins.cellpose import default_model

    assert default_model() == "cyto3"


@needs_cellpose3
@pytest.mark.skipif(not CELLPOSE3_MODEL.exists(), reason="the shared Cellpose 3 model is absent")
def test_cellpose3_trained_model_through_the_plugin():
    from patchworks.plugins.cellpose import cellpose_fn

    image = blobs((96, 96)) * 10
    fn = cellpose_fn(str(CELLPOSE3_MODEL), image=image, channels=(0, 0))
    labels = tile_process(image, fn, tile_shape=(48, 48), overlap=16, stitch="iou", compute=True)
    assert labels.shape == image.shape and labels.max() >= 1


@needs_cellpose3
def test_cellpose3_refuses_a_cellpose4_file_naming_the_version(tmp_path):
    from patchworks.plugins.cellpose import cellpose_fn

    path = cellpose4_weights(tmp_path / "cp4.pt", cellprob=-5.0)
    with pytest.raises(ModelNotFoundError, match=r"patchworks\[cellpose4\]"):
        cellpose_fn(path, normalize="tile")


# ------------------------------------------------------------------------- Cellpose 4


@needs_cellpose4
def test_cellpose4_refuses_cellpose3_names_and_channels():
    from patchworks.plugins.cellpose import cellpose_fn, default_model

    assert default_model().startswith("cp")
    with pytest.raises(ModelNotFoundError, match=r"'cyto3' is a Cellpose 3 model"):
        cellpose_fn("cyto3", normalize="tile")
    with pytest.raises(InvalidParameterError, match=r"`channels` is Cellpose 3's"):
        cellpose_fn("cpsam", channels=(0, 0), normalize="tile")


@needs_cellpose4
@pytest.mark.skipif(not CELLPOSE3_MODEL.exists(), reason="the shared Cellpose 3 model is absent")
def test_cellpose4_refuses_a_cellpose3_model_naming_the_version():
    from patchworks.plugins.cellpose import cellpose_fn

    with pytest.raises(ModelNotFoundError, match=r"patchworks\[cellpose3\]"):
        cellpose_fn(str(CELLPOSE3_MODEL), normalize="tile")


@needs_cellpose4
@pytest.mark.slow
def test_cellpose4_network_built_here_runs_tile_by_tile(tmp_path):
    import torch
    from cellpose import models

    from conftest import same_partition
    from patchworks.plugins.cellpose import cellpose_fn

    torch.manual_seed(0)
    calls = []

    class Recording(models.CellposeModel):
        def eval(self, x, **kwargs):
            calls.append((np.shape(x), kwargs))
            return super().eval(x, **kwargs)

    weights = cellpose4_weights(tmp_path / "squares.pt", cellprob=5.0, squares=True)
    model = Recording(gpu=False, pretrained_model=weights)
    model.pretrained_model = None  # use the object itself (no file to reload from)
    image = blobs((96, 96)) * 10
    options = {"min_size": 0, "flow_threshold": 0, "max_size_fraction": 1.0}
    fn = cellpose_fn(model, image=image, diameter=30, **options)
    whole = fn(image)
    assert whole.dtype == np.int32 and np.unique(whole).size == 144 and whole.min() == 1
    assert all(
        np.unique(whole[r : r + 8, c : c + 8]).size == 1 for r, c in [(0, 0), (40, 88)]
    )  # 12 x 12 squares
    # Tiles 48 or 64 rows tall (Cellpose pads them without shifting the 8-pixel patches):
    labels = tile_process(image, fn, tile_shape=(32, 96), overlap=16, stitch="iou", compute=True)
    assert same_partition(labels, whole)
    shape, kwargs = calls[-1]
    assert shape == (48, 96) and "channels" not in kwargs  # a core of 32 rows, a 16-row halo
    assert kwargs["diameter"] == 30 and kwargs["normalize"] is False  # scaled image-wide
    assert kwargs["flow_threshold"] == 0
    # From the file (what workers reload), with no cell anywhere:
    empty = cellpose4_weights(tmp_path / "none.pt", cellprob=-10.0)
    out = cellpose_fn(empty, normalize="tile")(image[:32])
    assert out.shape == (32, 96) and out.dtype == np.int32 and out.max() == 0
