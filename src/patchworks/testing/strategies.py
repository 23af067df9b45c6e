"""Hypothesis strategies for images and tilings, to test pipelines built on patchworks.

The central property of patchworks — tiled labeling equals whole-image labeling up to
renaming labels, for any shape, tile shape, overlap and connectivity — is the one to
check for a pipeline of one's own; these strategies draw its inputs:

* :func:`images` — seeded binary images (random noise or thresholded blobs);
* :func:`tilings` — tile shapes for an image shape;
* :func:`overlaps` — ``overlap`` values (a scalar or one entry per axis);
* :func:`connectivities` — connectivities for a number of axes;
* :func:`tiled_images` — all four together, as a :class:`TiledImage`.

Needs the optional package ``hypothesis``.

Examples
--------
>>> from hypothesis import given, settings
>>> from scipy import ndimage as ndi
>>> from patchworks import tile_process
>>> from patchworks.testing import assert_same_partition
>>> @settings(max_examples=5, deadline=None, database=None)
... @given(tiled_images(max_ndim=2, max_side=12))
... def check(case):
...     structure = ndi.generate_binary_structure(case.image.ndim, case.connectivity)
...     result = tile_process(
...         case.image, lambda tile: ndi.label(tile, structure=structure)[0],
...         tile_shape=case.tile_shape, overlap=case.overlap,
...         connectivity=case.connectivity, compute=True)
...     assert_same_partition(result, ndi.label(case.image, structure=structure)[0])
>>> check()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from patchworks.errors import InvalidParameterError, missing_dependency

try:
    from hypothesis import strategies as st
except ImportError as exc:  # hypothesis is a test-time dependency
    raise missing_dependency("hypothesis", "testing", "patchworks.testing.strategies") from exc

__all__ = [
    "KINDS",
    "TiledImage",
    "connectivities",
    "images",
    "overlaps",
    "tiled_images",
    "tilings",
]

#: The kinds of image :func:`images` draws: uniform random noise thresholded at a drawn
#: density, or seeded Gaussian blobs (:func:`patchworks.datasets.blobs`) thresholded.
KINDS = ("noise", "blobs")

Overlap: TypeAlias = int | tuple[int, ...]


class TiledImage(NamedTuple):
    """One drawn case of the central property (unpacks like a tuple)."""

    image: npt.NDArray[np.uint8]
    tile_shape: tuple[int, ...]
    overlap: Overlap
    connectivity: int


def images(
    *,
    min_ndim: int = 1,
    max_ndim: int = 3,
    min_side: int = 1,
    max_side: int = 16,
    kinds: Sequence[str] = KINDS,
) -> st.SearchStrategy[npt.NDArray[np.uint8]]:
    """Seeded binary images: ``uint8`` arrays of 0 and 1.

    Parameters
    ----------
    min_ndim, max_ndim : int
        Bounds on the number of axes (1 or more).
    min_side, max_side : int
        Bounds on the length of every axis (1 or more).
    kinds : sequence of str
        Which of :data:`KINDS` to draw from: ``"noise"`` (each voxel set with a drawn
        probability) or ``"blobs"`` (round objects of a drawn radius).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Images drawn from a seed, so a failing example is reproduced from its shape,
        kind and seed alone; it shrinks towards small shapes and seed 0.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10, database=None)
    ... @given(images(min_ndim=2, max_ndim=2, max_side=8))
    ... def check(image):
    ...     assert image.ndim == 2 and max(image.shape) <= 8 and image.max() <= 1
    >>> check()
    """
    _check_range("ndim", min_ndim, max_ndim, minimum=1)
    _check_range("side", min_side, max_side, minimum=1)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise InvalidParameterError(
            f"`kinds` must be a non-empty sequence of {KINDS}; got {kinds!r}."
        )
    return _images(min_ndim, max_ndim, min_side, max_side, kinds)


@st.composite
def _images(
    draw: st.DrawFn,
    min_ndim: int,
    max_ndim: int,
    min_side: int,
    max_side: int,
    kinds: tuple[str, ...],
) -> npt.NDArray[np.uint8]:
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.integers(min_side, max_side)) for _ in range(ndim))
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.floats(0.1, 0.9))
    if kind == "noise":
        mask = np.random.default_rng(seed).random(shape) < density
    else:
        from patchworks.datasets import THRESHOLD, blobs

        radius = draw(st.floats(1.0, max(1.0, max(shape) / 4)))
        mask = blobs(shape, radius=radius, density=density, seed=seed) > THRESHOLD
    return mask.astype(np.uint8)


def tilings(
    shape: Sequence[int], *, min_side: int = 1, beyond: int = 2
) -> st.SearchStrategy[tuple[int, ...]]:
    """Tile shapes for an image of ``shape``: one entry per axis.

    Parameters
    ----------
    shape : sequence of int
        The image's shape.
    min_side : int
        Smallest tile length drawn (1 or more; clipped to each axis' length).
    beyond : int
        How far past the image's length an entry may go (patchworks clips those tiles to
        the image); 0 keeps every entry within the image.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10, database=None)
    ... @given(tilings((5, 9), beyond=0))
    ... def check(tile_shape):
    ...     assert len(tile_shape) == 2 and 1 <= tile_shape[0] <= 5 and tile_shape[1] <= 9
    >>> check()
    """
    sides = _check_shape(shape)
    _check_int("min_side", min_side, minimum=1)
    _check_int("beyond", beyond, minimum=0)
    return st.tuples(*(st.integers(min(min_side, n), n + beyond) for n in sides))


def overlaps(
    tile_shape: Sequence[int], *, max_overlap: int | None = None
) -> st.SearchStrategy[Overlap]:
    """``overlap`` values for tiles of ``tile_shape``: a scalar or one entry per axis.

    Parameters
    ----------
    tile_shape : sequence of int
        The tiles' shape (gives the number of axes).
    max_overlap : int, optional
        Largest overlap drawn on an axis (default: the largest tile length).

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10, database=None)
    ... @given(overlaps((4, 4, 4), max_overlap=2))
    ... def check(overlap):
    ...     assert overlap in range(3) or (len(overlap) == 3 and max(overlap) <= 2)
    >>> check()
    """
    sides = _check_shape(tile_shape, name="tile_shape")
    top = max(sides) if max_overlap is None else _check_int("max_overlap", max_overlap, minimum=0)
    per_axis: st.SearchStrategy[Overlap] = st.tuples(*(st.integers(0, top) for _ in sides))
    return st.one_of(st.integers(0, top), per_axis)


def connectivities(ndim: int) -> st.SearchStrategy[int]:
    """Connectivities for ``ndim`` axes: 1 (faces only) to ``ndim`` (full), as in
    :func:`scipy.ndimage.generate_binary_structure`.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10, database=None)
    ... @given(connectivities(3))
    ... def check(connectivity):
    ...     assert connectivity in (1, 2, 3)
    >>> check()
    """
    return st.integers(1, _check_int("ndim", ndim, minimum=1))


def tiled_images(
    *,
    min_ndim: int = 1,
    max_ndim: int = 3,
    min_side: int = 1,
    max_side: int = 16,
    kinds: Sequence[str] = KINDS,
    max_overlap: int = 4,
) -> st.SearchStrategy[TiledImage]:
    """An image with a tile shape, an overlap and a connectivity drawn for it.

    Parameters are those of :func:`images`, and ``max_overlap`` of :func:`overlaps`.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10, database=None)
    ... @given(tiled_images(max_ndim=2))
    ... def check(case):
    ...     image, tile_shape, overlap, connectivity = case
    ...     assert len(tile_shape) == image.ndim and 1 <= connectivity <= image.ndim
    >>> check()
    """
    image_strategy = images(
        min_ndim=min_ndim, max_ndim=max_ndim, min_side=min_side, max_side=max_side, kinds=kinds
    )
    return _tiled_images(image_strategy, _check_int("max_overlap", max_overlap, minimum=0))


@st.composite
def _tiled_images(
    draw: st.DrawFn, image_strategy: st.SearchStrategy[npt.NDArray[np.uint8]], max_overlap: int
) -> TiledImage:
    image = draw(image_strategy)
    tile_shape = draw(tilings(image.shape))
    overlap = draw(overlaps(tile_shape, max_overlap=max_overlap))
    connectivity = draw(connectivities(image.ndim))
    return TiledImage(image, tile_shape, overlap, connectivity)


def _check_shape(shape: Any, *, name: str = "shape") -> tuple[int, ...]:
    try:
        sides = tuple(shape)
    except TypeError:
        raise InvalidParameterError(
            f"`{name}` must be a sequence of positive integers; got {shape!r}."
        ) from None
    if not sides or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1 for n in sides
    ):
        raise InvalidParameterError(
            f"`{name}` must be a sequence of positive integers; got {shape!r}."
        )
    return tuple(int(n) for n in sides)


def _check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidParameterError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_range(name: str, low: Any, high: Any, *, minimum: int) -> None:
    """``min_<name>`` and ``max_<name>`` must be integers with ``minimum <= low <= high``."""
    _check_int(f"min_{name}", low, minimum=minimum)
    _check_int(f"max_{name}", high, minimum=minimum)
    if low > high:
        raise InvalidParameterError(
            f"`min_{name}` must be at most `max_{name}`; got {low!r} > {high!r}."
        )
