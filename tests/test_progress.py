"""Progress that shows life: a start line, time that moves before the first tile is done,
plain lines in a log, the time left once tiles have finished, and each stage's own unit.

Nothing here depends on how fast the machine is: each ``fn`` waits until the progress
display has said what the test expects (or fails after a generous deadline)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time

import dask
import numpy as np
from scipy import ndimage as ndi

from patchworks import tile_process
from patchworks._engine import progress
from patchworks.datasets import write_blobs_ome_zarr

DEADLINE = 60.0


def wait_for(read, text):
    """Block until ``read()`` contains ``text``; fail after :data:`DEADLINE` seconds."""
    end = time.monotonic() + DEADLINE
    while text not in read():
        if time.monotonic() > end:
            raise AssertionError(f"never shown: {text!r}; shown:\n{read()}")
        time.sleep(0.02)


def log_stderr(monkeypatch):
    """Send stderr to a string (not a terminal: a log), a line every 0.05 s.

    Called inside the test: pytest puts its own capture back between fixtures and test."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("PATCHWORKS_PROGRESS_INTERVAL", "0.05")
    return stream


def test_log_lines_tick_before_the_first_tile_and_give_the_time_left(monkeypatch):
    stderr = log_stderr(monkeypatch)
    image = np.zeros((4, 16), dtype="uint8")
    image[:, 3] = 1
    calls = []

    def fn(tile):
        calls.append(1)
        if len(calls) == 1:  # the first tile: still running while time is reported
            wait_for(stderr.getvalue, "tiles: 0/4 tiles, ")
        if len(calls) == 2:  # one tile done: a rate and the time left are reported
            wait_for(stderr.getvalue, "tiles: 1/4 tiles, ")
            wait_for(stderr.getvalue, "left")
        return ndi.label(tile)[0]

    with dask.config.set(scheduler="sync"):
        labels = tile_process(image, fn, tile_shape=(1, 16), compute=True, progress=True)
    assert labels.max() == 1  # the column crosses every tile (row) and is joined
    lines = stderr.getvalue().splitlines()
    assert lines[0] == "patchworks: 4 tiles of (1, 16) over (4, 16), 1 threads, result in memory"
    assert all(line.startswith("patchworks: ") for line in lines)
    assert "\r" not in stderr.getvalue()  # no bar redrawn in place
    ticking = next(line for line in lines if "tiles: 0/4" in line)
    assert ticking.endswith(" s elapsed")  # no rate, no time left before a tile is done
    eta = next(line for line in lines if "tiles: 1/4" in line and "left" in line)
    assert "s/tile" in eta or "tiles/s" in eta
    assert any(line.startswith("patchworks: tiles: 4/4 tiles in ") for line in lines)
    assert any(line.startswith("patchworks: faces: ") and "blocks" in line for line in lines)


def test_no_output_without_progress(monkeypatch):
    stderr = log_stderr(monkeypatch)
    image = np.ones((4, 16), dtype="uint8")
    tile_process(image, lambda t: ndi.label(t)[0], tile_shape=(1, 16), compute=True)
    assert stderr.getvalue() == ""


def test_bars_on_a_terminal_redraw_their_elapsed_time(monkeypatch):
    stderr = log_stderr(monkeypatch)
    monkeypatch.setattr(progress, "_interactive", lambda stream: True)
    with progress.progress_bar(2, "tiles", unit="tile", enabled=True) as bar:
        wait_for(stderr.getvalue, "0/2 [00:01<")  # the clock moved with nothing done
        bar.update()
    assert "1/2" in stderr.getvalue() and "tile/s" in stderr.getvalue()


def test_log_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("PATCHWORKS_PROGRESS_INTERVAL", "2.5")
    assert progress.log_interval() == 2.5
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv("PATCHWORKS_PROGRESS_INTERVAL", bad)
        assert progress.log_interval() == progress.DEFAULT_LOG_INTERVAL


SLOW = textwrap.dedent("""
    import os, time
    from skimage.measure import label

    def fn(tile):
        log = os.environ["PROGRESS_LOG"]
        end = time.monotonic() + 60
        # the first tiles wait until the log shows the run is alive before any is done
        while "tiles: 0/" not in open(log).read() and time.monotonic() < end:
            time.sleep(0.02)
        return label(tile > 400)
""")


RUN = ("--fn", "slow:fn", "--out", "labels.ome.zarr")


def test_cli_writes_progress_lines_to_a_log_file(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    write_blobs_ome_zarr(str(tmp_path / "img.ome.zarr"), (8, 64, 64), chunks=(4, 32, 32))
    log = tmp_path / "run.log"
    env = {
        **os.environ,
        "PROGRESS_LOG": str(log),
        "PATCHWORKS_PROGRESS_INTERVAL": "0.1",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    with open(log, "w") as err:
        done = subprocess.run(
            [sys.executable, "-m", "patchworks", "run", "img.ome.zarr", *RUN],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            timeout=120,
        )
    text = log.read_text()
    assert done.returncode == 0, text
    lines = text.splitlines()
    assert lines[0].startswith("patchworks: 8 tiles of (4, 32, 32) over (8, 64, 64), ")
    assert lines[0].endswith(", writing labels.ome.zarr")
    assert any(line.startswith("patchworks: tiles: 0/8 tiles, ") for line in lines)
    assert any(line.startswith("patchworks: tiles: 8/8 tiles in ") for line in lines)
    assert any(line.startswith("patchworks: pyramid level 1: ") for line in lines)
    assert "\r" not in text and "wrote labels.ome.zarr" in done.stdout
