"""Stitching by agreement (``stitch="iou"``): match neighbouring tiles' predictions.

With ``stitch="iou"`` each tile keeps ``fn``'s labels over its whole halo box (core plus
``overlap``), not only over its core. Two neighbouring tiles therefore both predict the
*zone* where their halo boxes overlap: a slab ``2 * overlap`` wide around the face between
their cores, and a small box around each edge and corner where diagonal neighbours meet.

Each tile compares its labels with each lower neighbour's labels inside their common zone
and pairs objects whose masks agree there (IoU >= ``iou_threshold``, one-to-one best
matches). Only these pairs and a short table per tile (size of each object that reaches a
zone, in the core and in total) go back to the client; the voxels stay on disk. Two
distinct cells pressed together at a seam do not agree with anything but themselves, so
they stay two; one cell seen by both tiles agrees with itself, so it becomes one.

Along an axis with no halo (``overlap`` 0 there, e.g. one plane per tile), the zone is the
pair of facing core planes, compared plane against plane as Cellpose stitches 2-D masks
into 3-D.

Who draws each object's final shape in the zones is decided by :mod:`._owners`.
"""

from __future__ import annotations

import itertools
import numbers
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.faces import EMPTY_PAIRS
from patchworks._engine.local import tag, to_local_labels
from patchworks._engine.merge import MergeInputs
from patchworks._engine.overlap import check_iou_halo
from patchworks._engine.tiles import TileJob, TileSummary
from patchworks._fs import remove_tree
from patchworks._plan import Box, Tile, TilePlan
from patchworks._store.halostore import HaloIO
from patchworks.errors import InvalidParameterError
from patchworks.stitch._match import match_labels
from patchworks.stitch._owners import Stitched, decide_owners

HALO_DTYPE = np.dtype("uint32")


@dataclass(frozen=True)
class IoU:
    """Join labels only where neighbouring tiles' predictions agree.

    Each tile keeps ``fn``'s labels over its whole halo box; two objects of neighbouring
    tiles are one when their masks agree inside the zone both tiles predict (IoU at least
    ``threshold``, one-to-one best matches), so two distinct cells pressed together at a
    seam stay two. Needs ``overlap`` of about one object diameter (docs/stitching.md).

    Parameters
    ----------
    threshold : float
        Smallest IoU, inside a zone, at which two predictions are the same object.

    Examples
    --------
    >>> IoU(threshold=0.3).threshold
    0.3
    >>> IoU(threshold=0)
    Traceback (most recent call last):
    ...
    patchworks.errors.InvalidParameterError: `iou_threshold` must be a number in (0, 1]; got 0.
    """

    threshold: float = 0.5
    name: ClassVar[str] = "iou"
    keeps_halo: ClassVar[bool] = True

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not 0 < float(t) <= 1:
            raise InvalidParameterError(f"`iou_threshold` must be a number in (0, 1]; got {t!r}.")

    def check_halo(
        self, halo: tuple[int, ...], overlap: Any, tile_shape: tuple[int, ...], shape: Any
    ) -> None:
        check_iou_halo(halo, overlap, tile_shape, shape)

    def begin(self, plan: TilePlan, scratch: str, *, anchor: Any = None) -> IoUSeams:
        """Create the halo store in ``scratch`` (or reuse a resumed run's, if it fits)."""
        import zarr

        box = tuple(
            min(t + 2 * h, n)
            for t, h, n in zip(plan.tile_shape, plan.halo, plan.shape, strict=True)
        )
        path = os.path.join(scratch, "halos.zarr")
        shape, chunks = (*plan.grid, *box), (1,) * plan.ndim + box
        threshold = float(self.threshold)
        if os.path.exists(path):  # resume=True: an interrupted run's halos, if they fit
            halos = zarr.open_array(path, mode="r+")
            if halos.shape == shape and halos.chunks == chunks:
                return IoUSeams(plan=plan, halos=halos, iou_threshold=threshold, anchor=anchor)
            remove_tree(path)
        halos = zarr.create_array(
            store=path, shape=shape, chunks=chunks, dtype=HALO_DTYPE, fill_value=0, write_data=True
        )
        return IoUSeams(plan=plan, halos=halos, iou_threshold=threshold, anchor=anchor)


