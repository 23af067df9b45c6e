"""patchworks._store.tilelog: the durable record of finished tiles."""

from __future__ import annotations

import base64
import os
import pickle
import zlib
from dataclasses import dataclass, field

import numpy as np
import pytest
import zarr

from patchworks._plan import TilePlan
from patchworks._store import tilelog
from patchworks._store.facestore import FaceStore, face_planes
from patchworks._store.tilelog import (
    DurableTiles,
    TileLog,
    read_tile_log,
    run_durably,
    staged_arrays,
    sync_tile,
)
from patchworks.io._zarr import create_label_array


@dataclass(frozen=True)
class Summary:
    """Stands in for a tile stage's summary (module level, so it pickles)."""

    index: int
    n_labels: int = 1
    faces: object = None


def _line(index, summary):
    body = f"{index} ".encode() + base64.b64encode(pickle.dumps(summary, protocol=4))
    return body + f" {zlib.crc32(body):08x}\n".encode()


def test_recorded_tiles_read_back_after_close(tmp_path):
    path = str(tmp_path / "tiles.log")
    log = TileLog(path, n_tiles=10)
    assert log.done == {}
    for index in (3, 0, 7):
        log.record(index, Summary(index, n_labels=index * 2))
    log.close()
    assert read_tile_log(path, 10) == {i: Summary(i, n_labels=i * 2) for i in (0, 3, 7)}
    assert log.done == read_tile_log(path, 10)


def test_reopening_a_log_keeps_what_it_holds_and_appends(tmp_path):
    path = str(tmp_path / "tiles.log")
    first = TileLog(path, 4)
    first.record(1, Summary(1))
    first.close()
    second = TileLog(path, 4)
    assert second.done == {1: Summary(1)}
    second.record(2, Summary(2))
    second.close()
    assert read_tile_log(path, 4) == {1: Summary(1), 2: Summary(2)}


def test_a_missing_log_holds_no_tiles(tmp_path):
    assert read_tile_log(str(tmp_path / "missing.log"), 5) == {}


def test_a_later_record_of_a_tile_replaces_the_earlier(tmp_path):
    path = str(tmp_path / "tiles.log")
    log = TileLog(path, 2)
    log.record(0, Summary(0, n_labels=1))
    log.record(0, Summary(0, n_labels=5))
    log.close()
    assert read_tile_log(path, 2) == {0: Summary(0, n_labels=5)}


def test_a_torn_last_line_is_skipped_and_cut_only_on_repair(tmp_path):
    path = tmp_path / "tiles.log"
    good = _line(0, Summary(0))
    torn = _line(1, Summary(1))[:-7]
    path.write_bytes(good + torn)
    assert read_tile_log(str(path), 2) == {0: Summary(0)}
    assert path.read_bytes() == good + torn  # reading alone changes nothing
    assert read_tile_log(str(path), 2, repair=True) == {0: Summary(0)}
    assert path.read_bytes() == good


def test_opening_a_log_with_a_torn_line_starts_new_records_on_their_own_line(tmp_path):
    path = tmp_path / "tiles.log"
    path.write_bytes(_line(0, Summary(0)) + b"1 abc")
    log = TileLog(str(path), 3)
    log.record(2, Summary(2))
    log.close()
    assert read_tile_log(str(path), 3) == {0: Summary(0), 2: Summary(2)}
    assert path.read_bytes().count(b"\n") == 2


def _flip(line, at):
    """``line`` with the byte at ``at`` replaced by another base64/hex character."""
    return line[:at] + (b"A" if line[at : at + 1] != b"A" else b"B") + line[at + 1 :]


def _signed(body):
    return body + f" {zlib.crc32(body):08x}\n".encode()


