"""Correct by default: the input is never written unless asked; bad destinations and odd
labels are caught before any work is lost."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi

from ngff import write_ome_image
from patchworks import tile_process
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import InvalidParameterError, OutputNotWritableError

UNWRITABLE = "/proc/patchworks-test/labels.zarr"  # no one, not even root, creates files there


def fn(tile):
    return ndi.label(tile > THRESHOLD)[0]


def listing(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    )


@pytest.fixture
def ome_image():
    write_ome_image("img.zarr", blobs((8, 64, 64)), axes="zyx")
    return "img.zarr"


def test_an_ome_zarr_input_is_not_written_without_asking(ome_image):
    before = listing(ome_image)
    first = tile_process(ome_image, fn, tile_shape=(4, 32, 32), compute=True)
    again = tile_process(ome_image, fn, tile_shape=(4, 32, 32), compute=True)  # re-runnable
    lazy = tile_process(ome_image, fn, tile_shape=(4, 32, 32))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(np.asarray(lazy.compute()), first)
    assert listing(ome_image) == before
    tile_process(ome_image, fn, tile_shape=(4, 32, 32), output_format="ome-zarr")
    assert os.path.isdir(os.path.join(ome_image, "labels", "patchworks"))  # when asked


def test_empty_write_to_is_refused_before_any_tile_runs():
    calls = []
    with pytest.raises(InvalidParameterError, match="`write_to` must be a path"):
        tile_process(np.ones((4, 4)), lambda t: calls.append(1) or t.astype("int32"), write_to="")
    assert calls == []


def test_an_unwritable_destination_is_refused_before_any_tile_runs():
    calls = []
    with pytest.raises(OutputNotWritableError, match="cannot be written") as info:
        tile_process(
            np.ones((4, 4)),
            lambda t: calls.append(1) or t.astype("int32"),
            tile_shape=(2, 2),
            write_to=UNWRITABLE,
        )
    assert isinstance(info.value, PermissionError) and calls == []


def test_a_destination_under_a_file_is_refused(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(OutputNotWritableError, match="is a file, not a folder"):
        tile_process(np.ones((4, 4), "uint8"), fn, write_to=tmp_path / "plain" / "out.zarr")


def test_the_cli_refuses_an_unwritable_destination_with_exit_code_2(tmp_path):
    import zarr

    zarr.create_array("img.zarr", data=blobs((4, 32, 32)), chunks=(4, 16, 16))
    with open("seg.py", "w") as f:
        f.write("from scipy import ndimage as ndi\ndef fn(t):\n    return ndi.label(t > 0.5)[0]\n")
    for extra in ([], ["--dry-run"]):
        command = ["run", "img.zarr", "--fn", "seg.py:fn", "--out", UNWRITABLE, *extra]
        done = subprocess.run(
            [sys.executable, "-m", "patchworks", *command],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, done.stderr
        assert "cannot be written" in done.stderr


@pytest.mark.parametrize("dtype", [">i4", ">u2", ">i8"])
def test_big_endian_labels_are_read_as_what_they_are(dtype):
    image = blobs((1, 64, 64))[0]
    labels = tile_process(
        image, lambda t: fn(t).astype(dtype), tile_shape=(32, 32), connectivity=1, compute=True
    )
    expected = tile_process(image, fn, tile_shape=(32, 32), connectivity=1, compute=True)
    np.testing.assert_array_equal(labels, expected)


def _time_lapse():
    """Three time points of the same two cells: a cell is one object per time point."""
    frames = np.zeros((3, 4, 32, 32), "float32")
    frames[:, 1:3, 4:12, 4:20] = 1000
    frames[:, 1:3, 20:28, 6:26] = 1000
    return frames


@pytest.mark.parametrize("tile_shape", [None, (1, 4, 16, 16)])
def test_a_time_axis_is_never_merged_across(tile_shape, tmp_path):
    import zarr

    write_ome_image("movie.zarr", _time_lapse(), axes="tzyx", chunks=(3, 4, 16, 16))
    out = tmp_path / "labels.zarr"
    labels = tile_process("movie.zarr", fn, tile_shape=tile_shape, overlap=2, write_to=out)
    labels = np.asarray(labels.compute())
    per_frame = [set(np.unique(frame)) - {0} for frame in labels]
    assert [len(ids) for ids in per_frame] == [2, 2, 2]
    assert not (per_frame[0] & per_frame[1]) and not (per_frame[1] & per_frame[2])
    record = dict(zarr.open_array(out / "0").attrs)["patchworks"]
    assert record["time_axes"] == [0] and record["tile_shape"][0] == 1 and record["overlap"][0] == 0


def test_estimate_empty_tiles_counts_tiles_as_the_run_makes_them():
    from patchworks import estimate_empty_tiles

    write_ome_image("movie.zarr", _time_lapse(), axes="tzyx", chunks=(3, 4, 16, 16))
    info = estimate_empty_tiles("movie.zarr", tile_shape=None, threshold=10)
    assert info["tile_shape"][0] == 1 and info["n_tiles"] == 3 * 4
    info = estimate_empty_tiles("movie.zarr", tile_shape=None, threshold=10, time_as_space=True)
    assert info["tile_shape"][0] == 3 and info["n_tiles"] == 4


def test_time_as_space_joins_time_points_and_thick_tiles_need_it():
    write_ome_image("movie.zarr", _time_lapse(), axes="tzyx", chunks=(3, 4, 16, 16))
    joined = tile_process(
        "movie.zarr", fn, tile_shape=(3, 4, 16, 16), time_as_space=True, compute=True
    )
    assert len(np.unique(joined)) - 1 == 2
    with pytest.raises(
        InvalidParameterError, match="`tile_shape` must be 1 along the time axis 't'"
    ):
        tile_process("movie.zarr", fn, tile_shape=(3, 4, 16, 16))
    with pytest.raises(InvalidParameterError, match="`overlap` must be 0 along the time axis"):
        tile_process("movie.zarr", fn, overlap=(1, 2, 2, 2))


def test_a_tiff_time_axis_is_never_merged_across(tmp_path):
    import tifffile

    tifffile.imwrite(
        tmp_path / "movie.tif",
        _time_lapse()[:, 1],
        photometric="minisblack",
        metadata={"axes": "TYX"},
    )
    labels = tile_process(str(tmp_path / "movie.tif"), fn, tile_shape=(1, 16, 16), compute=True)
    assert len(np.unique(labels)) - 1 == 6


def test_info_and_dry_run_say_time_points_are_labelled_apart():
    write_ome_image("movie.zarr", _time_lapse(), axes="tzyx", chunks=(3, 4, 16, 16))
    with open("seg.py", "w") as f:
        f.write("from scipy import ndimage as ndi\ndef fn(t):\n    return ndi.label(t > 400)[0]\n")
    for command in (
        ["info", "movie.zarr"],
        ["run", "movie.zarr", "--fn", "seg.py:fn", "--dry-run"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "patchworks", *command], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "each time point labelled on its own" in done.stdout
        assert "(1, 4, 16, 16)" in done.stdout  # one time point per tile


def test_only_an_axis_named_t_is_time():
    from patchworks.io._axes import Axes
    from patchworks.io._source import ImageSource

    samples = Axes(("s", "y", "x"), ("time", "space", "space"), (None,) * 3)  # TIFF's CYXS
    assert ImageSource(np.zeros((3, 4, 4)), axes=samples).time_axes == ()
    movie = Axes(("t", "y", "x"), ("time", "space", "space"), (None,) * 3)
    assert ImageSource(np.zeros((3, 4, 4)), axes=movie).time_axes == (0,)


def test_the_cli_writes_no_labels_into_a_remote_image():
    import argparse

    from patchworks._cli.commands import _destination
    from patchworks._cli.parser import UsageError

    args = argparse.Namespace(
        out=None, image="https://host/img.ome.zarr", output_format="auto", label_name="p"
    )
    with pytest.raises(UsageError, match="remote image"):
        _destination(args, is_ome=True)
    local = argparse.Namespace(out=None, image="img.zarr", output_format="auto", label_name="p")
    assert _destination(local, is_ome=True) == os.path.join("img.zarr", "labels", "p")


def test_dry_run_with_time_as_space_plans_what_the_run_does():
    write_ome_image("movie.zarr", _time_lapse(), axes="tzyx", chunks=(3, 4, 16, 16))
    with open("seg.py", "w") as f:
        f.write("from scipy import ndimage as ndi\ndef fn(t):\n    return ndi.label(t > 400)[0]\n")
    command = ["run", "movie.zarr", "--fn", "seg.py:fn", "--dry-run", "--time-as-space"]
    done = subprocess.run(
        [sys.executable, "-m", "patchworks", *command, "--tile-shape", "3,4,16,16"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "(3, 4, 16, 16)" in done.stdout and "time point" not in done.stdout
