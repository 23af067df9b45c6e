"""The plugins' defaults on real trained models (see /work/shared/models/README.md):
image-wide normalisation, tiling on the network's grid, early model and GPU checks.

The image is StarDist's bundled ``img2d.tif`` (512 x 512 nuclei); the models were trained
on it. Tests skip when the packages or the shared models are absent.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib

import cloudpickle
import numpy as np
import pytest

from patchworks import tile_process
from patchworks.errors import InvalidImageError, InvalidParameterError
from patchworks.plugins import (
    GPUUnavailableError,
    IntensityRange,
    ModelNotFoundError,
    TileNormalizationWarning,
    fit_tiling,
    image_percentiles,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings(
        "ignore:Sparse invariant checks are implicitly disabled:UserWarning"
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:tensorflow.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

MODELS = pathlib.Path(__file__).resolve().parents[3] / "shared" / "models"
STARDIST_MODEL = MODELS / "stardist-dsb-small"
CELLPOSE_MODEL = MODELS / "cellpose3-dsb-nuclei" / "cellpose3_dsb_nuclei_scratch"
HAS_CELLPOSE = importlib.util.find_spec("cellpose") is not None
HAS_STARDIST = importlib.util.find_spec("stardist") is not None
needs_stardist = pytest.mark.skipif(
    not HAS_STARDIST, reason='stardist not installed (pip install "patchworks[stardist]")'
)
needs_cellpose = pytest.mark.skipif(
    not HAS_CELLPOSE, reason='cellpose not installed (pip install "patchworks[cellpose]")'
)
needs_stardist_model = pytest.mark.skipif(
    not (HAS_STARDIST and (STARDIST_MODEL / "config.json").exists()),
    reason="stardist or the shared StarDist model is not available",
)
needs_cellpose_model = pytest.mark.skipif(
    not (HAS_CELLPOSE and HAS_STARDIST and CELLPOSE_MODEL.exists()),
    reason="cellpose, stardist (for the image) or the shared Cellpose model is not available",
)


@pytest.fixture(scope="module")
def nuclei():
    """StarDist's bundled 512 x 512 uint16 image of nuclei."""
    import stardist
    import tifffile

    path = os.path.join(os.path.dirname(stardist.__file__), "data", "images", "img2d.tif")
    return tifffile.imread(path)


def f1(reference, labels, threshold=0.5):
    from stardist.matching import matching

    return matching(reference, labels, thresh=threshold).f1


# ------------------------------------------------------------------- image percentiles


def test_image_percentiles_of_a_small_image_are_exact():
    rng = np.random.default_rng(0)
    image = rng.gamma(2, 100, (64, 80)).astype("float32")
    got = image_percentiles(image, (1, 99.8))
    assert got.low == pytest.approx((np.percentile(image, 1),))
    assert got.high == pytest.approx((np.percentile(image, 99.8),))


def test_image_percentiles_read_a_bounded_sample_per_channel():
    rng = np.random.default_rng(1)
    image = np.stack([rng.random((300, 300)), 10 + 5 * rng.random((300, 300))])
    reads = []

    class Counting(np.ndarray):
        def __getitem__(self, key):
            out = np.asarray(super().__getitem__(key))
            reads.append(out.size)
            return out

    got = image_percentiles(image.view(Counting), (0, 100), channel_axis=0, max_voxels=5000)
    assert sum(reads) <= 2 * 5000 * 1.5  # two channels, about max_voxels each
    assert got.low[0] == pytest.approx(0, abs=0.05) and got.high[0] == pytest.approx(1, abs=0.05)
    assert got.low[1] == pytest.approx(10, abs=0.3) and got.high[1] == pytest.approx(15, abs=0.3)


def test_image_percentiles_check_their_arguments():
    with pytest.raises(ValueError, match=r"`percentiles` must be two numbers"):
        image_percentiles(np.zeros((4, 4)), (99, 1))
    with pytest.raises(ValueError, match=r"`sample_size` must be a positive integer; got 0"):
        image_percentiles(np.zeros((4, 4)), sample_size=0)


