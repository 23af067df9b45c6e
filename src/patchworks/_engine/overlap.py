"""Choosing ``overlap``: how far ``fn`` reaches, and for ``stitch="iou"`` how large the
objects are, measured on a sample of the image.

A tile's core gets the labels ``fn`` gives on the untiled image when the overlap is at
least ``fn``'s *reach* (:mod:`patchworks._engine.reach`): 0 for a plain labeler, the
filter's radius for a filtered one, about an object for an instance model. ``stitch="iou"``
also matches objects in the overlap, so it needs most of each object that crosses a face
there. :func:`suggest_overlap` measures both on a central sample. Also here: putting a
model plugin's tiles on its downsampling grid, and the tile plan of a user's own
overlapping tiling (``merge_tile_labels(..., stitch="iou")``).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np

from patchworks._engine.reach import measure_reach
from patchworks._plan import TilePlan, normalize_overlap
from patchworks.errors import InvalidParameterError, StitchingWarning
from patchworks.io._source import ImageSource, open_image

logger = logging.getLogger("patchworks")

SAMPLE_VOXELS = 1 << 21
#: The overlap is this many times the largest reach seen on any axis: the cuts show how far
#: ``fn``'s labels change only where the sample holds labels that can change (a voxel near
#: a threshold, an object near the cut), and ``fn`` is taken to reach as far along every
#: axis (a filter or network is usually as wide along each). Measured on real and filtered
#: images in ``benchmarks/overlap_auto.py``.
MARGIN = 1.5


def suggest_overlap(
    image: Any,
    fn: Any,
    *,
    stitch: Any = "iou",
    sample_shape: Any = None,
    quantile: float = 0.9,
    margin: float = MARGIN,
    channel_axis: int | None = None,
    level: int | str | None = None,
) -> tuple[int, ...]:
    """Suggest an ``overlap`` per axis: ``fn``'s reach, and for ``stitch="iou"`` at least
    the objects' size.

    Runs ``fn`` on a box at the centre of ``image`` and on the two halves of the box cut
    across each axis (``1 + 2 * ndim`` calls on at most the box): the *reach* is how far
    from a cut the halves' labels differ from the whole box's (see
    :func:`patchworks._engine.reach.measure_reach`) — 0 for a plain labeler, about the
    filter's width for a filtered one, the object size for an instance model that predicts
    cut objects differently. With an overlap of at least the reach, every tile's core gets
    the labels ``fn`` gives on the untiled image. ``stitch="iou"`` also matches objects in
    the overlap, so it gets at least a high quantile of the objects' extents (objects cut
    by the box's border are ignored when others remain). A model plugin's downsampling
    (``fn.grid``) rounds the result up. Axes where the box is one voxel thick get 0.

    Parameters
    ----------
    image : array-like or str
        The image, as for :func:`tile_process`.
    fn : callable
        The segmentation function, as for :func:`tile_process`.
    stitch : str or Stitcher
        The stitch mode the overlap is for: ``"iou"`` (or any mode that matches labels in
        the halo) takes the larger of reach and object size; ``"touch"`` the reach alone.
    sample_shape : tuple of int, optional
        Size of the central box (default: about 2 million voxels, clipped to the image);
        use the planned ``tile_shape`` so ``fn`` sees what it will see on a tile. A reach
        of half the box or more cannot be measured: a ``StitchingWarning`` says so.
    quantile : float
        Which quantile of the objects' extents to use (0.9: nine in ten objects fit).
    margin : float
        The overlap is ``margin`` times the largest reach seen along any axis (see
        :data:`MARGIN`); 1 takes the reach as seen.
    channel_axis, level
        As in :func:`tile_process`.

    Returns
    -------
    overlap : tuple of int
        One entry per spatial axis.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> image = np.zeros((60, 60), dtype="uint8")
    >>> for r in range(5, 55, 12):
    ...     image[r:r + 8, 10:16] = 1          # objects 8 rows by 6 columns
    >>> label = lambda t: ndi.label(t)[0]
    >>> suggest_overlap(image, label)                  # "iou": the objects' size
    (8, 6)
    >>> suggest_overlap(image, label, stitch="touch")  # a plain labeler reaches nowhere
    (0, 0)
    """
    from patchworks._engine.tiles import check_labels

    if not 0 < quantile <= 1:
        raise InvalidParameterError(f"`quantile` must be in (0, 1]; got {quantile!r}.")
    if not isinstance(margin, int | float) or not margin >= 1:
        raise InvalidParameterError(f"`margin` must be a number >= 1; got {margin!r}.")
    source = (
        image
        if isinstance(image, ImageSource)
        else open_image(image, channel_axis=channel_axis, level=level)
    )
    shape = source.shape
    if sample_shape is None:
        side = int(SAMPLE_VOXELS ** (1 / len(shape)))
        sample_shape = tuple(min(n, side) for n in shape)
    elif len(tuple(sample_shape)) != len(shape):
        raise InvalidParameterError(
            f"`sample_shape` must have one entry per image axis ({len(shape)}); got "
            f"{tuple(sample_shape)!r}."
        )
    sample = tuple(max(1, min(int(s), n)) for s, n in zip(sample_shape, shape, strict=True))
    box = tuple(slice((n - s) // 2, (n - s) // 2 + s) for s, n in zip(sample, shape, strict=True))
    tile = TilePlan(shape=sample, tile_shape=sample, halo=(0,) * len(sample)).tile(0)

    def label(result: Any, part: tuple[int, ...]) -> Any:
        return check_labels(result, part, tile)[0]

    pixels = source.read(box)
    reference = label(fn(pixels), sample)
    grid = model_grid(fn)
    matches_in_halo = bool(getattr(stitch, "keeps_halo", stitch == "iou"))
    reach = measure_reach(
        fn,
        lambda part: pixels[source.full_box(part)],
        reference,
        label=label,
        grid=grid,
        rejoin=not matches_in_halo,
    )
    wanted = math.ceil(margin * max(reach, default=0))
    overlap = tuple(0 if n == 1 else wanted for n in sample)
    if matches_in_halo:
        size = object_size(reference, quantile)
        overlap = tuple(max(o, s) for o, s in zip(overlap, size, strict=True))
    rounded = round_up(overlap, grid)
    overlap = tuple(0 if n == 1 else o for o, n in zip(rounded, sample, strict=True))
    logger.info("overlap='auto': fn's reach %s, overlap %s", reach, overlap)
    return overlap


def object_size(labels: Any, quantile: float) -> tuple[int, ...]:
    """Per axis, the ``quantile`` of the objects' extents in ``labels`` (0 without any)."""
    from scipy import ndimage as ndi

    slices = [s for s in ndi.find_objects(labels) if s is not None]
    if not slices:
        return (0,) * int(labels.ndim)
    extents = np.array([[s.stop - s.start for s in obj] for obj in slices])
    inside = np.array(
        [
            all(s.start > 0 and s.stop < n for s, n in zip(obj, labels.shape, strict=True))
            for obj in slices
        ]
    )
    if inside.any():
        extents = extents[inside]
    return tuple(
        0 if n == 1 else math.ceil(np.quantile(extents[:, axis], quantile))
        for axis, n in enumerate(labels.shape)
    )


