"""Look at a result in napari: the image and its labels, every resolution level, at the
image's pixel size (``patchworks.view``).

:func:`napari_layers` builds napari's layer data tuples ``(data, options, kind)`` without
importing napari: lazy arrays per level (nothing is read until napari draws a region), the
level's scale from the OME-Zarr metadata, so labels lie exactly on the image. :func:`view`
opens a viewer with them (``pip install "patchworks[napari]"``).
"""

from __future__ import annotations

import os
from typing import Any

from patchworks.errors import missing_dependency

__all__ = ["napari_layers", "view"]

#: napari's layer data tuple: (data, layer options, layer kind).
LayerData = tuple[Any, dict[str, Any], str]


def _levels(path: Any, name: str, **select: Any) -> tuple[list[Any], list[float] | None]:
    """The arrays of every level of ``path`` (one for a plain array) and level 0's scale."""
    from patchworks.io._source import open_image

    first = open_image(path, name=name, **select)
    if first.ome is None:
        return [first.array], None
    arrays = [first.array]
    for k in range(1, len(first.ome.image.levels)):
        arrays.append(open_image(path, name=name, level=k, **select).array)
    return arrays, [float(s) for s in first.ome.scale]


def napari_layers(image: Any, labels: Any = None, *, channel: int | None = None) -> list[LayerData]:
    """napari layer data tuples for ``image`` and its ``labels``.

    Parameters
    ----------
    image : str, os.PathLike or array
        As :func:`patchworks.tile_process` takes it.
    labels : str, os.PathLike or array, optional
        A label array or OME-Zarr label image; default ``labels/patchworks`` inside an
        OME-Zarr ``image`` when present.
    channel : int, optional
        The channel to show of a multi-channel image.

    Returns
    -------
    list of (data, options, kind)
        ``kind`` is ``"image"`` or ``"labels"``; ``data`` a list of lazy arrays (one per
        resolution level) with ``options["multiscale"]``; ``options["scale"]`` the pixel
        size of level 0 when the file records it.

    Examples
    --------
    >>> import numpy as np
    >>> [(kind, opts["name"]) for _, opts, kind in napari_layers(np.zeros((8, 8)))]
    [('image', 'image')]
    """
    arrays, scale = _levels(image, "image", channel=channel)
    options: dict[str, Any] = {"name": "image", "multiscale": len(arrays) > 1}
    if scale is not None:
        options["scale"] = scale
    layers: list[LayerData] = [(arrays if len(arrays) > 1 else arrays[0], options, "image")]
    if labels is None and isinstance(image, str | os.PathLike):
        inside = os.path.join(os.fspath(image), "labels", "patchworks")
        labels = inside if os.path.isdir(inside) else None
    if labels is not None:
        label_arrays, label_scale = _levels(labels, "labels")
        label_options: dict[str, Any] = {"name": "labels", "multiscale": len(label_arrays) > 1}
        if label_scale is not None or scale is not None:
            label_options["scale"] = label_scale or scale  # a plain array: the image's
        data = label_arrays if len(label_arrays) > 1 else label_arrays[0]
        layers.append((data, label_options, "labels"))
    return layers


def view(image: Any, labels: Any = None, *, channel: int | None = None) -> Any:
    """Open ``image`` and its ``labels`` in a napari viewer at the image's scale.

    Takes what :func:`napari_layers` takes; returns the ``napari.Viewer`` (call
    ``napari.run()`` in a script to keep it open).
    """
    try:
        import napari
    except ImportError:
        raise missing_dependency("napari", "napari", "Viewing results") from None
    viewer = napari.Viewer()
    for data, options, kind in napari_layers(image, labels, channel=channel):
        adder = viewer.add_image if kind == "image" else viewer.add_labels
        adder(data, **options)
    return viewer