def test_fit_tiling_rounds_up_to_the_grid():
    assert fit_tiling((8, 8), (250, 256), 20) == ((256, 256), (24, 24))
    assert fit_tiling((8, 8), (1, 100, 100), (0, 17, 8)) == ((1, 104, 104), (0, 24, 8))
    assert IntensityRange((0.0,), (2.0,)).apply(np.array([1]), None).tolist() == [0.5]


# ------------------------------------------------------------------- StarDist


@needs_stardist_model
def test_stardist_default_tiling_matches_the_untiled_model(nuclei):
    from stardist.models import StarDist2D

    from patchworks.plugins.stardist import stardist_fn

    fn = stardist_fn(STARDIST_MODEL, image=nuclei)
    assert fn.grid == (8, 8)  # grid 2 x pooling 2**2
    assert isinstance(fn.normalize, IntensityRange)
    assert len(cloudpickle.dumps(fn)) < 10_000
    tiles, overlap = fn.fit_tiling((128, 128), 20)  # overlap: about one nucleus
    assert (tiles, overlap) == ((128, 128), (24, 24))

    from csbdeep.utils import normalize

    model = StarDist2D(None, name=STARDIST_MODEL.name, basedir=str(STARDIST_MODEL.parent))
    whole = model.predict_instances(normalize(nuclei, 1, 99.8), verbose=False)[0]
    tiled = tile_process(nuclei, fn, tile_shape=tiles, overlap=overlap, stitch="iou", compute=True)
    n_whole, n_tiled = len(np.unique(whole)) - 1, len(np.unique(tiled)) - 1
    assert n_whole > 100
    assert abs(n_tiled - n_whole) <= 1
    assert f1(whole, tiled) >= 0.99


@needs_stardist_model
def test_stardist_with_default_stitch_and_overlap_auto_is_the_untiled_run(nuclei):
    """stitch follows fn (iou for a model), overlap="auto" measures the model's reach."""
    from patchworks._engine.reach import disagreement
    from patchworks.plugins.stardist import stardist_fn

    fn = stardist_fn(STARDIST_MODEL, image=nuclei)
    assert fn.stitch == "iou"
    whole = fn(nuclei)
    tiled = tile_process(nuclei, fn, tile_shape=(128, 128), overlap="auto", compute=True)
    assert f1(whole, tiled) == 1.0
    assert not disagreement(whole, tiled).any()


def test_a_model_fn_defaults_to_iou_with_an_automatic_overlap():
    from scipy import ndimage as ndi

    class Model:
        stitch = "iou"

        def __call__(self, tile):
            return ndi.label(tile > 0)[0]

    image = np.zeros((32, 32), "uint8")
    image[4:12, 14:20] = 1  # crosses the seam at column 16
    image[20:26, 4:10] = 1
    out = tile_process(image, Model(), tile_shape=(16, 16), compute=True)
    assert len(np.unique(out)) == 3
    with pytest.raises(InvalidParameterError, match='stitch="iou"` needs `overlap` > 0'):
        tile_process(image, Model(), tile_shape=(16, 16), overlap=0)


@needs_stardist_model
def test_stardist_without_image_warns_and_normalises_each_tile(nuclei):
    from patchworks.plugins.stardist import stardist_fn

    with pytest.warns(TileNormalizationWarning, match=r"image=IMAGE"):
        fn = stardist_fn(STARDIST_MODEL)
    assert fn.normalize == "tile"
    fixed = stardist_fn(STARDIST_MODEL, normalize=IntensityRange((0.0,), (255.0,)))
    assert fixed.normalize == IntensityRange((0.0,), (255.0,))
    # a bare pair reads as csbdeep's percentiles (1, 99.8) to many users: refused
    with pytest.raises(InvalidParameterError, match=r"IntensityRange\(low=\(LOW,\)"):
        stardist_fn(STARDIST_MODEL, normalize=(1, 99.8))