def model_grid(fn: Any) -> tuple[int, ...]:
    """The downsampling grid a model plugin declares as ``fn.grid`` (its last axes)."""
    grid = getattr(fn, "grid", None)
    if grid is None or isinstance(grid, str):
        return ()
    try:
        return tuple(int(g) for g in grid)
    except (TypeError, ValueError):
        return ()


def round_up(values: tuple[int, ...], grid: tuple[int, ...]) -> tuple[int, ...]:
    """Round each of ``values`` up to a multiple of ``grid`` (which covers the last axes).

    >>> round_up((1, 27, 30), (8, 8))
    (1, 32, 32)
    """
    if not grid:
        return values
    steps = (1,) * (len(values) - len(grid)) + tuple(grid[-len(values) :])
    return tuple(-(-int(v) // s) * s for v, s in zip(values, steps, strict=True))


def fit_model_grid(
    fn: Any, tiles: tuple[int, ...], shape: tuple[int, ...], tile_shape: Any, overlap: Any
) -> tuple[int, ...]:
    """Put the tiles of a model plugin's ``fn`` on its downsampling grid (``fn.grid``).

    A tile shape patchworks chose (``None``, ``"auto"``) is rounded up to the grid; one
    the user gave, or an ``overlap`` they gave, off the grid gets a
    :class:`~patchworks.errors.StitchingWarning` naming ``fn.fit_tiling``: tiles that
    start off the grid shift the image against the network and change its predictions.
    Axes the tiles do not split (one tile across ``shape``) cannot be off the grid.
    (``overlap="auto"`` is rounded by :func:`suggest_overlap`.)
    """
    grid = model_grid(fn)
    if not grid:
        return tiles
    if tile_shape is None or isinstance(tile_shape, str):
        tiles = tuple(1 if t == 1 else r for t, r in zip(tiles, round_up(tiles, grid), strict=True))
    split = [t < n for t, n in zip(tiles, shape, strict=True)]
    steps = round_up((1,) * len(tiles), grid)
    given = (overlap,) * len(tiles) if isinstance(overlap, int) else overlap
    off = [
        name
        for name, values in (("tile_shape", tiles), ("overlap", given))
        if not isinstance(values, str)
        and len(values) == len(tiles)
        and any(c and int(v) % s for c, v, s in zip(split, values, steps, strict=True))
    ]
    if off:
        warnings.warn(
            f"{' and '.join(f'`{n}`' for n in off)} not on the model's downsampling grid "
            f"{grid}: tiles that start off it shift the image against the network, and its "
            "predictions change at the seams; round them up with "
            "`fn.fit_tiling(tile_shape, overlap)`.",
            StitchingWarning,
            stacklevel=4,
        )
    return tiles


def resolve_overlap(
    overlap: Any, source: ImageSource, fn: Any, tiles: tuple[int, ...], *, stitch: Any = "iou"
) -> Any:
    """``overlap="auto"`` → :func:`suggest_overlap` on a central tile; else unchanged.

    Whether the stitch mode can work with the resulting halo is its own check
    (:meth:`patchworks.stitch.Stitcher.check_halo`).
    """
    if isinstance(overlap, str):
        if overlap != "auto":
            raise InvalidParameterError(
                f'`overlap` must be an integer, a tuple of integers or "auto"; got {overlap!r}.'
            )
        overlap = suggest_overlap(source, fn, stitch=stitch, sample_shape=tiles)
        split = any(t < n for t, n in zip(tiles, source.shape, strict=True))
        if split and not any(overlap) and getattr(stitch, "keeps_halo", stitch == "iou"):
            raise InvalidParameterError(
                'overlap="auto" found no object in the central tile-sized sample to '
                f"measure, and stitch={getattr(stitch, 'name', stitch)!r} needs an overlap > "
                "0; pass overlap= about one object diameter (in voxels)."
            )
    return overlap


def check_iou_halo(halo: tuple[int, ...], overlap: Any, tiles: Any, shape: Any) -> None:
    """Raise unless some axis that is split into several tiles has a halo: with none,
    neighbouring tiles share no voxel whose predictions could agree."""
    split = [t < n for t, n in zip(tiles, shape, strict=True)]
    if any(split) and not any(h > 0 for h in halo):
        raise InvalidParameterError(
            '`stitch="iou"` needs `overlap` > 0 (about one object diameter) so that '
            f"neighbouring tiles predict a shared zone; got overlap={overlap!r}."
        )


def halo_plan(chunks: tuple[tuple[int, ...], ...], overlap: Any) -> TilePlan:
    """The tile plan of a user's overlapping tiling: one halo'd tile per block.

    Blocks are what ``dask.array.overlap.overlap(image, depth=overlap, boundary="none")``
    gives: each tile's core plus ``overlap`` on every side that has a neighbour.

    Examples
    --------
    >>> plan = halo_plan(((6, 8, 5), (10,)), 2)   # 11 rows in tiles of 4, 4 and 3
    >>> plan.shape, plan.tile_shape, plan.halo
    ((11, 10), (4, 10), (2, 2))
    """
    ndim = len(chunks)
    halo = normalize_overlap(overlap, tuple(max(sizes) for sizes in chunks))
    cores = []
    for axis, (sizes, h) in enumerate(zip(chunks, halo, strict=True)):
        n = len(sizes)
        cores.append([s - h * (i > 0) - h * (i < n - 1) for i, s in enumerate(sizes)])
        if (
            any(c < 1 for c in cores[-1])
            or len(set(cores[-1][:-1])) > 1
            or (n > 1 and cores[-1][-1] > cores[-1][0])
        ):
            raise InvalidParameterError(
                f"`labeled` blocks must be overlapping tiles extended by `overlap` ({h}) "
                f"on every side with a neighbour; got chunks {sizes} along axis {axis}."
            )
    plan = TilePlan(
        shape=tuple(sum(c) for c in cores),
        tile_shape=tuple(c[0] for c in cores),
        halo=halo,
    )
    check_iou_halo(halo, overlap, plan.tile_shape, plan.shape)
    for axis in range(ndim):
        expected = tuple(
            s.stop - s.start
            for s in (
                plan.tile(plan.index([i if b == axis else 0 for b in range(ndim)])).halo_box[axis]
                for i in range(plan.grid[axis])
            )
        )
        if expected != tuple(chunks[axis]):
            raise InvalidParameterError(
                f"`labeled` blocks must be overlapping tiles extended by `overlap` "
                f"({halo[axis]}) on every side with a neighbour, clipped at the border; got "
                f"chunks {chunks[axis]} along axis {axis}, expected {expected}."
            )
    return plan
