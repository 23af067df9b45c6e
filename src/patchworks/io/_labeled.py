"""Open a user's per-tile labels for `merge_tile_labels`: check the tiling, find the array."""

from __future__ import annotations

import os
from typing import Any

from patchworks.errors import InvalidParameterError
from patchworks.io._source import ImageSource, open_image


def regular_chunks(labeled: Any) -> tuple[int, ...]:
    tiles = []
    for axis, sizes in enumerate(labeled.chunks):
        if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0]):
            raise InvalidParameterError(
                "`labeled` must have a regular chunk grid (one tile per chunk, only the last "
                f"chunk smaller); got chunks {sizes} along axis {axis}. Rechunk the image "
                "before segmenting, never the labels."
            )
        tiles.append(int(sizes[0]))
    return tuple(tiles)


def open_label_store(labeled: Any, input_component: str | None) -> ImageSource:
    if input_component is None:
        return open_image(labeled, name="labeled")
    import zarr

    if not isinstance(labeled, str | os.PathLike):
        raise InvalidParameterError(
            "`input_component` names an array inside a zarr group given by path; got "
            f"labeled of type {type(labeled).__name__}."
        )
    path = os.fspath(labeled)
    if not os.path.exists(path) and "://" not in path:
        return open_image(path, name="labeled")  # raises the not-found error
    try:
        array = zarr.open_group(path, mode="r")[input_component]
    except KeyError:
        raise InvalidParameterError(
            f"`input_component` must name an array in {path!r}; got {input_component!r}."
        ) from None
    if not isinstance(array, zarr.Array):
        raise InvalidParameterError(
            f"`input_component` must name an array, not a group, in {path!r}; got "
            f"{input_component!r}."
        )
    return open_image(array, name="labeled")
