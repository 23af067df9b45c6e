"""Choosing ``overlap``: about one object diameter, measured on a sample of the image.

For ``stitch="iou"`` a tile must see every object that crosses its core's faces whole, or
at least a large part of it, so that both tiles' predictions of the overlap can agree.
:func:`suggest_overlap` runs ``fn`` once on a central sample and returns, per axis, a high
quantile of the objects' extents. Also here: the tile plan of a user's own overlapping
tiling (``merge_tile_labels(..., stitch="iou")``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from patchworks._plan import TilePlan, normalize_overlap
from patchworks.errors import InvalidParameterError
from patchworks.io._source import ImageSource, open_image

SAMPLE_VOXELS = 1 << 21


def suggest_overlap(
    image: Any,
    fn: Any,
    *,
    sample_shape: Any = None,
    quantile: float = 0.9,
    channel_axis: int | None = None,
    level: int | str | None = None,
) -> tuple[int, ...]:
    """Suggest an ``overlap`` of about one object diameter per axis.

    Runs ``fn`` once on a box at the centre of ``image`` and measures the extent of each
    object along each axis; objects cut by the sample's border are ignored when others
    remain. Axes where the sample is one voxel thick get 0.

    Parameters
    ----------
    image : array-like or str
        The image, as for :func:`tile_process`.
    fn : callable
        The segmentation function, as for :func:`tile_process`.
    sample_shape : tuple of int, optional
        Size of the central sample (default: about 2 million voxels, clipped to the image);
        use the planned ``tile_shape`` so ``fn`` sees what it will see on a tile.
    quantile : float
        Which quantile of the objects' extents to return (0.9: nine in ten objects fit).
    channel_axis, level
        As in :func:`tile_process`.

    Returns
    -------
    overlap : tuple of int
        One entry per spatial axis; 0 when the sample holds no object.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> image = np.zeros((60, 60), dtype="uint8")
    >>> for r in range(5, 55, 12):
    ...     image[r:r + 8, 10:16] = 1          # objects 8 rows by 6 columns
    >>> suggest_overlap(image, lambda t: ndi.label(t)[0])
    (8, 6)
    """
    from scipy import ndimage as ndi

    from patchworks._engine.tiles import check_labels

    if not 0 < quantile <= 1:
        raise InvalidParameterError(f"`quantile` must be in (0, 1]; got {quantile!r}.")
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
    labels, _ = check_labels(fn(source.read(box)), sample, tile)
    slices = [s for s in ndi.find_objects(labels) if s is not None]
    if not slices:
        return (0,) * len(shape)
    extents = np.array([[s.stop - s.start for s in obj] for obj in slices])
    inside = np.array(
        [
            all(s.start > 0 and s.stop < n for s, n in zip(obj, sample, strict=True))
            for obj in slices
        ]
    )
    if inside.any():
        extents = extents[inside]
    return tuple(
        0 if n == 1 else math.ceil(np.quantile(extents[:, axis], quantile))
        for axis, n in enumerate(sample)
    )


def resolve_overlap(overlap: Any, source: ImageSource, fn: Any, tiles: tuple[int, ...]) -> Any:
    """``overlap="auto"`` → :func:`suggest_overlap` on a central tile; else unchanged.

    Whether the stitch mode can work with the resulting halo is its own check
    (:meth:`patchworks.stitch.Stitcher.check_halo`).
    """
    if isinstance(overlap, str):
        if overlap != "auto":
            raise InvalidParameterError(
                f'`overlap` must be an integer, a tuple of integers or "auto"; got {overlap!r}.'
            )
        overlap = suggest_overlap(source, fn, sample_shape=tiles)
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
