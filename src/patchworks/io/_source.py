"""Open the ``image`` argument as a readable, picklable array source.

Everything downstream sees an :class:`ImageSource`: a spatial shape, a dtype, storage
chunks (if any) and ``read(box)`` returning a NumPy array for a spatial box. Nothing here
reads pixel data eagerly.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import (
    ImageNotFoundError,
    InvalidImageError,
    InvalidParameterError,
    PatchworksError,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from patchworks.io._axes import Axes
    from patchworks.io._ome import AxisView, OmeSelection

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


@dataclass(frozen=True)
class ImageSource:
    """A lazily read array with an optional channel axis.

    ``array`` is anything with NumPy-style basic slicing that returns NumPy arrays (a
    ``numpy.ndarray`` or a ``zarr.Array``) or a ``dask.array.Array``.
    """

    array: Any
    channel_axis: int | None = None
    description: str = field(default="array", compare=False)
    ome: OmeSelection | None = field(default=None, compare=False)  # of an OME-Zarr input
    axes: Axes | None = field(default=None, compare=False)  # spatial, when the file names them

    @property
    def time_axes(self) -> tuple[int, ...]:
        """Spatial axes the file names time (``t``), each time point labelled apart. (An
        axis only typed time, e.g. a TIFF's second channel-like ``S``, is not one.)"""
        if self.axes is None:
            return ()
        return tuple(
            i
            for i, (name, kind) in enumerate(zip(self.axes.names, self.axes.types, strict=True))
            if kind == "time" and name.lower() in ("t", "time")
        )

    def axis_names(self, indices: tuple[int, ...]) -> list[str]:
        """The names of spatial axes ``indices``, as the file names them."""
        names = self.axes.names if self.axes is not None else ()
        return [names[i] if i < len(names) else str(i) for i in indices]

    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape (the channel axis removed)."""
        shape = tuple(int(n) for n in self.array.shape)
        if self.channel_axis is None:
            return shape
        return shape[: self.channel_axis] + shape[self.channel_axis + 1 :]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.array.dtype)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Spatial storage chunk shape, or None when the array has no chunking."""
        chunks = getattr(self.array, "chunks", None)
        if chunks is None:
            return None
        sizes = tuple(int(c[0]) if isinstance(c, tuple) else int(c) for c in chunks)
        if self.channel_axis is not None:
            sizes = sizes[: self.channel_axis] + sizes[self.channel_axis + 1 :]
        return sizes

    @property
    def is_dask(self) -> bool:
        return _is_dask_array(self.array)

    def full_box(self, box: tuple[slice, ...]) -> tuple[slice, ...]:
        if self.channel_axis is None:
            return box
        return (*box[: self.channel_axis], slice(None), *box[self.channel_axis :])

    def read(self, box: tuple[slice, ...]) -> NDArray[Any]:
        """Read a spatial box (all channels) as a NumPy array."""
        region = self.array[self.full_box(box)]
        if self.is_dask:
            region = region.compute(scheduler="sync")
        return np.asarray(region)


def _is_dask_array(obj: object) -> bool:
    # No dask array can exist before dask.array is imported; importing it here just to
    # say no would cost about a second per run.
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(obj, da.Array)


def _open_zarr_path(path: str, level: int | str | None, name: str) -> Any:
    import zarr

    from patchworks.io._storage import open_zarr

    try:
        node = open_zarr(path)
    except FileNotFoundError:
        if "://" in path or not os.path.exists(path):
            raise ImageNotFoundError(f"`{name}` path does not exist: {path!r}.") from None
        raise InvalidImageError(
            f"`{name}` must be a zarr array or group, a TIFF file, or an array; {path!r} "
            "exists but holds no zarr metadata (.zarray/.zgroup or zarr.json)."
        ) from None
    except PatchworksError:
        raise
    except Exception as exc:
        raise InvalidImageError(
            f"`{name}` must be a zarr array or group, a TIFF file, or an array; "
            f"could not open {path!r} as zarr ({type(exc).__name__}: {exc})."
        ) from exc
    if isinstance(node, zarr.Array) and level is not None:
        raise InvalidParameterError(
            f"`level` selects a resolution level of an OME-Zarr group, but {path!r} is a "
            f"plain array; got level={level!r}."
        )
    return node


def _array_from_group(group: Any, path: str, level: int | str | None, name: str) -> Any:
    arrays = sorted(k for k, _ in group.arrays())
    if level is not None:
        if str(level) in arrays:
            return group[str(level)]
        raise InvalidParameterError(
            f"`level` must name an array of {path!r} ({arrays}); got {level!r}."
        )
    if len(arrays) == 1:
        return group[arrays[0]]
    raise InvalidImageError(
        f"`{name}` {path!r} is a zarr group with "
        f"{'no arrays' if not arrays else 'several arrays ' + str(arrays)} and no OME-Zarr "
        "multiscales metadata; pass the path of one array (e.g. 'store.zarr/0')."
    )


def _open_path(
    path: str,
    *,
    level: int | str | None,
    channel: int | None,
    channel_axis: int | None,
    name: str,
) -> tuple[Any, int | None, OmeSelection | None, Axes | None]:
    """(array, channel axis, OME selection or None, the labels' axes when the file names
    them) for a zarr or TIFF path / URL."""
    import zarr

    from patchworks.io._ome import open_multiscale

    if path.lower().endswith(TIFF_SUFFIXES):
        from patchworks.io._tiff import open_tiff

        array, axis, axes = open_tiff(path, level=level, channel=channel, channel_axis=channel_axis)
        return array, axis, None, axes
    node = _open_zarr_path(path, level, name)
    if isinstance(node, zarr.Array):
        if channel is None:
            return node, channel_axis, None, None
        axis = _check_channel_axis(channel_axis, len(node.shape))
        return _select_channel(node, channel, axis), None, None, None
    opened = open_multiscale(node, path, level=level, channel=channel, channel_axis=channel_axis)
    if opened is not None:
        return (*opened, opened[2].axes)
    return _array_from_group(node, path, level, name), channel_axis, None, None


def _check_channel_axis(channel_axis: object, ndim: int) -> int | None:
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int | np.integer):
        raise InvalidParameterError(
            f"`channel_axis` must be an integer axis index or None; got {channel_axis!r}."
        )
    if not -ndim <= channel_axis < ndim:
        raise InvalidParameterError(
            f"`channel_axis` must be an axis of the {ndim}-D image "
            f"(-{ndim}..{ndim - 1}); got {channel_axis}."
        )
    return int(channel_axis) % ndim


