"""Stage 3 — faces: find labels that touch across the face between neighbouring cores.

Each tile looks *down* every axis: it pairs the first plane of its own core with the last
plane of the tile below, widened by one voxel on every other axis with the edges of the
diagonal neighbours (edges and corners, when ``connectivity`` allows them). Every pair of
touching voxels in different tiles is examined by exactly one tile, and only face slabs are
read: a task handles a batch of tiles and fetches the face rows of the batch and of its
lower neighbours in one request.

Labels are *tagged* as ``tile_index << 32 | local_label`` so the client can turn them into
provisional IDs once it knows how many labels each tile holds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ._plan import TilePlan
from ._staging import FACE_DTYPE, Staging

TAG_SHIFT = 32
EMPTY_PAIRS = np.empty((0, 2), dtype=np.int64)
#: Tiles per face task: enough to share neighbour reads and amortise task overhead.
FACE_BATCH = 16


@dataclass(frozen=True)
class FaceJob:
    """Everything a worker needs to find touching pairs; shipped once per run.

    ``tiles`` are the sorted indices of the tiles that hold labels (the others have no
    faces); task ``k`` handles ``tiles[k * batch : (k + 1) * batch]``.
    """

    plan: TilePlan
    staging: Staging
    connectivity: int
    tiles: np.ndarray
    batch: int = FACE_BATCH

    @property
    def n_batches(self) -> int:
        return -(-len(self.tiles) // self.batch)

    def holds_labels(self, index: int) -> bool:
        k = int(np.searchsorted(self.tiles, index))
        return k < len(self.tiles) and int(self.tiles[k]) == index


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


def tag(tile_index: np.ndarray | int, local: np.ndarray) -> np.ndarray:
    return (np.asarray(tile_index, dtype=np.int64) << TAG_SHIFT) | local.astype(np.int64)


def _lower_neighbours(job: FaceJob, position: tuple[int, ...], axis: int):
    """Grid positions one step down ``axis`` whose hi slab can touch this tile's core."""
    plan = job.plan
    others = [b for b in range(plan.ndim) if b != axis]
    for delta in cross_offsets(plan.ndim, axis, job.connectivity):
        near = list(position)
        near[axis] -= 1
        for b, d in zip(others, delta, strict=True):
            near[b] += d
        if all(0 <= p < g for p, g in zip(near, plan.grid, strict=True)):
            yield tuple(near)


def _wide_lower(
    job: FaceJob,
    rows: dict[int, np.ndarray],
    position: tuple[int, ...],
    axis: int,
    wide: tuple[slice, ...],
) -> np.ndarray:
    """The hi planes below the core at ``position``, assembled over the ``wide`` box."""
    plan, layout = job.plan, job.staging.layout
    lower = np.zeros(
        tuple(1 if b == axis else w.stop - w.start for b, w in enumerate(wide)), FACE_DTYPE
    )
    for near in _lower_neighbours(job, position, axis):
        row = rows.get(plan.index(near))
        if row is None:
            continue  # a tile without labels
        core = plan.core(near)
        slab = layout.slab(row, axis, "hi", tuple(c.stop - c.start for c in core))
        src, dst = [slice(0, 1)] * plan.ndim, [slice(0, 1)] * plan.ndim
        for b in range(plan.ndim):
            if b != axis:
                lo, hi = max(core[b].start, wide[b].start), min(core[b].stop, wide[b].stop)
                src[b] = slice(lo - core[b].start, hi - core[b].start)
                dst[b] = slice(lo - wide[b].start, hi - wide[b].start)
        lower[tuple(dst)] = slab[tuple(src)]
    return lower


def _pairs_across(
    job: FaceJob, rows: dict[int, np.ndarray], position: tuple[int, ...], axis: int
) -> np.ndarray:
    plan = job.plan
    core = plan.core(position)
    wide = tuple(
        c if b == axis else slice(max(c.start - 1, 0), min(c.stop + 1, plan.shape[b]))
        for b, c in enumerate(core)
    )
    # Both planes keep ``axis`` as a length-1 axis, so 1-D images need no special case.
    upper = job.staging.layout.slab(
        rows[plan.index(position)], axis, "lo", tuple(c.stop - c.start for c in core)
    )
    if not upper.any():
        return EMPTY_PAIRS
    lower = _wide_lower(job, rows, position, axis, wide)
    others = [b for b in range(plan.ndim) if b != axis]
    found = []
    for delta in cross_offsets(plan.ndim, axis, job.connectivity):
        up_box, down_box = [slice(None)] * plan.ndim, [slice(None)] * plan.ndim
        starts = [position[axis] - 1] * plan.ndim  # grid row below, on ``axis``
        for b, d in zip(others, delta, strict=True):
            lo = max(core[b].start, wide[b].start - d)
            hi = min(core[b].stop, wide[b].stop - d)
            up_box[b] = slice(lo - core[b].start, hi - core[b].start)
            down_box[b] = slice(lo + d - wide[b].start, hi + d - wide[b].start)
            starts[b] = lo + d
        up, down = upper[tuple(up_box)], lower[tuple(down_box)]
        hits = np.nonzero((up != 0) & (down != 0))
        if not hits[0].size:
            continue
        # The lower voxel may sit in a diagonal neighbour: find its grid position.
        lower_position = tuple(
            np.full(hits[b].size, starts[b])
            if b == axis
            else (hits[b] + starts[b]) // plan.tile_shape[b]
            for b in range(plan.ndim)
        )
        lower_tiles = np.ravel_multi_index(lower_position, plan.grid)
        # Deduplicate voxel pairs while they are small: one 64-bit key per (up, down) pair
        # of local labels (uint32 each), per lower tile.
        keys = (up[hits].astype(np.uint64) << np.uint64(32)) | down[hits].astype(np.uint64)
        for lower_tile in np.unique(lower_tiles):
            unique = np.unique(keys[lower_tiles == lower_tile])
            found.append(
                np.stack(
                    [
                        tag(plan.index(position), (unique >> np.uint64(32)).astype(np.int64)),
                        tag(lower_tile, (unique & np.uint64(0xFFFFFFFF)).astype(np.int64)),
                    ],
                    axis=1,
                )
            )
    if not found:
        return EMPTY_PAIRS
    return unique_rows(np.concatenate(found))


def unique_rows(pairs: np.ndarray) -> np.ndarray:
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
    keep = np.ones(len(pairs), dtype=bool)
    keep[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
    return pairs[keep]


def batch_pairs(job: FaceJob, batch_index: int) -> np.ndarray:
    """Tagged label pairs touching across the lower faces of the tiles of one batch."""
    plan = job.plan
    batch = job.tiles[batch_index * job.batch : (batch_index + 1) * job.batch]
    wanted = {int(i) for i in batch}
    for index in batch:
        position = plan.position(int(index))
        for axis in range(plan.ndim):
            if position[axis] > 0:
                wanted.update(plan.index(near) for near in _lower_neighbours(job, position, axis))
    rows = job.staging.read_faces(np.array([i for i in wanted if job.holds_labels(i)]))
    pairs: list[np.ndarray] = []
    for index in batch:
        position = plan.position(int(index))
        pairs.extend(
            _pairs_across(job, rows, position, axis)
            for axis in range(plan.ndim)
            if position[axis] > 0
        )
    pairs = [p for p in pairs if p.size]
    if not pairs:
        return EMPTY_PAIRS
    return unique_rows(np.concatenate(pairs)) if len(pairs) > 1 else pairs[0]
