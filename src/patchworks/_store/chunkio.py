"""Whole-chunk reads and writes for the label arrays patchworks creates, without zarr's
per-call machinery.

Every staged and output array of a run has chunks equal to the tiles, so a tile reads and
writes exactly one chunk. Through ``zarr.Array.__setitem__`` each such call pays for
selection parsing, a hop to zarr's event-loop thread and back, and a codec pipeline
(about 2-4 ms per 64^3 chunk, more than the compression itself). For arrays in the layout
patchworks creates — zarr v3 on a local directory, default chunk keys, little-endian bytes
then zstd, fill value 0 — :class:`ChunkIO` reads and writes the chunk files directly with
the same encoding, so the result is an ordinary zarr array that any zarr reader opens;
other layouts fall back to zarr. The file operations are :mod:`._store.chunkfiles`.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import DTypeLike, NDArray

from patchworks._store.accounting import staged_data_missing
from patchworks._store.chunkcache import ChunkCache
from patchworks._store.chunkfiles import (
    drop_if_empty,
    read_file,
    remove_chunk,
    write_file,
)
from patchworks._store.chunkfiles import (
    reusable as reusable,  # re-exported: the stages take their buffers from here
)

#: Start of a chunk file holding staged local labels (:meth:`ChunkIO.write_local`); a zstd
#: frame (the plain encoding) starts with 28 b5 2f fd instead.
LOCAL_MAGIC = b"PWL\x01"
#: Start of a chunk file holding staged local labels as runs (:meth:`ChunkIO.write_runs`).
RUNS_MAGIC = b"PWR\x01"
#: Local labels or run lengths; the labels and lengths of runs (:meth:`ChunkIO.read_runs`).
Labels: TypeAlias = NDArray[np.integer[Any]]
Runs: TypeAlias = tuple[NDArray[np.unsignedinteger[Any]], NDArray[np.unsignedinteger[Any]]]


@dataclass(frozen=True)
class ChunkIO:
    """Direct access to the chunk files of one zarr v3 array on a local filesystem.

    Examples
    --------
    >>> import tempfile, zarr
    >>> from patchworks.io._zarr import label_compressors
    >>> path = tempfile.mkdtemp() + "/a.zarr"
    >>> a = zarr.create_array(path, shape=(5, 4), chunks=(2, 4), dtype="int32",
    ...                       fill_value=0, compressors=label_compressors())
    >>> io = ChunkIO.of(a)
    >>> io.write((2, 0), np.array([[7, 0, 0, 8]]))     # the edge chunk holds one row
    >>> a[4].tolist(), io.read((2, 0)).tolist()
    ([7, 0, 0, 8], [[7, 0, 0, 8]])
    """

    root: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    level: int | None  # zstd level, None for uncompressed chunks
    separator: str = "/"  # of the chunk keys: "c/0/1" or "c.0.1"

    @classmethod
    def of(cls, array: Any) -> ChunkIO | None:
        """The direct path for ``array``, or None when its layout is not the one we write."""
        try:
            from zarr.codecs import BytesCodec, ZstdCodec
            from zarr.core.chunk_grids import RegularChunkGrid
            from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
            from zarr.storage import LocalStore
        except ImportError:  # pragma: no cover - zarr 3 is a dependency
            return None
        meta = getattr(array, "metadata", None)
        if (
            meta is None
            or getattr(meta, "zarr_format", None) != 3
            or not isinstance(array.store, LocalStore)
        ):
            return None
        codecs = tuple(meta.codecs)
        level: int | None = None
        if not codecs or not isinstance(codecs[0], BytesCodec):
            return None
        if len(codecs) == 2 and isinstance(codecs[1], ZstdCodec) and not codecs[1].checksum:
            level = int(codecs[1].level)
        elif len(codecs) != 1:
            return None
        dtype = np.dtype(array.dtype)
        if (
            not isinstance(meta.chunk_grid, RegularChunkGrid)
            or not isinstance(meta.chunk_key_encoding, DefaultChunkKeyEncoding)
            or dtype.kind not in "iuf"
            or (
                dtype.itemsize > 1
                and codecs[0].endian is not None
                and codecs[0].endian.value != "little"
            )
            or meta.fill_value != 0
            or array.order != "C"
        ):
            return None
        root = os.path.join(str(array.store.root), array.store_path.path)
        return cls(
            root=root,
            shape=tuple(array.shape),
            chunks=tuple(array.chunks),
            dtype=dtype.newbyteorder("<").str,
            level=level,
            separator=meta.chunk_key_encoding.separator,
        )

    def _path(self, coords: tuple[int, ...]) -> str:
        return os.path.join(self.root, self.separator.join(["c", *(str(int(c)) for c in coords)]))

    def _codec(self) -> Any:
        from numcodecs import Zstd

        return Zstd(level=self.level) if self.level is not None else None

    def _box(self, coords: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(
            min(c, n - i * c) for i, c, n in zip(coords, self.chunks, self.shape, strict=True)
        )

    def write(
        self, coords: tuple[int, ...], block: NDArray[np.number[Any]], *, nonzero: bool = False
    ) -> None:
        """Write the chunk at grid ``coords`` (edge chunks may be smaller than ``chunks``).

        An all-zero block removes the chunk file instead (zarr reads it as fill value 0);
        ``nonzero`` says the caller knows the block is not, which saves looking.
        """
        path = self._path(coords)
        if not nonzero and drop_if_empty(path, block):
            return
        full = np.ascontiguousarray(block, dtype=self.dtype)
        if full.shape != self.chunks:
            padded = np.zeros(self.chunks, dtype=self.dtype)
            padded[tuple(slice(0, n) for n in full.shape)] = full
            full = padded
        codec = self._codec()
        data = codec.encode(full) if codec is not None else full.tobytes()
        write_file(path, data)

    def write_local(self, coords: tuple[int, ...], local: Labels, top: int) -> None:
        """Stage a tile's local labels at grid ``coords`` in the compact private encoding.

        Local labels are ``0..n`` with ``n`` usually small, so they are stored as the
        narrowest unsigned type that holds them (usually one byte per voxel), with no edge
        padding: compressing and reading back a quarter of the bytes of an int32 chunk. Only
        :meth:`read_local` reads this encoding; every staged chunk is rewritten as a plain
        zarr chunk (:meth:`write`) before the array is published. Arrays stored without
        compression keep the plain encoding. ``top`` is the largest local label.
        """
        if self.level is None:
            self.write(coords, local, nonzero=top > 0)
            return
        path = self._path(coords)
        if top == 0 and drop_if_empty(path, local):
            return
        dtype = np.min_scalar_type(top).newbyteorder("<")
        narrow = local
        if local.dtype != dtype or not local.flags.c_contiguous:
            narrow = reusable("write_local", local.shape, dtype)
            np.copyto(narrow, local, casting="unsafe")
        data = self._codec().encode(narrow)
        write_file(path, LOCAL_MAGIC + bytes([dtype.itemsize]) + bytes(data))

    def write_runs(
        self, coords: tuple[int, ...], lengths: Labels, values: Labels, top: int
    ) -> None:
        """Stage a tile's local labels at grid ``coords`` as runs of the C-order flattened
        tile: ``lengths[i]`` voxels of local label ``values[i]`` (largest ``top``).

        For segmentations, whose runs are tens of voxels long, this is a few percent of the
        bytes of :meth:`write_local` to compress, and the relabel stage maps the runs'
        labels, not every voxel's (:meth:`read_runs`). Only this class reads the encoding;
        the relabel stage rewrites every staged chunk as a plain zarr chunk.

        Examples
        --------
        >>> import tempfile
        >>> from patchworks.io._zarr import create_label_array
        >>> io = ChunkIO.of(create_label_array(tempfile.mkdtemp() + "/a.zarr", (2, 3), (2, 3),
        ...                                    "int32"))
        >>> io.write_runs((0, 0), np.array([2, 3, 1]), np.array([0, 1, 2]), 2)
        >>> io.read_local((0, 0)).tolist()
        [[0, 0, 1], [1, 1, 2]]
        """
        if self.level is None:  # an uncompressed array keeps the plain encoding
            self.write(coords, np.repeat(values, lengths).reshape(self._box(coords)))
            return
        path = self._path(coords)
        if top == 0:
            remove_chunk(path)
            return
        # Run lengths in the narrowest type that holds them, byte-shuffled (all low bytes,
        # then all next bytes, ...): the high bytes are mostly zero, which zstd compresses
        # in half the time and to three quarters of the size of interleaved lengths.
        n = lengths.size
        value_type = np.min_scalar_type(top).newbyteorder("<")
        length_type = np.min_scalar_type(int(lengths.max())).newbyteorder("<")
        width = length_type.itemsize
        payload = np.empty(n * (width + value_type.itemsize), dtype=np.uint8)
        planes = payload[: n * width].reshape(width, n)
        for byte, plane in enumerate(planes):  # (copying a transposed view is 10x slower)
            np.right_shift(lengths, 8 * byte, out=plane, casting="unsafe")
        payload[n * width :].view(value_type)[:] = values
        header = RUNS_MAGIC + bytes([value_type.itemsize, width]) + n.to_bytes(8, "little")
        write_file(path, header + bytes(self._codec().encode(payload)))

    def read_runs(self, coords: tuple[int, ...], *, expect: str | None = None) -> Runs | None:
        """The local label and length of every run staged by :meth:`write_runs` at
        ``coords`` (``np.repeat(values, lengths)`` is the flattened tile), or None when the
        chunk holds another encoding (or none).

        ``expect`` names the tile that staged the chunk: it must then exist and decode, or a
        :class:`~patchworks.errors.StagedDataMissingError` says which tile and where."""
        data = self._load(coords, expect=expect)
        if data is None or not data.startswith(RUNS_MAGIC):
            return None
        try:
            return _decode_runs(data, self._codec())
        except Exception as exc:
            if expect is None:
                raise
            raise self._undecodable(coords, exc, expect) from exc

    def read_local(
        self, coords: tuple[int, ...], *, reuse: bool = False, expect: str | None = None
    ) -> Labels:
        """Local labels staged by :meth:`write_local` or :meth:`write_runs` (or a plain
        chunk) at ``coords``; ``reuse`` as in :meth:`read`, ``expect`` as in
        :meth:`read_runs`."""
        data = self._load(coords, expect=expect)
        if data is None:
            return np.zeros(self._box(coords), dtype=np.uint8)
        try:
            if data.startswith(RUNS_MAGIC):
                return np.repeat(*_decode_runs(data, self._codec())).reshape(self._box(coords))
            if not data.startswith(LOCAL_MAGIC):
                return self._decode(data, coords, reuse=reuse)
            out = _target(reuse, "read", self._box(coords), f"<u{data[len(LOCAL_MAGIC)]}")
            self._codec().decode(memoryview(data)[len(LOCAL_MAGIC) + 1 :], out=out)
        except Exception as exc:
            if expect is None:
                raise
            raise self._undecodable(coords, exc, expect) from exc
        return out

    def _undecodable(self, coords: tuple[int, ...], exc: Exception, where: str) -> Exception:
        """The error naming tile ``where`` for its chunk that does not decode."""
        why = f"cannot be decoded ({type(exc).__name__}: {exc})"
        return staged_data_missing("the staged labels", where, self._path(coords), why=why)

    def read(self, coords: tuple[int, ...], *, reuse: bool = False) -> NDArray[Any]:
        """A writable copy of the chunk at grid ``coords``, cropped at the image edge.

        With ``reuse``, the chunk is decoded into this thread's :func:`reusable` buffer,
        valid until the thread's next such read.
        """
        data = self._load(coords)
        if data is None:
            empty = _target(reuse, "read", self._box(coords), self.dtype)
            empty.fill(0)
            return empty
        return self._decode(data, coords, reuse=reuse)

    def _load(self, coords: tuple[int, ...], *, expect: str | None = None) -> bytes | None:
        """The bytes of the chunk file at ``coords``; None when it was never written (an
        error naming ``expect``'s tile when that tile staged it)."""
        path = self._path(coords)
        data = read_file(path)
        if data is None and expect is not None:
            raise staged_data_missing("the staged labels", expect, path)
        return data

    def read_box(
        self, box: tuple[slice, ...], *, reuse: bool = False, cache: ChunkCache | None = None
    ) -> NDArray[Any]:
        """The voxels in ``box`` (inside the array), assembled from whole chunk files;
        ``reuse`` as in :meth:`read`. A box over several chunks takes them from ``cache``
        when there and leaves them there (:mod:`._store.chunkcache`).

        Examples
        --------
        >>> import tempfile, zarr
        >>> a = zarr.create_array(tempfile.mkdtemp() + "/a.zarr", shape=(5,), chunks=(2,),
        ...                       dtype="uint16", fill_value=0)
        >>> a[:] = [1, 2, 3, 4, 5]
        >>> ChunkIO.of(a).read_box((slice(1, 5),)).tolist()
        [2, 3, 4, 5]
        """
        shape = tuple(s.stop - s.start for s in box)
        first = tuple(s.start // c for s, c in zip(box, self.chunks, strict=True))
        aligned = all(s.start == i * c for s, i, c in zip(box, first, self.chunks, strict=True))
        if aligned and shape == self._box(first):
            return self.read(first, reuse=reuse)  # the box is exactly one chunk
        out = _target(reuse, "box", shape, self.dtype)
        ranges = [
            range(i, -(-s.stop // c)) for s, i, c in zip(box, first, self.chunks, strict=True)
        ]
        for coords in itertools.product(*ranges):
            chunk = None if cache is None else cache.get(coords)
            if chunk is None:
                chunk = self.read(coords, reuse=cache is None)  # (reused: copied out below)
                if cache is not None:
                    cache.put(coords, chunk)
            src, dst = [], []
            for s, i, c, n in zip(box, coords, self.chunks, chunk.shape, strict=True):
                lo, hi = max(s.start, i * c), min(s.stop, i * c + n)
                src.append(slice(lo - i * c, hi - i * c))
                dst.append(slice(lo - s.start, hi - s.start))
            out[tuple(dst)] = chunk[tuple(src)]
        return out

    def _decode(self, data: bytes, coords: tuple[int, ...], *, reuse: bool = False) -> NDArray[Any]:
        out = _target(reuse, "read", self.chunks, self.dtype)
        codec = self._codec()
        if codec is not None:
            codec.decode(data, out=out)
        else:
            out.ravel()[:] = np.frombuffer(data, dtype=self.dtype)
        return out[tuple(slice(0, n) for n in self._box(coords))]


def _decode_runs(data: bytes, codec: Any) -> Runs:
    """Values and run lengths of a :meth:`ChunkIO.write_runs` chunk, ready for
    ``np.repeat``."""
    start = len(RUNS_MAGIC)
    itemsize, width = data[start], data[start + 1]
    n = int.from_bytes(data[start + 2 : start + 10], "little")
    payload = np.frombuffer(codec.decode(memoryview(data)[start + 10 :]), dtype=np.uint8)
    lengths = np.zeros(n, dtype=f"<u{width}")
    for byte, plane in enumerate(payload[: n * width].reshape(width, n)):
        lengths |= plane.astype(lengths.dtype) << (8 * byte)
    values = payload[n * width : n * (width + itemsize)].view(f"<u{itemsize}")
    return values, lengths


def _target(reuse: bool, purpose: str, shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """Where a read decodes to: this thread's :func:`reusable` buffer, or a fresh array."""
    return reusable(purpose, shape, dtype) if reuse else np.empty(shape, dtype=dtype)


def chunk_io(array: Any) -> ChunkIO | None:
    """:meth:`ChunkIO.of`, tolerating objects that are not zarr arrays (returns None)."""
    try:
        return ChunkIO.of(array)
    except AttributeError:
        return None


def tile_io(array: Any, tile_shape: tuple[int, ...]) -> ChunkIO | None:
    """The direct path for ``array`` when its chunks are exactly the tiles, else None."""
    io = chunk_io(array)
    return io if io is not None and io.chunks == tuple(tile_shape) else None


def read_tile(
    array: Any,
    io: ChunkIO | None,
    position: tuple[int, ...],
    core: tuple[slice, ...],
    *,
    reuse: bool = False,
) -> NDArray[Any]:
    """The block of ``array`` under the tile at grid ``position`` (core box ``core``);
    ``reuse`` as in :meth:`ChunkIO.read`."""
    return io.read(position, reuse=reuse) if io is not None else np.asarray(array[core])


def write_tile(
    array: Any,
    io: ChunkIO | None,
    position: tuple[int, ...],
    core: tuple[slice, ...],
    block: NDArray[np.number[Any]],
    *,
    nonzero: bool = False,
) -> None:
    """Write ``block`` as the tile at grid ``position`` (core box ``core``) of ``array``;
    ``nonzero`` as in :meth:`ChunkIO.write`."""
    if io is not None:
        io.write(position, block, nonzero=nonzero)
    else:
        array[core] = block
