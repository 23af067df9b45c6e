"""patchworks._engine.faces: pairs of labels that touch across tile cores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage as ndi

from patchworks._engine.faces import (
    EMPTY_PAIRS,
    FaceJob,
    FaceTask,
    cross_offsets,
    plan_face_tasks,
    plane_pairs,
    unique_rows,
)
from patchworks._engine.local import TAG_SHIFT, tag
from patchworks._plan import TilePlan
from patchworks._store.facestore import FaceIndex, FaceStore, face_planes


@pytest.mark.parametrize(
    ("ndim", "connectivity"), [(n, c) for n in range(1, 4) for c in range(1, n + 1)]
)
def test_cross_offsets_are_the_structuring_element_one_step_down(ndim, connectivity):
    structure = ndi.generate_binary_structure(ndim, connectivity)
    for axis in range(ndim):
        below = np.take(structure, 0, axis=axis)  # neighbours one step down `axis`
        expected = sorted(tuple(int(d) - 1 for d in where) for where in np.argwhere(below))
        if ndim == 1:
            expected = [()]
        assert sorted(cross_offsets(ndim, axis, connectivity)) == expected


def test_tag_puts_the_tile_above_the_local_label():
    tagged = tag(np.array([0, 1, 70_000]), np.array([5, 1, 2**32 - 1], dtype=np.uint32))
    assert tagged.dtype == np.int64
    assert (tagged >> TAG_SHIFT).tolist() == [0, 1, 70_000]
    assert (tagged & (2**TAG_SHIFT - 1)).tolist() == [5, 1, 2**32 - 1]
    assert tag(3, np.array([1], dtype=np.uint8)).tolist() == [(3 << 32) | 1]


def test_unique_rows_matches_numpy_unique(rng):
    pairs = rng.integers(-5, 6, size=(500, 2))
    np.testing.assert_array_equal(unique_rows(pairs), np.unique(pairs, axis=0))


@pytest.mark.parametrize("pairs", [EMPTY_PAIRS, np.array([[4, 2]])])
def test_unique_rows_of_fewer_than_two_rows_is_unchanged(pairs):
    assert unique_rows(pairs) is pairs


def test_plan_face_tasks_skips_planes_with_an_empty_side():
    plan = TilePlan((8, 8), (4, 4), (0, 0))  # grid (2, 2)
    counts = np.array([3, 0, 0, 0])  # only the top-left tile holds labels
    assert plan_face_tasks(plan, counts, 1) == ()
    counts = np.array([3, 0, 2, 0])  # top-left and bottom-left: one plane across axis 0
    assert plan_face_tasks(plan, counts, 1) == (FaceTask(0, (1, 0), (2, 2)),)


def test_plan_face_tasks_looks_one_tile_further_with_diagonals():
    plan = TilePlan((6, 6), (2, 2), (0, 0))  # grid (3, 3)
    counts = np.zeros((3, 3))
    counts[1, 0] = counts[0, 1] = 1  # diagonal neighbours only
    tasks = plan_face_tasks(plan, counts.ravel(), 2, block_voxels=2)  # one tile per block
    assert FaceTask(0, (1, 0), (2, 1)) in tasks
    assert plan_face_tasks(plan, counts.ravel(), 1, block_voxels=2) == ()


def test_plan_face_tasks_split_planes_into_blocks_that_cover_them():
    plan = TilePlan((9, 10, 7), (3, 2, 4), (0, 0, 0))
    counts = np.ones(plan.n_tiles)
    whole = plan_face_tasks(plan, counts, 1)
    assert len(whole) == sum(g - 1 for g in plan.grid)  # one block per plane
    blocks = plan_face_tasks(plan, counts, 1, block_voxels=8)
    assert len(blocks) > len(whole)
    for axis in range(plan.ndim):
        for row in range(1, plan.grid[axis]):
            covered = np.zeros(plan.grid, dtype=int)
            for task in blocks:
                if task.axis == axis and task.start[axis] == row:
                    box = tuple(slice(a, b) for a, b in zip(task.start, task.stop, strict=True))
                    covered[box] += 1
            plane = np.take(covered, row, axis=axis)
            assert (plane == 1).all()  # every tile of the plane in exactly one block


def _stage_faces(tmp_path, plan, labels):
    """Stage every tile's face slabs (its labels as local labels); tiles of zeros hold none."""
    store = FaceStore.create(str(tmp_path / "faces"))
    refs, counts = [], []
    for tile in plan.tiles():
        core = labels[tile.core]
        top = int(core.max())
        refs.append(store.append(core.shape, face_planes(core), top) if top else None)
        counts.append(top)
    return store, FaceIndex.of(refs), np.array(counts)


