"""Stage 3 — faces: find labels that touch across the boundaries between tile cores.

The work is split by *boundary plane*: for each axis and each grid row ``k > 0`` along
it, the ``lo`` face slabs of the tiles in row ``k`` (the *upper* side) meet the ``hi``
slabs of the tiles in row ``k - 1`` (the *lower* side). A task assembles both sides over a
block of that plane (:data:`BLOCK_VOXELS` at most; most images need one block per plane)
and finds every pair of nonzero voxels that touch across it — straight across, and
diagonally when ``connectivity`` allows — with whole-array NumPy operations. Two touching
voxels in different tiles differ by one along some axis where their tiles differ, so every
such pair is seen by some task (a pair across an edge may be seen twice; that is harmless).
Only face slabs are read, with positioned reads from the face store (:mod:`._facestore`).

Labels are *tagged* as ``tile_index << 32 | local_label`` so the client can turn them into
provisional IDs once it knows how many labels each tile holds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from patchworks._engine.local import tag
from patchworks._plan import TilePlan
from patchworks._store.facestore import SLAB_DTYPE, FaceIndex, FaceReader, FaceStore

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

EMPTY_PAIRS = np.empty((0, 2), dtype=np.int64)
#: Voxels of one side of a boundary plane that one task assembles (1 MiB of uint32; with
#: its masks, indices and pairs a task stays under about 20 MiB whatever the image size).
BLOCK_VOXELS = 1 << 18

_Int = TypeVar("_Int", bound=np.integer[Any])


@dataclass(frozen=True)
class FaceTask:
    """The tiles ``start..stop`` (grid positions) of a plane: row ``start[axis]`` is the
    upper side, the row below it the lower side."""

    axis: int
    start: tuple[int, ...]
    stop: tuple[int, ...]


@dataclass(frozen=True)
class FaceJob:
    """Everything a worker needs to find touching pairs; shipped once per run."""

    plan: TilePlan
    store: FaceStore
    index: FaceIndex
    connectivity: int
    tasks: tuple[FaceTask, ...]


def cross_offsets(ndim: int, axis: int, connectivity: int) -> list[tuple[int, ...]]:
    """Offsets (on the other axes) to a neighbour one step down ``axis``.

    A neighbour differs by one along ``axis``; ``connectivity`` bounds how many axes in
    total may differ, as in :func:`scipy.ndimage.generate_binary_structure`.

    Examples
    --------
    >>> cross_offsets(2, 0, 1)
    [(0,)]
    >>> cross_offsets(2, 0, 2)
    [(-1,), (0,), (1,)]
    >>> len(cross_offsets(3, 1, 2)), len(cross_offsets(3, 1, 3))
    (5, 9)
    """
    others = ndim - 1
    return [
        delta
        for delta in itertools.product((-1, 0, 1), repeat=others)
        if sum(d != 0 for d in delta) <= connectivity - 1
    ]


def plan_face_tasks(
    plan: TilePlan, counts: ArrayLike, connectivity: int, *, block_voxels: int | None = None
) -> tuple[FaceTask, ...]:
    """The face tasks of a run: every block of every boundary plane where both sides can
    hold labels (``counts`` per tile).

    Examples
    --------
    >>> plan = TilePlan((8, 8), (4, 4), (0, 0))
    >>> [(t.axis, t.start, t.stop) for t in plan_face_tasks(plan, np.ones(4), 1)]
    [(0, (1, 0), (2, 2)), (1, (0, 1), (2, 2))]
    """
    occupied = np.asarray(counts).reshape(plan.grid) > 0
    margin = 1 if connectivity > 1 else 0  # diagonal neighbours reach one tile further
    tasks = []
    for axis in range(plan.ndim):
        if axis in plan.separate:
            continue  # never joined across (each time point on its own)
        for block in _blocks(plan, axis, block_voxels or BLOCK_VOXELS):
            for row in range(1, plan.grid[axis]):
                upper = tuple(
                    slice(row, row + 1) if b == axis else slice(lo, hi)
                    for b, (lo, hi) in enumerate(block)
                )
                lower = tuple(
                    slice(row - 1, row) if b == axis else slice(max(lo - margin, 0), hi + margin)
                    for b, (lo, hi) in enumerate(block)
                )
                if occupied[upper].any() and occupied[lower].any():
                    start = tuple(s.start for s in upper)
                    tasks.append(FaceTask(axis, start, tuple(s.stop for s in upper)))
    return tuple(tasks)


def _blocks(plan: TilePlan, axis: int, block_voxels: int) -> list[list[tuple[int, int]]]:
    """Tile ranges that cut a plane across ``axis`` into blocks of at most
    ``block_voxels`` voxels (or single tiles); ``axis`` itself gets a placeholder."""
    others = [b for b in range(plan.ndim) if b != axis]
    per_block = {b: plan.grid[b] for b in others}
    while math.prod(per_block[b] * plan.tile_shape[b] for b in others) > block_voxels:
        wide = [b for b in others if per_block[b] > 1]
        if not wide:
            break
        b = max(wide, key=lambda b: per_block[b] * plan.tile_shape[b])
        per_block[b] = -(-per_block[b] // 2)
    ranges = [
        [(0, 1)]
        if b == axis
        else [
            (s, min(s + per_block[b], plan.grid[b])) for s in range(0, plan.grid[b], per_block[b])
        ]
        for b in range(plan.ndim)
    ]
    return [list(block) for block in itertools.product(*ranges)]


def _assemble(
    job: FaceJob,
    reader: FaceReader,
    axis: int,
    row: int,
    side: Literal["lo", "hi"],
    box: list[tuple[int, int]],
) -> NDArray[np.uint32] | None:
    """The ``side`` slabs of the tiles in grid ``row`` along ``axis``, over the voxel
    ``box`` of the other axes, as one array (length 1 along ``axis``); None if empty."""
    plan = job.plan
    strides = plan.strides
    # Per axis, for every tile the box touches: (grid position * stride, part of the slab
    # inside the box, where that part goes in the box).
    pieces = []
    for b, (lo, hi) in enumerate(box):
        if b == axis:
            pieces.append([(row * strides[b], slice(0, 1), slice(0, 1))])
            continue
        t, n = plan.tile_shape[b], plan.shape[b]
        axis_pieces = []
        for p in range(lo // t, -(-hi // t)):
            start, stop = p * t, min(p * t + t, n)
            inner = max(start, lo), min(stop, hi)
            axis_pieces.append(
                (
                    p * strides[b],
                    slice(inner[0] - start, inner[1] - start),
                    slice(inner[0] - lo, inner[1] - lo),
                )
            )
        pieces.append(axis_pieces)
    out = np.zeros(tuple(hi - lo for lo, hi in box), dtype=SLAB_DTYPE)
    found = False
    for combo in itertools.product(*pieces):
        slab = reader.slab(sum(c[0] for c in combo), axis, side)
        if slab is not None:  # the tile holds labels (its slabs may still be all 0)
            out[tuple(c[2] for c in combo)] = slab[tuple(c[1] for c in combo)]
            found = True
    return out if found else None


def plane_pairs(job: FaceJob, task_index: int) -> NDArray[np.int64]:
    """Distinct tagged label pairs that touch across one face task's block of a plane."""
    plan = job.plan
    task = job.tasks[task_index]
    axis, row = task.axis, task.start[task.axis]
    others = [b for b in range(plan.ndim) if b != axis]
    upper_box = [
        (0, 1) if b == axis else (lo * t, min(hi * t, n))
        for b, (lo, hi, t, n) in enumerate(
            zip(task.start, task.stop, plan.tile_shape, plan.shape, strict=True)
        )
    ]
    margin = 1 if job.connectivity > 1 else 0
    lower_box = [
        (0, 1) if b == axis else (max(lo - margin, 0), min(hi + margin, plan.shape[b]))
        for b, (lo, hi) in enumerate(upper_box)
    ]
    with job.store.reader(job.index) as reader:
        upper = _assemble(job, reader, axis, row, "lo", upper_box)
        lower = None if upper is None else _assemble(job, reader, axis, row - 1, "hi", lower_box)
    if upper is None or lower is None:
        return EMPTY_PAIRS
    strides = plan.strides
    last = others[-1] if others else None  # repeats are dropped along this axis
    found = []
    for delta in cross_offsets(plan.ndim, axis, job.connectivity):
        if any(d and b in plan.separate for b, d in zip(others, delta, strict=True)):
            continue  # a diagonal step across a separate axis (another time point)
        up_box, down_box = [slice(0, 1)] * plan.ndim, [slice(0, 1)] * plan.ndim
        origin = {}
        for b, d in zip(others, delta, strict=True):
            lo = max(upper_box[b][0], lower_box[b][0] - d)
            hi = min(upper_box[b][1], lower_box[b][1] - d)
            up_box[b] = slice(lo - upper_box[b][0], hi - upper_box[b][0])
            down_box[b] = slice(lo + d - lower_box[b][0], hi + d - lower_box[b][0])
            origin[b] = lo
        up, down = upper[tuple(up_box)], lower[tuple(down_box)]
        touching = (up != 0) & (down != 0)
        if last is not None:
            _drop_repeats(touching, up, down, last, plan.tile_shape[last], origin[last], delta[-1])
        hits = np.nonzero(touching)
        if not hits[0].size:
            continue
        upper_tile = np.full(hits[0].size, row * strides[axis], dtype=np.int64)
        lower_tile = np.full(hits[0].size, (row - 1) * strides[axis], dtype=np.int64)
        for b, d in zip(others, delta, strict=True):
            coord = hits[b] + origin[b]
            upper_tile += coord // plan.tile_shape[b] * strides[b]
            lower_tile += (coord + d) // plan.tile_shape[b] * strides[b]
        pairs = np.stack([tag(upper_tile, up[hits]), tag(lower_tile, down[hits])], axis=1)
        found.append(unique_rows(pairs))
    if not found:
        return EMPTY_PAIRS
    return unique_rows(np.concatenate(found)) if len(found) > 1 else found[0]


