"""Where the face slabs of every tile live between the tile stage and the face stage.

A tile's *face slabs* are the first (``lo``) and last (``hi``) plane of its core along
every axis, in local labels: all the face stage needs to find labels that touch across
tiles. A tile's slabs, in the narrowest unsigned type that holds its local labels
(usually one byte), go into one LZ4 frame with a small header; for a user's label store
a second frame holds the user's label behind each local label, for the relabel stage.

The frames are appended to a *segment* file, one per worker thread, so a tile adds bytes
to an open-ended file instead of creating a file of its own (creating a file costs
0.2-1.5 ms on common filesystems, more than the rest of the work for small tiles), and
costs one compression call for its slabs instead of one per slab (each call has a fixed
cost that dominated for small slabs). LZ4 rather than zlib or zstd: the face stage reads
every frame 2 * ndim times, and for a 24 KiB frame of slabs LZ4 decompresses in about
4 us against 20 us (zlib level 1) and 22 us (zstd level 1), and compresses in 8 us
against 38 and 30 us; its frames are twice zlib's size (1.8 KiB for a 64^3 tile of the
benchmark, 24 % of the size of the output; 10 % for 128^3 tiles).

The tile's :class:`~patchworks._engine.tiles.TileSummary` carries a :class:`FaceRef` (segment,
offset, sizes) back to the client, which hands a :class:`FaceIndex` of all of them to the
face stage; the face stage reads the frames it needs with positioned reads.

Each segment has a single writer (its thread, in its process), so offsets are known
without locks. Segments are named uniquely per thread and process, so workers on several
machines can share one scratch folder. With ``resume=True`` the frame of a tile is
flushed to disk before the tile is recorded (``_tilelog``), and the refs travel inside the
recorded summaries.
"""

from __future__ import annotations

import math
import os
import struct
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from numcodecs import lz4

from patchworks._fs import fsync_dir
from patchworks._store.accounting import staged_data_missing

if TYPE_CHECKING:
    from numpy.typing import NDArray

SLAB_DTYPE = np.dtype("<u4")  # what the face stage assembles slabs into
IDS_DTYPE = np.dtype("<u8")
_LO, _HI = 0, 1

_Label = TypeVar("_Label", bound=np.generic)


@dataclass(frozen=True)
class FaceRef:
    """Where a tile's frames are: ``size`` bytes of face slabs at ``offset`` of
    ``segment``, then ``ids_size`` bytes of label IDs (0: none; see
    :meth:`FaceStore.append`)."""

    segment: str
    offset: int
    size: int
    ids_size: int = 0


def face_planes(labels: NDArray[_Label]) -> list[NDArray[_Label]]:
    """The ``lo`` and ``hi`` planes of ``labels`` along every axis, in that order (views).

    Examples
    --------
    >>> [p.ravel().tolist() for p in face_planes(np.arange(6).reshape(2, 3))]
    [[0, 1, 2], [3, 4, 5], [0, 3], [2, 5]]
    """
    whole = (slice(None),) * labels.ndim
    return [
        labels[(*whole[:axis], plane)]
        for axis in range(labels.ndim)
        for plane in (slice(0, 1), slice(labels.shape[axis] - 1, None))
    ]


class _Segment:
    """This thread's open-ended segment file of one store."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.pid = os.getpid()
        self.path = os.path.join(root, f"{uuid.uuid4().hex}.slabs")
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileNotFoundError:  # the client made the folder: this machine does not see it
            why = "is missing on this worker"
            raise staged_data_missing("the folder", "the run's face store", root, why=why) from None
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


@dataclass(frozen=True)
class FaceStore:
    """The folder of segment files of one run (picklable: workers append to it).

    Examples
    --------
    >>> import tempfile
    >>> store = FaceStore.create(tempfile.mkdtemp())
    >>> local = np.arange(12, dtype="uint8").reshape(3, 4)
    >>> ref = store.append(local.shape, face_planes(local), top=11)
    >>> index = FaceIndex.of([ref])
    >>> with store.reader(index) as reader:
    ...     reader.slab(0, 1, "hi").ravel().tolist()
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

    def append(
        self,
        core_shape: tuple[int, ...],
        planes: Sequence[NDArray[np.integer[Any]]],
        top: int,
        ids: NDArray[np.integer[Any]] | None = None,
    ) -> FaceRef:
        """Store the :func:`face_planes` of a tile with core ``core_shape`` (in local
        labels ``0..top``), and optionally ``ids`` (the user's label of each local label
        ``1..n``); return where they went.

        Two LZ4 frames: a header of little-endian int64s (item size of the slabs, ndim,
        core shape) then the slabs in :func:`face_planes` order; and the IDs as uint64.
        """
        dtype = np.min_scalar_type(top).newbyteorder("<")
        header = struct.pack(
            f"<{len(core_shape) + 2}q", dtype.itemsize, len(core_shape), *core_shape
        )
        slabs = b"".join(
            [header, *(np.ascontiguousarray(p, dtype=dtype).tobytes() for p in planes)]
        )
        frames = [lz4.compress(slabs)]
        if ids is not None:
            frames.append(lz4.compress(np.asarray(ids, dtype=IDS_DTYPE).tobytes()))
        segment = self._segment()
        return FaceRef(
            segment=os.path.basename(segment.path),
            offset=segment.append(b"".join(frames)),
            size=len(frames[0]),
            ids_size=len(frames[1]) if ids is not None else 0,
        )

    def path(self, ref: FaceRef) -> str:
        """The segment file holding ``ref`` (to flush it before recording the tile)."""
        return os.path.join(self.root, ref.segment)

    def reader(self, index: FaceIndex) -> FaceReader:
        return FaceReader(self, index)

    def verify(self, index: FaceIndex) -> None:
        """Raise :class:`~patchworks.errors.StagedDataMissingError` unless every segment
        of ``index`` is here and long enough for every frame in it (one ``stat`` per
        segment, on the client, before the face stage)."""
        if not index.segments:
            return
        used = index.segment >= 0
        ends = np.zeros(len(index.segments), dtype=np.int64)
        np.maximum.at(
            ends,
            index.segment[used],
            (index.starts + index.sizes + index.ids_sizes)[used],
        )
        for k, name in enumerate(index.segments):
            path = os.path.join(self.root, name)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                size = -1
            if size < ends[k]:
                tile = int(np.flatnonzero(index.segment == k)[0])
                why = (
                    "is missing as the client sees the storage"
                    if size < 0
                    else f"is truncated ({size} of at least {int(ends[k])} bytes)"
                )
                raise staged_data_missing("the face frame", f"tile {tile}", path, why=why)


