"""Read OME-Zarr (NGFF 0.4 and 0.5) multiscale images: pick a level and a channel.

The ``multiscales`` metadata (at the top of the group's attributes in 0.4, under ``"ome"``
in 0.5) lists the resolution levels with their scale and translation, and names the axes.
:func:`open_multiscale` turns that into the array ``fn`` will see: the chosen level, the
chosen channel (or all of them with ``channel_axis``), singleton time/channel axes dropped,
without reading any pixel data. The :class:`OmeSelection` it returns is what the output
writer needs to place labels in the same coordinate system.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from patchworks.errors import ChannelNeededError, InvalidImageError, InvalidParameterError
from patchworks.io._axes import Axes


@dataclass(frozen=True)
class Level:
    """One resolution level: array path, and scale/translation per array axis."""

    path: str
    scale: tuple[float, ...]
    translation: tuple[float, ...]


@dataclass(frozen=True)
class OmeImage:
    """The multiscales metadata of an OME-Zarr image group."""

    version: str
    axes: Axes
    levels: tuple[Level, ...]
    name: str | None
    zarr_format: int


@dataclass(frozen=True)
class OmeSelection:
    """What was read from an OME-Zarr image, for writing labels that line up with it.

    ``axes``, ``scale`` and ``translation`` describe the labels' axes (the image's axes
    without channel and dropped singleton axes).
    """

    image: OmeImage
    url: str
    level: int
    channel: int | None
    axes: Axes
    scale: tuple[float, ...]
    translation: tuple[float, ...]
    kept: tuple[int, ...]  # image axes that remain in the labels


@dataclass(frozen=True)
class AxisView:
    """A lazy view of ``array`` with some axes fixed to one index (picklable).

    Examples
    --------
    >>> import numpy as np
    >>> view = AxisView(np.arange(24).reshape(2, 3, 4), (1, None, None))
    >>> view.shape, view[0:1, 1:3].tolist()
    ((3, 4), [[13, 14]])
    """

    array: Any
    index: tuple[int | None, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n, i in zip(self.array.shape, self.index, strict=True) if i is None)

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(self.array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def chunks(self) -> tuple[int, ...] | None:
        chunks = getattr(self.array, "chunks", None)
        if chunks is None:
            return None
        sizes = [int(c[0]) if isinstance(c, tuple) else int(c) for c in chunks]
        return tuple(c for c, i in zip(sizes, self.index, strict=True) if i is None)

    def __getitem__(self, box: int | slice | tuple[int | slice, ...]) -> Any:
        box = box if isinstance(box, tuple) else (box,)
        box = box + (slice(None),) * (self.ndim - len(box))
        parts = iter(box)
        full = tuple(next(parts) if i is None else i for i in self.index)
        return self.array[full]


def read_multiscales(group: Any) -> OmeImage | None:
    """Parse the multiscales metadata of a zarr group, or None when it has none."""
    attrs: dict[str, Any] = dict(group.attrs)
    ome: dict[str, Any] = attrs["ome"] if isinstance(attrs.get("ome"), dict) else {}
    multiscales = attrs.get("multiscales") or ome.get("multiscales")
    if not multiscales:
        return None
    meta = multiscales[0]
    version = str(ome.get("version") or meta.get("version") or "0.4")
    datasets = meta.get("datasets") or []
    if not datasets:
        raise InvalidImageError("OME-Zarr `multiscales` has no datasets (resolution levels).")
    first = group[datasets[0]["path"]]
    ndim = len(first.shape)
    axes = Axes.from_ngff(meta.get("axes"), ndim=ndim)
    global_scale, global_shift = _transforms(meta.get("coordinateTransformations"), ndim)
    levels = []
    for dataset in datasets:
        scale, shift = _transforms(dataset.get("coordinateTransformations"), ndim)
        levels.append(
            Level(
                path=str(dataset["path"]),
                scale=tuple(s * g for s, g in zip(scale, global_scale, strict=True)),
                translation=tuple(
                    t * g + u for t, g, u in zip(shift, global_scale, global_shift, strict=True)
                ),
            )
        )
    return OmeImage(
        version=version,
        axes=axes,
        levels=tuple(levels),
        name=meta.get("name"),
        zarr_format=int(getattr(group.metadata, "zarr_format", 3)),
    )


def _transforms(
    transforms: Iterable[Mapping[str, Any]] | None, ndim: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scale, shift = (1.0,) * ndim, (0.0,) * ndim
    for item in transforms or []:
        if item.get("type") == "scale" and "scale" in item:
            scale = tuple(float(v) for v in item["scale"])
        elif item.get("type") == "translation" and "translation" in item:
            shift = tuple(float(v) for v in item["translation"])
    return scale, shift


def level_index(image: OmeImage, level: int | str | None, url: str) -> int:
    """Index of ``level`` (an index, or a dataset path) among the image's levels."""
    paths = [lv.path for lv in image.levels]
    if level is None:
        return 0
    if isinstance(level, int | np.integer) and not isinstance(level, bool):
        if 0 <= level < len(paths):
            return int(level)
    elif isinstance(level, str) and level in paths:
        return paths.index(level)
    raise InvalidParameterError(
        f"`level` must be an index in 0..{len(paths) - 1} or one of {paths} for {url!r}; "
        f"got {level!r}."
    )


