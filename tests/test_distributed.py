"""Running on a dask.distributed cluster, and make_local_cluster."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from conftest import same_partition
from patchworks import make_local_cluster, merge_tile_labels, tile_process
from patchworks.errors import ClusterConfigurationError, ParameterTypeError

STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def label_fn(tile):
    return ndi.label(tile > 0.5, structure=STRUCTURE)[0]


@pytest.fixture(scope="module")
def cluster():
    client, cluster = make_local_cluster(n_workers=2, dashboard_address=None)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def volume():
    rng = np.random.default_rng(7)
    return ndi.gaussian_filter(rng.random((20, 30, 30)), 1.5) * 2 - 0.5


def test_tile_process_on_process_cluster_matches_scipy(cluster, volume):
    expected = ndi.label(volume > 0.5, structure=STRUCTURE)[0]
    result = tile_process(
        volume,
        label_fn,
        tile_shape=(7, 8, 9),
        overlap=2,
        write_to="out.zarr",
        sequential_labels=True,
        compute=True,
    )
    assert same_partition(result, expected)
    assert sorted(os.listdir(".")) == ["out.zarr"]


def test_merge_of_dask_blocks_on_process_cluster(cluster, volume):
    expected = ndi.label(volume > 0.5, structure=STRUCTURE)[0]
    labeled = da.from_array(volume, chunks=(5, 10, 10)).map_blocks(label_fn, dtype="int32")
    result = merge_tile_labels(labeled, compute=True)
    assert same_partition(result, expected)


def test_unpicklable_fn_is_refused_on_a_cluster(cluster, volume):
    import threading

    lock = threading.Lock()

    def holds_a_lock(tile):
        with lock:
            return label_fn(tile)

    with pytest.raises(ParameterTypeError, match="`fn` must be picklable"):
        tile_process(volume, holds_a_lock, tile_shape=(10, 10, 10))


def test_gpu_cluster_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ClusterConfigurationError, match="`use_gpu=True` needs at least one"):
        make_local_cluster(use_gpu=True)


def test_gpu_cluster_pins_one_single_threaded_worker_per_device(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    client, cluster = make_local_cluster(use_gpu=True, dashboard_address=None)
    try:
        devices = client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"])
        assert sorted(devices.values()) == ["0", "1"]
        nthreads = [w["nthreads"] for w in client.scheduler_info()["workers"].values()]
        assert nthreads == [1, 1]
    finally:
        client.close()
        cluster.close()


def test_the_preflight_passes_on_a_process_cluster_and_leaves_no_probe(cluster, volume, tmp_path):
    out = tmp_path / "labels.zarr"
    labels = tile_process(
        volume, label_fn, tile_shape=(10, 15, 15), write_to=str(out), compute=True
    )
    assert same_partition(labels, ndi.label(volume > 0.5, structure=STRUCTURE)[0])
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".patchworks-probe-")]
    assert leftovers == [] and sorted(p.name for p in tmp_path.iterdir()) == ["labels.zarr"]
