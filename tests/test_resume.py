"""resume=True: finished tiles survive a crash; a restart re-runs only the rest (SPEC §2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

import patchworks._run as merge_half
import patchworks._run as pipeline
from patchworks import merge_tile_labels, output_status, tile_process
from patchworks._store.resume import LOG, read_tile_log, run_dir_for
from patchworks.errors import (
    IncompleteOutputError,
    InvalidParameterError,
    OutputExistsError,
    OutputLockedError,
    ResumeMismatchError,
    TileFunctionError,
)

TILES = (8, 10, 12)
N_TILES = 3 * 3 * 3


def label_fn(tile):
    return ndi.label(tile > 0.5)[0]


LOCK = threading.Lock()
CALLS = {"n": 0, "fail_after": None}


def flaky(tile):
    """``label_fn`` that counts its calls and fails after ``CALLS["fail_after"]`` of them.

    A module-level function has the same identity whatever the counters hold, so an
    interrupted run and its resumption use "the same fn".
    """
    with LOCK:
        CALLS["n"] += 1
        if CALLS["fail_after"] is not None and CALLS["n"] > CALLS["fail_after"]:
            raise RuntimeError("simulated crash")
    return label_fn(tile)


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.update(n=0, fail_after=None)


def calls_after(action):
    CALLS.update(n=0, fail_after=None)
    result = action()
    return CALLS["n"], result


@pytest.fixture
def volume():
    rng = np.random.default_rng(3)
    return ndi.gaussian_filter(rng.random((24, 30, 36)), 1.5) * 2 - 0.5


def run(volume, fn, **kwargs):
    options = {"tile_shape": TILES, "overlap": 2, "write_to": "out.zarr", "resume": True}
    return tile_process(volume, fn, **{**options, **kwargs})


def finished_tiles(write_to="out.zarr"):
    return read_tile_log(os.path.join(run_dir_for(write_to), "state", LOG), N_TILES)


def interrupt(volume, after=10, **kwargs):
    CALLS.update(n=0, fail_after=after)
    with pytest.raises(TileFunctionError, match="simulated crash"):
        run(volume, flaky, **kwargs)
    CALLS.update(n=0, fail_after=None)
    return finished_tiles()


def test_resume_reruns_only_unfinished_tiles_and_matches_uninterrupted(volume):
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    done = interrupt(volume)
    assert 0 < len(done) <= 10
    assert sorted(os.listdir(".")) == [".out.zarr.patchworks-run"]
    calls, result = calls_after(lambda: run(volume, flaky, compute=True))
    assert calls == N_TILES - len(done)
    np.testing.assert_array_equal(result, expected)
    assert sorted(os.listdir(".")) == ["out.zarr"]
    info = dict(zarr.open_array("out.zarr").attrs)["patchworks"]
    assert info["complete"] is True and "fingerprint" in info


def test_uninterrupted_resumable_run_equals_plain_run(volume):
    plain = tile_process(
        volume, label_fn, tile_shape=TILES, overlap=2, compute=True, sequential_labels=True
    )
    resumable = run(volume, label_fn, compute=True, sequential_labels=True)
    np.testing.assert_array_equal(resumable, plain)


def test_merge_options_may_change_between_interruption_and_resume(volume):
    interrupt(volume, sequential_labels=False)
    expected = tile_process(
        volume,
        label_fn,
        tile_shape=TILES,
        overlap=2,
        compute=True,
        sequential_labels=True,
        connectivity=1,
    )
    result = run(volume, flaky, compute=True, sequential_labels=True, connectivity=1)
    np.testing.assert_array_equal(result, expected)


def test_crash_during_the_merge_keeps_every_tile(volume, monkeypatch):
    expected = run(volume, flaky, write_to="reference.zarr", compute=True)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(merge_half, "mark_complete", crash)
        run(volume, flaky)
    assert not os.path.exists("out.zarr")
    assert len(finished_tiles()) == N_TILES
    calls, result = calls_after(lambda: run(volume, flaky, compute=True))
    assert calls == 0
    np.testing.assert_array_equal(result, expected)


def test_torn_and_damaged_log_records_only_rerun_those_tiles(volume):
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    interrupt(volume, after=12)
    log = os.path.join(run_dir_for("out.zarr"), "state", LOG)
    with open(log, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    damaged = lines[0][:5] + b"X" + lines[0][6:]
    with open(log, "wb") as f:
        f.write(damaged + b"".join(lines[1:]) + b"17 gARVbm")  # torn append at the end
    calls, result = calls_after(lambda: run(volume, flaky, compute=True))
    assert calls == N_TILES - (len(lines) - 1)
    np.testing.assert_array_equal(result, expected)


def test_state_left_by_another_version_is_never_reused(volume):
    """Staged data from another layout (an older patchworks) would be misread."""
    import json

    from patchworks._store.resume import MANIFEST

    interrupt(volume)
    path = os.path.join(run_dir_for("out.zarr"), "state", MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    manifest["fingerprint"].update(format=1, version="0.3.0.dev0-old")
    with open(path, "w") as f:
        json.dump(manifest, f)
    with pytest.raises(ResumeMismatchError, match="another version of patchworks"):
        run(volume, flaky)
    result = run(volume, flaky, overwrite=True, compute=True)
    expected = tile_process(volume, flaky, tile_shape=TILES, overlap=2, compute=True)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    ("change", "component"),
    [
        ({"fn": lambda t: ndi.label(t > 0.4)[0]}, "fn"),
        ({"tile_shape": (12, 10, 12)}, "tile_shape"),
        ({"overlap": 3}, "overlap"),
        ({"dtype": "int64"}, "dtype"),
        ({"image_scale": 2.0}, "image"),
    ],
)
def test_changed_inputs_never_reuse_stale_tiles(volume, change, component):
    interrupt(volume)
    before = finished_tiles()
    image = volume * change.pop("image_scale", 1.0)
    fn = change.pop("fn", flaky)
    with pytest.raises(ResumeMismatchError, match=f"made with a different {component}"):
        run(image, fn, **change)
    assert finished_tiles().keys() == before.keys()  # the state is left untouched
    result = run(image, fn, overwrite=True, compute=True, **change)
    expected = tile_process(
        image, fn, compute=True, **{"tile_shape": TILES, "overlap": 2, **change}
    )
    np.testing.assert_array_equal(result, expected)
    assert sorted(os.listdir(".")) == ["out.zarr"]


def test_interrupted_state_is_reported_not_discarded_without_resume(volume):
    done = interrupt(volume)
    message = (
        rf"`write_to` 'out.zarr' has an interrupted run \({len(done)} of {N_TILES} tiles "
        r"finished, state in .*\); pass resume=True to finish it, or overwrite=True"
    )
    with pytest.raises(IncompleteOutputError, match=message):
        tile_process(volume, label_fn, tile_shape=TILES, overlap=2, write_to="out.zarr")
    assert finished_tiles().keys() == done.keys()
    tile_process(volume, label_fn, tile_shape=TILES, overlap=2, write_to="out.zarr", overwrite=True)
    assert sorted(os.listdir(".")) == ["out.zarr"]


def test_finished_output_is_returned_by_the_same_call_and_refused_by_another(volume):
    first = run(volume, flaky, compute=True)
    calls, again = calls_after(lambda: run(volume, flaky, compute=True))
    assert calls == 0
    np.testing.assert_array_equal(again, first)
    with pytest.raises(OutputExistsError, match="not the finished result of this same call"):
        run(volume, flaky, overlap=1)
    tile_process(volume, label_fn, tile_shape=TILES, write_to="other.zarr")
    # written without resume=True: nothing records the call, and the message says so
    with pytest.raises(OutputExistsError, match="was written without resume=True"):
        run(volume, label_fn, write_to="other.zarr")


def test_resume_parameter_is_checked(volume):
    with pytest.raises(InvalidParameterError, match="`resume=True` needs `write_to`"):
        tile_process(volume, label_fn, resume=True)
    with pytest.raises(InvalidParameterError, match="`resume` must be True or False; got 'yes'"):
        tile_process(volume, label_fn, write_to="out.zarr", resume="yes")
    assert os.listdir(".") == []


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(volume):
    started, release = threading.Event(), threading.Event()

    def slow(tile):
        started.set()
        release.wait(30)
        return label_fn(tile)

    errors = []
    first = threading.Thread(
        target=lambda: errors.append(run(volume, slow, tile_shape=(24, 30, 36))), daemon=True
    )
    first.start()
    assert started.wait(30)
    try:
        with pytest.raises(OutputLockedError, match="another patchworks run is writing"):
            run(volume, label_fn)
        with pytest.raises(OutputLockedError):
            tile_process(volume, label_fn, tile_shape=TILES, write_to="out.zarr")
        # a different output in the same folder runs alongside
        tile_process(volume, label_fn, tile_shape=TILES, write_to="neighbour.zarr", resume=True)
    finally:
        release.set()
        first.join(60)
    assert sorted(os.listdir(".")) == ["neighbour.zarr", "out.zarr"]


KILLED_RUN = """
import os, signal, sys
import numpy as np
from scipy import ndimage as ndi
from patchworks import merge_tile_labels, output_status, tile_process

