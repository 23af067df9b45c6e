"""What the tiles show about ``fn``: which connectivity it labels with, and whether its
distinct labels touch (instance segmentation).

Two distinct nonzero labels that touch inside one tile at an offset with ``m`` nonzero
steps (``m = 1``: a face, ``2``: an edge, ``3``: a corner) prove that ``fn`` does not join
voxels at that offset:

* a connected-components labeler of connectivity ``c`` never leaves distinct labels
  touching at ``m <= c``, so an edge contact (``m = 2``) proves ``c = 1``, a corner contact
  (``m = 3``) proves ``c <= 2``;
* distinct labels touching face to face (``m = 1``) are instances that only stitching by
  agreement (``stitch="iou"``) keeps apart;
* one label whose voxels fall apart under connectivity ``m - 1`` (even through other
  labels' voxels) proves that ``fn`` joins at ``m`` steps: a full-connectivity labeler
  such as ``skimage.measure.label``.

:func:`tile_contacts` finds these contacts in one tile (as a bit mask, bit ``m`` set for a
contact at ``m`` steps); :func:`infer_connectivity` turns the masks of all tiles into the
connectivity the merge uses when the user gave none. Only every
:func:`sample_stride`-th tile is checked, about :data:`SCAN_BUDGET` voxels spread evenly
over the image, so the cost stays bounded whatever the image size; the sample depends
only on the tile plan, so a resumed run infers what an uninterrupted one does.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Voxels a run checks, about (eight tiles of 128³, a whole image of up to 16 M voxels):
#: 8 ms per 128³ tile on this machine, about 0.06 s per run.
SCAN_BUDGET = 1 << 24
#: Tiles a run checks, at most (tiny tiles cost their Python overhead, about 20 µs each).
SCAN_TILES = 4096


@functools.cache
def _offsets(ndim: int) -> list[tuple[int, ...]]:
    """One offset of each pair ``±o`` in ``{-1, 0, 1}^ndim``, fewest nonzero steps first."""
    found = []
    for offset in itertools.product((-1, 0, 1), repeat=ndim):
        nonzero = [o for o in offset if o]
        if nonzero and nonzero[0] > 0:
            found.append(offset)
    return sorted(found, key=lambda o: sum(map(abs, o)))


def tile_contacts(labels: NDArray[Any]) -> int:
    """Bit mask of what one tile shows: bit ``m`` set when distinct nonzero labels touch at
    ``m`` steps, bit ``JOINED + m`` when one label holds voxels joined only at ``m`` steps
    (none of its pieces touch at fewer).

    Examples
    --------
    >>> import numpy as np
    >>> bin(tile_contacts(np.array([[1, 0], [0, 2]])))   # an edge (diagonal) contact
    '0b100'
    >>> bin(tile_contacts(np.array([[1, 2], [0, 0]])))   # a face contact
    '0b10'
    >>> tile_contacts(np.array([[1, 1], [0, 1]]))        # one object: no contact
    0
    >>> tile_contacts(np.array([[1, 0], [0, 1]])) == 1 << (JOINED + 2)  # joined at an edge
    True
    """
    mask = 0
    labelled = labels != 0
    for steps, here, there in _shifted(labels.shape):
        if mask & (1 << steps):
            continue
        touching = labels[here] != labels[there]
        touching &= labelled[here]
        touching &= labelled[there]
        if touching.any():
            mask |= 1 << steps
    if not mask & (1 << 2):  # an edge contact already proves faces only
        mask |= _joins(labels, labelled)
    return mask


#: Bit offset of the "joined at m steps" evidence in :func:`tile_contacts`' mask.
JOINED = 8


def _joins(labels: NDArray[Any], labelled: NDArray[np.bool_]) -> int:
    """Bits ``JOINED + m`` for the most steps ``m`` at which some label is joined: its
    voxels fall apart into several pieces under connectivity ``m - 1``, even counting
    paths through other labels."""
    from scipy import ndimage as ndi

    for steps in range(labels.ndim, 1, -1):
        structure = ndi.generate_binary_structure(labels.ndim, steps - 1)
        pieces, n = ndi.label(labelled, structure=structure)
        if n < 2:
            continue
        pairs = np.unique(labels[labelled].astype(np.int64) * (n + 1) + pieces[labelled])
        owners = pairs // (n + 1)
        if owners.size and (owners[1:] == owners[:-1]).any():
            return 1 << (JOINED + steps)
    return 0


@functools.lru_cache(maxsize=64)
def _shifted(shape: tuple[int, ...]) -> list[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:
    """For each offset of :func:`_offsets` that fits ``shape``: its number of steps and
    the two boxes of voxel pairs one offset apart (tiles share a handful of shapes)."""
    found = []
    for offset in _offsets(len(shape)):
        here = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, shape, strict=True))
        there = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(offset, shape, strict=True))
        if all(s.stop > s.start for s in here):
            found.append((sum(map(abs, offset)), here, there))
    return found


def sample_stride(n_tiles: int, tile_voxels: int) -> int:
    """Check every ``stride``-th tile (by index), so the checked tiles hold about
    :data:`SCAN_BUDGET` voxels and number at most :data:`SCAN_TILES`: all of them in a
    small image.

    Examples
    --------
    >>> sample_stride(10, 1000), sample_stride(4096, 128**3), sample_stride(50_000, 32)
    (1, 512, 13)
    """
    by_voxels = math.ceil(n_tiles * tile_voxels / SCAN_BUDGET)
    return max(1, by_voxels, math.ceil(n_tiles / SCAN_TILES))


def infer_connectivity(masks: NDArray[np.integer[Any]] | list[int], ndim: int) -> int | None:
    """The connectivity the tiles show ``fn`` used: one less than the fewest steps at
    which distinct labels touched (faces excepted); else, when some label was joined at
    ``m`` > 1 steps, full connectivity; None when no tile showed either.

    Examples
    --------
    >>> infer_connectivity([0, 0b100, 0], 3)    # an edge contact: faces only
    1
    >>> infer_connectivity([0b1000], 3)         # a corner contact: edges too
    2
    >>> infer_connectivity([1 << (JOINED + 2)], 2)  # a label joined at an edge
    2
    >>> infer_connectivity([0b10, 0], 2) is None  # face contacts say nothing of it
    True
    """
    seen = _seen(masks)
    for steps in range(2, ndim + 1):
        if seen & (1 << steps):
            return steps - 1
    if any(seen & (1 << (JOINED + steps)) for steps in range(2, ndim + 1)):
        return ndim
    return None


def contradicted(masks: NDArray[np.integer[Any]] | list[int], connectivity: int) -> int | None:
    """The fewest steps (at most ``connectivity``, faces excepted) at which distinct labels
    touched inside a tile, which a labeler of that connectivity would have joined; None
    when the tiles agree with ``connectivity``."""
    seen = _seen(masks)
    for steps in range(2, connectivity + 1):
        if seen & (1 << steps):
            return steps
    return None


def _seen(masks: NDArray[np.integer[Any]] | list[int]) -> int:
    return int(np.bitwise_or.reduce(np.asarray(masks, dtype=np.int64))) if len(masks) else 0


def n_touching(masks: NDArray[np.integer[Any]] | list[int]) -> int:
    """How many tiles had distinct labels touching face to face."""
    return int(np.count_nonzero(np.asarray(masks, dtype=np.int64) & 0b10))


def diagonal_joins(pairs: NDArray[np.int64], face_pairs: NDArray[np.int64]) -> int:
    """How many joins ``pairs`` (labels touching across seams at full connectivity) make
    that ``face_pairs`` (the face-to-face subset) do not: objects that only a diagonal
    contact joins.

    Examples
    --------
    >>> full = np.array([[1, 2], [2, 3], [4, 5]])
    >>> diagonal_joins(full, np.array([[1, 2], [4, 5]]))    # 2-3 touch only diagonally
    1
    >>> diagonal_joins(full, full)
    0
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not len(pairs):
        return 0
    nodes, inverse = np.unique(pairs.ravel(), return_inverse=True)
    n = int(nodes.size)

    def joins(edges: NDArray[np.intp]) -> int:
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        return n - int(connected_components(graph, directed=False)[0])

    faces = np.searchsorted(nodes, face_pairs.ravel()).reshape(-1, 2)
    return int(joins(inverse.reshape(-1, 2)) - joins(faces))
