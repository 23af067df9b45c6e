"""Compare two label images up to renaming labels.

Two label images are the *same partition* when they have the same shape, the same
background (label 0) and every label of one covers exactly the voxels of one label of
the other. Labels are compared through the distinct (actual, expected) pairs of labels
that share a voxel: the images are the same partition exactly when every label of either
image takes part in one pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from patchworks.errors import ParameterTypeError

__all__ = ["assert_same_partition", "same_partition"]

#: How many examples (voxels, labels) each part of a failure message names.
EXAMPLES = 3

_Labels = npt.NDArray[Any]


def same_partition(a: npt.ArrayLike, b: npt.ArrayLike) -> bool:
    """Whether two label images are equal up to renaming labels.

    Parameters
    ----------
    a, b : array-like of int
        Label images (0 is background). Lazy arrays (dask, zarr) are read whole.

    Returns
    -------
    bool
        True when ``a`` and ``b`` have the same shape and background, and each label of
        ``a`` covers exactly the voxels of one label of ``b``.

    See Also
    --------
    assert_same_partition : the same check, raising with a description of what differs.

    Examples
    --------
    >>> import numpy as np
    >>> same_partition(np.array([0, 4, 4, 9]), np.array([0, 1, 1, 2]))
    True
    >>> same_partition(np.array([0, 4, 4, 4]), np.array([0, 1, 1, 2]))
    False
    """
    first, second = _as_labels(a, "a"), _as_labels(b, "b")
    if first.shape != second.shape:
        return False
    flat_a, flat_b = first.reshape(-1), second.reshape(-1)
    if not np.array_equal(flat_a == 0, flat_b == 0):
        return False
    pair_a, pair_b = _label_pairs(flat_a, flat_b)
    return pair_a.size == np.unique(pair_a).size == np.unique(pair_b).size


def assert_same_partition(actual: npt.ArrayLike, expected: npt.ArrayLike) -> None:
    """Raise unless two label images are equal up to renaming labels.

    Parameters
    ----------
    actual : array-like of int
        The label image under test (0 is background).
    expected : array-like of int
        The reference, for example :func:`scipy.ndimage.label` of the whole image.

    Raises
    ------
    AssertionError
        When the images differ. The message says how many voxels are background in one
        image only, which labels of ``actual`` merge several labels of ``expected``, and
        which labels of ``expected`` ``actual`` splits into several labels, with a few
        examples of each.
    patchworks.errors.ParameterTypeError
        When an image does not hold integer (or boolean) labels.

    See Also
    --------
    same_partition : the same check as a boolean.

    Examples
    --------
    >>> import numpy as np
    >>> expected = np.array([[1, 1, 0, 2, 2]])
    >>> assert_same_partition(np.array([[7, 7, 0, 3, 3]]), expected)  # renamed: passes
    >>> assert_same_partition(np.array([[7, 7, 0, 7, 7]]), expected)
    Traceback (most recent call last):
    ...
    AssertionError: label images of shape (1, 5) differ beyond renaming labels:
    - 1 label of `actual` merges several labels of `expected`: actual 7 covers expected 1, 2.
    """
    message = _describe(_as_labels(actual, "actual"), _as_labels(expected, "expected"))
    if message is not None:
        raise AssertionError(message)


def _as_labels(image: npt.ArrayLike, name: str) -> _Labels:
    array = np.asarray(image)
    if array.dtype.kind not in "biu":
        raise ParameterTypeError(
            f"`{name}` must be a label image of integers; got dtype {array.dtype}."
        )
    return array


def _label_pairs(a: _Labels, b: _Labels) -> tuple[_Labels, _Labels]:
    """The distinct (label of ``a``, label of ``b``) pairs over voxels where both are
    nonzero, sorted by the label of ``a`` and then of ``b``."""
    both = (a != 0) & (b != 0)
    a, b = a[both], b[both]
    if not a.size:
        return a, b
    labels_a, index_a = np.unique(a, return_inverse=True)
    labels_b, index_b = np.unique(b, return_inverse=True)
    codes = np.unique(index_a.astype(np.int64) * labels_b.size + index_b)
    return labels_a[codes // labels_b.size], labels_b[codes % labels_b.size]


def _describe(actual: _Labels, expected: _Labels) -> str | None:
    """What differs between two label images beyond renaming labels; None if nothing."""
    if actual.shape != expected.shape:
        return f"`actual` has shape {actual.shape} but `expected` has shape {expected.shape}."
    flat_a, flat_b = actual.reshape(-1), expected.reshape(-1)
    problems = []
    background = _background_problem(flat_a, flat_b, actual.shape)
    if background is not None:
        problems.append(background)
    pair_a, pair_b = _label_pairs(flat_a, flat_b)
    merged = _groups(pair_a, pair_b)
    if merged:
        problems.append(
            f"{_count(len(merged), 'label')} of `actual` "
            f"{'merges' if len(merged) == 1 else 'merge'} several labels of `expected`: "
            + "; ".join(
                f"actual {label} covers expected {_listing(others)}"
                for label, others in merged[:EXAMPLES]
            )
            + _more(len(merged))
            + "."
        )
    order = np.lexsort((pair_a, pair_b))
    split = _groups(pair_b[order], pair_a[order])
    if split:
        problems.append(
            f"{_count(len(split), 'label')} of `expected` "
            f"{'is' if len(split) == 1 else 'are'} split into several labels of `actual`: "
            + "; ".join(
                f"expected {label} is split into actual {_listing(others)}"
                for label, others in split[:EXAMPLES]
            )
            + _more(len(split))
            + "."
        )
    if not problems:
        return None
    return f"label images of shape {actual.shape} differ beyond renaming labels:\n" + "\n".join(
        f"- {p}" for p in problems
    )


def _background_problem(a: _Labels, b: _Labels, shape: tuple[int, ...]) -> str | None:
    only_actual = np.flatnonzero((a == 0) & (b != 0))
    only_expected = np.flatnonzero((a != 0) & (b == 0))
    if not only_actual.size and not only_expected.size:
        return None
    parts = [
        f"{_count(where.size, 'voxel')} {'is' if where.size == 1 else 'are'} background "
        f"in `{name}` only (at {_coordinates(where, shape)}"
        + (", ..." if where.size > EXAMPLES else "")
        + ")"
        for name, where in (("actual", only_actual), ("expected", only_expected))
        if where.size
    ]
    return f"background differs at {only_actual.size + only_expected.size} of {a.size} voxels: " + (
        "; ".join(parts) + "."
    )


def _groups(keys: _Labels, values: _Labels) -> list[tuple[int, list[int]]]:
    """For each key (``keys`` sorted) paired with several values: the key and its values."""
    if not keys.size:
        return []
    labels, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    return [
        (int(label), [int(v) for v in values[start : start + count]])
        for label, start, count in zip(labels, starts, counts, strict=True)
        if count > 1
    ]


def _coordinates(flat_indices: _Labels, shape: tuple[int, ...]) -> str:
    if not shape:  # a 0-d image has one voxel, at ()
        return "()"
    coords = np.unravel_index(flat_indices[:EXAMPLES], shape)
    return ", ".join(
        str(tuple(int(c[k]) for c in coords)) for k in range(min(EXAMPLES, flat_indices.size))
    )


def _listing(labels: list[int]) -> str:
    shown = ", ".join(str(v) for v in labels[:EXAMPLES])
    return shown + (f", ... ({len(labels)} in all)" if len(labels) > EXAMPLES else "")


def _more(n: int) -> str:
    return f"; and {n - EXAMPLES} more" if n > EXAMPLES else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
