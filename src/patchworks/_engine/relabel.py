"""Stage 5 — relabel: apply the label map to every tile and write the result.

Each tile reads its local labels, turns them into final labels through a per-tile lookup
table built from the :class:`~patchworks._engine.labelmap.LabelMap`, and writes whole chunks of
the output. Tiles are independent, so this runs in parallel without locks. The same
function backs a lazy dask array when no output store is wanted.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fastremap
import numpy as np

from patchworks._store.chunkio import ChunkIO, read_tile, reusable, tile_io, write_tile
from patchworks._store.facestore import FaceIndex, FaceStore
from patchworks._engine.labelmap import LabelMap
from patchworks._plan import TilePlan
from patchworks._engine.tiles import dense_limit


@dataclass(frozen=True)
class RelabelJob:
    """Everything a worker needs to relabel tiles; shipped once per run.

    ``labels`` holds local labels when ``compact`` is true (staged by patchworks), or a
    user's per-tile labels when false, mapped through the label IDs the scan kept in the
    face store (``faces``), or renumbered again, deterministically, for sparse IDs.
    """

    plan: TilePlan
    label_map: LabelMap
    labels: Any
    compact: bool
    dtype: np.dtype
    output: Any = None
    faces: FaceStore | None = None  # user's labels: the IDs of each tile's local labels
    face_index: FaceIndex | None = None

    def label_ids(self, index: int) -> np.ndarray | None:
        """The user's label of each local label of tile ``index``, when they were kept."""
        if self.faces is None or self.face_index is None:
            return None
        with self.faces.reader(self.face_index) as reader:
            return reader.ids(index)

    @cached_property
    def labels_io(self) -> ChunkIO | None:
        return tile_io(self.labels, self.plan.tile_shape)

    @cached_property
    def output_io(self) -> ChunkIO | None:
        return tile_io(self.output, self.plan.tile_shape)


def relabel_block(
    job: RelabelJob, index: int, block: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Final labels of tile ``index`` from its block of (local or user) labels, written
    into ``out`` when given."""
    n_local = job.label_map.n_local(index)
    if n_local == 0:
        if out is None:
            return np.zeros(block.shape, dtype=job.dtype)
        out.fill(0)
        return out
    lut = job.label_map.lut(index, n_local, job.dtype)
    if job.compact:  # local labels staged by the tile stage
        return apply_lut(block, lut, out)
    ids = job.label_ids(index)
    top = int(ids.max()) if ids is not None and ids.size == n_local else None
    if top is not None and top < dense_limit(block.size):
        # Map the user's labels straight to final labels: no second renumbering.
        table = np.zeros(top + 1, dtype=lut.dtype)
        table[ids] = lut[1:]
        return apply_lut(block, table, out)
    # Sparse IDs: renumber again exactly as the tile stage did (``_tiles.to_local_labels``).
    return apply_lut(fastremap.renumber(block, preserve_zero=True)[0], lut, out)


def relabel_runs(job: RelabelJob, index: int, values: np.ndarray, lengths: np.ndarray) -> Any:
    """Final labels of tile ``index``, flattened, from its staged runs of local labels.

    Only the runs' labels go through the table (a few percent of the voxels); expanding
    the runs writes each voxel once, with no pass over one-byte local labels first.
    """
    lut = job.label_map.lut(index, job.label_map.n_local(index), job.dtype)
    _check_in_table(values, lut)
    return np.repeat(lut[values], lengths)


def _check_in_table(labels: np.ndarray, lut: np.ndarray) -> None:
    """Raise if a label is outside ``lut`` (the lookups do not check bounds)."""
    if labels.size and int(labels.max()) >= lut.size:
        raise IndexError(f"label {int(labels.max())} outside a table of {lut.size}")


def apply_lut(local: np.ndarray, lut: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
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
            return lut[local]
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


def _pair_table(lut: np.ndarray) -> np.ndarray:
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


def relabel_tile(job: RelabelJob, index: int) -> None:
    """Read tile ``index``, relabel it and write it to ``job.output``."""
    n_local = job.label_map.n_local(index)
    if not n_local and job.labels is job.output:
        return  # an empty tile staged in place is already all background
    position = job.plan.position(index)
    core = job.plan.core(position)
    final = _final_labels(job, index, position, core, reuse=True)
    # A tile with labels keeps some (final labels are never 0).
    write_tile(job.output, job.output_io, position, core, final, nonzero=bool(n_local))


def _final_labels(
    job: RelabelJob, index: int, position: tuple[int, ...], core: tuple[slice, ...], *, reuse: bool
) -> np.ndarray:
    """Final labels of tile ``index`` from what the tile stage left: its staged runs, its
    staged local labels or the user's labels. With ``reuse`` the result may live in this
    thread's reusable buffers (valid until its next tile)."""
    runs = job.labels_io.read_runs(position) if job.compact and job.labels_io else None
    if runs is not None:  # staged as runs: map each run's label, then expand the runs
        return relabel_runs(job, index, *runs).reshape([s.stop - s.start for s in core])
    block = _read_labels(job, position, core, reuse=reuse)
    out = reusable("relabel", block.shape, job.dtype) if reuse else None
    return relabel_block(job, index, block, out)


def _read_labels(
    job: RelabelJob, position: tuple[int, ...], core: tuple[slice, ...], *, reuse: bool = False
) -> Any:
    if job.compact and job.labels_io is not None:
        return job.labels_io.read_local(position, reuse=reuse)  # staged by the tile stage
    return read_tile(job.labels, job.labels_io, position, core, reuse=reuse)


def _relabel_chunk(block: np.ndarray, job: RelabelJob, block_info: Any = None) -> np.ndarray:
    position = block_info[0]["chunk-location"]
    return relabel_block(job, job.plan.index(position), block)


def _relabel_staged_tile(job: RelabelJob, block_info: Any = None) -> np.ndarray:
    position = tuple(block_info[None]["chunk-location"])
    return _final_labels(
        job, job.plan.index(position), position, job.plan.core(position), reuse=False
    )


def lazy_relabel(job: RelabelJob) -> Any:
    """A dask array of final labels computed on the fly from ``job.labels``."""
    import dask.array as da
    import zarr

    if job.compact and job.labels_io is not None:  # one task per staged tile
        return da.map_blocks(
            _relabel_staged_tile,
            job=job,
            chunks=da.core.normalize_chunks(job.plan.tile_shape, job.plan.shape),
            dtype=job.dtype,
            meta=np.empty((0,) * job.plan.ndim, dtype=job.dtype),
        )
    if isinstance(job.labels, zarr.Array):
        labels = da.from_zarr(job.labels)
    else:
        labels = da.asarray(job.labels, chunks=job.plan.tile_shape)
    labels = labels.rechunk(job.plan.tile_shape)
    return labels.map_blocks(
        _relabel_chunk,
        job=job,
        dtype=job.dtype,
        meta=np.empty((0,) * job.plan.ndim, dtype=job.dtype),
    )
