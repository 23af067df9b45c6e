"""Stage 5 — relabel: apply the label map to every tile and write the result.

Each tile reads its local labels, turns them into final labels through a per-tile lookup
table built from the :class:`~patchworks._engine.labelmap.LabelMap`, and writes whole chunks of
the output. Tiles are independent, so this runs in parallel without locks. The same
function backs a lazy dask array when no output store is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.labelmap import LabelMap
from patchworks._engine.staged import TileLabels
from patchworks._plan import Tile, TilePlan
from patchworks._store.chunkio import ChunkIO, reusable, tile_io, write_tile
from patchworks._store.facestore import FaceIndex, FaceStore


@dataclass(frozen=True)
class RelabelJob:
    """Everything a worker needs to relabel tiles; shipped once per run.

    ``labels`` are where the tile stage left each tile's labels (staged local labels or
    the user's own, see :mod:`patchworks._engine.staged`); ``faces`` and ``face_index``
    hold the label IDs of each tile when ``labels.keeps_ids`` (None once the face store is
    gone, e.g. behind a lazy result: the labels are then found again as the tile stage did).
    """

    plan: TilePlan
    label_map: LabelMap
    labels: TileLabels
    dtype: np.dtype[Any]
    output: Any = None
    faces: FaceStore | None = None
    face_index: FaceIndex | None = None

    def label_ids(self, index: int) -> NDArray[Any] | None:
        """The user's label of each local label of tile ``index``, when they were kept."""
        if not self.labels.keeps_ids or self.faces is None or self.face_index is None:
            return None
        with self.faces.reader(self.face_index) as reader:
            return reader.ids(index)

    @cached_property
    def output_io(self) -> ChunkIO | None:
        return tile_io(self.output, self.plan.tile_shape)


def relabel_tile(job: RelabelJob, index: int) -> None:
    """Read tile ``index``, relabel it and write it to ``job.output``."""
    n_local = job.label_map.n_local(index)
    if not n_local and job.labels.array is job.output:
        return  # an empty tile staged in place is already all background
    tile = job.plan.tile(index)
    final = final_labels(job, index, reuse=True, tile=tile)
    # A tile with labels keeps some (final labels are never 0).
    write_tile(job.output, job.output_io, tile.position, tile.core, final, nonzero=bool(n_local))


def final_labels(
    job: RelabelJob,
    index: int,
    *,
    block: NDArray[Any] | None = None,
    reuse: bool = False,
    tile: Tile | None = None,
) -> NDArray[Any]:
    """Final labels of tile ``index``, from ``block`` (its labels, already read) or from
    wherever the tile stage left them. With ``reuse`` the result may live in this thread's
    reusable buffers (valid until its next tile). ``tile`` is ``job.plan.tile(index)``,
    when the caller has it already."""
    tile = job.plan.tile(index) if tile is None else tile
    out = reusable("relabel", tile.core_shape, job.dtype) if reuse else None
    n_local = job.label_map.n_local(index)
    if n_local == 0:
        if out is None:
            return np.zeros(tile.core_shape, dtype=job.dtype)
        out.fill(0)
        return out
    lut = job.label_map.lut(index, n_local, job.dtype)
    ids = job.label_ids(index)
    if block is not None:
        return job.labels.map_block(tile, block, lut, ids, out)
    return job.labels.final(tile, lut, ids, out)


def _relabel_block(block: NDArray[Any], job: RelabelJob, block_info: Any = None) -> NDArray[Any]:
    position = block_info[0]["chunk-location"]
    return final_labels(job, job.plan.index(position), block=block)


def _relabel_staged_tile(job: RelabelJob, block_info: Any = None) -> NDArray[Any]:
    position = tuple(block_info[None]["chunk-location"])
    return final_labels(job, job.plan.index(position))


def lazy_relabel(job: RelabelJob) -> Any:
    """A dask array of final labels computed on the fly from ``job.labels``."""
    import dask.array as da
    import zarr

    meta = np.empty((0,) * job.plan.ndim, dtype=job.dtype)
    if job.labels.per_tile:  # one task per staged tile, which reads itself
        chunks = da.core.normalize_chunks(job.plan.tile_shape, job.plan.shape)  # type: ignore[no-untyped-call]  # dask: unannotated
        return da.map_blocks(  # type: ignore[no-untyped-call]  # dask: unannotated
            _relabel_staged_tile, job=job, chunks=chunks, dtype=job.dtype, meta=meta
        )
    array = job.labels.array
    if isinstance(array, zarr.Array):
        labels = da.from_zarr(array)  # type: ignore[no-untyped-call]  # dask: unannotated
    else:
        labels = da.asarray(array, chunks=job.plan.tile_shape)  # type: ignore[no-untyped-call]  # dask: unannotated
    labels = labels.rechunk(job.plan.tile_shape)
    return labels.map_blocks(_relabel_block, job=job, dtype=job.dtype, meta=meta)
