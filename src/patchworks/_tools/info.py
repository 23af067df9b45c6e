"""What a run on an image would look like, without running it (``patchworks info``).

:func:`describe` opens the image lazily and reports its format, shape, dtype, storage
chunks, OME-Zarr levels, channels and existing label images, then the tile plan a run
would use (tile shape, halo, number of tiles) and an estimate of the memory each tile in
flight needs. Nothing but metadata is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

import numpy as np

if TYPE_CHECKING:
    from patchworks._typing import OverlapLike, TileShapeLike
    from patchworks.io._source import ImageSource

#: Bytes per voxel a tile in flight needs besides its input: fn's labels (int32), their
#: cropped, renumbered copy and a lookup table pass (about three int32 arrays).
LABEL_BYTES_PER_VOXEL = 12


class LevelInfo(TypedDict):
    """One OME-Zarr resolution level in :class:`OmeInfo`."""

    path: str
    scale: list[float]


class OmeInfo(TypedDict):
    """The OME-Zarr part of :class:`RunInfo`."""

    version: str
    axes: list[str]
    level: int
    levels: list[LevelInfo]
    channel: int | None
    labels: list[str]


class RunInfo(TypedDict):
    """What :func:`describe` returns (a plain, JSON-able ``dict`` at runtime)."""

    image: str
    format: str
    stored_shape: list[int]
    shape: list[int]
    dtype: str
    chunks: list[int] | None
    channels: int
    channel_axis: int | None
    tile_shape: list[int]
    halo: Literal["auto"] | list[int]
    grid: list[int]
    n_tiles: int
    memory_per_tile_bytes: int
    workers: int
    memory_in_flight_bytes: int
    time_axes: list[str]
    time_points: list[int]  # per time axis
    channel_needed: bool  # several channels, and neither channel nor channel_axis given
    spatial_axes: NotRequired[list[str]]  # the labels' axes, when the file names them
    axes: NotRequired[list[str]]  # a TIFF's (an OME-Zarr image's are in ``ome``)
    pixel_size: NotRequired[list[float]]
    units: NotRequired[list[str | None]]
    ome: NotRequired[OmeInfo]


def describe(
    image: Any,
    *,
    tile_shape: TileShapeLike = None,
    overlap: OverlapLike = 0,
    level: int | str | None = None,
    channel: int | None = None,
    channel_axis: int | None = None,
    workers: int | None = None,
    time_as_space: bool = False,
) -> RunInfo:
    """Describe ``image`` and the tile plan of a run on it.

    Examples
    --------
    >>> import numpy as np
    >>> info = describe(np.zeros((64, 100), dtype="uint8"), tile_shape=(32, 50), overlap=4)
    >>> info["shape"], info["n_tiles"], info["tile_shape"], info["halo"]
    ([64, 100], 4, [32, 50], [4, 4])
    """
    from patchworks._options import resolve_tile_shape
    from patchworks._plan import TilePlan, normalize_overlap
    from patchworks._run import one_per_time_point
    from patchworks.errors import ChannelNeededError
    from patchworks.io._source import open_image

    needed: ChannelNeededError | None = None
    try:
        source = open_image(image, channel_axis=channel_axis, level=level, channel=channel)
    except ChannelNeededError as exc:  # describe it with all channels; say what to choose
        needed = exc
        source = open_image(image, channel_axis=exc.axis, level=level)
    workers = workers or os.cpu_count() or 1
    tiles = resolve_tile_shape(tile_shape, source, n_tasks=workers, use_gpu=False)
    separate = () if time_as_space else source.time_axes
    names = source.axis_names(separate)
    tiles = one_per_time_point(
        tiles, separate, given=tile_shape, names=", ".join(repr(n) for n in names)
    )
    auto_overlap = isinstance(overlap, str) and overlap == "auto"
    halo = (0,) * len(tiles) if auto_overlap else normalize_overlap(overlap, tiles)
    plan = TilePlan(shape=source.shape, tile_shape=tiles, halo=halo)
    channels = 1
    if source.channel_axis is not None:
        channels = int(source.array.shape[source.channel_axis])
    halo_voxels = math.prod(
        min(t + 2 * h, n) for t, h, n in zip(tiles, halo, source.shape, strict=True)
    )
    per_tile = halo_voxels * (source.dtype.itemsize * channels + LABEL_BYTES_PER_VOXEL)
    info: RunInfo = {
        "image": image if isinstance(image, str) else type(image).__name__,
        "format": _format(image, source),
        "stored_shape": [int(n) for n in source.array.shape],
        "shape": list(source.shape),
        "dtype": str(source.dtype),
        "chunks": list(source.chunks) if source.chunks else None,
        "channels": channels,
        "channel_axis": source.channel_axis,
        "tile_shape": list(tiles),
        "halo": "auto" if auto_overlap else list(halo),
        "grid": list(plan.grid),
        "n_tiles": int(plan.n_tiles),
        "memory_per_tile_bytes": int(per_tile),
        "workers": int(workers),
        "memory_in_flight_bytes": int(per_tile * workers),
        "time_axes": names,
        "time_points": [int(source.shape[i]) for i in separate],
        "channel_needed": needed is not None,
    }
    if source.ome is None and source.axes is not None:
        info["axes"] = list(source.axes.names)
        info["spatial_axes"] = list(source.axes.names)
        info["units"] = list(source.axes.units)
        if source.axes.scale is not None:
            info["pixel_size"] = list(source.axes.scale)
    if source.ome is not None:
        ome = source.ome
        info["spatial_axes"] = list(ome.axes.names)
        info["units"] = list(ome.axes.units)
        info["pixel_size"] = list(ome.scale)
        info["ome"] = {
            "version": ome.image.version,
            "axes": list(ome.image.axes.names),
            "level": ome.level,
            "levels": [{"path": lv.path, "scale": list(lv.scale)} for lv in ome.image.levels],
            "channel": ome.channel,
            "labels": _existing_labels(ome.url),
        }
    return info


def _format(image: Any, source: ImageSource) -> str:
    if source.ome is not None:
        return f"OME-Zarr {source.ome.image.version}"
    if isinstance(image, str):
        from patchworks.io._source import TIFF_SUFFIXES

        if image.lower().endswith(TIFF_SUFFIXES):
            return "TIFF"
        fmt = getattr(getattr(source.array, "metadata", None), "zarr_format", None)
        return f"zarr v{fmt}" if fmt else "zarr"
    return type(image).__name__


def _existing_labels(url: str) -> list[str]:
    import zarr

    try:
        attrs: dict[str, Any] = dict(zarr.open_group(os.path.join(url, "labels"), mode="r").attrs)
    except Exception:  # no labels group
        return []
    return list(attrs.get("ome", {}).get("labels", attrs.get("labels", [])))


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def format_info(info: RunInfo) -> str:
    """Human-readable lines for :func:`describe`'s result.

    Examples
    --------
    >>> import numpy as np
    >>> print(format_info(describe(np.zeros((8, 8), "uint8"), tile_shape=(4, 8), workers=2)))
    ... # doctest: +NORMALIZE_WHITESPACE
    image       ndarray (ndarray)
    shape       (8, 8)  dtype uint8  chunks none
    channels    1
    segments    2-D
    tiles       2 tiles of (4, 8) (grid (2, 1)), halo (0, 0)
    memory      about 416 B per tile in flight; 832 B with 2 workers
    """

    def tup(values: Iterable[object] | None) -> str:
        return "(" + ", ".join(str(v) for v in values) + ")" if values is not None else "none"

    lines = [f"image       {info['image']} ({info['format']})"]
    stored = ""
    if info["stored_shape"] != info["shape"]:
        stored = f" (stored {tup(info['stored_shape'])})"
    lines.append(
        f"shape       {tup(info['shape'])}{stored}  dtype {info['dtype']}  "
        f"chunks {tup(info['chunks'])}"
    )
    ome = info.get("ome")
    if "axes" in info:
        sizes = info.get("pixel_size")
        units = sorted({u for u in info.get("units", []) if u})
        size_note = f"  pixel size {tup(sizes)} {', '.join(units)}".rstrip() if sizes else ""
        lines.append(f"axes        {tup(info['axes'])}{size_note}")
    if ome:
        sizes = info.get("pixel_size")
        units = sorted({u for u in info.get("units", []) if u})
        size_note = f"  pixel size {tup(sizes)} {', '.join(units)}".rstrip() if sizes else ""
        lines.append(f"axes        {tup(ome['axes'])}  NGFF {ome['version']}{size_note}")
        levels = ", ".join(f"{lv['path']} {tup(lv['scale'])}" for lv in ome["levels"])
        lines.append(f"levels      {len(ome['levels'])}: {levels}; using level {ome['level']}")
        lines.append(f"labels      {', '.join(ome['labels']) or 'none'}")
    channel_note = ""
    if info["channel_needed"]:
        axis = info["channel_axis"]
        channel_note = (
            f" on axis {axis}: choose --channel K (segment channel K) or --channel-axis "
            f"{axis} (fn gets all {info['channels']})"
        )
    elif ome and ome.get("channel") is not None:
        channel_note = f" (segmenting channel {ome['channel']})"
    elif info["channel_axis"] is not None:
        channel_note = f" (all handed to fn, axis {info['channel_axis']})"
    lines.append(f"channels    {info['channels']}{channel_note}")
    if info["time_axes"]:
        points = ", ".join(str(n) for n in info["time_points"])
        lines.append(
            f"time        axis {', '.join(info['time_axes'])} ({points} time points): each "
            "time point labelled on its own (--time-as-space joins across it)"
        )
    lines.append(f"segments    {_segments(info)}")
    halo = info["halo"] if isinstance(info["halo"], str) else tup(info["halo"])
    lines.append(
        f"tiles       {info['n_tiles']} tiles of {tup(info['tile_shape'])} "
        f"(grid {tup(info['grid'])}), halo {halo}"
    )
    lines.append(
        f"memory      about {_size(info['memory_per_tile_bytes'])} per tile in flight; "
        f"{_size(info['memory_in_flight_bytes'])} with {info['workers']} workers"
    )
    return "\n".join(lines)


def _segments(info: RunInfo) -> str:
    """What a run segments, in one phrase: which channel, over which axes, per time point.

    Examples
    --------
    >>> import numpy as np
    >>> _segments(describe(np.zeros((8, 8), "uint8")))
    '2-D'
    """
    axes = info.get("spatial_axes")
    if axes:
        space = [a for a in axes if a not in info["time_axes"]]
        what = f"{len(space)}-D ({', '.join(space)})"
    else:
        what = f"{len(info['shape']) - len(info['time_axes'])}-D"
    channel = info.get("ome", {}).get("channel")
    if info["channel_needed"]:
        what += f", one of {info['channels']} channels (--channel K) or all (--channel-axis)"
    elif channel is not None:
        what += f", channel {channel}"
    elif info["channel_axis"] is not None:
        what += f", all {info['channels']} channels handed to fn together"
    if info["time_axes"]:
        points = " x ".join(str(n) for n in info["time_points"])
        what += f", each of the {points} time points on its own"
    return what


def as_json(info: Mapping[str, object]) -> dict[str, object]:
    """``info`` with NumPy scalars turned into plain Python values."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}
