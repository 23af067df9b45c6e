"""Stage 1 — plan: split an image into a regular grid of tiles.

A *tile* is the unit of work. Its *core* is the box of the image it owns; its *halo* is the
context of ``overlap`` voxels added around the core (clipped at the image border) before
``fn`` sees it. Labels are cropped back to the core before merging, so cores partition the
image exactly once.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import InvalidParameterError

if TYPE_CHECKING:
    from numpy.typing import NDArray

Box = tuple[slice, ...]


@dataclass(frozen=True)
class Tile:
    """One unit of work.

    Attributes
    ----------
    index : int
        Flat (C-order) index of the tile in the grid.
    position : tuple of int
        Grid coordinates of the tile.
    core : tuple of slice
        Box of the image the tile owns.
    halo_box : tuple of slice
        Box read from the image and handed to ``fn`` (core plus halo, clipped).
    crop : tuple of slice
        Box of the core inside the array ``fn`` receives.
    """

    index: int
    position: tuple[int, ...]
    core: Box
    halo_box: Box
    crop: Box

    @property
    def core_shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.core)

    @property
    def halo_shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.halo_box)

    def describe(self) -> str:
        """Human-readable ``index`` and ``box`` used in error messages."""
        box = ", ".join(f"{s.start}:{s.stop}" for s in self.core)
        return f"tile {self.index} (grid position {self.position}, box [{box}])"


@dataclass(frozen=True)
class TilePlan:
    """A regular grid of tiles over an image of spatial ``shape``.

    Examples
    --------
    >>> plan = TilePlan(shape=(10, 7), tile_shape=(4, 4), halo=(1, 0))
    >>> plan.grid
    (3, 2)
    >>> plan.n_tiles
    6
    >>> t = plan.tile(3)
    >>> t.position, t.core, t.halo_box
    ((1, 1), (slice(4, 8, None), slice(4, 7, None)), (slice(3, 9, None), slice(4, 7, None)))
    """

    shape: tuple[int, ...]
    tile_shape: tuple[int, ...]
    halo: tuple[int, ...]
    #: Axes never joined across (time: each time point is labelled on its own); tiles are
    #: one voxel thick there, with no halo.
    separate: tuple[int, ...] = ()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(-(-n // t) for n, t in zip(self.shape, self.tile_shape, strict=True))

    @property
    def n_tiles(self) -> int:
        return math.prod(self.grid)

    @property
    def strides(self) -> tuple[int, ...]:
        """Tile-index step of one grid step along each axis (C order, as :meth:`index`)."""
        grid = self.grid
        return tuple(math.prod(grid[b + 1 :]) for b in range(self.ndim))

    def position(self, index: int) -> tuple[int, ...]:
        return tuple(int(p) for p in np.unravel_index(index, self.grid))

    def index(self, position: Sequence[int]) -> int:
        return int(np.ravel_multi_index(tuple(position), self.grid))

    def core(self, position: Sequence[int]) -> Box:
        return tuple(
            slice(p * t, min((p + 1) * t, n))
            for p, t, n in zip(position, self.tile_shape, self.shape, strict=True)
        )

    def tile(self, index: int) -> Tile:
        position = self.position(index)
        core = self.core(position)
        halo_box = tuple(
            slice(max(c.start - h, 0), min(c.stop + h, n))
            for c, h, n in zip(core, self.halo, self.shape, strict=True)
        )
        crop = tuple(
            slice(c.start - b.start, c.stop - b.start) for c, b in zip(core, halo_box, strict=True)
        )
        return Tile(index=index, position=position, core=core, halo_box=halo_box, crop=crop)

    def tiles(self) -> Iterator[Tile]:
        for index in range(self.n_tiles):
            yield self.tile(index)

    def boundaries(self, axis: int) -> NDArray[np.intp]:
        """Start coordinates of every tile along ``axis`` plus the end of the image."""
        starts = np.arange(0, self.shape[axis], self.tile_shape[axis])
        return np.append(starts, self.shape[axis])


def _as_int_tuple(value: Any, name: str, ndim: int, *, minimum: int) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[Any, ...] = (value,) * ndim
        scalar = True
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise InvalidParameterError(
                f"`{name}` must be an integer or a tuple of integers; got {value!r}."
            ) from None
        scalar = False
    if not scalar and len(values) != ndim:
        raise InvalidParameterError(
            f"`{name}` must have one entry per image axis ({ndim}); got {tuple(values)!r}."
        )
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise InvalidParameterError(f"`{name}` entries must be integers; got {value!r}.")
    if any(v < minimum for v in values):
        rule = "positive" if minimum == 1 else f">= {minimum}"
        raise InvalidParameterError(f"`{name}` entries must be {rule}; got {value!r}.")
    return tuple(int(v) for v in values)


def normalize_tile_shape(tile_shape: object, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Validate an explicit ``tile_shape`` and clip it to the image.

    Examples
    --------
    >>> normalize_tile_shape((64, 1000), (100, 200))
    (64, 200)
    >>> normalize_tile_shape((0, 4), (100, 200))
    Traceback (most recent call last):
    ...
    patchworks.errors.InvalidParameterError: `tile_shape` entries must be positive; got (0, 4).
    """
    if isinstance(tile_shape, numbers.Integral) and not isinstance(tile_shape, bool):
        raise InvalidParameterError(
            f"`tile_shape` must be a tuple with one entry per image axis ({len(shape)}), "
            f'None or "auto"; got {tile_shape!r}.'
        )
    sizes = _as_int_tuple(tile_shape, "tile_shape", len(shape), minimum=1)
    return tuple(min(t, max(n, 1)) for t, n in zip(sizes, shape, strict=True))


def normalize_overlap(overlap: object, tile_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Validate ``overlap`` and turn it into a per-axis halo.

    A scalar adds no halo on axes where the tile is one voxel thick (a ``(1, 2048, 2048)``
    tile with ``overlap=20`` gets a ``(0, 20, 20)`` halo); a tuple is used as given.

    Examples
    --------
    >>> normalize_overlap(20, (1, 2048, 2048))
    (0, 20, 20)
    >>> normalize_overlap((2, 20, 20), (1, 2048, 2048))
    (2, 20, 20)
    """
    ndim = len(tile_shape)
    halo = _as_int_tuple(overlap, "overlap", ndim, minimum=0)
    if isinstance(overlap, numbers.Integral):
        halo = tuple(0 if t == 1 else h for h, t in zip(halo, tile_shape, strict=True))
    return halo
