"""One-to-one matching of two tiles' predictions of a zone (``stitch="iou"``).

Local labels are small integers (``1..n``, n in the hundreds for a tile), so the joint
histogram of two label arrays is one :func:`numpy.bincount` over ``a * (nb + 1) + b``:
linear in the voxels, where sorting label pairs (``np.unique``) is not. Only when the
labels are too many for a dense table do the pairs go through ``np.unique``. The greedy
one-to-one choice needs a loop only when a label has two candidates: at a threshold above
one half a label can never have two, so the common case has no loop at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.faces import EMPTY_PAIRS

#: Largest dense joint histogram, relative to the voxels compared (beyond it: sort pairs).
DENSE_FACTOR = 4


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
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if not a.size:
        return EMPTY_PAIRS
    left, right, inter, size_a, size_b = _overlaps(a, b)
    if not left.size:
        return EMPTY_PAIRS
    iou = inter / (size_a + size_b - inter)
    good = iou >= threshold
    left, right, iou = left[good], right[good], iou[good]
    if not left.size:
        return EMPTY_PAIRS
    # ``left`` and ``right`` come sorted by (left, right): when no label is a candidate
    # twice, every candidate is its own best match.
    if np.unique(left).size == left.size and np.unique(right).size == right.size:
        return np.stack([left, right], axis=1)
    order = np.lexsort((right, left, -iou))
    used_a: set[int] = set()
    used_b: set[int] = set()
    found = []
    for la, lb in zip(left[order].tolist(), right[order].tolist(), strict=True):
        if la not in used_a and lb not in used_b:
            used_a.add(la)
            used_b.add(lb)
            found.append((la, lb))
    return np.array(sorted(found), dtype=np.int64)


def _overlaps(
    a: NDArray[Any], b: NDArray[Any]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Label pairs ``(left, right)`` (both > 0) that share voxels, sorted, with their
    intersection and each label's voxel count in the box."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    if na * nb <= DENSE_FACTOR * a.size + 4096:
        joint = np.bincount(a.astype(np.intp) * nb + b, minlength=na * nb).reshape(na, nb)
        sizes_a, sizes_b = joint.sum(axis=1), joint.sum(axis=0)
        joint[0, :] = 0
        joint[:, 0] = 0
        left, right = np.nonzero(joint)
        return (
            left.astype(np.int64),
            right.astype(np.int64),
            joint[left, right],
            sizes_a[left],
            sizes_b[right],
        )
    a, b = a.astype(np.uint64), b.astype(np.uint64)
    both = (a > 0) & (b > 0)
    keys, inter = np.unique((a[both] << np.uint64(32)) | b[both], return_counts=True)
    left = (keys >> np.uint64(32)).astype(np.int64)
    right = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    a_ids, a_sizes = np.unique(a[a > 0], return_counts=True)
    b_ids, b_sizes = np.unique(b[b > 0], return_counts=True)
    return (
        left,
        right,
        inter,
        a_sizes[np.searchsorted(a_ids, left)],
        b_sizes[np.searchsorted(b_ids, right)],
    )