@dataclass(frozen=True)
class IoUSeams:
    """Staged halo predictions of one ``stitch="iou"`` run (picklable, shipped once).

    Attributes
    ----------
    plan : TilePlan
        The tiles; ``plan.halo`` is the overlap each tile was predicted with.
    halos : zarr.Array
        Local labels over every tile's halo box, one chunk per tile, indexed by the tile's
        grid position followed by the box.
    iou_threshold : float
        Smallest IoU, inside a zone, at which two predictions are the same object.
    anchor : zarr.Array
        The run's output-shaped label array (chunks = tiles), which backs a lazy result.
    """

    plan: TilePlan
    halos: Any
    iou_threshold: float
    anchor: Any = None

    @cached_property
    def halo_io(self) -> HaloIO | None:
        """Direct piecewise access to :attr:`halos` (None: read and write through zarr)."""
        return HaloIO.of(self.halos)

    def stage(
        self, job: TileJob, tile: Tile, labels: NDArray[Any], top: int, image: Any = None
    ) -> TileSummary:
        """Tile-stage hook: renumber a tile's halo labels (largest ``top``) to ``1..n``
        and stage them. (Objects are measured once the owners are composed, not here.)"""
        local = to_local_labels(labels, job.labels_dtype, tile, top=top)
        if local.n:
            io = self.halo_io
            if io is None:
                halo = local.whole().astype(HALO_DTYPE, copy=False)
                self.halos[self.slot(tile, tile.halo_box)] = halo
            else:  # cut where the zones with its neighbours end: they read only those
                inner = inner_box(self.plan, tile)
                cuts = tuple(
                    (i.start - h.start, i.stop - h.start)
                    for i, h in zip(inner, tile.halo_box, strict=True)
                )
                io.write(tile.position, local.whole(), cuts, local.n)
        return TileSummary(index=tile.index, n_local=local.n)

    def slot(self, tile: Tile, box: Box) -> tuple[Any, ...]:
        """Index into :attr:`halos` of the image box ``box`` (inside ``tile.halo_box``)."""
        return (*tile.position, *_relative(box, tile.halo_box))

    def read(self, tile: Tile, box: Box) -> NDArray[Any]:
        """Local labels that ``tile`` predicted over the image box ``box``."""
        io = self.halo_io
        if io is None:
            return np.asarray(self.halos[self.slot(tile, box)])
        return io.read(tile.position, _relative(box, tile.halo_box))

    def join(self, inputs: MergeInputs) -> Stitched:
        """Match neighbouring predictions and decide owners (:mod:`._owners`)."""
        job = MatchJob(seams=self, counts=inputs.counts)
        matches = inputs.executor.map(match_tile, job, inputs.occupied, desc="seams")
        return decide_owners(
            self,
            inputs.executor,
            inputs.counts,
            matches,
            sequential=inputs.sequential,
            dtype=inputs.dtype,
        )


def zone(plan: TilePlan, tile: Tile, other: Tile) -> tuple[Box, Box] | None:
    """Boxes of the zone two tiles both predict: ``(box in tile, box in other)``.

    Along axes with a halo both boxes are the same image box (the overlap of the halo
    boxes); along an axis without one they are the two facing core planes.

    Examples
    --------
    >>> plan = TilePlan(shape=(8, 8), tile_shape=(4, 4), halo=(1, 0))
    >>> zone(plan, plan.tile(2), plan.tile(0))  # tile 0 is above tile 2
    ((slice(3, 5, None), slice(0, 4, None)), (slice(3, 5, None), slice(0, 4, None)))
    >>> zone(plan, plan.tile(1), plan.tile(0))  # side by side, no halo along columns
    ((slice(0, 5, None), slice(4, 5, None)), (slice(0, 5, None), slice(3, 4, None)))
    """
    mine, theirs = [], []
    for axis in range(plan.ndim):
        step = other.position[axis] - tile.position[axis]
        if step == 0 or plan.halo[axis] > 0:
            lo = max(tile.halo_box[axis].start, other.halo_box[axis].start)
            hi = min(tile.halo_box[axis].stop, other.halo_box[axis].stop)
            if hi <= lo:
                return None
            mine.append(slice(lo, hi))
            theirs.append(slice(lo, hi))
        elif abs(step) > 1:
            return None
        elif step < 0:
            start, below = tile.core[axis].start, other.core[axis].stop - 1
            mine.append(slice(start, start + 1))
            theirs.append(slice(below, below + 1))
        else:
            stop, above = tile.core[axis].stop - 1, other.core[axis].start
            mine.append(slice(stop, stop + 1))
            theirs.append(slice(above, above + 1))
    return tuple(mine), tuple(theirs)


