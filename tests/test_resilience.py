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
from patchworks.errors import TileFunctionError

TILES = (6, 10, 10)


def label_fn(tile):
    return ndi.label(tile > 0.5)[0]


def slow_label(tile):
    time.sleep(0.15)
    return label_fn(tile)


MARK = -100.0


@pytest.fixture(scope="module")
def cluster():
    client, cluster = make_local_cluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def volume():
    rng = np.random.default_rng(11)
    volume = ndi.gaussian_filter(rng.random((24, 30, 30)), 1.5) * 2 - 0.5
    volume[0, 0, 0] = MARK
    return volume


def kill_a_worker_when_busy(client, after_s):
    """SIGKILL one worker process (its nanny starts a new one) once the run is under way."""
    pids = list(client.run(os.getpid).values())

    def kill():
        time.sleep(after_s)
        os.kill(pids[0], signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("resume", [False, True])
def test_worker_killed_mid_run_changes_nothing(cluster, volume, resume):
    expected = tile_process(
        volume, label_fn, tile_shape=TILES, overlap=2, compute=True, write_to="reference.zarr"
    )
    killer = kill_a_worker_when_busy(cluster, after_s=1.0)
    result = tile_process(
        volume,
        slow_label,
        tile_shape=TILES,
        overlap=2,
        compute=True,
        write_to="out.zarr",
        resume=resume,
    )
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
    result = tile_process(
        volume,
        slow_label,
        tile_shape=TILES,
        overlap=2,
        compute=True,
        write_to="out.zarr",
        resume=True,
    )
    killer.join()
    np.testing.assert_array_equal(result, expected)
    assert not set(pids) & set(cluster.run(os.getpid).values())


def fails_on_one_tile(tile, marker_dir, always):
    """Fails on tile 0 (the only one whose halo holds the MARK voxel): always, or once."""
    if tile[0, 0, 0] == MARK:
        marker = os.path.join(marker_dir, "tried")
        first = not os.path.exists(marker)
        with open(marker, "a") as f:
            f.write("x")
        if always or first:
            raise RuntimeError("flaky tile")
    return label_fn(tile)


def test_a_tile_that_keeps_failing_is_named_after_its_retries(cluster, volume, tmp_path_factory):
    import functools

    markers = tmp_path_factory.mktemp("markers")
    fn = functools.partial(fails_on_one_tile, marker_dir=str(markers), always=True)
    with pytest.raises(
        TileFunctionError,
        match=r"on tile 0 \(grid position \(0, 0, 0\), "
        r"box \[0:6, 0:10, 0:10\]\)",
    ) as info:
        tile_process(
            volume, fn, tile_shape=TILES, overlap=2, write_to="out.zarr", retries=2, resume=True
        )
    assert "failed on all 3 attempts (retries=2)" in "".join(info.value.__notes__)
    assert isinstance(info.value.__cause__, RuntimeError)
    with open(markers / "tried") as f:
        assert f.read() == "xxx"
    assert os.listdir(".") == [".out.zarr.patchworks-run"]  # finished tiles are kept


def test_retries_absorb_a_transient_failure(cluster, volume, tmp_path_factory):
    import functools

    markers = tmp_path_factory.mktemp("markers")
    fn = functools.partial(fails_on_one_tile, marker_dir=str(markers), always=False)
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    result = tile_process(volume, fn, tile_shape=TILES, overlap=2, compute=True, retries=1)
    np.testing.assert_array_equal(result, expected)


def crash_on_first_tile(tile):
    if tile[0, 0, 0] == MARK:
        os._exit(1)  # like a segfault or the kernel's OOM killer
    return label_fn(tile)


def test_a_tile_that_kills_its_worker_is_named():
    import dask
    import distributed  # noqa: F401  (loads the distributed config that is changed here)

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        client, cluster = make_local_cluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None
        )
    try:
        volume = np.zeros((24, 30, 30))
        volume[0, 0, 0] = MARK
        with pytest.raises(
            TileFunctionError,
            match=r"the workers running tile \d+ \(grid "
            r"position .*, box .*\) died too often .*smaller `tile_shape`",
        ):
            tile_process(volume, crash_on_first_tile, tile_shape=TILES, overlap=2)
    finally:
        client.close()
        cluster.close()
