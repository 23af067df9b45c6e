"""A multiscale pyramid of labels, chunk by chunk, that never invents IDs.

Each level is computed from the previous one, one output chunk per task, so memory stays
at a chunk's worth whatever the image size. Two downsampling rules keep every value an
existing label: ``"nearest"`` takes every f-th voxel; ``"mode"`` takes the most frequent
label of each block of f^ndim voxels, ties going to an object rather than to background, so small
objects survive longer than with ``"nearest"``. Averaging or interpolation would create
IDs that belong to no object, so neither is offered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import numpy as np

from patchworks.errors import InvalidParameterError

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: A downsampling rule of the pyramid.
PyramidMethod = Literal["mode", "nearest"]
METHODS: tuple[PyramidMethod, ...] = ("mode", "nearest")

_Label = TypeVar("_Label", bound=np.generic)


def check_method(method: object) -> PyramidMethod:
    if method not in METHODS:
        raise InvalidParameterError(
            f"`pyramid` must be one of {list(METHODS)} (downsampling that never invents "
            f"label IDs); got {method!r}."
        )
    return cast(PyramidMethod, str(method))


def downsample(
    block: NDArray[_Label], factors: Sequence[int], method: PyramidMethod
) -> NDArray[_Label]:
    """Downsample a block of labels by integer ``factors`` (output size rounds up).

    Examples
    --------
    >>> block = np.array([[0, 7, 5, 5], [0, 7, 5, 0]])  # left block: a 2-2 tie
    >>> downsample(block, (2, 2), "mode").tolist()
    [[7, 5]]
    >>> downsample(block, (2, 2), "nearest").tolist()
    [[0, 5]]
    """
    if method == "nearest":
        return block[tuple(slice(None, None, f) for f in factors)]
    pad = [(0, -n % f) for n, f in zip(block.shape, factors, strict=True)]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode="edge")  # border blocks repeat their own labels
    out_shape = tuple(n // f for n, f in zip(block.shape, factors, strict=True))
    split = [d for n, f in zip(out_shape, factors, strict=True) for d in (n, f)]
    ndim = len(out_shape)
    order = [2 * i for i in range(ndim)] + [2 * i + 1 for i in range(ndim)]
    groups = block.reshape(split).transpose(order).reshape(*out_shape, -1)
    score = np.zeros(groups.shape, dtype=np.int16)  # 2 x occurrences of each voxel's label
    for j in range(groups.shape[-1]):
        score += groups == groups[..., j : j + 1]
    score *= 2
    score -= groups == 0  # ties go to an object, not to background
    pick = np.argmax(score, axis=-1)
    return np.take_along_axis(groups, pick[..., None], axis=-1)[..., 0]


@dataclass(frozen=True)
class LevelJob:
    """Compute one level from the previous one (factors of 1: a copy).

    Each task writes one ``block`` of the target (default: one chunk; a multiple of the
    chunks, so tasks never share a chunk).
    """

    source: Any  # zarr array of the previous level
    target: Any  # zarr array of this level
    factors: tuple[int, ...]
    method: PyramidMethod
    block: tuple[int, ...] | None = None

    @property
    def step(self) -> tuple[int, ...]:
        return self.block or tuple(self.target.chunks)

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / c) for n, c in zip(self.target.shape, self.step, strict=True))

    @property
    def n_chunks(self) -> int:
        return math.prod(self.grid)


def downsample_chunk(job: LevelJob, index: int) -> None:
    """Write chunk ``index`` of ``job.target`` from the matching region of the source."""
    position = np.unravel_index(index, job.grid)
    out_box, in_box = [], []
    for p, c, n, f, m in zip(
        position,
        job.step,
        job.target.shape,
        job.factors,
        job.source.shape,
        strict=True,
    ):
        lo, hi = int(p) * c, min((int(p) + 1) * c, n)
        out_box.append(slice(lo, hi))
        in_box.append(slice(lo * f, min(hi * f, m)))
    block = np.asarray(job.source[tuple(in_box)])
    small = downsample(block, job.factors, job.method)
    job.target[tuple(out_box)] = small[tuple(slice(0, s.stop - s.start) for s in out_box)]


def default_factors(
    shape: Sequence[int], axes_types: Sequence[str], *, smallest: int = 256, most: int = 8
) -> list[tuple[int, ...]]:
    """Halve the last two space axes per level until they fit in ``smallest`` voxels.

    Examples
    --------
    >>> default_factors((10, 1000, 700), ("space",) * 3)
    [(1, 2, 2), (1, 2, 2)]
    """
    space = [i for i, t in enumerate(axes_types) if t == "space"][-2:]
    factors = tuple(2 if i in space else 1 for i in range(len(shape)))
    out: list[tuple[int, ...]] = []
    current = list(shape)
    while len(out) < most and space and max(current[i] for i in space) > smallest:
        out.append(factors)
        current = [math.ceil(n / f) for n, f in zip(current, factors, strict=True)]
    return out
