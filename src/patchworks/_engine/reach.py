"""How far ``fn`` reaches: the distance from a tile's border within which its labels differ
from what it gives on a larger box.

A labeler such as ``ndi.label(tile > t)`` reaches 0 voxels: a cut changes nothing but the cut
itself. A background filter of width s, a watershed on a smoothed distance map or a neural
network see some way past each voxel, and near a border they see padding instead of image;
an instance model also predicts a cut object differently from the whole one. An overlap of
at least the reach makes every core voxel's label the one ``fn`` gives on the untiled image.

:func:`measure_reach` measures it directly: it runs ``fn`` on a sample box and on the two
halves of the box cut across each axis, and finds the farthest voxel from the cut whose
label the halves change. Labels are compared as partitions (up to renaming): a voxel
agrees when it is foreground in both or in neither and its pair of labels is the dominant
pair of both its labels.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import fastremap
import numpy as np
from numpy.typing import NDArray

from patchworks.errors import StitchingWarning

Labeler = Callable[[NDArray[Any]], NDArray[Any]]

#: Where each axis of the sample is cut, as fractions of its length: each cut gives two
#: parts for ``fn`` to label, so a reach of up to a third of the sample can be seen.
CUTS = (1 / 3, 2 / 3)


def disagreement(
    reference: NDArray[Any], other: NDArray[Any], *, splits: bool = True
) -> NDArray[np.bool_]:
    """Where ``other`` labels voxels differently from ``reference``, up to renaming.

    A voxel agrees when it is background in both, or foreground in both with a pair of
    labels that is the most frequent pair of both. ``splits=False`` forgives a reference
    object cut into pieces (each piece's voxels agree when the piece holds nothing else):
    touch stitching joins pieces that touch across a seam, so only joins and changes of
    the foreground are errors it keeps.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 2, 2]])
    >>> disagreement(a, np.array([[5, 5, 0, 7, 7]])).any()   # renamed: the same partition
    np.False_
    >>> disagreement(a, np.array([[5, 5, 0, 5, 5]])).astype(int)   # 1 and 2 joined
    array([[0, 0, 0, 1, 1]])
    >>> disagreement(a, np.array([[5, 5, 5, 7, 0]])).astype(int)   # grown and shrunk
    array([[0, 0, 1, 0, 1]])
    >>> split = np.array([[5, 6, 0, 7, 7]])
    >>> disagreement(a, split).astype(int)
    array([[0, 1, 0, 0, 0]])
    >>> disagreement(a, split, splits=False).any()
    np.False_
    """
    a = fastremap.renumber(np.ascontiguousarray(reference).ravel(), in_place=False)[0]
    b = fastremap.renumber(np.ascontiguousarray(other).ravel(), in_place=False)[0]
    a = a.astype(np.int64, copy=False)
    b = b.astype(np.int64, copy=False)
    wrong = (a > 0) != (b > 0)
    both = np.flatnonzero((a > 0) & (b > 0))
    if both.size:
        width = int(b.max()) + 1
        pairs, inverse, counts = np.unique(
            a[both] * width + b[both], return_inverse=True, return_counts=True
        )
        bad = ~_dominant(pairs % width, counts)
        if splits:
            bad |= ~_dominant(pairs // width, counts)
        wrong[both] = bad[inverse]
    result: NDArray[np.bool_] = wrong.reshape(reference.shape)
    return result


def _farthest(
    fn: Labeler,
    crop: Callable[[tuple[slice, ...]], NDArray[Any]],
    reference: NDArray[Any],
    where: tuple[slice, ...],
    axis: int,
    low: bool,
    label: Callable[[Any, tuple[int, ...]], NDArray[Any]],
    rejoin: bool,
) -> int:
    """How far from the cut ``fn``'s labels of the part ``where`` of the sample (below the
    cut when ``low``) disagree with ``reference``; 0 when they agree."""
    part = np.ascontiguousarray(crop(where))
    expected = reference[where]
    labels = label(fn(part), expected.shape)
    wrong = disagreement(expected, labels, splits=not rejoin)
    others = tuple(a for a in range(wrong.ndim) if a != axis)
    rows = np.flatnonzero(wrong.any(axis=others) if others else wrong)
    if not rows.size:
        return 0
    return int(wrong.shape[axis] - rows[0] if low else rows[-1] + 1)


def _dominant(keys: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Per pair: is it the most frequent pair of its key (ties: the first)?"""
    order = np.lexsort((-counts, keys))
    first = np.ones(order.size, dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    best = np.zeros(order.size, dtype=bool)
    best[order[first]] = True
    return best


def measure_reach(
    fn: Labeler,
    crop: Callable[[tuple[slice, ...]], NDArray[Any]],
    reference: NDArray[Any],
    *,
    label: Callable[[Any, tuple[int, ...]], NDArray[Any]],
    grid: tuple[int, ...] = (),
    rejoin: bool = False,
) -> tuple[int, ...]:
    """Per axis, the distance from a cut within which ``fn``'s labels change.

    ``reference`` is what ``fn`` gave on a sample box, ``crop(box)`` reads a spatial
    ``box`` of that sample (all channels) and ``label(result, shape)`` checks one result
    of ``fn`` against the label contract. Each axis is cut at :data:`CUTS` of its length
    (rounded down to ``grid``, the model's downsampling, so both parts start on it); the
    reach along the axis is the farthest distance from a cut (1: the voxel next to it) at
    which a part's labels disagree with ``reference`` (see :func:`disagreement`;
    ``rejoin``: the stitching joins pieces of an object, as touch stitching does, so a
    split is no error). Labels that change across the whole of the longest part (``fn``
    is not local, or reaches farther than the sample is long) get a
    :class:`~patchworks.errors.StitchingWarning`. ``fn`` runs ``2 * len(CUTS)``
    times per axis.

    Examples
    --------
    >>> from scipy import ndimage as ndi
    >>> image = np.random.default_rng(0).random((40, 40))
    >>> crop = lambda box: image[box]
    >>> check = lambda result, shape: np.asarray(result)
    >>> label = lambda tile: ndi.label(tile > 0.7)[0]
    >>> measure_reach(label, crop, label(image), label=check, rejoin=True)
    (0, 0)
    >>> measure_reach(label, crop, label(image), label=check)   # a cut component stays cut
    (1, 0)
    >>> smooth = lambda tile: ndi.label(ndi.uniform_filter(tile, 9) > 0.55)[0]
    >>> measure_reach(smooth, crop, smooth(image), label=check, rejoin=True)  # 9 wide
    (4, 4)
    """
    ndim = reference.ndim
    steps = (1,) * (ndim - len(grid)) + tuple(grid[-ndim:]) if grid else (1,) * ndim
    reach = []
    for axis in range(ndim):
        n = reference.shape[axis]
        cuts = sorted({int(n * f) // steps[axis] * steps[axis] for f in CUTS} - {0})
        seen: dict[int, int] = {}  # part length -> farthest change seen on such a part
        for cut in (c for c in cuts if c < n):
            for low in (True, False):
                box = slice(0, cut) if low else slice(cut, n)
                where = tuple(box if a == axis else slice(None) for a in range(ndim))
                length = box.stop - box.start
                found = _farthest(fn, crop, reference, where, axis, low, label, rejoin)
                seen[length] = max(seen.get(length, 0), found)
        far = max(seen.values(), default=0)
        longest = max(seen, default=0)
        if seen and seen[longest] >= longest:
            warnings.warn(
                f"`fn`'s labels changed across the whole of a {longest}-voxel part of a "
                f"{n}-voxel sample cut across axis {axis}: either `fn` is not local (a "
                "threshold or normalisation computed per tile makes tiles disagree "
                "everywhere; compute it once for the image) or it reaches farther than "
                "the tile is long (use larger tiles); no overlap makes the tiles agree "
                "with the untiled image.",
                StitchingWarning,
                stacklevel=4,
            )
        reach.append(far)
    return tuple(reach)