def _drop_repeats(
    touching: NDArray[np.bool_],
    up: NDArray[np.integer[Any]],
    down: NDArray[np.integer[Any]],
    along: int,
    tile: int,
    start: int,
    shift: int,
) -> None:
    """Clear ``touching`` where the voxel pair repeats the one before it along ``along``.

    A pair of touching voxels that has the same labels as its predecessor, with neither
    side entering a new tile there, gives the same tagged pair again. Objects cross a
    boundary plane over many voxels, so this keeps a few percent of the touching voxels
    and spares the tagging and sorting of all the others. ``start`` is the plane
    coordinate of index 0 along ``along`` on the upper side, ``shift`` the offset of the
    lower side's voxel, and ``tile`` the tile length there.

    Examples
    --------
    >>> up = np.array([[1, 1, 1, 2, 2]]); down = np.array([[3, 3, 3, 3, 0]])
    >>> touching = (up != 0) & (down != 0)
    >>> _drop_repeats(touching, up, down, 1, 2, 0, 0)
    >>> touching.astype(int).tolist()  # index 2 starts a new tile, index 3 a new label
    [[1, 0, 1, 1, 0]]
    """
    n = up.shape[along]
    if n < 2:
        return
    head = tuple(slice(1, None) if b == along else slice(None) for b in range(up.ndim))
    tail = tuple(slice(None, -1) if b == along else slice(None) for b in range(up.ndim))
    repeat = (up[head] == up[tail]) & (down[head] == down[tail])
    coords = np.arange(start + 1, start + n)
    entering = (coords % tile == 0) | ((coords + shift) % tile == 0)
    repeat[(*(slice(None),) * along, entering)] = False
    touching[head] &= ~repeat


def unique_rows(pairs: NDArray[_Int]) -> NDArray[_Int]:
    """Distinct rows of an (n, 2) integer array, sorted (faster than ``np.unique(axis=0)``).

    Examples
    --------
    >>> unique_rows(np.array([[2, 1], [1, 5], [2, 1]])).tolist()
    [[1, 5], [2, 1]]
    """
    if len(pairs) < 2:
        return pairs
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    keep = np.ones(len(pairs), dtype=np.bool_)
    keep[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
    return pairs[keep]
