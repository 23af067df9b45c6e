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
from typing import Any, ClassVar, cast

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.faces import EMPTY_PAIRS
from patchworks._engine.local import tag, to_local_labels
from patchworks._engine.merge import MergeInputs
from patchworks._engine.overlap import check_iou_halo
from patchworks._engine.tiles import TileJob, TileSummary
from patchworks._fs import remove_tree
from patchworks._plan import Box, Tile, TilePlan
from patchworks.errors import InvalidParameterError
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

    def stage(
        self, job: TileJob, tile: Tile, labels: NDArray[Any], top: int, image: Any = None
    ) -> TileSummary:
        """Tile-stage hook: renumber a tile's halo labels (largest ``top``) to ``1..n``
        and stage them. (Objects are measured once the owners are composed, not here.)"""
        local = to_local_labels(labels, job.labels_dtype, tile, top=top)
        if local.n:
            halo = local.whole().astype(HALO_DTYPE, copy=False)
            self.halos[self.slot(tile, tile.halo_box)] = halo
        return TileSummary(index=tile.index, n_local=local.n)

    def slot(self, tile: Tile, box: Box) -> tuple[Any, ...]:
        """Index into :attr:`halos` of the image box ``box`` (inside ``tile.halo_box``)."""
        inner = tuple(
            slice(b.start - h.start, b.stop - h.start)
            for b, h in zip(box, tile.halo_box, strict=True)
        )
        return (*tile.position, *inner)

    def read(self, tile: Tile, box: Box) -> NDArray[Any]:
        """Local labels that ``tile`` predicted over the image box ``box``."""
        return np.asarray(self.halos[self.slot(tile, box)])

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


def match_labels(a: NDArray[Any], b: NDArray[Any], threshold: float) -> NDArray[Any]:
    """One-to-one best matches between two label arrays of the same box.

    Pairs ``(label in a, label in b)`` whose masks have IoU >= ``threshold``, taken greedily
    from the highest IoU down so that each label is used at most once (ties: smaller
    labels first). Background (0) is never matched.

    Examples
    --------
    >>> a = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> b = np.array([[5, 5, 5, 5], [3, 3, 0, 4]])
    >>> match_labels(a, b, 0.3).tolist()
    [[1, 3], [2, 5]]
    """
    a = np.asarray(a).ravel().astype(np.uint64)
    b = np.asarray(b).ravel().astype(np.uint64)
    both = (a > 0) & (b > 0)
    if not both.any():
        return EMPTY_PAIRS
    keys, inter = np.unique((a[both] << np.uint64(32)) | b[both], return_counts=True)
    left = (keys >> np.uint64(32)).astype(np.int64)
    right = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    a_ids, a_sizes = np.unique(a[a > 0], return_counts=True)
    b_ids, b_sizes = np.unique(b[b > 0], return_counts=True)
    size_a = a_sizes[np.searchsorted(a_ids, left)]
    size_b = b_sizes[np.searchsorted(b_ids, right)]
    iou = inter / (size_a + size_b - inter)
    good = iou >= threshold
    left, right, iou = left[good], right[good], iou[good]
    order = np.lexsort((right, left, -iou))
    used_a: set[int] = set()
    used_b: set[int] = set()
    found = []
    for la, lb in zip(left[order].tolist(), right[order].tolist(), strict=True):
        if la not in used_a and lb not in used_b:
            used_a.add(la)
            used_b.add(lb)
            found.append((la, lb))
    if not found:
        return EMPTY_PAIRS
    return np.array(sorted(found), dtype=np.int64)


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


def _in_core(tile: Tile, box: Box, labels: NDArray[Any]) -> NDArray[Any]:
    """Labels of ``labels`` (read over ``box``) that have voxels in ``tile``'s core."""
    inner = tuple(
        slice(max(c.start, b.start) - b.start, max(min(c.stop, b.stop) - b.start, 0))
        for c, b in zip(tile.core, box, strict=True)
    )
    found = np.unique(labels[inner])
    return cast("NDArray[Any]", found[found > 0])


def match_tile(job: MatchJob, index: int) -> TileMatches:
    """Match tile ``index`` with every lower neighbour inside their common zone."""
    seams, plan = job.seams, job.seams.plan
    tile = plan.tile(index)
    labels = seams.read(tile, tile.halo_box)
    n_labels = int(job.counts[index])
    sizes = np.bincount(labels.ravel(), minlength=n_labels + 1)
    core_sizes = np.bincount(labels[tile.crop].ravel(), minlength=n_labels + 1)
    outside = np.ones(labels.shape, dtype=bool)
    inner = tuple(
        slice(i.start - h.start, i.stop - h.start)
        for i, h in zip(inner_box(plan, tile), tile.halo_box, strict=True)
    )
    outside[inner] = False
    zone_labels = np.unique(labels[outside])
    zone_labels = zone_labels[zone_labels > 0].astype(np.int64)

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
        mine = tuple(
            slice(b.start - h.start, b.stop - h.start)
            for b, h in zip(boxes[0], tile.halo_box, strict=True)
        )
        theirs = seams.read(other, boxes[1])
        # Only predictions that reach into their own tile's core may be joined: an object
        # a tile sees only in its halo is seen better by the tile whose core holds it, and
        # joining through such half-seen objects would chain distinct cells together.
        ours = labels[mine]
        ours = np.where(core_sizes[ours] > 0, ours, 0)
        theirs = np.where(np.isin(theirs, _in_core(other, boxes[1], theirs)), theirs, 0)
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