def open_multiscale(
    group: Any,
    url: str,
    *,
    level: int | str | None,
    channel: int | None,
    channel_axis: int | None,
) -> tuple[Any, int | None, OmeSelection] | None:
    """The array of an OME-Zarr group to segment, its channel axis, and the selection.

    Returns None when ``group`` has no multiscales metadata.
    """
    image = read_multiscales(group)
    if image is None:
        return None
    k = level_index(image, level, url)
    array = group[image.levels[k].path]
    index, new_channel_axis, labels_axes = select_axes(
        tuple(array.shape), image.axes, channel=channel, channel_axis=channel_axis, url=url
    )
    axes, c = image.axes, image.axes.channel
    chosen = image.levels[k]
    selection = OmeSelection(
        image=image,
        url=url,
        level=k,
        channel=index[c] if c is not None else None,
        axes=axes.drop([i for i in range(axes.ndim) if i not in labels_axes]),
        scale=tuple(chosen.scale[i] for i in labels_axes),
        translation=tuple(chosen.translation[i] for i in labels_axes),
        kept=labels_axes,
    )
    view = array if all(i is None for i in index) else AxisView(array, index)
    return view, new_channel_axis, selection


def select_axes(
    shape: tuple[int, ...],
    axes: Axes,
    *,
    channel: int | None,
    channel_axis: int | None,
    url: str,
) -> tuple[tuple[int | None, ...], int | None, tuple[int, ...]]:
    """Which axes to fix (``index``), the remaining channel axis, and the labels' axes.

    Singleton non-space axes are dropped; a channel axis is kept only with
    ``channel_axis``, else one channel is picked (``channel``, or the only one).

    Examples
    --------
    >>> axes = Axes.from_ngff(["t", "c", "y", "x"], ndim=4)
    >>> select_axes((1, 3, 8, 8), axes, channel=2, channel_axis=None, url="a.zarr")
    ((0, 2, None, None), None, (2, 3))
    """
    index: list[int | None] = [None] * axes.ndim
    for i, kind in enumerate(axes.types):
        if kind not in ("space", "channel") and shape[i] == 1:
            index[i] = 0  # a singleton time (or other non-space) axis
    c = axes.channel
    if c is None:
        if channel is not None or channel_axis is not None:
            given = "channel" if channel is not None else "channel_axis"
            value = channel if channel is not None else channel_axis
            raise InvalidParameterError(
                f"`{given}` selects channels, but the axes of {url!r} "
                f"({list(axes.names)}) have no channel axis; got {given}={value!r}."
            )
    else:
        n_channels = int(shape[c])
        if channel is not None and channel_axis is not None:
            raise InvalidParameterError(
                "Give `channel` (segment one channel) or `channel_axis` (hand fn all "
                f"channels), not both; got channel={channel!r}, channel_axis={channel_axis!r}."
            )
        if channel is not None:
            if (
                isinstance(channel, bool)
                or not isinstance(channel, int | np.integer)
                or not 0 <= channel < n_channels
            ):
                raise InvalidParameterError(
                    f"`channel` must be an index in 0..{n_channels - 1} (the image has "
                    f"{n_channels} channels on axis {c}, {axes.names[c]!r}); got {channel!r}."
                )
            index[c] = int(channel)
        elif channel_axis is not None:
            if channel_axis not in (c, c - axes.ndim):
                raise InvalidParameterError(
                    f"`channel_axis` must be the image's channel axis per its axes "
                    f"metadata ({c}, {axes.names[c]!r}); got {channel_axis!r}."
                )
        elif n_channels == 1:
            index[c] = 0
        else:
            raise ChannelNeededError(
                f"`channel` is needed: {url!r} has {n_channels} channels on axis {c} "
                f"({axes.names[c]!r}); pass channel=K to segment one, or channel_axis={c} to "
                "hand fn all channels; got channel=None.",
                axis=c,
                n_channels=n_channels,
            )
    kept = tuple(i for i, fixed in enumerate(index) if fixed is None)
    new_channel_axis = kept.index(c) if c is not None and c in kept else None
    return tuple(index), new_channel_axis, tuple(i for i in kept if i != c)
