"""Worker death on a dask.distributed cluster, and tiles whose fn keeps failing."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from patchworks import make_local_cluster, tile_process
from patchworks._resume import LOG, read_tile_log, run_dir_for
from patchworks.errors import TileFunctionError

TILES = (6, 10, 10)


def label_fn(tile):
    return ndi.label(tile > 0.5)[0]


def slow_label(tile):
    time.sleep(0.15)
    return label_fn(tile)


def always_fails_on_tile_4(tile):
    if tile.shape == (6, 12, 12) and float(tile[0, 0, 0]) == MARK:
        raise RuntimeError("this tile always fails")
    return label_fn(tile)


MARK = 123.0


@pytest.fixture(scope="module")
def cluster():
    client, cluster = make_local_cluster(n_workers=2, threads_per_worker=1,
                                         dashboard_address=None)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def volume():
    rng = np.random.default_rng(11)
    return ndi.gaussian_filter(rng.random((24, 30, 30)), 1.5) * 2 - 0.5


def kill_a_worker_when_busy(client, after_s):
    """SIGKILL one worker process (its nanny starts a new one) once the run is under way."""
    pids = list(client.run(os.getpid).values())

    def kill():
        time.sleep(after_s)
        os.kill(pids[0], signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("resume", [False, True])
def test_worker_killed_mid_run_changes_nothing(cluster, volume, resume):
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True,
                            write_to="reference.zarr")
    killer = kill_a_worker_when_busy(cluster, after_s=1.0)
    result = tile_process(volume, slow_label, tile_shape=TILES, overlap=2, compute=True,
                          write_to="out.zarr", resume=resume)
    killer.join()
    np.testing.assert_array_equal(result, expected)
    assert sorted(os.listdir(".")) == ["out.zarr", "reference.zarr"]


def test_every_original_worker_killed_one_after_the_other(cluster, volume):
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    pids = list(cluster.run(os.getpid).values())

    def kill_all():
        for pid in pids:
            time.sleep(1.0)
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_all, daemon=True)
    killer.start()
    result = tile_process(volume, slow_label, tile_shape=TILES, overlap=2, compute=True,
                          write_to="out.zarr", resume=True)
    killer.join()
    np.testing.assert_array_equal(result, expected)
    assert not set(pids) & set(cluster.run(os.getpid).values())
