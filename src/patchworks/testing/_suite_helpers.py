"""Tile functions, scenes and probes of the conformance suites
(:mod:`patchworks.testing.conformance`)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

import patchworks

Labels = npt.NDArray[Any]

#: Image value that makes a :class:`Probe` fail while it is armed (images are 0/1).
MARKER = 2


@dataclass(frozen=True)
class Components:
    """``fn = label(tile > 0)`` with ``connectivity`` (None: full), as int32."""

    connectivity: int | None = None

    def __call__(self, tile: Labels) -> Labels:
        tile = np.asarray(tile)
        structure = ndi.generate_binary_structure(tile.ndim, self.connectivity or tile.ndim)
        labels: Labels = ndi.label(tile > 0, structure=structure)[0]
        return labels.astype(np.int32)


@dataclass(frozen=True)
class Instances:
    """A perfect instance segmenter: the image holds instance IDs; renumber them 1..n."""

    def __call__(self, tile: Labels) -> Labels:
        tile = np.asarray(tile)
        values, inverse = np.unique(tile, return_inverse=True)
        labels = inverse.reshape(tile.shape).astype(np.int32)
        return labels if values[0] == 0 else labels + 1


@dataclass
class Probe:
    """Wraps ``fn``: counts its calls, notes whether ``watch`` exists during each (and
    what :func:`patchworks.output_status` says of it), and raises on tiles holding
    :data:`MARKER` while ``armed``. Its state lives in lists, which resume fingerprints
    ignore, so an armed and a disarmed probe are the same ``fn`` to ``resume=True``."""

    fn: Any
    watch: str | None = None
    calls: list[int] = field(default_factory=list)
    seen: list[bool] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    armed: list[bool] = field(default_factory=list)

    def __call__(self, tile: Labels) -> Labels:
        self.calls.append(1)
        if self.watch is not None:
            self.seen.append(os.path.exists(self.watch))
            self.status.append(patchworks.output_status(self.watch))
        if self.armed and bool((np.asarray(tile) == MARKER).any()):
            raise RuntimeError("planned failure of the conformance test")
        labels: Labels = self.fn(tile)
        return labels


@dataclass(frozen=True)
class Shipped:
    """A stitcher whose every :class:`~patchworks.stitch.Seams` goes through pickle, as
    shipping it to a worker does: the run then uses the unpickled copy."""

    inner: Any
    begun: list[int] = field(default_factory=list, compare=False)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def keeps_halo(self) -> bool:
        return bool(self.inner.keeps_halo)

    @property
    def connectivity(self) -> int | None:
        found: int | None = getattr(self.inner, "connectivity", None)
        return found

    def check_halo(
        self, halo: tuple[int, ...], overlap: Any, tile_shape: tuple[int, ...], shape: Any
    ) -> None:
        self.inner.check_halo(halo, overlap, tile_shape, shape)

    def begin(self, plan: Any, scratch: str, *, anchor: Any = None) -> Any:
        seams = self.inner.begin(plan, scratch, anchor=anchor)
        self.begun.append(1)
        return pickle.loads(pickle.dumps(seams))


def noise(shape: tuple[int, ...], *, seed: int, density: float = 0.4) -> Labels:
    """A 0/1 uint8 image of seeded random noise: many objects, most crossing seams."""
    return (np.random.default_rng(seed).random(shape) < density).astype(np.uint8)


def with_marker(image: Labels) -> Labels:
    """``image`` with :data:`MARKER` in its last voxel (the last tile's core)."""
    marked = image.copy()
    marked[(-1,) * image.ndim] = MARKER
    return marked


def balls(shape: tuple[int, ...], *, diameter: int, spacing: int, offset: int) -> Labels:
    """A 0/1 uint8 image of balls on a lattice (centres ``offset + k * spacing``)."""
    grid = np.indices(shape)
    ticks = np.arange(offset % spacing, max(shape) + spacing, spacing)
    image = np.zeros(shape, dtype=np.uint8)
    r2 = (diameter / 2) ** 2
    for centre in np.stack(np.meshgrid(*([ticks] * len(shape)), indexing="ij"), -1).reshape(
        -1, len(shape)
    ):
        d2 = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
        image[d2 <= r2] = 1
    return image


def cored(grid: tuple[int, ...], tile: int) -> Labels:
    """Instance labels: one or two small objects at the centre of each tile's core, far
    from every seam, so that an instance ``fn`` gives them local labels 1 (and 2) in
    every tile."""
    image = np.zeros(tuple(g * tile for g in grid), dtype=np.int32)
    top = 0
    for k, position in enumerate(np.ndindex(*grid)):
        centre = [p * tile + tile // 2 for p in position]
        top += 1
        image[tuple(slice(c - 1, c + 1) for c in centre)] = top
        if k % 2 == 0:  # a second object, one voxel apart from the first
            box = [slice(c - 1, c + 1) for c in centre]
            box[-1] = slice(centre[-1] + 2, centre[-1] + 3)
            top += 1
            image[tuple(box)] = top
    return image


def touching_cells() -> Labels:
    """Two cells pressed together exactly at the seam of 8x8 tiles, one crossing it."""
    truth = np.zeros((16, 16), dtype=np.int32)
    truth[2:6, 4:8] = 1
    truth[2:6, 8:12] = 2
    truth[9:14, 6:11] = 3
    return truth


def n_objects(labels: Labels) -> int:
    return int(np.unique(labels[labels != 0]).size)


def as_numpy(result: Any) -> Labels:
    """A run's result as NumPy; a lazy result must be a dask array."""
    assert hasattr(result, "compute") and hasattr(result, "chunks"), type(result)
    return np.asarray(result.compute())
