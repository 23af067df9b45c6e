"""Where the face slabs of every tile live between the tile stage and the face stage.

A tile's *face slabs* are the first (``lo``) and last (``hi``) plane of its core along
every axis, in local labels: all the face stage needs to find labels that touch across
tiles. Each slab is compressed on its own and appended to a *segment* file, one per
worker thread, so a tile adds bytes to an open-ended file instead of creating a file of
its own (creating a file costs 0.2-1.5 ms on common filesystems, more than the rest of the
work for small tiles). The tile's :class:`~patchworks._tiles.TileSummary` carries a
:class:`FaceRef` (segment, offset, compressed slab sizes) back to the client, which hands
a :class:`FaceIndex` of all of them to the face stage; the face stage reads exactly the
slabs it needs with positioned reads.

Each segment has a single writer (its thread, in its process), so offsets are known
without locks. Segments are named uniquely per thread and process, so workers on several
machines can share one scratch folder. With ``resume=True`` the slab bytes of a tile are
flushed to disk before the tile is recorded (``_tilelog``), and the refs travel inside the
recorded summaries.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._durable import fsync_dir

SLAB_DTYPE = np.dtype("<u4")
IDS_DTYPE = np.dtype("<u8")
#: zstd level of the slabs: mostly background and long runs, so level 1 is small and fast.
SLAB_LEVEL = 1
_LO, _HI = 0, 1


@dataclass(frozen=True)
class FaceRef:
    """Where a tile's face slabs are: ``sizes[2 * axis + side]`` bytes each, in order,
    then ``sizes[-1]`` bytes of label IDs (see :meth:`FaceStore.append`).

    A size of 0 is an all-background slab (or no IDs), which is not stored.
    """

    segment: str
    offset: int
    sizes: tuple[int, ...]


class _Segment:
    """This thread's open-ended segment file of one store."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.pid = os.getpid()
        self.path = os.path.join(root, f"{uuid.uuid4().hex}.slabs")
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        fsync_dir(root)  # the new name survives a crash before the first recorded tile

    def append(self, data: bytes) -> int:
        """Append ``data``; return the offset it starts at (this thread is the only writer)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            return os.lseek(fd, 0, os.SEEK_CUR) - len(data)
        finally:
            os.close(fd)


_local = threading.local()


def _compressed(nbytes: int) -> bool:
    """Whether a slab of ``nbytes`` is stored compressed: below a kilobyte, compressing
    costs more time than the bytes it saves are worth."""
    return nbytes >= 1024


def _codec() -> Any:
    from numcodecs import Zstd

    return Zstd(level=SLAB_LEVEL)


@dataclass(frozen=True)
class FaceStore:
    """The folder of segment files of one run (picklable: workers append to it).

    Examples
    --------
    >>> import tempfile
    >>> store = FaceStore.create(tempfile.mkdtemp())
    >>> local = np.arange(12, dtype="uint8").reshape(3, 4)
    >>> ref = store.append(local)
    >>> index = FaceIndex.of([ref], 2)
    >>> with store.reader(index) as reader:
    ...     reader.slab(0, 1, "hi", (3, 1)).ravel().tolist()
    [3, 7, 11]
    """

    root: str

    @classmethod
    def create(cls, root: str) -> FaceStore:
        os.makedirs(root, exist_ok=True)
        return cls(root=root)

    def _segment(self) -> _Segment:
        segment = getattr(_local, "segment", None)
        if (
            segment is None
            or segment.root != self.root
            or segment.pid != os.getpid()  # a forked child must not share its parent's file
            or not os.path.exists(segment.path)  # the store was deleted and made again
        ):
            segment = _local.segment = _Segment(self.root)
        return segment

    def append(self, local: np.ndarray, ids: np.ndarray | None = None) -> FaceRef:
        """Store every face slab of the core labels ``local``, and optionally ``ids`` (the
        user's label of each local label ``1..n``); return where they went."""
        codec = _codec()
        chunks, sizes = [], []
        whole = (slice(None),) * local.ndim
        for axis in range(local.ndim):
            for plane in (slice(0, 1), slice(local.shape[axis] - 1, None)):
                slab = local[(*whole[:axis], plane)]
                if not slab.any():
                    sizes.append(0)
                    continue
                data = np.ascontiguousarray(slab, dtype=SLAB_DTYPE).tobytes()
                chunks.append(bytes(codec.encode(data)) if _compressed(len(data)) else data)
                sizes.append(len(chunks[-1]))
        if ids is not None:
            chunks.append(bytes(codec.encode(np.ascontiguousarray(ids, dtype=IDS_DTYPE))))
        sizes.append(len(chunks[-1]) if ids is not None else 0)
        segment = self._segment()
        offset = segment.append(b"".join(chunks)) if chunks else 0
        return FaceRef(segment=os.path.basename(segment.path), offset=offset, sizes=tuple(sizes))

    def path(self, ref: FaceRef) -> str:
        """The segment file holding ``ref`` (to flush it before recording the tile)."""
        return os.path.join(self.root, ref.segment)

    def reader(self, index: FaceIndex) -> FaceReader:
        return FaceReader(self, index)


@dataclass(frozen=True)
class FaceIndex:
    """Every tile's :class:`FaceRef` as arrays, to ship to the face stage.

    ``segment[t]`` is an index into ``segments`` (-1: tile ``t`` has no labels);
    ``starts[t, s]`` is the byte offset of slab ``s`` (or of the IDs, ``s = -1``) and
    ``sizes[t, s]`` its length.
    """

    segments: tuple[str, ...]
    segment: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, refs: list[FaceRef | None], ndim: int) -> FaceIndex:
        names: dict[str, int] = {}
        n = len(refs)
        segment = np.full(n, -1, dtype=np.int32)
        starts = np.zeros((n, 2 * ndim + 1), dtype=np.int64)
        sizes = np.zeros((n, 2 * ndim + 1), dtype=np.int64)
        for t, ref in enumerate(refs):
            if ref is None:
                continue
            segment[t] = names.setdefault(ref.segment, len(names))
            sizes[t] = ref.sizes
            starts[t] = ref.offset + np.concatenate([[0], np.cumsum(ref.sizes)[:-1]])
        return cls(segments=tuple(names), segment=segment, starts=starts, sizes=sizes)


