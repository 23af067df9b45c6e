"""Staged data a later stage cannot find is an error naming the tile, never a fill value.

The multi-node failure (a worker stages a tile on its private disk, the client or another
worker looks for it elsewhere) is reproduced in one process by removing the tile's staged
file between the tile stage and the merge: the run must stop with
StagedDataMissingError, leave no output that looks complete, and say what to do.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from scipy import ndimage as ndi

import patchworks._run as run_module
from patchworks import output_status, tile_process
from patchworks._store import verify
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import StagedDataMissingError


def fn(tile):
    return ndi.label(tile > THRESHOLD)[0].astype("int32")


@pytest.fixture
def image():
    return blobs((32, 32, 32), radius=3, seed=7)


def _lose_after_tiles(monkeypatch, pattern, *, keep_client_check=True):
    """Remove the first staged file matching ``pattern`` (under the run's scratch) once the
    tile stage is done: what a client sees of a chunk written on a worker's private disk."""
    original = run_module._stage_tiles
    lost = []

    def stage_then_lose(spec, out, executor, job):
        summaries = original(spec, out, executor, job)
        found = glob.glob(os.path.join(job.staging.scratch, pattern), recursive=True)
        files = sorted(f for f in found if os.path.isfile(f))
        assert files, f"nothing staged matches {pattern!r}"
        os.remove(files[0])
        lost.append(files[0])
        return summaries

    monkeypatch.setattr(run_module, "_stage_tiles", stage_then_lose)
    if not keep_client_check:
        monkeypatch.setattr(run_module, "verify_staged", lambda *args, **kwargs: None)
    return lost


def _check_message(error, lost, what):
    message = str(error)
    assert message.startswith(f"{what} of tile ")
    assert repr(lost[0]) in message
    assert "put `write_to` (and `temp_dir`, where scratch goes) on a shared filesystem" in message


@pytest.mark.parametrize("stitch", ["touch", "iou"])
def test_a_staged_chunk_the_client_cannot_see_stops_the_run(monkeypatch, tmp_path, image, stitch):
    pattern = "labels.zarr/c/**/*" if stitch == "touch" else "halos.zarr/c/**/*"
    lost = _lose_after_tiles(monkeypatch, pattern)
    out = str(tmp_path / "labels.zarr")
    with pytest.raises(StagedDataMissingError) as info:
        tile_process(
            image, fn, tile_shape=(16, 16, 16), overlap=4 if stitch == "iou" else 0,
            stitch=stitch, write_to=out,
        )  # fmt: skip
    _check_message(info.value, lost, "the staged data")
    assert "is missing as the client sees the storage" in str(info.value)
    assert output_status(out) == "missing"


def test_a_lost_face_segment_stops_the_run(monkeypatch, tmp_path, image):
    lost = _lose_after_tiles(monkeypatch, "faces/*.slabs")
    with pytest.raises(StagedDataMissingError) as info:
        tile_process(image, fn, tile_shape=(16, 16, 16), write_to=str(tmp_path / "l.zarr"))
    _check_message(info.value, lost, "the face frame")


@pytest.mark.parametrize("where", ["labels", "faces"])
def test_a_worker_that_cannot_find_a_staged_tile_raises_instead_of_reading_zeros(
    monkeypatch, image, where
):
    """Past the client's check (storage changed under the run), the stage reading the tile
    still refuses to take a missing chunk as background."""
    pattern = "labels.zarr/c/**/*" if where == "labels" else "faces/*.slabs"
    lost = _lose_after_tiles(monkeypatch, pattern, keep_client_check=False)
    with pytest.raises(StagedDataMissingError) as info:
        tile_process(image, fn, tile_shape=(16, 16, 16), compute=True)
    what = "the staged labels" if where == "labels" else "the face frame"
    _check_message(info.value, lost, what)


def test_a_damaged_staged_chunk_is_an_error_naming_the_tile(monkeypatch, image):
    original = run_module._stage_tiles

    def stage_then_damage(spec, out, executor, job):
        summaries = original(spec, out, executor, job)
        path = sorted(
            glob.glob(os.path.join(job.staging.scratch, "labels.zarr/c/**/*"), recursive=True)
        )
        path = next(p for p in path if os.path.isfile(p))
        with open(path, "r+b") as f:
            f.truncate(8)  # a torn write: the header survives, the data does not
        return summaries

    monkeypatch.setattr(run_module, "_stage_tiles", stage_then_damage)
    with pytest.raises(
        StagedDataMissingError, match=r"the staged labels of tile \d+ .* cannot be decoded"
    ):
        tile_process(image, fn, tile_shape=(16, 16, 16), compute=True)


def test_a_relabelled_chunk_the_client_cannot_see_is_never_marked_complete(
    monkeypatch, tmp_path, image
):
    """The relabel stage wrote a tile where the client does not look (resume builds a new
    output array): the output is not published."""
    lost = []
    original = verify.verify_output

    def lose_then_verify(plan, built, faces, *, in_place):
        files = sorted(glob.glob(os.path.join(str(built.store.root), "c/**/*"), recursive=True))
        files = [f for f in files if os.path.isfile(f)]
        os.remove(files[0])
        lost.append(files[0])
        original(plan, built, faces, in_place=in_place)

    monkeypatch.setattr(run_module, "verify_output", lose_then_verify)
    out = str(tmp_path / "labels.zarr")
    with pytest.raises(StagedDataMissingError) as info:
        tile_process(image, fn, tile_shape=(16, 16, 16), write_to=out, resume=True)
    _check_message(info.value, lost, "the relabelled labels")
    assert output_status(out) == "interrupted"


def test_nothing_lost_gives_the_exact_result(tmp_path, image):
    """The accounting accepts every complete run (touch and iou, empty tiles included)."""
    expected = ndi.label(image > THRESHOLD)[0]
    image[:16, :16, :16] = 0  # a tile with no labels stages no chunk: not a missing one
    expected = ndi.label(image > THRESHOLD)[0]
    for stitch, overlap in (("touch", 0), ("iou", 4)):
        out = str(tmp_path / f"{stitch}.zarr")
        labels = tile_process(
            image, fn, tile_shape=(16, 16, 16), overlap=overlap, stitch=stitch, write_to=out,
            compute=True,
        )  # fmt: skip
        assert output_status(out) == "complete"
        if stitch == "touch":
            from conftest import same_partition

            assert same_partition(labels, expected)
        else:
            assert np.array_equal(labels > 0, expected > 0)