def test_intensity_ranges_and_samples_that_cannot_be_right_are_refused():
    from patchworks.plugins._normalize import _sample_boxes

    with pytest.raises(InvalidParameterError, match="one `low` and one `high` per channel"):
        IntensityRange((0.0, 0.0), (1.0,))
    with pytest.raises(InvalidParameterError, match="low <= high"):
        IntensityRange((5.0,), (1.0,))
    with pytest.raises(InvalidParameterError, match="finite"):
        IntensityRange((float("nan"),), (1.0,))
    with pytest.raises(InvalidImageError, match="no finite values"):
        image_percentiles(np.full((4, 4), np.nan))
    with pytest.raises(InvalidParameterError, match="`overlap` non-negative"):
        fit_tiling((8, 8), (128, 128), -4)
    for shape in [(1, 100_000, 100_000), (1, 1, 8000, 8000), (2, 5000, 5000)]:
        boxes = _sample_boxes(shape, 64, 1 << 22)
        assert sum(math.prod(s.stop - s.start for s in box) for box in boxes) <= 1 << 22
        assert all(
            0 <= s.start < s.stop <= n for box in boxes for s, n in zip(box, shape, strict=True)
        )


@needs_stardist
def test_stardist_missing_model_fails_at_once_naming_the_path(tmp_path):
    from patchworks.plugins.stardist import stardist_fn

    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match=r"does not exist: .*no-such-model"):
        stardist_fn(str(missing), normalize="tile")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text('{"n_dim": 2}')
    with pytest.raises(ModelNotFoundError, match=r"empty.* holds no weights file"):
        stardist_fn(tmp_path / "empty", normalize="tile")
    with pytest.raises(FileNotFoundError):  # a builtin a caller would catch
        stardist_fn(missing, normalize="tile")


@needs_stardist_model
def test_stardist_gpu_without_a_gpu_is_a_clear_error(monkeypatch):
    from patchworks.plugins import stardist as plugin

    monkeypatch.setattr(plugin, "_gpu_available", lambda: False)
    with pytest.raises(GPUUnavailableError, match=r"`gpu=True` needs a GPU that TensorFlow"):
        plugin.stardist_fn(STARDIST_MODEL, normalize="tile", gpu=True)


# ------------------------------------------------------------------- Cellpose


@needs_cellpose
def test_cellpose_missing_model_fails_at_once_naming_the_path(tmp_path):
    from patchworks.plugins.cellpose import cellpose_fn

    missing = str(tmp_path / "no_such_weights")
    with pytest.raises(ModelNotFoundError, match=r"no such file: .*no_such_weights"):
        cellpose_fn(missing, normalize="tile")


@needs_cellpose
def test_cellpose_gpu_without_a_gpu_is_a_clear_error(monkeypatch):
    from patchworks.plugins import cellpose as plugin

    monkeypatch.setattr(plugin, "_gpu_available", lambda: False)
    with pytest.raises(GPUUnavailableError, match=r"`gpu=True` needs a GPU that torch"):
        plugin.cellpose_fn("cyto3", gpu=True, normalize="tile")


@needs_cellpose_model
def test_cellpose_image_normalisation_matches_cellpose_on_the_whole_image(nuclei):
    from cellpose import models

    from patchworks.plugins.cellpose import cellpose_fn

    fn = cellpose_fn(str(CELLPOSE_MODEL), image=nuclei, channels=(0, 0))
    assert fn.normalize == image_percentiles(nuclei, (1, 99))
    model = models.CellposeModel(gpu=False, pretrained_model=str(CELLPOSE_MODEL))
    crop = nuclei[:192, :192]
    # On the whole image, the fixed range is what Cellpose's own normalisation computes.
    whole = model.eval(nuclei, channels=[0, 0])[0]
    assert np.array_equal(fn(nuclei), whole)
    assert fn(crop).shape == crop.shape