calls = [0]

def fn(tile):
    calls[0] += 1
    if calls[0] > int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return ndi.label(tile > 0.5)[0]

volume = np.load("volume.npy")
tile_process(volume, fn, tile_shape=(8, 10, 12), overlap=2, write_to="out.zarr", resume=True)
"""


def test_sigkill_mid_run_then_resume_in_a_new_process(volume):
    np.save("volume.npy", volume)
    with open("killed_run.py", "w") as f:
        f.write(textwrap.dedent(KILLED_RUN))
    env = {**os.environ, "DASK_SCHEDULER": "synchronous"}
    proc = subprocess.run([sys.executable, "killed_run.py", "9"], env=env, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert len(finished_tiles()) == 9
    proc = subprocess.run([sys.executable, "killed_run.py", "1000"], env=env, timeout=120)
    assert proc.returncode == 0
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    np.testing.assert_array_equal(zarr.open_array("out.zarr")[...], expected)
    assert not os.path.exists(run_dir_for("out.zarr"))


def test_output_status_tells_finished_from_interrupted(volume):
    assert output_status("out.zarr") == "missing"
    interrupt(volume)
    assert output_status("out.zarr") == "interrupted"
    run(volume, flaky)
    assert output_status("out.zarr") == "complete"
    zarr.create_array("foreign.zarr", shape=(2, 2), dtype="int32")
    assert output_status("foreign.zarr") == "incomplete"


def test_status_running_and_merge_refused_while_a_run_holds_the_output(volume):
    started, release = threading.Event(), threading.Event()

    def slow(tile):
        started.set()
        release.wait(30)
        return label_fn(tile)

    first = threading.Thread(target=lambda: run(volume, slow, tile_shape=(24, 30, 36)), daemon=True)
    first.start()
    assert started.wait(30)
    try:
        assert output_status("out.zarr") == "running"
        labels = np.zeros((4, 4), dtype="int32")
        with pytest.raises(OutputLockedError):
            merge_tile_labels(labels, tile_shape=(2, 2), write_to="out.zarr")
    finally:
        release.set()
        first.join(60)
    assert output_status("out.zarr") == "complete"


def test_auto_tile_shape_is_taken_from_the_interrupted_run(volume, monkeypatch):
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    sizes = iter([TILES, (12, 10, 12)])  # free memory differs after the restart
    monkeypatch.setattr(pipeline, "resolve_tile_shape", lambda *a, **k: next(sizes))
    done = interrupt(volume, tile_shape="auto")
    calls, result = calls_after(lambda: run(volume, flaky, tile_shape="auto", compute=True))
    assert calls == N_TILES - len(done)
    np.testing.assert_array_equal(result, expected)


def test_a_damaged_state_is_discarded_by_the_advice_it_gives(volume):
    """The message says "pass overwrite=True"; with resume=True kept, that must work."""
    interrupt(volume)
    staging = os.path.join(run_dir_for("out.zarr"), "state", "staging.pkl")
    with open(staging, "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(IncompleteOutputError, match=r"is damaged.*overwrite=True"):
        run(volume, flaky)
    result = run(volume, flaky, overwrite=True, compute=True)
    expected = tile_process(volume, label_fn, tile_shape=TILES, overlap=2, compute=True)
    np.testing.assert_array_equal(result, expected)
