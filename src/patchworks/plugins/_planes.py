"""From a tile to what a model wants: channels last, 2-D per plane or 3-D whole.

``fn`` receives a tile with the image's spatial axes and, when the image has channels,
its channel axis. Models take channels last. A 2-D model segments a 3-D tile plane by
plane (IDs are kept distinct between planes; stitching across planes is patchworks'
job), and a tile one plane thick is a 2-D image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import InvalidLabelsError, InvalidParameterError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


def channels_last(
    tile: ArrayLike, channel_axis: int | None
) -> tuple[NDArray[Any], tuple[int, ...]]:
    """Move the channel axis (if any) last; return the array and the spatial shape.

    Examples
    --------
    >>> array, spatial = channels_last(np.zeros((2, 5, 6)), channel_axis=0)
    >>> array.shape, spatial
    ((5, 6, 2), (5, 6))
    """
    tile = np.asarray(tile)
    if channel_axis is None:
        return tile, tile.shape
    if not -tile.ndim <= channel_axis < tile.ndim:
        raise InvalidParameterError(
            f"`channel_axis` must be an axis of the tile (ndim {tile.ndim}); got {channel_axis}."
        )
    moved = np.moveaxis(tile, channel_axis, -1)
    return moved, moved.shape[:-1]


def check_spatial(spatial: tuple[int, ...], plugin: str) -> None:
    if len(spatial) not in (2, 3):
        raise InvalidParameterError(
            f"{plugin} segments 2-D or 3-D tiles; got a tile with spatial shape {spatial}."
        )


def per_plane(
    stack: NDArray[Any], segment: Callable[[NDArray[Any]], ArrayLike]
) -> NDArray[np.int64]:
    """Segment each plane of ``stack`` (planes first) and keep IDs distinct across planes.

    Examples
    --------
    >>> from scipy import ndimage as ndi
    >>> per_plane(np.ones((2, 1, 2)), lambda p: ndi.label(p)[0]).tolist()
    [[[1, 1]], [[2, 2]]]
    """
    out = np.zeros(stack.shape[:3], dtype=np.int64)
    top = 0
    for z in range(stack.shape[0]):
        labels = np.asarray(segment(stack[z])).astype(np.int64)
        out[z] = np.where(labels > 0, labels + top, 0)
        top = max(top, int(out[z].max()))
    return out


def as_labels(
    masks: ArrayLike, spatial: tuple[int, ...], plugin: str
) -> NDArray[np.signedinteger[Any]]:
    """Model output as int32 labels of the tile's spatial shape (int64 if needed)."""
    masks = np.asarray(masks)
    if masks.shape != tuple(spatial):
        raise InvalidLabelsError(
            f"{plugin} returned masks of shape {masks.shape} for a tile of spatial shape "
            f"{tuple(spatial)}."
        )
    dtype = np.int32 if masks.size == 0 or masks.max() <= np.iinfo(np.int32).max else np.int64
    return masks.astype(dtype, copy=False)
