"""Halo predictions of ``stitch="iou"`` tiles, staged as pieces of one chunk file per tile.

A tile of an IoU run keeps ``fn``'s labels over its whole halo box. Its neighbours later
read back only the parts they share with it: the zone where their halo boxes overlap (to
match objects) and the part of their core it predicts (to draw owners). Read through zarr,
each such read decoded the whole uint32 chunk of the tile behind one per-call hop to
zarr's event loop (about 1 ms), and a tile was read some 40 times.

Here a tile's halo box is cut, along every axis, at two positions (``cuts``: where the
zones with its lower and upper neighbours end), into ``3 ** ndim`` pieces. Each piece is
one LZ4 frame of the tile's local labels in the narrowest unsigned type that holds them
(usually one byte), and the frames follow a small header in the tile's chunk file of the
run's ``halos`` zarr array, written and read directly (:mod:`._chunkfiles`), as the touch
path stages its labels. A read of a box decodes only the pieces the box touches: a
neighbour across a face decodes the slab it shares, not the tile. LZ4 for the reason the
face store uses it: a frame is decoded several times and LZ4 decodes fastest.

Only :class:`HaloIO` reads this encoding; a chunk in zarr's own encoding (a resumed run's,
staged by an older build) is read as zarr would.

Examples
--------
>>> import tempfile, zarr
>>> a = zarr.create_array(tempfile.mkdtemp() + "/h.zarr", shape=(1, 6, 5), chunks=(1, 6, 5),
...                       dtype="uint32", fill_value=0)
>>> io = HaloIO.of(a)
>>> labels = np.arange(30, dtype="uint8").reshape(6, 5)
>>> io.write((0,), labels, ((1, 4), (2, 3)), top=29)
>>> io.read((0,), (slice(2, 5), slice(1, 3))).tolist()
[[11, 12], [16, 17], [21, 22]]
"""

from __future__ import annotations

import functools
import itertools
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numcodecs import lz4
from numpy.typing import NDArray

from patchworks._store.chunkfiles import read_file, remove_chunk, write_file
from patchworks._store.chunkio import ChunkIO

#: Start of a chunk file holding a tile's halo labels as pieces.
HALO_MAGIC = b"PWH\x01"

Box = tuple[slice, ...]


@dataclass(frozen=True)
class HaloIO:
    """Direct piecewise access to the chunk files of a run's halo array.

    The array is indexed by tile grid position, then the halo box (one chunk per tile);
    ``chunks`` is a plain :class:`ChunkIO` on it, which gives the chunk files' paths.
    """

    chunks: ChunkIO

    @classmethod
    def of(cls, array: Any) -> HaloIO | None:
        """The direct path for ``array``, or None when its layout is not one we write."""
        io = ChunkIO.of(array)
        return None if io is None else cls(io)

    def write(
        self,
        position: tuple[int, ...],
        labels: NDArray[np.integer[Any]],
        cuts: tuple[tuple[int, int], ...],
        top: int,
    ) -> None:
        """Stage ``labels`` (local labels ``0..top`` over the tile's halo box) of the tile at
        grid ``position``, cut at ``cuts`` (per axis, two offsets into the box)."""
        path = self._path(position)
        if top == 0:
            remove_chunk(path)
            return
        dtype = np.min_scalar_type(top).newbyteorder("<")
        edges = _edges(labels.shape, cuts)
        frames = [
            lz4.compress(np.ascontiguousarray(labels[piece], dtype=dtype))
            for piece in _pieces(edges)
        ]
        ndim = labels.ndim
        header = struct.pack(
            f"<2B{ndim}q{2 * ndim}q{len(frames)}q",
            dtype.itemsize,
            ndim,
            *labels.shape,
            *(c for e in edges for c in e[1:3]),
            *(len(f) for f in frames),
        )
        write_file(path, b"".join([HALO_MAGIC, header, *frames]))

    def read(self, position: tuple[int, ...], box: Box) -> NDArray[np.integer[Any]]:
        """Labels of the tile at grid ``position`` over ``box`` (relative to its halo box,
        inside it), decoding only the pieces that ``box`` touches."""
        data = read_file(self._path(position))
        if data is None or not data.startswith(HALO_MAGIC):
            # Never staged (all background) or staged in zarr's encoding: read it whole.
            whole = self.chunks.read((*position, *(0,) * len(box)))
            part: NDArray[np.integer[Any]] = whole[(0,) * len(position)][box]
            return part
        itemsize, ndim = data[4], data[5]
        values = _header(ndim).unpack_from(data, 6)
        edges = [
            (0, values[ndim + 2 * a], values[ndim + 2 * a + 1], values[a]) for a in range(ndim)
        ]
        offsets = list(itertools.accumulate(values[3 * ndim :], initial=6 + 8 * len(values)))
        out = np.empty(tuple(s.stop - s.start for s in box), dtype=f"<u{itemsize}")
        touched = [
            [p for p in range(3) if e[p] < e[p + 1] and e[p] < s.stop and s.start < e[p + 1]]
            for e, s in zip(edges, box, strict=True)
        ]
        view = memoryview(data)
        for combo in itertools.product(*touched):
            number, src, dst, piece_shape = 0, [], [], []
            for e, p, s in zip(edges, combo, box, strict=True):
                number = 3 * number + p
                lo, hi = max(e[p], s.start), min(e[p + 1], s.stop)
                src.append(slice(lo - e[p], hi - e[p]))
                dst.append(slice(lo - s.start, hi - s.start))
                piece_shape.append(e[p + 1] - e[p])
            raw = lz4.decompress(view[offsets[number] : offsets[number + 1]])
            piece = np.frombuffer(raw, dtype=out.dtype).reshape(piece_shape)
            out[tuple(dst)] = piece[tuple(src)]
        return out

    def _path(self, position: tuple[int, ...]) -> str:
        ndim = len(self.chunks.shape) - len(position)
        return self.chunks._path((*position, *(0,) * ndim))


@functools.lru_cache(maxsize=8)
def _header(ndim: int) -> struct.Struct:
    """The header after the magic and the two bytes (item size, ndim): shape, cuts and
    the byte size of every piece, as little-endian int64s."""
    return struct.Struct(f"<{3 * ndim + 3**ndim}q")


def _edges(
    shape: tuple[int, ...], cuts: tuple[tuple[int, int], ...]
) -> list[tuple[int, int, int, int]]:
    """Per axis the four edges of the three pieces, the cuts clipped into ``0..n``."""
    edges = []
    for n, (lo, hi) in zip(shape, cuts, strict=True):
        lo = min(max(lo, 0), n)
        edges.append((0, lo, max(lo, min(hi, n)), n))
    return edges


def _pieces(edges: list[tuple[int, int, int, int]]) -> list[Box]:
    """The ``3 ** ndim`` piece boxes in C order (empty ones included)."""
    return [
        tuple(slice(e[p], e[p + 1]) for e, p in zip(edges, combo, strict=True))
        for combo in itertools.product(range(3), repeat=len(edges))
    ]