def _select_channel(array: Any, channel: object, channel_axis: int | None) -> AxisView:
    """A lazy view of one channel of an array without axes metadata."""
    from patchworks.io._ome import AxisView

    if channel_axis is None:
        raise InvalidParameterError(
            "`channel` picks an index along `channel_axis`, which this image has no metadata "
            f"for; pass channel_axis= too; got channel={channel!r}, channel_axis=None."
        )
    n = int(array.shape[channel_axis])
    if (
        isinstance(channel, bool)
        or not isinstance(channel, int | np.integer)
        or not (0 <= channel < n)
    ):
        raise InvalidParameterError(
            f"`channel` must be an index in 0..{n - 1} (axis {channel_axis} has {n} channels); "
            f"got {channel!r}."
        )
    index: list[int | None] = [None] * len(array.shape)
    index[channel_axis] = int(channel)
    return AxisView(array, tuple(index))


def open_image(
    image: Any,
    *,
    channel_axis: int | None = None,
    level: int | str | None = None,
    channel: int | None = None,
    name: str = "image",
) -> ImageSource:
    """Wrap ``image`` (path, URL, numpy, dask or zarr array) as an :class:`ImageSource`.

    OME-Zarr groups and OME-TIFF files are read through their axes metadata: ``level``
    picks the resolution, ``channel`` one channel (or ``channel_axis`` hands ``fn`` all
    of them); singleton time and channel axes are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> src = open_image(np.zeros((3, 4, 5)), channel_axis=0)
    >>> src.shape, src.read((slice(0, 2), slice(1, 3))).shape
    ((4, 5), (3, 2, 2))
    >>> open_image(np.zeros((3, 4, 5)), channel_axis=0, channel=2).shape
    (4, 5)
    """
    import zarr

    if isinstance(image, os.PathLike):
        image = os.fspath(image)
    if channel_axis is not None:
        _check_channel_axis(channel_axis, 64)  # type check now, range once the rank is known
    ome, axes = None, None
    if isinstance(image, str):
        description = image
        is_url = "://" in image
        if not is_url and not os.path.exists(image):
            raise ImageNotFoundError(f"`{name}` path does not exist: {image!r}.")
        array, channel_axis, ome, axes = _open_path(
            image, level=level, channel=channel, channel_axis=channel_axis, name=name
        )
    elif isinstance(image, np.ndarray | zarr.Array) or _is_dask_array(image):
        array, description = image, type(image).__name__
    else:
        raise InvalidImageError(
            f"`{name}` must be a path or URL to a zarr array/group or TIFF, a numpy array, a "
            f"dask array or a zarr array; got an object of type {type(image).__name__}."
        )
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biuf":
        raise InvalidImageError(f"`{name}` must have a numeric dtype; got dtype {dtype}.")
    channel_axis = _check_channel_axis(channel_axis, len(array.shape))
    if channel is not None and not isinstance(image, str):
        array, channel_axis = _select_channel(array, channel, channel_axis), None
    source = ImageSource(
        array=array, channel_axis=channel_axis, description=description, ome=ome, axes=axes
    )
    if source.ndim < 1 or any(n == 0 for n in source.shape):
        raise InvalidImageError(
            f"`{name}` must have at least one spatial axis and no empty axis; got shape "
            f"{tuple(array.shape)}."
        )
    return source
