"""Record finished tiles durably: flush a tile's chunks, then log it.

A tile counts as finished only once (1) the worker has written its staged chunks and
flushed them to disk (:func:`run_durably`, :func:`sync_tile`) and (2) the client has
appended its line to ``tiles.log`` (:class:`TileLog`). A SIGKILL never loses a line whose
``write`` returned; the log itself is flushed at least every :data:`FSYNC_INTERVAL_S`
seconds, so a power cut costs at most that much work.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import pickle
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from patchworks._fs import fsync_dir, fsync_paths
from patchworks._plan import TilePlan
from patchworks._store.accounting import chunk_path, tile_chunk

FSYNC_INTERVAL_S = 1.0

S = TypeVar("S")


@dataclass(frozen=True)
class DurableTiles(Generic[S]):
    """A tile stage whose every finished tile is flushed to disk before it reports back.

    ``job`` is the stage's job: any dataclass with a ``plan``, a ``staging`` and
    optionally ``seams``; ``stage(job, index)`` returns the tile's summary.
    """

    stage: Callable[[Any, int], S]
    job: Any


def run_durably(durable: DurableTiles[S], index: int) -> S:
    summary = durable.stage(durable.job, index)
    if getattr(summary, "n_labels", 1):
        job = durable.job
        sync_tile(
            [*staged_arrays(job.staging), *staged_arrays(getattr(job, "seams", None))],
            job.plan,
            index,
        )
        faces = getattr(summary, "faces", None)
        if faces is not None:
            fsync_paths([job.staging.faces.path(faces)])
    return summary


def staged_arrays(holder: object) -> list[Any]:
    """The zarr arrays among the fields of a dataclass (a Staging, Seams), whatever its layout."""
    if holder is None or not dataclasses.is_dataclass(holder):
        return []
    arrays: dict[int, Any] = {}
    for field in dataclasses.fields(holder):
        value = getattr(holder, field.name)
        for item in value if isinstance(value, tuple | list) else (value,):
            if hasattr(item, "metadata") and hasattr(item, "store"):
                arrays[id(item)] = item
    return list(arrays.values())


def sync_tile(arrays: list[Any], plan: TilePlan, index: int) -> None:
    """Flush the staged chunk files that tile ``index`` wrote (see
    :func:`~patchworks._store.accounting.tile_chunk` for the layouts)."""
    paths = []
    for array in arrays:
        coords = tile_chunk(array, plan, index)
        path = None if coords is None else chunk_path(array, coords)
        if path is not None:  # None: not a local store, nothing to flush from here
            paths.append(path)
    fsync_paths(paths)


def read_tile_log(path: str, n_tiles: int, *, repair: bool = False) -> dict[int, Any]:
    """Finished tiles recorded in a tile log (damaged records are skipped).

    ``repair=True`` cuts a torn last line (a crash mid-append) so new records start on a
    line of their own.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        if repair:
            os.truncate(path, keep)
        data = data[:keep]
    done = {}
    for line in data.splitlines():
        parts = line.split(b" ")
        if len(parts) != 3:
            continue
        body = parts[0] + b" " + parts[1]
        try:
            if int(parts[2], 16) != zlib.crc32(body):
                continue
            index = int(parts[0])
            summary = pickle.loads(base64.b64decode(parts[1]))
        except Exception:  # a damaged record: that tile simply runs again
            continue
        if 0 <= index < n_tiles and getattr(summary, "index", index) == index:
            done[index] = summary
    return done


class TileLog:
    """Append-only record of finished tiles: ``index base64(pickle(summary)) crc32``."""

    def __init__(self, path: str, n_tiles: int) -> None:
        self.path = path
        self.done = read_tile_log(path, n_tiles, repair=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._synced = time.monotonic()
        fsync_dir(os.path.dirname(path))

    def record(self, index: int, summary: object) -> None:
        body = f"{index} ".encode() + base64.b64encode(pickle.dumps(summary, protocol=4))
        os.write(self._fd, body + f" {zlib.crc32(body):08x}\n".encode())
        self.done[index] = summary
        if time.monotonic() - self._synced > FSYNC_INTERVAL_S:
            self.sync()

    def sync(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            self._synced = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
