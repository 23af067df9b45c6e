"""Image-wide intensity normalisation for the plugins, and tiling on a model's grid.

Models expect their input scaled by percentiles (StarDist: 1 and 99.8; Cellpose: 1 and
99). Percentiles of each *tile* differ from tile to tile (a tile of background is
stretched until its noise looks like nuclei), so a tiled run finds objects the whole-image
run does not. :func:`image_percentiles` computes the percentiles once, from a bounded
sample of the whole image, and the plugins apply those fixed values to every tile.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import InvalidImageError, InvalidParameterError
from patchworks.io._source import open_image

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Voxels (per channel) read by :func:`image_percentiles` at most, unless told otherwise.
SAMPLE_VOXELS = 1 << 22


@dataclass(frozen=True)
class IntensityRange:
    """Fixed values that map to 0 and 1, one pair per channel (one pair without channels).

    Build it with :func:`image_percentiles`; pass it to a plugin as ``normalize=``.

    Examples
    --------
    >>> r = IntensityRange(low=(10.0,), high=(20.0,))
    >>> r.apply(np.array([10, 15, 20]), channel_axis=None).tolist()
    [0.0, 0.5, 1.0]
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        low, high = np.asarray(self.low, float), np.asarray(self.high, float)
        if low.shape != high.shape or not low.size:
            raise InvalidParameterError(
                f"`IntensityRange` needs one `low` and one `high` per channel; got low="
                f"{self.low!r}, high={self.high!r}."
            )
        if not (np.isfinite(low).all() and np.isfinite(high).all()) or (low > high).any():
            raise InvalidParameterError(
                f"`IntensityRange` values must be finite with low <= high; got low="
                f"{self.low!r}, high={self.high!r}."
            )

    def apply(self, tile: NDArray[Any], channel_axis: int | None) -> NDArray[np.float32]:
        """``(tile - low) / (high - low)`` as float32, per channel along ``channel_axis``."""
        low = np.asarray(self.low, dtype=np.float32)
        span = np.asarray(self.high, dtype=np.float32) - low
        span[span == 0] = 1  # a constant image stays finite
        if channel_axis is None:
            if low.size != 1:
                raise InvalidParameterError(
                    f"`normalize` holds {low.size} channel ranges for a tile without a "
                    "channel axis; got one range per channel, expected one."
                )
            low, span = low.reshape(()), span.reshape(())
        else:
            n_channels = tile.shape[channel_axis]
            if low.size not in (1, n_channels):
                raise InvalidParameterError(
                    f"`normalize` must hold one range or one per channel ({n_channels}); "
                    f"got {low.size}."
                )
            shape = [1] * tile.ndim
            shape[channel_axis] = -1 if low.size > 1 else 1
            low, span = low.reshape(shape), span.reshape(shape)
        out: NDArray[np.float32] = (tile.astype(np.float32) - low) / span
        return out


def as_intensity_range(value: object) -> IntensityRange:
    """``value`` as an :class:`IntensityRange`; anything else is refused. A bare pair is
    refused too: ``(1, 99.8)`` reads as percentiles to anyone used to csbdeep's
    ``normalize(x, 1, 99.8)``, and as intensities it would scale the image silently wrong."""
    if isinstance(value, IntensityRange):
        return value
    hint = ""
    if isinstance(value, Sequence) and len(value) == 2:
        hint = (
            " For fixed intensities pass IntensityRange(low=(LOW,), high=(HIGH,)); for "
            "percentiles, pmin/pmax with image="
        )
    raise InvalidParameterError(
        f'`normalize` must be "image", "tile", False or an IntensityRange; got {value!r}.'
        + (hint + "." if hint else "")
    )


