"""The label arithmetic: local label → tagged → provisional ID → final label, in one place.

A tile's labels (whatever IDs ``fn`` chose) become *local labels* ``1..n`` (0 stays
background) in the tile stage (:func:`to_local_labels`); a face slab's local labels are
*tagged* with their tile (``tile << TAG_SHIFT | local``, :func:`tag`) so pairs from many
tiles can be sorted together; ``offsets[tile] + local`` is a *provisional ID*, unique
across the image (:func:`provisional_offsets`, :func:`provisional_ids`); the label map
turns provisional IDs into *final labels*, and a per-tile table (``lut``) applied by
:func:`apply_lut` or :func:`expand_runs` writes them.

Examples
--------
Two tiles with 2 and 1 local labels: tile 1's local label 1 is provisional ID 3.

>>> offsets = provisional_offsets(np.array([2, 1]))
>>> offsets.tolist(), provisional_ids(tag(1, np.array([1])), offsets).tolist()
([0, 2, 3], [3])
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import fastremap
import numpy as np
from numpy.typing import NDArray

from patchworks._plan import Tile
from patchworks._store.chunkio import reusable
from patchworks._store.facestore import face_planes
from patchworks.errors import LabelOverflowError

#: Bits of a tagged label that hold the local label (the tile index is above them).
TAG_SHIFT = 32
_LOCAL_MASK = (1 << TAG_SHIFT) - 1


def tag(
    tile_index: NDArray[np.integer[Any]] | int, local: NDArray[np.integer[Any]]
) -> NDArray[np.int64]:
    """Tagged labels ``tile_index << TAG_SHIFT | local`` (int64), unique across tiles
    (``tile_index`` one tile, or one per label)."""
    return (np.asarray(tile_index, dtype=np.int64) << TAG_SHIFT) | local.astype(np.int64)


def provisional_offsets(counts: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
    """``offsets[t]``, added to tile ``t``'s local labels, gives provisional IDs: the
    running sum of the tiles' label counts (``n_tiles + 1`` entries, int64)."""
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def provisional_ids(tagged: NDArray[np.int64], offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """Turn tagged ``tile << TAG_SHIFT | local`` labels into provisional IDs."""
    return cast("NDArray[np.int64]", offsets[tagged >> TAG_SHIFT] + (tagged & _LOCAL_MASK))


def check_label_count(
    n_labels: int, dtype: np.dtype[Any] | str, what: str | Callable[[], str], hint: str = ""
) -> None:
    """Raise :class:`~patchworks.errors.LabelOverflowError` when ``n_labels`` labels (the
    largest of them, for a gappy map) do not fit ``dtype``; ``what`` says whose they are
    (a callable: built only for the error, as the tile stage checks every tile)."""
    info = np.iinfo(np.dtype(dtype))
    if n_labels > info.max:
        whose = what() if callable(what) else what
        raise LabelOverflowError(
            f"{whose}, more than the output `dtype` {np.dtype(dtype)} can hold ({info.max}); "
            f"pass dtype='int64'{hint}."
        )


def dense_limit(size: int) -> int:
    """Largest label for which a table indexed by label costs no more than ``size`` voxels
    of labels (the renumbering and the relabel stage's table stay bounded by the tile)."""
    return max(size, 1 << 16)


@dataclass(frozen=True)
class LocalLabels:
    """How one tile's labels become local labels ``1..n`` (0 stays background).

    Two ways, chosen by the largest label: labels below :func:`dense_limit` get local
    labels in increasing order of label, through a table indexed by label (``table``;
    None when the labels are ``1..n`` already, the common case, which needs no copy).
    Larger, sparse IDs are renumbered by fastremap in order of first appearance
    (``renumbered``). Both are deterministic, so the relabel stage can repeat them on a
    block read back from a user's store and get the same local labels.

    ``labels`` may live in a thread's reusable buffer: use this within the tile's stage.
    """

    n: int
    ids: NDArray[Any]  # ids[local - 1] is the label that became local label ``local``
    labels: NDArray[Any]  # the tile's labels, in the narrowest type that holds them
    table: NDArray[Any] | None = None
    renumbered: NDArray[Any] | None = None
    runs: LabelRuns | None = None  # the runs of ``labels``, when they are long (dense IDs)

    def whole(self) -> NDArray[Any]:
        """The tile's local labels."""
        if self.renumbered is not None:
            return self.renumbered
        return self.labels if self.table is None else self.table[self.labels]

    def run_lengths(self) -> tuple[NDArray[Any], NDArray[Any]] | None:
        """The tile's local labels as runs of the C-order flattened tile: the length of
        every run and its local label; None when the runs were too short to keep."""
        if self.runs is None:
            return None
        lengths = np.diff(self.runs.starts, append=self.labels.size)
        values = self.runs.values
        return lengths, (values if self.table is None else self.table[values])

    def faces(self) -> list[NDArray[Any]]:
        """The tile's :func:`face_planes`, in local labels (only they are mapped)."""
        if self.renumbered is not None:
            return face_planes(self.renumbered)
        planes = face_planes(self.labels)
        return planes if self.table is None else [self.table[p] for p in planes]


def to_local_labels(
    labels: NDArray[Any], labels_dtype: np.dtype[Any], tile: Tile, *, top: int | None = None
) -> LocalLabels:
    """Find the labels of a tile and how they become local labels ``1..n``.

    ``top`` bounds the labels from above when known (their maximum, or that of a larger
    array they were cut from), which saves a pass over them.

    Examples
    --------
    >>> from patchworks._plan import TilePlan
    >>> tile = TilePlan((4,), (4,), (0,)).tile(0)
    >>> local = to_local_labels(np.array([0, 9, 4, 9]), np.dtype("int32"), tile)
    >>> local.n, local.ids.tolist(), local.whole().tolist()
    (2, [4, 9], [0, 2, 1, 2])
    """
    if top is None:
        top = int(labels.max()) if labels.size else 0
    if top < dense_limit(labels.size):
        narrow = np.min_scalar_type(top)
        if narrow.itemsize < labels.dtype.itemsize:
            # Scanning, staging and slicing faces all go faster on the narrow copy.
            buffer = reusable("narrow", labels.shape, narrow)
            np.copyto(buffer, labels, casting="unsafe")
            labels = buffer
        runs = LabelRuns.of(labels.reshape(-1))
        present = np.zeros(top + 1, dtype=bool)
        present[runs.values] = True
        present[0] = False
        ids: NDArray[np.integer[Any]] = np.flatnonzero(present)
        if not ids.size or ids[-1] == ids.size:  # already 1..n
            table = None
        else:
            table = np.zeros(int(ids[-1]) + 1, dtype=np.min_scalar_type(ids.size))
            table[ids] = np.arange(1, ids.size + 1, dtype=table.dtype)
        local = LocalLabels(
            n=int(ids.size),
            ids=ids.astype(np.uint64),
            labels=labels,
            table=table,
            runs=runs if runs.long else None,
        )
    else:
        renumbered, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
        ids = _ids_of(mapping)
        local = LocalLabels(n=int(ids.size), ids=ids, labels=labels, renumbered=renumbered)
    check_label_count(local.n, labels_dtype, lambda: f"{tile.describe()} has {local.n} labels")
    return local


#: Shortest mean run length (voxels) at which a tile's local labels are staged as runs.
MIN_MEAN_RUN = 16


@dataclass(frozen=True)
class LabelRuns:
    """The runs of equal values of a 1-D array of labels: where each starts, its value.

    Every distinct value appears as the value of some run, so the runs find which labels
    are present while looking up only the first voxel of each run: segmentations come in
    long runs, so that is a few percent of the voxels, in NumPy loops that release the GIL
    (fastremap's ``unique`` holds it throughout, which serialises the threads). When the
    runs are long they are also how the tile is staged (:meth:`ChunkIO.write_runs`).

    Examples
    --------
    >>> LabelRuns.of(np.repeat([0, 5, 0], 20)).starts.tolist()
    [0, 20, 40]
    >>> short = LabelRuns.of(np.array([3, 3, 0, 0, 1, 3, 3]))  # mean run under 16 voxels
    >>> short.long, short.values.tolist()
    (False, [3, 0, 1, 3])
    """

    starts: NDArray[np.intp]
    values: NDArray[Any]
    long: bool  # mean run length at least MIN_MEAN_RUN voxels

    @classmethod
    def of(cls, flat: NDArray[Any]) -> LabelRuns:
        changes = reusable("starts", flat.shape, bool)
        changes[:1] = True
        np.not_equal(flat[1:], flat[:-1], out=changes[1:])
        long = np.count_nonzero(changes) * MIN_MEAN_RUN <= flat.size
        # Short runs: only the values are kept (a compress is cheaper than positions).
        starts = np.flatnonzero(changes) if long else np.empty(0, dtype=np.intp)
        values = flat[starts] if long else np.compress(changes, flat)
        return cls(starts=starts, values=values, long=bool(long))


def _ids_of(mapping: dict[Any, Any]) -> NDArray[np.uint64]:
    """The label that became each local label ``1..n`` (``ids[local - 1]``)."""
    n = len(mapping) - (0 in mapping)  # the mapping always holds 0 -> 0
    ids = np.zeros(n, dtype=np.uint64)
    labels = np.fromiter(mapping.keys(), dtype=np.uint64, count=len(mapping))
    local = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    ids[local[local > 0] - 1] = labels[local > 0]
    return ids


def expand_runs(values: NDArray[Any], lengths: NDArray[Any], lut: NDArray[Any]) -> NDArray[Any]:
    """Final labels, flattened, from staged runs of local labels (``values``, ``lengths``).

    Only the runs' labels go through the table (a few percent of the voxels); expanding
    the runs writes each voxel once, with no pass over one-byte local labels first.
    """
    _check_in_table(values, lut)
    return np.repeat(lut[values], lengths)


def _check_in_table(labels: NDArray[np.integer[Any]], lut: NDArray[np.integer[Any]]) -> None:
    """Raise if a label is outside ``lut`` (the lookups do not check bounds)."""
    if labels.size and int(labels.max()) >= lut.size:
        raise IndexError(f"label {int(labels.max())} outside a table of {lut.size}")


def apply_lut(
    local: NDArray[Any], lut: NDArray[Any], out: NDArray[Any] | None = None
) -> NDArray[Any]:
    """``lut[local]``, into ``out`` when given.

    The labels are widened into ``out`` and remapped there in place by fastremap's C++
    loop: no index array as wide as NumPy's gather makes (8 bytes a voxel). That loop does
    not check bounds, so the labels are checked first (a pass over one-byte local labels
    costs a few hundredths of a millisecond per million voxels). One-byte local labels
    with a 4-byte table are looked up two voxels at a time (:func:`_pair_table`).

    Examples
    --------
    >>> apply_lut(np.array([[0, 2], [1, 2]], dtype="uint8"), np.array([0, 7, 9], dtype="int32"))
    array([[0, 9],
           [7, 9]], dtype=int32)
    """
    _check_in_table(local, lut)
    if lut.dtype.itemsize not in (4, 8):  # 1- and 2-byte outputs: NumPy's gather
        if out is None:
            return cast("NDArray[Any]", lut[local])
        out[...] = lut[local]
        return out
    if out is None:
        out = np.empty(local.shape, dtype=lut.dtype)
    if (
        sys.byteorder == "little"
        and local.dtype.itemsize == 1
        and lut.dtype.itemsize == 4
        and local.size % 2 == 0
        and local.flags.c_contiguous
        and out.flags.c_contiguous
    ):
        # Each pair of voxels, read as one uint16, indexes a table of uint64 pairs of
        # final labels: half the lookups, for a table built in about 0.1 ms.
        pairs = out.reshape(-1).view(np.uint64)
        np.copyto(pairs, local.reshape(-1).view("<u2"), casting="unsafe")
        fastremap.remap_from_array(pairs, _pair_table(lut[:256]), in_place=True)
        return out
    np.copyto(out, local, casting="unsafe")
    unsigned = np.dtype(f"u{lut.dtype.itemsize}")
    fastremap.remap_from_array(out.reshape(-1).view(unsigned), lut.view(unsigned), in_place=True)
    return out


def _pair_table(lut: NDArray[Any]) -> NDArray[Any]:
    """For a table of 4-byte labels (at most 256 entries): the table that maps two one-byte
    local labels ``a, b``, read together as the little-endian uint16 ``a + 256 * b``, to
    the little-endian uint64 holding ``lut[a]`` then ``lut[b]`` (so the two final labels
    land where the two voxels were).

    Examples
    --------
    >>> lut = np.array([0, 7, 9], dtype="int32")
    >>> pairs = _pair_table(lut)
    >>> np.array([pairs[2 + 256 * 1]], dtype="<u8").view("<i4").tolist()
    [9, 7]
    """
    size = lut.size
    values = np.zeros(256, dtype=np.uint64)
    values[:size] = lut.astype("<i4").view("<u4")
    table = np.zeros((size, 256), dtype=np.uint64)  # rows b (second voxel), columns a
    np.left_shift(values[:size, None], np.uint64(32), out=table)
    table |= values[None, :]
    return table.reshape(-1)
