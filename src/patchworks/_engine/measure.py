"""The measurement step: per-tile statistics reduced through the label map, size filters.

With ``objects=`` (or ``min_size=`` / ``max_size=``) the run measures its objects where
the voxels are. ``stitch="touch"`` measures each tile's local labels in the tile stage
(:func:`measure_local`); the statistics then only need the label map to become final
(:func:`reduce_local`). A mode whose final labels are composed later (``stitch="iou"``)
measures the composed tiles itself. Either way the combined statistics decide the size
filters (:func:`filter_map`): a :class:`FilteredLabelMap` maps removed objects to
background, and with ``sequential_labels`` renumbers the kept ones to exactly ``1..N``,
applied by the relabel stage with no other change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.labelmap import LabelMap
from patchworks._engine.objects import TileStats, combine, size_mask, tile_stats
from patchworks.errors import InvalidParameterError, ResumeMismatchError


@dataclass(frozen=True)
class Measure:
    """What the tile stage measures: the objects, and their intensities in ``image``
    (None: labels only). Shipped to the workers with the tile job."""

    image: Any = None  # an ImageSource (the image, or `image=` of merge_tile_labels)
    channels: int | None = None  # channels of `image` (None: it has no channel axis)

    @property
    def columns(self) -> int | None:
        """Intensity columns per statistic (None: no intensities measured)."""
        return None if self.image is None else (self.channels or 1)

    def image_core(self, tile: Any, data: Any = None) -> NDArray[Any] | None:
        """The image under ``tile``'s core, channels last: cropped from ``data`` (read
        over the tile's halo box already) or read now."""
        source = self.image
        if source is None:
            return None
        core = source.read(tile.core) if data is None else data[source.full_box(tile.crop)]
        if source.channel_axis is not None:
            core = np.moveaxis(core, source.channel_axis, -1)
        return np.asarray(core)


def measure_local(measure: Measure, tile: Any, local: NDArray[Any], n: int, data: Any) -> TileStats:
    """Statistics of a tile's local labels ``1..n`` (its core) in image coordinates."""
    origin = tuple(s.start for s in tile.core)
    return tile_stats(local, measure.image_core(tile, data), origin=origin, n=n)


def reduce_local(
    label_map: LabelMap, parts: list[TileStats | None], *, ndim: int, channels: int | None
) -> TileStats:
    """Combine tiles' statistics of local labels into one row per final label
    (``channels``: intensity columns, None for none)."""
    measure_columns = channels
    final = []
    for index, part in enumerate(parts):
        if part is None:
            if label_map.n_local(index):
                raise ResumeMismatchError(
                    f"tile {index} was staged without measuring its objects (an interrupted "
                    "run without objects=, resumed with it); rerun with overwrite=True, or "
                    "resume with the options the run started with."
                )
            continue
        if not part.n:
            continue
        if measure_columns is not None and not part.has_intensity:
            raise ResumeMismatchError(
                f"tile {index} was staged without intensities (an interrupted run with "
                "other objects=, resumed); rerun with overwrite=True."
            )
        lut = label_map.lut(index, label_map.n_local(index), "int64")
        final.append(part.with_ids(lut[part.ids]))
    return combine(final, ndim=ndim, channels=channels)


@dataclass(frozen=True)
class FilteredLabelMap(LabelMap):
    """A label map with some final labels removed (they become background).

    ``kept`` holds the sorted final labels of the map this one filters; with
    ``renumber`` the kept ones become ``1..len(kept)`` in their order.
    """

    kept: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    renumber: bool = False

    def lut(
        self, tile_index: int, n_local: int, dtype: np.dtype[Any] | str = "int64"
    ) -> NDArray[np.integer[Any]]:
        base = super().lut(tile_index, n_local, "int64")
        return self.remap(base).astype(dtype, copy=False)

    def remap(self, labels: NDArray[Any]) -> NDArray[np.int64]:
        """Labels of the filtered map from labels of the map it filters."""
        labels = np.asarray(labels, dtype=np.int64)
        if not self.kept.size:
            return np.zeros(labels.shape, dtype=np.int64)
        pos = np.searchsorted(self.kept, labels)
        clipped = np.minimum(pos, self.kept.size - 1)
        hit = (self.kept[clipped] == labels) & (labels > 0)
        return np.where(hit, pos + 1 if self.renumber else labels, 0).astype(np.int64)


def filter_map(
    label_map: LabelMap,
    stats: TileStats,
    *,
    min_size: int | None,
    max_size: int | None,
    sequential: bool,
) -> tuple[LabelMap, TileStats]:
    """The label map without objects outside the size range, and their statistics with
    the labels of the filtered map (``stats`` are keyed by ``label_map``'s labels)."""
    keep = size_mask(stats.count, min_size, max_size)
    if keep.all():
        return label_map, stats
    kept = stats.ids[keep]
    base = {f.name: getattr(label_map, f.name) for f in dataclasses.fields(label_map)}
    base.update(
        kept=kept,
        renumber=sequential,
        n_labels=int(kept.size),
        max_label=int(kept.size) if sequential else int(kept.max(initial=0)),
    )
    filtered = FilteredLabelMap(**base)
    return filtered, stats.take(keep).with_ids(filtered.remap(kept))


class MeasuredJoin(Protocol):
    """A stitch mode's :class:`~patchworks._engine.merge.Joined` that can measure its
    final objects and apply a filtered label map."""

    @property
    def label_map(self) -> LabelMap: ...

    def measure(self, executor: Any, measure: Measure) -> TileStats:
        """Statistics of the final objects, one row per final label (sorted)."""
        ...

    def with_label_map(self, label_map: LabelMap) -> Any:
        """The same join, applying ``label_map`` instead."""
        ...


def measure_joined(
    joined: Any,
    executor: Any,
    measure: Measure,
    *,
    min_size: int | None,
    max_size: int | None,
    sequential: bool,
    mode: str,
) -> tuple[Any, TileStats]:
    """Measure a join's objects and apply the size filters: the join to write (with the
    filtered label map) and the kept objects' statistics, keyed by their output labels."""
    if not callable(getattr(joined, "measure", None)):
        raise InvalidParameterError(
            f"`objects`, `min_size` and `max_size` need a stitch mode that measures its "
            f"objects (touch, iou); got stitch={mode!r}."
        )
    stats = joined.measure(executor, measure)
    label_map, stats = filter_map(
        joined.label_map, stats, min_size=min_size, max_size=max_size, sequential=sequential
    )
    if label_map is not joined.label_map:
        joined = joined.with_label_map(label_map)
    return joined, stats


def exact_counts(label_map: LabelMap, stats: TileStats) -> LabelMap:
    """``label_map`` with the object count and largest label the measurement found."""
    return dataclasses.replace(
        label_map, n_labels=int(stats.n), max_label=int(stats.ids.max(initial=0))
    )