class FaceReader:
    """Positioned reads of single slabs; keeps each segment open for one task."""

    def __init__(self, store: FaceStore, index: FaceIndex) -> None:
        self.store = store
        self.index = index
        self._fds: dict[int, int] = {}
        self._codec = _codec()

    def __enter__(self) -> FaceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def slab(self, tile: int, axis: int, side: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The ``side`` ("lo" or "hi") slab of ``axis`` of ``tile`` (of ``shape``), or None
        when it is all background or the tile holds no labels."""
        nbytes = math.prod(shape) * SLAB_DTYPE.itemsize
        raw = self._read(tile, 2 * axis + (_LO if side == "lo" else _HI), _compressed(nbytes))
        return None if raw is None else np.frombuffer(raw, dtype=SLAB_DTYPE).reshape(shape)

    def ids(self, tile: int) -> np.ndarray | None:
        """The label IDs stored with ``tile``'s slabs, or None."""
        raw = self._read(tile, -1, True)
        return None if raw is None else np.frombuffer(raw, dtype=IDS_DTYPE)

    def _read(self, tile: int, slot: int, compressed: bool) -> bytes | None:
        segment = int(self.index.segment[tile])
        size = int(self.index.sizes[tile, slot])
        if segment < 0 or size == 0:
            return None
        fd = self._fds.get(segment)
        if fd is None:
            path = os.path.join(self.store.root, self.index.segments[segment])
            fd = self._fds[segment] = os.open(path, os.O_RDONLY)
        data = os.pread(fd, size, int(self.index.starts[tile, slot]))
        if len(data) != size:
            raise OSError(f"face data of tile {tile} is truncated in {self.store.root!r}")
        return bytes(self._codec.decode(data)) if compressed else data