def _brute_force_pairs(plan, labels, connectivity):
    """Every unordered pair of tagged labels that touch across two different tiles."""
    structure = ndi.generate_binary_structure(plan.ndim, connectivity)
    tile_of = np.zeros(plan.shape, dtype=np.int64)
    for tile in plan.tiles():
        tile_of[tile.core] = tile.index
    found = set()
    for offset in np.argwhere(structure) - 1:
        if tuple(offset) <= (0,) * plan.ndim:
            continue  # each neighbour once
        src = tuple(
            slice(max(0, -d), n - max(0, d)) for d, n in zip(offset, plan.shape, strict=True)
        )
        dst = tuple(
            slice(max(0, d), n - max(0, -d)) for d, n in zip(offset, plan.shape, strict=True)
        )
        a, b = labels[src], labels[dst]
        ta, tb = tile_of[src], tile_of[dst]
        hit = (a != 0) & (b != 0) & (ta != tb)
        for x, y in zip(tag(ta[hit], a[hit]), tag(tb[hit], b[hit]), strict=True):
            found.add(frozenset((int(x), int(y))))
    return found


CASES = [
    ((41,), (4,), 1),
    ((7, 9), (3, 4), 1),
    ((7, 9), (3, 4), 2),
    ((6, 5, 7), (2, 3, 3), 1),
    ((6, 5, 7), (2, 3, 3), 2),
    ((6, 5, 7), (4, 2, 3), 3),
    ((4, 4), (1, 1), 2),
]


@pytest.mark.parametrize(("shape", "tile_shape", "connectivity"), CASES)
@pytest.mark.parametrize("block_voxels", [None, 1, 5])
def test_plane_pairs_find_exactly_the_labels_that_touch_across_tiles(
    tmp_path, rng, shape, tile_shape, connectivity, block_voxels
):
    plan = TilePlan(shape, tile_shape, (0,) * len(shape))
    labels = rng.integers(1, 4, size=shape) * (rng.random(shape) < 0.7)
    labels[tuple(slice(0, t) for t in tile_shape)] = 0  # one tile without labels
    store, index, counts = _stage_faces(tmp_path, plan, labels)
    tasks = plan_face_tasks(plan, counts, connectivity, block_voxels=block_voxels)
    job = FaceJob(plan=plan, store=store, index=index, connectivity=connectivity, tasks=tasks)
    found = set()
    for k in range(len(tasks)):
        pairs = plane_pairs(job, k)
        assert pairs.dtype == np.int64 and pairs.shape[1:] == (2,)
        np.testing.assert_array_equal(pairs, unique_rows(pairs))  # distinct and sorted
        found |= {frozenset((int(x), int(y))) for x, y in pairs}
    expected = _brute_force_pairs(plan, labels, connectivity)
    assert expected  # the case has pairs to find
    assert found == expected


def test_plane_pairs_puts_the_upper_tile_first(tmp_path):
    plan = TilePlan((4, 2), (2, 2), (0, 0))  # two tiles stacked along axis 0
    labels = np.array([[0, 0], [1, 0], [2, 0], [0, 0]])
    store, index, counts = _stage_faces(tmp_path, plan, labels)
    tasks = plan_face_tasks(plan, counts, 1)
    pairs = plane_pairs(FaceJob(plan, store, index, 1, tasks), 0)
    assert pairs.tolist() == [[(1 << 32) | 2, (0 << 32) | 1]]


def test_plane_pairs_of_a_side_without_labels_is_empty(tmp_path):
    plan = TilePlan((4, 2), (2, 2), (0, 0))
    labels = np.array([[0, 0], [0, 0], [2, 0], [0, 0]])
    store, index, _ = _stage_faces(tmp_path, plan, labels)
    task = FaceTask(0, (1, 0), (2, 1))  # planned although the lower tile holds nothing
    pairs = plane_pairs(FaceJob(plan, store, index, 1, (task,)), 0)
    assert pairs.shape == (0, 2)


def test_plane_pairs_ignore_zeros_on_the_face_of_a_tile_with_labels(tmp_path):
    plan = TilePlan((4, 3), (2, 3), (0, 0))
    labels = np.array([[1, 0, 0], [0, 0, 0], [0, 2, 0], [0, 0, 0]])  # nothing on the faces
    store, index, counts = _stage_faces(tmp_path, plan, labels)
    tasks = plan_face_tasks(plan, counts, 2)
    assert len(tasks) == 1
    assert plane_pairs(FaceJob(plan, store, index, 2, tasks), 0).shape == (0, 2)


def test_every_pair_of_adjacent_tiles_is_some_tasks_concern():
    """With every tile occupied, each face-adjacent pair of tiles meets in some task."""
    plan = TilePlan((6, 6, 6), (2, 3, 2), (0, 0, 0))
    tasks = plan_face_tasks(plan, np.ones(plan.n_tiles), 1, block_voxels=4)
    seen = set()
    for task in tasks:
        ranges = [range(a, b) for a, b in zip(task.start, task.stop, strict=True)]
        for upper in itertools.product(*ranges):
            lower = tuple(p - (b == task.axis) for b, p in enumerate(upper))
            seen.add((plan.index(lower), plan.index(upper)))
    expected = set()
    for position in itertools.product(*(range(g) for g in plan.grid)):
        for axis in range(plan.ndim):
            if position[axis] > 0:
                below = tuple(p - (b == axis) for b, p in enumerate(position))
                expected.add((plan.index(below), plan.index(position)))
    assert seen == expected