@pytest.mark.parametrize(
    "damaged",
    [
        pytest.param(lambda line: line.replace(b" ", b"  ", 1), id="extra-field"),
        pytest.param(lambda line: _flip(line, len(line) // 2), id="payload-changed"),
        pytest.param(lambda line: _flip(line, len(line) - 2), id="crc-changed"),
        pytest.param(lambda line: _signed(b"x1 " + line.split(b" ")[1]), id="bad-index"),
        pytest.param(lambda line: b"garbage\n", id="garbage"),
    ],
)
def test_damaged_records_are_skipped_and_the_rest_kept(tmp_path, damaged):
    path = tmp_path / "tiles.log"
    path.write_bytes(_line(0, Summary(0)) + damaged(_line(1, Summary(1))) + _line(2, Summary(2)))
    assert read_tile_log(str(path), 3) == {0: Summary(0), 2: Summary(2)}


def test_a_record_whose_payload_does_not_unpickle_is_skipped(tmp_path):
    path = tmp_path / "tiles.log"
    path.write_bytes(_signed(b"1 " + base64.b64encode(b"not a pickle")))
    assert read_tile_log(str(path), 3) == {}


def test_records_outside_the_run_or_of_another_tile_are_skipped(tmp_path):
    path = tmp_path / "tiles.log"
    path.write_bytes(
        _line(5, Summary(5))  # beyond n_tiles
        + _line(-1, Summary(-1))
        + _line(1, Summary(2))  # the summary says it belongs to another tile
        + _line(2, {"n_labels": 3})  # no `index` attribute: taken as tile 2's
    )
    assert read_tile_log(str(path), 5) == {2: {"n_labels": 3}}


def test_records_are_flushed_once_the_interval_has_passed(tmp_path, monkeypatch):
    synced = []
    real_sync = TileLog.sync

    def counting(self):
        synced.append(True)
        real_sync(self)

    monkeypatch.setattr(TileLog, "sync", counting)
    log = TileLog(str(tmp_path / "tiles.log"), 4)
    monkeypatch.setattr(tilelog, "FSYNC_INTERVAL_S", 1e9)
    log.record(0, Summary(0))
    assert synced == []
    monkeypatch.setattr(tilelog, "FSYNC_INTERVAL_S", -1.0)
    log.record(1, Summary(1))
    assert synced == [True]
    log.close()


def test_close_is_idempotent_and_sync_after_close_does_nothing(tmp_path):
    log = TileLog(str(tmp_path / "tiles.log"), 1)
    log.close()
    log.close()
    log.sync()
    assert log._fd == -1


# --- flushing a tile's staged data ---------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """A dataclass holding staged arrays the ways Staging and Seams do."""

    one: object
    many: tuple = ()
    other: object = None
    listed: list = field(default_factory=list)


def test_staged_arrays_finds_arrays_in_fields_tuples_and_lists_once(tmp_path):
    a = zarr.create_array(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="int32")
    b = zarr.create_array(str(tmp_path / "b.zarr"), shape=(4,), chunks=(2,), dtype="int32")
    c = zarr.create_array(str(tmp_path / "c.zarr"), shape=(4,), chunks=(2,), dtype="int32")
    found = staged_arrays(Holder(one=a, many=(b, a, "not an array"), other=3, listed=[c]))
    assert [x.store_path for x in found] == [a.store_path, b.store_path, c.store_path]


def test_staged_arrays_of_none_or_a_non_dataclass_is_empty(tmp_path):
    a = zarr.create_array(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="int32")
    assert staged_arrays(None) == []
    assert staged_arrays({"labels": a}) == []


@pytest.fixture
def fsynced(monkeypatch):
    paths: list[str] = []
    monkeypatch.setattr(tilelog, "fsync_paths", lambda ps: paths.extend(ps))
    return paths


def test_sync_tile_flushes_the_chunk_each_staged_layout_wrote(tmp_path, fsynced):
    plan = TilePlan(shape=(6, 5), tile_shape=(4, 2), halo=(0, 0))  # grid (2, 3)
    image_shaped = create_label_array(str(tmp_path / "labels.zarr"), (6, 5), (4, 2), "int32")
    per_tile = create_label_array(str(tmp_path / "rows.zarr"), (6, 3), (1, 3), "int64")
    per_cell = create_label_array(str(tmp_path / "cells.zarr"), (2, 3, 4), (1, 1, 4), "int64")
    unrelated = create_label_array(str(tmp_path / "other.zarr"), (7,), (7,), "int32")
    index = 5  # grid position (1, 2): core rows 4:6, columns 4:5
    image_shaped[4:6, 4:5] = 1
    per_tile[index] = 1
    per_cell[1, 2] = 1
    unrelated[:] = 1
    sync_tile([image_shaped, per_tile, per_cell, unrelated], plan, index)
    assert fsynced == [
        str(tmp_path / "labels.zarr" / "c" / "1" / "2"),
        str(tmp_path / "rows.zarr" / "c" / "5" / "0"),
        str(tmp_path / "cells.zarr" / "c" / "1" / "2" / "0"),
    ]
    assert all(os.path.isfile(p) for p in fsynced)


def test_sync_tile_skips_arrays_not_on_a_local_store(fsynced):
    plan = TilePlan(shape=(4,), tile_shape=(2,), halo=(0,))
    in_memory = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), chunks=(2,), dtype="i4")
    sync_tile([in_memory], plan, 1)
    assert fsynced == []


@dataclass(frozen=True)
class _Staging:
    labels: object
    faces: FaceStore


@dataclass(frozen=True)
class _Job:
    plan: TilePlan
    staging: _Staging


def _stage(job, index):
    """A tile stage: tile 0 is empty, the others stage labels and faces."""
    if index == 0:
        return Summary(index, n_labels=0)
    core = job.plan.core(job.plan.position(index))
    labels = np.full(tuple(s.stop - s.start for s in core), index, dtype=np.uint8)
    job.staging.labels[core] = labels
    ref = job.staging.faces.append(labels.shape, face_planes(labels), index)
    return Summary(index, n_labels=1, faces=ref)


def test_run_durably_flushes_labels_and_faces_of_tiles_with_labels(tmp_path, fsynced):
    plan = TilePlan(shape=(4, 4), tile_shape=(2, 4), halo=(0, 0))
    labels = create_label_array(str(tmp_path / "labels.zarr"), (4, 4), (2, 4), "int32")
    job = _Job(plan, _Staging(labels, FaceStore.create(str(tmp_path / "faces"))))
    durable = DurableTiles(stage=_stage, job=job)
    assert run_durably(durable, 0) == Summary(0, n_labels=0)
    assert fsynced == []  # an empty tile wrote nothing to flush
    summary = run_durably(durable, 1)
    assert summary.n_labels == 1
    assert fsynced == [
        str(tmp_path / "labels.zarr" / "c" / "1" / "0"),
        job.staging.faces.path(summary.faces),
    ]