def _sample_boxes(shape: tuple[int, ...], sample_size: int, max_voxels: int) -> list[Any]:
    """Boxes spread evenly over ``shape``, at most ``max_voxels`` voxels in all (the whole
    image when it is that small).

    Examples
    --------
    >>> boxes = _sample_boxes((1, 100_000, 100_000), 64, 1 << 22)
    >>> sum(math.prod(s.stop - s.start for s in box) for box in boxes) <= 1 << 22
    True
    """
    if math.prod(shape) <= max_voxels:
        return [tuple(slice(0, n) for n in shape)]
    wide = [n > 1 for n in shape]
    per_axis = max(1, round(sample_size ** (1 / max(1, sum(wide)))))
    counts = [min(n, per_axis) if w else 1 for n, w in zip(shape, wide, strict=True)]
    sides = [max(1, n // k) for n, k in zip(shape, counts, strict=True)]
    while math.prod(counts) * math.prod(sides) > max_voxels and max(sides) > 1:
        widest = sides.index(max(sides))
        sides[widest] = max(1, sides[widest] // 2)
    axes: list[list[slice]] = []
    for n, k, side in zip(shape, counts, sides, strict=True):
        starts = [min(n - side, max(0, int((j + 0.5) * n / k - side / 2))) for j in range(k)]
        axes.append([slice(start, start + side) for start in starts])
    return list(product(*axes))


def image_sample(
    image: Any,
    *,
    channel_axis: int | None = None,
    level: int | str | None = None,
    channel: int | None = None,
    sample_size: int = 64,
    max_voxels: int = SAMPLE_VOXELS,
) -> NDArray[Any]:
    """Voxel values of the whole image (at most ``max_voxels`` voxels, read whole) or of
    ``sample_size`` boxes spread evenly over it, one row per channel.

    Examples
    --------
    >>> image_sample(np.arange(12).reshape(3, 4)).shape
    (1, 12)
    >>> image_sample(np.zeros((2, 1000, 1000)), channel_axis=0, max_voxels=1000).shape[0]
    2
    """
    source = open_image(image, channel_axis=channel_axis, level=level, channel=channel)
    values = []
    for box in _sample_boxes(source.shape, sample_size, max_voxels):
        data = source.read(box)
        if source.channel_axis is not None:
            data = np.moveaxis(data, source.channel_axis, 0)
            values.append(data.reshape(data.shape[0], -1))
        else:
            values.append(data.reshape(1, -1))
    return np.concatenate(values, axis=1)


def image_percentiles(
    image: Any,
    percentiles: tuple[float, float] = (1.0, 99.8),
    *,
    channel_axis: int | None = None,
    level: int | str | None = None,
    channel: int | None = None,
    sample_size: int = 64,
    max_voxels: int = SAMPLE_VOXELS,
) -> IntensityRange:
    """Percentiles of the whole image, from a bounded, evenly spread sample of boxes.

    An image of at most ``max_voxels`` voxels (per channel) is read whole, so the values
    are exact; a larger one is read as ``sample_size`` boxes spread evenly over it, about
    ``max_voxels`` voxels in all, so the cost does not grow with the image.

    Parameters
    ----------
    image : str, os.PathLike or array
        As in :func:`patchworks.tile_process`.
    percentiles : (float, float)
        Lower and upper percentile (0 to 100).
    channel_axis, level, channel
        As in :func:`patchworks.tile_process`; with ``channel_axis`` each channel gets
        its own range.
    sample_size : int
        Number of boxes read from a large image.
    max_voxels : int
        Voxels (per channel) read at most.

    Returns
    -------
    range : IntensityRange
        Pass it to a plugin as ``normalize=``.

    Examples
    --------
    >>> image = np.arange(1000, dtype="uint16").reshape(10, 100)
    >>> image_percentiles(image, (0, 100))
    IntensityRange(low=(0.0,), high=(999.0,))
    >>> image_percentiles(np.zeros((2, 8, 8)), channel_axis=0).low
    (0.0, 0.0)
    """
    low_p, high_p = (float(p) for p in percentiles)
    if not 0 <= low_p < high_p <= 100:
        raise InvalidParameterError(
            f"`percentiles` must be two numbers with 0 <= low < high <= 100; got {percentiles!r}."
        )
    for name, value in (("sample_size", sample_size), ("max_voxels", max_voxels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParameterError(f"`{name}` must be a positive integer; got {value!r}.")
    sample = image_sample(
        image,
        channel_axis=channel_axis,
        level=level,
        channel=channel,
        sample_size=sample_size,
        max_voxels=max_voxels,
    ).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: refused just below
        low, high = np.nanpercentile(sample, [low_p, high_p], axis=1)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise InvalidImageError(
            f"`image` has no finite values to take percentiles of in the sample read "
            f"({sample.shape[1]} voxels per channel); pass normalize= an IntensityRange."
        )
    return IntensityRange(low=tuple(map(float, low)), high=tuple(map(float, high)))


def fit_tiling(
    grid: tuple[int, ...], tile_shape: int | Sequence[int], overlap: int | Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Round ``tile_shape`` and ``overlap`` up to multiples of ``grid``.

    ``grid`` covers the last axes (a 2-D model on a 3-D image leaves the planes alone;
    give ``overlap`` per axis, with 0 along planes, to segment them one by one).
    Tile origins are multiples of the tile shape and halos equal the overlap, so with both
    on the grid every tile starts on the model's downsampling grid.

    Examples
    --------
    >>> fit_tiling((8, 8), (1, 250, 250), 20)
    ((1, 256, 256), (20, 24, 24))
    """
    tiles = (tile_shape,) if isinstance(tile_shape, int) else tuple(tile_shape)
    ndim = max(len(tiles), len(grid))
    if len(tiles) == 1:
        tiles = tiles * ndim
    overlaps = (overlap,) * ndim if isinstance(overlap, int) else tuple(overlap)
    if len(overlaps) != len(tiles):
        raise InvalidParameterError(
            f"`overlap` must be one number or one per tile axis ({len(tiles)}); got {overlap!r}."
        )
    if any(int(t) < 1 for t in tiles) or any(int(o) < 0 for o in overlaps):
        raise InvalidParameterError(
            "`tile_shape` must be positive and `overlap` non-negative; got "
            f"tile_shape={tile_shape!r}, overlap={overlap!r}."
        )
    steps = (1,) * (len(tiles) - len(grid)) + tuple(grid[-len(tiles) :])

    def up(n: int, step: int) -> int:
        return -(-int(n) // step) * step

    return (
        tuple(up(t, s) for t, s in zip(tiles, steps, strict=True)),
        tuple(up(o, s) for o, s in zip(overlaps, steps, strict=True)),
    )


def resolve_normalize(
    normalize: object,
    image: Any,
    percentiles: tuple[float, float],
    plugin: str,
    *,
    channel_axis: int | None = None,
    level: int | str | None = None,
    channel: int | None = None,
    allow_dict: bool = False,
) -> str | bool | IntensityRange | dict[str, Any]:
    """A plugin's ``normalize=`` as used per tile: ``"tile"``, ``False``, a fixed range,
    or (``allow_dict``, Cellpose) a dict of its own per-tile options. ``image`` is opened
    with ``channel_axis``, ``level`` and ``channel`` as :func:`~patchworks.tile_process`
    opens it.

    ``"image"`` (or True) computes the range from ``image``; without one, each tile is
    normalised on its own and a :class:`TileNormalizationWarning` says so.
    """
    from patchworks.plugins._models import TileNormalizationWarning

    if normalize is True or normalize == "image":
        if image is None:
            warnings.warn(
                f"{plugin} was given no `image=`, so each tile is normalised with its own "
                f"percentiles {percentiles}; a tiled run can then find objects the whole "
                f"image does not. Pass {plugin}(..., image=IMAGE) to normalise with "
                'image-wide percentiles, or normalize="tile" to keep per-tile normalisation '
                "without this warning.",
                TileNormalizationWarning,
                stacklevel=3,
            )
            return "tile"
        return image_percentiles(
            image, percentiles, channel_axis=channel_axis, level=level, channel=channel
        )
    if normalize is False or normalize == "tile":
        return False if normalize is False else "tile"
    if allow_dict and isinstance(normalize, dict):
        return dict(normalize)
    return as_intensity_range(normalize)
