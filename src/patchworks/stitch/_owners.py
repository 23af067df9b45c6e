"""Owners for ``stitch="iou"``: which tile draws each object where predictions overlap.

Inside a zone two or more tiles predict the same voxels, and they may disagree by a few
voxels. Cutting every object along the straight face between cores would leave a seam
line through every cell. Instead, every object is drawn by one *owner*:

* Matched objects (one object seen by several tiles) are joined by the label map; the
  member with the most voxels in its own tile's core owns the object (ties: smallest
  provisional ID), and its prediction is used everywhere it reaches. If the cores of the
  tiles that saw it hold less than half of it, the tiles whose cores hold the rest decide.
* An unmatched object that reaches a zone is kept by its tile when at least half of its
  voxels lie in that tile's core; otherwise the neighbours, which see it with more
  context, decide.
* Objects that stay away from every zone are kept by their tile.

A voxel of a tile's core takes, in order: the tile's own label if the tile owns that
object; else the label of an object owned by a neighbour whose prediction covers the voxel
(faces before edges before corners); else the tile's own label, mapped to its object.
The decision needs only the tables of zone objects on the client; each tile's output is
then composed by a worker from its own and its neighbours' staged predictions.

With ``sequential_labels=True`` one extra composing pass finds which zone objects
actually appear in the output (an object drawn over entirely by others leaves no ID
behind), so the final labels are exactly ``1..N``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.faces import EMPTY_PAIRS
from patchworks._engine.labelmap import LabelMap, build_label_map
from patchworks._engine.local import check_label_count, provisional_offsets
from patchworks._plan import Tile, TilePlan
from patchworks._store.chunkio import ChunkIO, tile_io, write_tile
from patchworks.stitch._iou_objects import measure_composed


@dataclass(frozen=True)
class ComposeJob:
    """Everything a worker needs to compose tiles' final labels; shipped once per run.

    ``not_kept`` holds the sorted provisional IDs whose prediction yields to an owner;
    ``candidates`` the sorted final labels of zone objects, whose presence is reported.
    """

    seams: Any
    label_map: LabelMap
    not_kept: NDArray[Any]
    candidates: NDArray[Any]
    dtype: np.dtype[Any]
    output: Any = None

    @cached_property
    def output_io(self) -> ChunkIO | None:
        """Direct chunk writes to :attr:`output` (None: write through zarr)."""
        return tile_io(self.output, self.seams.plan.tile_shape)

    @cached_property
    def drawn(self) -> dict[int, NDArray[Any]]:
        """Tiles' :func:`drawn_table` already built in this process (a tile's table is used
        by every tile its halo reaches)."""
        return {}


#: Most tables :attr:`ComposeJob.drawn` keeps (a few KiB each) before starting afresh.
DRAWN_CACHE = 4096


def drawn_table(job: ComposeJob, index: int) -> NDArray[Any]:
    """Table ``local label -> final label`` of tile ``index`` where the tile draws that
    object itself, else 0 (it yields to the object's owner)."""
    table = job.drawn.get(index)
    if table is None:
        lut, kept = _tables(job, index)
        table = np.where(kept, lut, 0).astype(job.dtype, copy=False)
        if len(job.drawn) >= DRAWN_CACHE:
            job.drawn.clear()
        job.drawn[index] = table
    return table


def _tables(job: ComposeJob, index: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Lookup tables ``local label -> final label`` and ``local label -> owned here``."""
    start, n_local = int(job.label_map.offsets[index]), job.label_map.n_local(index)
    lut = job.label_map.lut(index, n_local, job.dtype)
    kept = np.ones(n_local + 1, dtype=bool)
    kept[0] = False
    lo = np.searchsorted(job.not_kept, start + 1)
    hi = np.searchsorted(job.not_kept, start + n_local, side="right")
    kept[job.not_kept[lo:hi] - start] = False
    return lut, kept


def reaching_tiles(plan: TilePlan, tile: Tile) -> list[Tile]:
    """Other tiles whose halo box covers part of ``tile``'s core, nearest first."""
    found = []
    for step in _reaching_steps(plan.halo, plan.tile_shape):
        position = tuple(p + s for p, s in zip(tile.position, step, strict=True))
        if all(0 <= p < g for p, g in zip(position, plan.grid, strict=True)):
            found.append(plan.tile(plan.index(position)))
    return found


@functools.lru_cache(maxsize=16)
def _reaching_steps(
    halo: tuple[int, ...], tile_shape: tuple[int, ...]
) -> tuple[tuple[int, ...], ...]:
    """Grid steps to the tiles whose halo may cover a tile's core, nearest first."""
    reach = [math.ceil(h / t) if h else 0 for h, t in zip(halo, tile_shape, strict=True)]
    return tuple(
        sorted(
            (s for s in itertools.product(*(range(-r, r + 1) for r in reach)) if any(s)),
            key=lambda s: (sum(abs(v) for v in s), s),
        )
    )


def compose_tile(job: ComposeJob, index: int) -> NDArray[Any]:
    """Final labels of tile ``index``'s core, drawn by each object's owner.

    A voxel is claimed once it holds a label (final labels are never 0), so each
    prediction in turn fills only the voxels still 0: the tile's own kept objects, then
    its neighbours' (nearest first), then the rest of its own, each through one table
    ``local label -> final label if kept there, else 0``.
    """
    seams, plan = job.seams, job.seams.plan
    tile = plan.tile(index)
    own = None
    out: NDArray[Any]
    if job.label_map.n_local(index):
        own = seams.read(tile, tile.core)
        out = drawn_table(job, index)[own]
    else:
        out = np.zeros(tile.core_shape, dtype=job.dtype)
    for other in reaching_tiles(plan, tile):
        if not job.label_map.n_local(other.index):
            continue
        box = tuple(
            slice(max(c.start, h.start), min(c.stop, h.stop))
            for c, h in zip(tile.core, other.halo_box, strict=True)
        )
        if any(b.stop <= b.start for b in box):
            continue
        theirs = seams.read(other, box)
        region = out[
            tuple(
                slice(b.start - c.start, b.stop - c.start)
                for b, c in zip(box, tile.core, strict=True)
            )
        ]
        np.copyto(region, drawn_table(job, other.index)[theirs], where=region == 0)
    if own is not None:
        lut = job.label_map.lut(index, job.label_map.n_local(index), job.dtype)
        np.copyto(out, lut[own], where=out == 0)
    return out


def present_tile(job: ComposeJob, index: int) -> tuple[NDArray[Any], int]:
    """Zone objects' final labels present in tile ``index`` and its largest label."""
    out = compose_tile(job, index)
    return np.intersect1d(out, job.candidates), int(out.max()) if out.size else 0


def write_composed_tile(job: ComposeJob, index: int) -> tuple[NDArray[Any], int]:
    """Compose tile ``index`` and write it to ``job.output``; report as :func:`present_tile`."""
    out = compose_tile(job, index)
    plan = job.seams.plan
    position = plan.position(index)
    write_tile(job.output, job.output_io, position, plan.core(position), out)
    return np.intersect1d(out, job.candidates), int(out.max()) if out.size else 0


def _compose_chunk(block: NDArray[Any], job: ComposeJob, block_info: Any = None) -> NDArray[Any]:
    position = block_info[0]["chunk-location"]
    return compose_tile(job, job.seams.plan.index(position))


@dataclass(frozen=True)
class Stitched:
    """Result of the IoU merge tables: the label map and how to draw the output."""

    job: ComposeJob

    @property
    def info(self) -> dict[str, Any]:
        return {}

    @property
    def label_map(self) -> LabelMap:
        return self.job.label_map

    def lazy(self, *, with_ids: bool = True) -> Any:
        """A dask array of final labels, composed on the fly (one chunk per tile)."""
        import dask.array as da

        plan = self.job.seams.plan
        anchor = da.from_zarr(self.job.seams.anchor).rechunk(plan.tile_shape)  # type: ignore[no-untyped-call]  # dask: unannotated
        return anchor.map_blocks(
            _compose_chunk,
            job=self.job,
            dtype=self.job.dtype,
            meta=np.empty((0,) * plan.ndim, dtype=self.job.dtype),
        )

    def with_label_map(self, label_map: LabelMap) -> Stitched:
        """The same owners drawing with ``label_map`` (e.g. with size filters)."""
        return Stitched(job=dataclasses.replace(self.job, label_map=label_map))

    def measure(self, executor: Any, measure: Any) -> Any:
        """The final objects' statistics (see :mod:`._iou_objects`)."""
        return measure_composed(executor, self.job, measure, compose_tile)

    def write(self, executor: Any, output: Any) -> LabelMap:
        """Compose and write every tile; return the label map with exact counts."""
        job = dataclasses.replace(self.job, output=output)
        reports = executor.map(
            write_composed_tile, job, range(job.seams.plan.n_tiles), desc="relabel"
        )
        if job.label_map.sequential:  # absent IDs were already dropped: counts are exact
            return job.label_map
        present = _union(r[0] for r in reports)
        absent = np.setdiff1d(job.candidates, present).size
        return dataclasses.replace(
            job.label_map,
            n_labels=int(job.label_map.n_labels - absent),
            max_label=max((r[1] for r in reports), default=0),
        )


def _union(parts: Any) -> NDArray[Any]:
    parts = [p for p in parts if p.size]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def decide_owners(
    seams: Any,
    executor: Any,
    counts: NDArray[Any],
    matches: list[Any],
    *,
    sequential: bool,
    dtype: Any,
) -> Stitched:
    """Join matched objects, pick owners and (if sequential) drop absent IDs."""
    dtype = np.dtype(dtype)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = provisional_offsets(counts)
    matches = sorted(matches, key=lambda m: m.index)
    pairs = [m.pairs for m in matches if m.pairs.size]
    zone_ids = np.concatenate(
        [offsets[m.index] + m.zone_labels for m in matches] or [np.empty(0, np.int64)]
    )
    zone_core = np.concatenate([m.core_sizes for m in matches] or [np.empty(0, np.int64)])
    zone_size = np.concatenate([m.sizes for m in matches] or [np.empty(0, np.int64)])

    gappy = build_label_map(
        counts,
        np.concatenate(pairs) if pairs else EMPTY_PAIRS,
        sequential=False,
        dtype="int64" if sequential else dtype,
    )
    nodes, roots = gappy.boundary_ids, gappy.boundary_final
    node_core = zone_core[np.searchsorted(zone_ids, nodes)]
    order = np.lexsort((nodes, -node_core, roots))
    first = np.ones(order.size, dtype=bool)
    first[1:] = roots[order][1:] != roots[order][:-1]
    not_owner = np.setdiff1d(nodes, nodes[order][first])
    # A joined object whose voxels lie mostly outside the cores of the tiles that saw it
    # belongs to the tiles whose cores hold it: none of its members is kept.
    group, member = np.unique(roots, return_inverse=True)
    in_cores = np.bincount(member, weights=node_core, minlength=group.size)
    size = np.zeros(group.size, dtype=np.int64)
    np.maximum.at(size, member, zone_size[np.searchsorted(zone_ids, nodes)])
    outside = nodes[(2 * in_cores < size)[member]]
    not_owner = np.union1d(not_owner, outside)
    matched = np.isin(zone_ids, nodes)
    weak = ~matched & (2 * zone_core < zone_size)
    not_kept = np.union1d(not_owner, zone_ids[weak])
    finals = zone_ids.copy()
    finals[matched] = roots[np.searchsorted(nodes, zone_ids[matched])]
    candidates = np.unique(finals)

    job = ComposeJob(
        seams=seams,
        label_map=gappy,
        not_kept=not_kept,
        candidates=candidates,
        dtype=dtype,
    )
    if sequential:
        reports = executor.map(present_tile, job, range(seams.plan.n_tiles), desc="owners")
        absent = np.setdiff1d(candidates, _union(r[0] for r in reports))
        job = dataclasses.replace(job, label_map=_without(gappy, absent, dtype))
    return Stitched(job=job)


def _without(gappy: LabelMap, absent: NDArray[Any], dtype: np.dtype[Any]) -> LabelMap:
    """Sequential map that skips the provisional IDs of objects absent from the output."""
    total = int(gappy.offsets[-1])
    dropped = np.union1d(gappy.merged_away, absent)
    n_labels = total - dropped.size
    check_label_count(n_labels, dtype, f"the merged image has {n_labels} objects")
    roots = gappy.boundary_final
    return LabelMap(
        offsets=gappy.offsets,
        boundary_ids=gappy.boundary_ids,
        boundary_final=roots - np.searchsorted(dropped, roots),
        merged_away=dropped,
        sequential=True,
        n_labels=n_labels,
        max_label=n_labels,
    )