def inner_box(plan: TilePlan, tile: Tile) -> Box:
    """The part of ``tile``'s core that no neighbour predicts (outside every zone)."""
    box = []
    for axis in range(plan.ndim):
        reach = max(plan.halo[axis], 1)
        core, halo = tile.core[axis], tile.halo_box[axis]
        lo = core.start + reach if tile.position[axis] > 0 else halo.start
        hi = core.stop - reach if tile.position[axis] < plan.grid[axis] - 1 else halo.stop
        box.append(slice(lo, max(lo, hi)))
    return tuple(box)


@dataclass(frozen=True)
class MatchJob:
    """Everything a worker needs to match a tile with its neighbours."""

    seams: IoUSeams
    counts: NDArray[Any]


@dataclass(frozen=True)
class TileMatches:
    """What the client learns about one tile's zones (sizes proportional to its zones).

    ``pairs`` are tagged label pairs matched with lower neighbours; ``zone_labels`` are the
    tile's local labels that reach a zone, with their voxel counts in the core and in the
    whole halo box.
    """

    index: int
    pairs: NDArray[Any]
    zone_labels: NDArray[Any]
    core_sizes: NDArray[Any]
    sizes: NDArray[Any]


def lower_offsets(ndim: int) -> list[tuple[int, ...]]:
    """Neighbour offsets whose first non-zero step is -1 (each pair of tiles once).

    Examples
    --------
    >>> lower_offsets(2)
    [(-1, -1), (-1, 0), (-1, 1), (0, -1)]
    """
    steps = itertools.product((-1, 0, 1), repeat=ndim)
    return [s for s in steps if any(s) and s[next(i for i, v in enumerate(s) if v)] < 0]


def _relative(box: Box, within: Box) -> Box:
    """``box`` (image coordinates) relative to the start of ``within``."""
    return tuple(
        slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, within, strict=True)
    )


def _in_core(tile: Tile, box: Box, labels: NDArray[Any]) -> NDArray[np.bool_]:
    """Which labels (indexed by label) of ``labels`` (read over ``box``) have voxels in
    ``tile``'s core."""
    inner = tuple(
        slice(max(c.start, b.start) - b.start, max(min(c.stop, b.stop) - b.start, 0))
        for c, b in zip(tile.core, box, strict=True)
    )
    found = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=bool)
    found[labels[inner].ravel()] = True
    found[0] = False
    return found


def match_tile(job: MatchJob, index: int) -> TileMatches:
    """Match tile ``index`` with every lower neighbour inside their common zone."""
    seams, plan = job.seams, job.seams.plan
    tile = plan.tile(index)
    labels = seams.read(tile, tile.halo_box)
    n_labels = int(job.counts[index])
    sizes = np.bincount(labels.ravel(), minlength=n_labels + 1)
    core_sizes = np.bincount(labels[tile.crop].ravel(), minlength=n_labels + 1)
    inner = _relative(inner_box(plan, tile), tile.halo_box)
    in_inner = np.bincount(labels[inner].ravel(), minlength=n_labels + 1)
    zone_labels = np.flatnonzero(sizes > in_inner)
    zone_labels = zone_labels[zone_labels > 0].astype(np.int64)
    in_own_core = core_sizes > 0

    found = []
    for step in lower_offsets(plan.ndim):
        if any(step[b] for b in plan.separate):
            continue  # never matched across a separate axis (another time point)
        position = tuple(p + s for p, s in zip(tile.position, step, strict=True))
        if any(not 0 <= p < g for p, g in zip(position, plan.grid, strict=True)):
            continue
        other = plan.tile(plan.index(position))
        if not job.counts[other.index]:
            continue
        boxes = zone(plan, tile, other)
        if boxes is None:
            continue
        theirs = seams.read(other, boxes[1])
        # Only predictions that reach into their own tile's core may be joined: an object
        # a tile sees only in its halo is seen better by the tile whose core holds it, and
        # joining through such half-seen objects would chain distinct cells together.
        ours = labels[_relative(boxes[0], tile.halo_box)]
        ours = ours * in_own_core[ours]
        theirs = theirs * _in_core(other, boxes[1], theirs)[theirs]
        matched = match_labels(ours, theirs, seams.iou_threshold)
        if matched.size:
            found.append(
                np.stack([tag(index, matched[:, 0]), tag(other.index, matched[:, 1])], axis=1)
            )
    return TileMatches(
        index=index,
        pairs=np.concatenate(found) if found else EMPTY_PAIRS,
        zone_labels=zone_labels,
        core_sizes=core_sizes[zone_labels].astype(np.int64),
        sizes=sizes[zone_labels].astype(np.int64),
    )
