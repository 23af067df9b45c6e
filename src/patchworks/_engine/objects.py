"""Per-object measurements: partial statistics per tile, reduced to one row per object.

A tile's labels (local labels ``1..n`` in the tile stage, or final labels where a stitch
mode composes them) and the image under them give one small :class:`TileStats`: per
label, its voxel count, the sums and extremes of its voxel coordinates, and per channel
the sum, the sum of squared deviations from the tile's own mean (``m2``), the minimum and
the maximum of its intensities. Only the foreground voxels are visited, with vectorised
NumPy (``bincount``, ``ufunc.at``); nothing per voxel leaves the tile.

:func:`combine` merges the rows of all tiles by final label: counts and sums add,
extremes and boxes combine, and the ``m2`` of the parts join by the parallel-variance
formula of Chan, Golub and LeVeque (``M2 = sum M2_i + sum n_i (mean_i - mean)^2``), which
stays accurate where a sum of squares would cancel. :func:`columns` turns the result into
the columns ``skimage.measure.regionprops_table`` would give on the whole label image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Properties that need only the labels.
GEOMETRY = (
    "label",
    "area",
    "num_pixels",
    "bbox",
    "centroid",
    "area_bbox",
    "equivalent_diameter_area",
)
#: Properties that need the image's intensities.
INTENSITY = ("intensity_mean", "intensity_min", "intensity_max", "intensity_std")
#: Properties that need the image's pixel sizes.
PHYSICAL = ("area_physical", "centroid_physical")
#: Every property name ``objects=`` accepts.
PROPERTIES = GEOMETRY + INTENSITY + PHYSICAL


@dataclass(frozen=True)
class TileStats:
    """Partial statistics of the objects of one tile (or of the whole image, combined).

    Row ``k`` describes label ``ids[k]``. ``lo`` / ``hi`` are the smallest coordinate and
    one past the largest per axis (image coordinates); the intensity fields are None when
    no image was measured, else have one column per channel.
    """

    ids: NDArray[np.int64]
    count: NDArray[np.int64]
    coord_sum: NDArray[np.float64]  # (n, ndim)
    lo: NDArray[np.int64]  # (n, ndim)
    hi: NDArray[np.int64]  # (n, ndim), exclusive
    isum: NDArray[np.float64] | None = None  # (n, channels)
    m2: NDArray[np.float64] | None = None  # (n, channels): sum of squared deviations
    imin: NDArray[np.float64] | None = None  # (n, channels)
    imax: NDArray[np.float64] | None = None  # (n, channels)

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def has_intensity(self) -> bool:
        return self.isum is not None

    def take(self, rows: NDArray[Any]) -> TileStats:
        """These statistics restricted to ``rows`` (indices or a boolean mask)."""
        fields: dict[str, Any] = {
            k: None if v is None else v[rows] for k, v in self._fields().items()
        }
        return TileStats(**fields)

    def with_ids(self, ids: NDArray[Any]) -> TileStats:
        return replace(self, ids=np.asarray(ids, dtype=np.int64))

    def _fields(self) -> dict[str, Any]:
        return {
            "ids": self.ids,
            "count": self.count,
            "coord_sum": self.coord_sum,
            "lo": self.lo,
            "hi": self.hi,
            "isum": self.isum,
            "m2": self.m2,
            "imin": self.imin,
            "imax": self.imax,
        }


def empty_stats(ndim: int, channels: int | None) -> TileStats:
    """Statistics of no object."""
    c = 0 if channels is None else channels
    fl = np.empty((0, c), dtype=np.float64)
    return TileStats(
        ids=np.empty(0, np.int64),
        count=np.empty(0, np.int64),
        coord_sum=np.empty((0, ndim), np.float64),
        lo=np.empty((0, ndim), np.int64),
        hi=np.empty((0, ndim), np.int64),
        isum=None if channels is None else fl,
        m2=None if channels is None else fl.copy(),
        imin=None if channels is None else fl.copy(),
        imax=None if channels is None else fl.copy(),
    )


def tile_stats(
    labels: NDArray[Any],
    image: NDArray[Any] | None = None,
    *,
    origin: tuple[int, ...] | None = None,
    n: int | None = None,
) -> TileStats:
    """Statistics of every label of ``labels`` (0 is background).

    ``image`` has the labels' shape, plus a last axis of channels when it has channels;
    ``origin`` is where ``labels[0, ..., 0]`` lies in the image. ``n``: the labels are
    ``1..n`` (local labels), each present; otherwise any non-negative integers.

    Examples
    --------
    >>> labels = np.array([[0, 3, 3], [7, 0, 3]])
    >>> s = tile_stats(labels, np.array([[0, 1, 2], [5, 0, 6]]), origin=(10, 0))
    >>> s.ids.tolist(), s.count.tolist(), s.lo.tolist(), s.hi.tolist()
    ([3, 7], [3, 1], [[10, 1], [11, 0]], [[12, 3], [12, 1]])
    >>> s.isum[:, 0].tolist(), s.imin[:, 0].tolist(), s.imax[:, 0].tolist()
    ([9.0, 5.0], [1.0, 5.0], [6.0, 5.0])
    """
    ndim = labels.ndim
    origin = (0,) * ndim if origin is None else tuple(origin)
    flat = labels.reshape(-1)
    fg = np.flatnonzero(flat)
    if n is None:
        ids, rows = np.unique(flat[fg], return_inverse=True)
        ids = ids.astype(np.int64)
        rows = rows.reshape(-1)
    else:
        ids = np.arange(1, n + 1, dtype=np.int64)
        rows = flat[fg].astype(np.intp) - 1
    k = int(ids.size)
    count = np.bincount(rows, minlength=k).astype(np.int64)
    coords = np.unravel_index(fg, labels.shape)
    coord_sum = np.empty((k, ndim), np.float64)
    lo = np.empty((k, ndim), np.int64)
    hi = np.empty((k, ndim), np.int64)
    for axis, where in enumerate(coords):
        coord_sum[:, axis] = np.bincount(rows, weights=where, minlength=k)
        coord_sum[:, axis] += count * float(origin[axis])
        lo[:, axis] = np.iinfo(np.int64).max
        hi[:, axis] = -1
        np.minimum.at(lo[:, axis], rows, where)
        np.maximum.at(hi[:, axis], rows, where)
    lo += np.asarray(origin, dtype=np.int64)
    hi += np.asarray(origin, dtype=np.int64) + 1
    stats = TileStats(ids=ids, count=count, coord_sum=coord_sum, lo=lo, hi=hi)
    if image is None:
        return stats
    return _with_intensity(stats, image, fg, rows)


def _with_intensity(
    stats: TileStats, image: NDArray[Any], fg: NDArray[Any], rows: NDArray[Any]
) -> TileStats:
    k = stats.n
    ndim = stats.lo.shape[1]
    values = image.reshape(math.prod(image.shape[:ndim]), -1)  # channels last
    c = values.shape[1]
    isum = np.empty((k, c), np.float64)
    m2 = np.empty((k, c), np.float64)
    imin = np.full((k, c), np.inf)
    imax = np.full((k, c), -np.inf)
    safe = np.maximum(stats.count, 1)
    for ch in range(c):
        v = values[fg, ch].astype(np.float64)
        isum[:, ch] = np.bincount(rows, weights=v, minlength=k)
        dev = v - (isum[:, ch] / safe)[rows]
        m2[:, ch] = np.bincount(rows, weights=dev * dev, minlength=k)
        np.minimum.at(imin[:, ch], rows, v)
        np.maximum.at(imax[:, ch], rows, v)
    return replace(stats, isum=isum, m2=m2, imin=imin, imax=imax)


def combine(parts: list[TileStats], *, ndim: int, channels: int | None) -> TileStats:
    """One row per distinct ``ids`` over ``parts``, sorted by label (see module doc).

    Examples
    --------
    >>> a = tile_stats(np.array([[1, 1, 0]]), np.array([[2, 4, 0]]), n=1)
    >>> b = tile_stats(np.array([[1, 0]]), np.array([[6, 0]]), origin=(0, 3), n=1)
    >>> s = combine([a, b], ndim=2, channels=1)
    >>> s.count.tolist(), s.lo.tolist(), s.hi.tolist(), (s.m2[:, 0] / s.count).tolist()
    ([3], [[0, 0]], [[1, 4]], [2.6666666666666665])
    """
    parts = [p for p in parts if p.n]
    if not parts:
        return empty_stats(ndim, channels)
    if len(parts) == 1 and np.all(np.diff(parts[0].ids) > 0):
        return parts[0]
    ids = np.concatenate([p.ids for p in parts])
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    group = np.cumsum(np.r_[True, ids[1:] != ids[:-1]]) - 1

    def cat(name: str) -> NDArray[Any]:
        joined: NDArray[Any] = np.concatenate([getattr(p, name) for p in parts])
        return joined[order]

    count = cat("count")
    total = np.add.reduceat(count, starts)
    out = TileStats(
        ids=ids[starts],
        count=total,
        coord_sum=np.add.reduceat(cat("coord_sum"), starts, axis=0),
        lo=np.minimum.reduceat(cat("lo"), starts, axis=0),
        hi=np.maximum.reduceat(cat("hi"), starts, axis=0),
    )
    if not all(p.has_intensity for p in parts):
        return out
    isum = cat("isum")
    sums = np.add.reduceat(isum, starts, axis=0)
    part_mean = isum / np.maximum(count, 1)[:, None]
    mean = sums / np.maximum(total, 1)[:, None]
    spread = count[:, None] * (part_mean - mean[group]) ** 2
    m2 = np.add.reduceat(cat("m2") + spread, starts, axis=0)
    return replace(
        out,
        isum=sums,
        m2=m2,
        imin=np.minimum.reduceat(cat("imin"), starts, axis=0),
        imax=np.maximum.reduceat(cat("imax"), starts, axis=0),
    )


def size_mask(
    count: NDArray[np.int64], min_size: int | None, max_size: int | None
) -> NDArray[np.bool_]:
    """Which objects the size filters keep (``min_size <= count <= max_size``)."""
    keep = np.ones(count.shape, dtype=bool)
    if min_size is not None:
        keep &= count >= min_size
    if max_size is not None:
        keep &= count <= max_size
    return keep


def columns(
    stats: TileStats,
    properties: tuple[str, ...],
    *,
    scale: tuple[float, ...] | None = None,
    channels: int | None = None,
) -> dict[str, NDArray[Any]]:
    """The table's columns, named and typed as ``regionprops_table`` names them.

    ``channels`` None: the image had no channel axis (no ``-c`` suffix on intensity
    columns). ``area_physical`` and ``centroid_physical`` use ``scale`` (pixel sizes per
    axis), as ``regionprops_table(..., spacing=scale)`` gives ``area`` and ``centroid``.
    """
    ndim = stats.lo.shape[1]
    area = stats.count.astype(np.float64)
    centroid = stats.coord_sum / np.maximum(stats.count, 1)[:, None]
    out: dict[str, NDArray[Any]] = {}
    for name in properties:
        if name == "label":
            out["label"] = stats.ids.astype(np.int64)
        elif name == "area":
            out["area"] = area
        elif name == "num_pixels":
            out["num_pixels"] = stats.count.astype(np.int64)
        elif name == "bbox":
            for k in range(ndim):
                out[f"bbox-{k}"] = stats.lo[:, k].astype(np.int64)
            for k in range(ndim):
                out[f"bbox-{ndim + k}"] = stats.hi[:, k].astype(np.int64)
        elif name == "centroid":
            for k in range(ndim):
                out[f"centroid-{k}"] = centroid[:, k]
        elif name == "area_bbox":
            out["area_bbox"] = np.prod(stats.hi - stats.lo, axis=1).astype(np.float64)
        elif name == "equivalent_diameter_area":
            out[name] = (2 * ndim * area / np.pi) ** (1 / ndim)
        elif name == "area_physical":
            assert scale is not None
            out[name] = area * float(np.prod(scale))
        elif name == "centroid_physical":
            assert scale is not None
            for k in range(ndim):
                out[f"{name}-{k}"] = centroid[:, k] * float(scale[k])
        else:
            out.update(_intensity_column(stats, name, channels))
    return out


def _intensity_column(stats: TileStats, name: str, channels: int | None) -> dict[str, NDArray[Any]]:
    assert stats.isum is not None and stats.m2 is not None
    assert stats.imin is not None and stats.imax is not None
    n = np.maximum(stats.count, 1)[:, None]
    values = {
        "intensity_mean": stats.isum / n,
        "intensity_min": stats.imin,
        "intensity_max": stats.imax,
        "intensity_std": np.sqrt(np.maximum(stats.m2, 0) / n),
    }[name]
    if channels is None:
        return {name: values[:, 0]}
    return {f"{name}-{c}": values[:, c] for c in range(values.shape[1])}