@dataclass(frozen=True)
class FaceIndex:
    """Every tile's :class:`FaceRef` as arrays, to ship to the face stage.

    ``segment[t]`` is an index into ``segments`` (-1: tile ``t`` has no labels); its slabs
    are ``sizes[t]`` bytes at ``starts[t]``, followed by ``ids_sizes[t]`` bytes of IDs.
    """

    segments: tuple[str, ...]
    segment: NDArray[np.int32]
    starts: NDArray[np.int64]
    sizes: NDArray[np.int64]
    ids_sizes: NDArray[np.int64]

    @classmethod
    def of(cls, refs: list[FaceRef | None]) -> FaceIndex:
        names: dict[str, int] = {}
        n = len(refs)
        segment = np.full(n, -1, dtype=np.int32)
        starts, sizes, ids_sizes = (np.zeros(n, dtype=np.int64) for _ in range(3))
        for t, ref in enumerate(refs):
            if ref is not None:
                segment[t] = names.setdefault(ref.segment, len(names))
                starts[t], sizes[t], ids_sizes[t] = ref.offset, ref.size, ref.ids_size
        return cls(tuple(names), segment, starts, sizes, ids_sizes)


class _Slabs:
    """One tile's decoded slab frame; slabs are cut from its bytes on request, no copies."""

    def __init__(self, raw: bytes) -> None:
        itemsize, ndim = struct.unpack_from("<2q", raw)
        self.shape = struct.unpack_from(f"<{ndim}q", raw, 16)
        self.raw = raw
        self.itemsize = itemsize
        self.counts = [math.prod(self.shape) // n for n in self.shape]  # voxels per slab
        self.header = 8 * (ndim + 2)

    def slab(self, axis: int, side: int) -> NDArray[np.unsignedinteger[Any]]:
        before = 2 * sum(self.counts[:axis]) + side * self.counts[axis]
        slab = np.frombuffer(
            self.raw, f"<u{self.itemsize}", self.counts[axis], self.header + self.itemsize * before
        )
        return slab.reshape((*self.shape[:axis], 1, *self.shape[axis + 1 :]))


class FaceReader:
    """Positioned reads of tiles' frames; keeps each segment open for one task."""

    def __init__(self, store: FaceStore, index: FaceIndex) -> None:
        self.store = store
        self.index = index
        self._fds: dict[int, int] = {}

    def __enter__(self) -> FaceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def slab(
        self, tile: int, axis: int, side: Literal["lo", "hi"]
    ) -> NDArray[np.unsignedinteger[Any]] | None:
        """The ``side`` ("lo" or "hi") slab of ``axis`` of ``tile`` (length 1 along
        ``axis``), or None when the tile holds no labels."""
        raw = self._read(tile, 0, int(self.index.sizes[tile]))
        return None if raw is None else _Slabs(raw).slab(axis, _LO if side == "lo" else _HI)

    def ids(self, tile: int) -> NDArray[np.uint64] | None:
        """The label IDs stored with ``tile``'s slabs, or None."""
        size = int(self.index.ids_sizes[tile])
        raw = self._read(tile, int(self.index.sizes[tile]), size) if size else None
        return None if raw is None else np.frombuffer(raw, dtype=IDS_DTYPE)

    def _read(self, tile: int, skip: int, size: int) -> bytes | None:
        """The decompressed frame of ``size`` bytes, ``skip`` bytes into ``tile``'s data."""
        segment = int(self.index.segment[tile])
        if segment < 0:
            return None
        path = os.path.join(self.store.root, self.index.segments[segment])
        fd = self._fds.get(segment)
        if fd is None:
            try:
                fd = self._fds[segment] = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise staged_data_missing("the face frame", f"tile {tile}", path) from None
        data = os.pread(fd, size, int(self.index.starts[tile]) + skip)
        if len(data) != size:
            why = f"is truncated ({len(data)} of {size} bytes)"
            raise staged_data_missing("the face frame", f"tile {tile}", path, why=why)
        try:
            frame: bytes = lz4.decompress(data)
        except Exception as exc:
            why = f"cannot be decoded ({type(exc).__name__}: {exc})"
            raise staged_data_missing("the face frame", f"tile {tile}", path, why=why) from exc
        return frame
