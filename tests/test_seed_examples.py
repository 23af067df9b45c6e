"""Every example of the original README (shared/seed) runs as written on a small local image.

The examples are copied as written; only the names the README leaves to the reader
(``fn``, ``my_segment_fn`` and the image files) are defined here. The Cellpose and StarDist
examples live with the plugin tests, since they need those packages.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from patchworks.datasets import THRESHOLD, write_blobs_zarr


def fn(tile):
    from skimage.measure import label

    return label(tile > THRESHOLD).astype("int32")


def my_segment_fn(block):
    from skimage.measure import label

    return label(block > THRESHOLD).astype("int32")


@pytest.fixture(autouse=True)
def image_zarr(tmp_path):
    write_blobs_zarr(str(tmp_path / "image.zarr"), (8, 96, 96), chunks=(4, 48, 48), radius=6)
    return tmp_path / "image.zarr"


def test_quick_start():
    from patchworks import tile_process

    def my_fn(tile):
        from skimage.filters import threshold_otsu
        from skimage.measure import label

        return label(tile > threshold_otsu(tile)).astype("int32")

    result = tile_process("image.zarr", my_fn, compute=True)

    assert isinstance(result, np.ndarray) and result.shape == (8, 96, 96) and result.max() > 0


def test_with_any_function():
    import numpy as np  # noqa: F401  (as written in the seed)
    from scipy.ndimage import gaussian_filter
    from skimage.measure import label

    from patchworks import tile_process

    def my_custom_fn(tile: np.ndarray) -> np.ndarray:
        smoothed = gaussian_filter(tile.astype("float32"), sigma=1.5)
        binary = smoothed > smoothed.mean()
        return label(binary).astype("int32")

    result = tile_process("image.zarr", my_custom_fn, tile_shape=(1, 512, 512))

    assert result.shape == (8, 96, 96) and result.max().compute() > 0


def test_auto_tile_shape():
    from patchworks import tile_process

    result = tile_process("image.zarr", fn, tile_shape="auto", use_gpu=True)

    assert result.shape == (8, 96, 96)


def test_skip_empty_tiles(capsys):
    from patchworks import estimate_empty_tiles, tile_process

    info = estimate_empty_tiles("image.zarr", tile_shape=(120, 697, 697))
    print(f"{info['empty_fraction']:.0%} tiles are background — will be skipped")

    tile_process(
        "image.zarr",
        fn,
        tile_shape=(120, 697, 697),
        skip_empty=True,
        empty_threshold=info["threshold"],
        write_to="labels.zarr",
    )

    assert "tiles are background" in capsys.readouterr().out
    assert zarr.open_array("labels.zarr").shape == (8, 96, 96)


def test_distributed_cluster_for_gpu(monkeypatch):
    # No GPU on CI: declare one device so the example's cluster starts (CPU work only).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    from patchworks import make_local_cluster, tile_process

    client, cluster = make_local_cluster(use_gpu=True)
    try:
        tile_process("image.zarr", fn, write_to="labels.zarr", progress=True)
    finally:
        client.close()
        cluster.close()

    assert zarr.open_array("labels.zarr")[...].max() > 0


def test_contiguous_label_numbering():
    from patchworks import tile_process

    tile_process("image.zarr", fn, write_to="labels.zarr", sequential_labels=True)

    labels = zarr.open_array("labels.zarr")[...]
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))


def test_merge_step_on_own_dask_tiling():
    import dask.array as da
    import numpy as np

    from patchworks import merge_tile_labels

    # Your own tiling + segmentation
    image = da.from_zarr("image.zarr").rechunk((1, 1024, 1024))
    labeled = image.map_blocks(
        my_segment_fn, dtype="int32", meta=np.empty((0,) * image.ndim, dtype="int32")
    )

    merged = merge_tile_labels(labeled, write_to="labels.zarr", progress=True)

    assert merged.shape == (8, 96, 96) and merged.max().compute() > 0


def test_merge_step_on_own_zarr_store():
    import dask.array as da

    group = zarr.open_group("my_staged_labels.zarr", mode="w")
    tiles = da.from_zarr("image.zarr").map_blocks(my_segment_fn, dtype="int32")
    group.create_array("raw_labels", data=tiles.compute(), chunks=(4, 48, 48))

    from patchworks import merge_tile_labels

    merged = merge_tile_labels(
        "my_staged_labels.zarr",
        input_component="raw_labels",
        write_to="merged.zarr",
        sequential_labels=True,
    )

    values = np.unique(merged.compute())
    assert np.array_equal(values, np.arange(values.size))
