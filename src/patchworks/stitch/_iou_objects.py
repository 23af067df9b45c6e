"""Measuring the objects of ``stitch="iou"``: from the owner-drawn final labels.

With ``stitch="iou"`` a voxel of a tile's core may be drawn by a neighbour's prediction
(:mod:`._owners`), so the tile stage's local labels do not describe the final objects.
The measurement composes each tile's core as the relabel stage will write it and measures
those final labels with the image under the core; the rows of all tiles are then combined
by label (:func:`patchworks._engine.objects.combine`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from patchworks._engine.measure import Measure
from patchworks._engine.objects import TileStats, combine, tile_stats


@dataclass(frozen=True)
class ComposedMeasureJob:
    """Everything a worker needs to measure composed tiles; shipped once per run.

    ``draw(compose, index)`` gives the final labels of a tile's core (``compose_tile``).
    """

    compose: Any
    measure: Measure
    draw: Callable[[Any, int], NDArray[Any]]


def measure_composed_tile(job: ComposedMeasureJob, index: int) -> TileStats:
    """Statistics of the final labels of tile ``index``'s core."""
    plan = job.compose.seams.plan
    tile = plan.tile(index)
    labels = job.draw(job.compose, index)
    origin = tuple(s.start for s in tile.core)
    return tile_stats(labels, job.measure.image_core(tile), origin=origin)


def measure_composed(
    executor: Any, compose: Any, measure: Measure, draw: Callable[[Any, int], NDArray[Any]]
) -> TileStats:
    """The objects' statistics over every tile, one row per final label."""
    plan = compose.seams.plan
    job = ComposedMeasureJob(compose=compose, measure=measure, draw=draw)
    parts = executor.map(measure_composed_tile, job, range(plan.n_tiles), desc="objects")
    return combine(list(parts), ndim=plan.ndim, channels=measure.columns)
