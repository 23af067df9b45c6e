"""``estimate_empty_tiles``: how much of a sparse volume can be skipped, from a sample.

A tile is *empty* when no voxel of its core is above the threshold; ``tile_process(...,
skip_empty=True, empty_threshold=...)`` uses the same rule. The estimate reads a bounded,
seeded random sample of tiles, so it costs the same on a terabyte volume as on a small one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from patchworks._engine.execute import Executor
from patchworks._options import check_empty_threshold, resolve_tile_shape
from patchworks._plan import TilePlan
from patchworks._run import one_per_time_point
from patchworks.errors import InvalidParameterError
from patchworks.io._source import ImageSource, open_image

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from patchworks._typing import TileShapeLike

#: Voxel values kept per sampled tile to estimate the threshold.
VALUES_PER_TILE = 4096


class EmptyTilesEstimate(TypedDict):
    """What :func:`estimate_empty_tiles` returns (a plain ``dict`` at runtime)."""

    empty_fraction: float
    threshold: float
    n_tiles: int
    n_empty: int
    n_sampled: int
    n_sampled_empty: int
    tile_shape: tuple[int, ...]


@dataclass(frozen=True)
class _SampleJob:
    plan: TilePlan
    source: ImageSource


def _sample_tile(job: _SampleJob, index: int) -> tuple[float, NDArray[np.float64]]:
    data = job.source.read(job.plan.tile(index).core)
    flat = data.ravel()
    step = max(1, flat.size // VALUES_PER_TILE)
    return float(flat.max()), flat[::step].astype(np.float64)


def _otsu(values: NDArray[np.float64]) -> float:
    if values.min() == values.max():
        return float(values.min())
    from skimage.filters import threshold_otsu

    # skimage.filters.threshold_otsu is unannotated
    return float(threshold_otsu(values))  # type: ignore[no-untyped-call]


def estimate_empty_tiles(
    image: Any,
    *,
    tile_shape: TileShapeLike,
    threshold: float | None = None,
    sample_size: int = 32,
    seed: int = 0,
    channel_axis: int | None = None,
    level: int | str | None = None,
    progress: bool = False,
    channel: int | None = None,
    time_as_space: bool = False,
) -> EmptyTilesEstimate:
    """Estimate the fraction of background-only tiles from a random sample of tiles.

    Parameters
    ----------
    image : str, os.PathLike or array
        As in :func:`tile_process`.
    tile_shape : tuple of int, None or "auto"
        The tile shape you will pass to :func:`tile_process`.
    threshold : float, optional
        Intensity at or below which a voxel is background. Estimated with Otsu's method
        on voxels of the sampled tiles when not given.
    sample_size : int
        Number of tiles read (at most; all tiles when there are fewer).
    seed : int
        Seed of the random sample, for reproducible estimates.
    channel_axis, level, progress, channel, time_as_space
        As in :func:`tile_process` (tiles are one time point thick, as the run makes
        them, unless ``time_as_space``).

    Returns
    -------
    info : dict
        ``empty_fraction`` (estimated share of empty tiles), ``threshold`` (pass it as
        ``empty_threshold``), ``n_tiles``, ``n_empty`` (estimated), ``n_sampled``,
        ``n_sampled_empty`` and ``tile_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((64, 64), dtype="uint16")
    >>> image[:16, :16] = 1000
    >>> info = estimate_empty_tiles(image, tile_shape=(16, 16), threshold=10)
    >>> info["empty_fraction"], info["n_tiles"], info["n_empty"]
    (0.9375, 16, 15)
    """
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise InvalidParameterError(
            f"`sample_size` must be a positive integer; got {sample_size!r}."
        )
    threshold = check_empty_threshold(threshold)
    source = open_image(image, channel_axis=channel_axis, level=level, channel=channel)
    executor = Executor(progress=progress)
    tiles = resolve_tile_shape(tile_shape, source, n_tasks=executor.n_workers, use_gpu=False)
    separate = () if time_as_space else source.time_axes
    names = ", ".join(repr(n) for n in source.axis_names(separate))
    tiles = one_per_time_point(tiles, separate, given=tile_shape, names=names)
    plan = TilePlan(shape=source.shape, tile_shape=tiles, halo=(0,) * source.ndim)
    rng = np.random.default_rng(seed)
    n_sampled = min(plan.n_tiles, sample_size)
    sample = np.sort(rng.choice(plan.n_tiles, size=n_sampled, replace=False)).tolist()
    results = executor.map(_sample_tile, _SampleJob(plan, source), sample, desc="sampling")
    maxima = np.array([m for m, _ in results])
    if threshold is None:
        threshold = _otsu(np.concatenate([v for _, v in results]))
    n_sampled_empty = int(np.count_nonzero(maxima <= threshold))
    fraction = n_sampled_empty / n_sampled
    return {
        "empty_fraction": fraction,
        "threshold": threshold,
        "n_tiles": plan.n_tiles,
        "n_empty": round(fraction * plan.n_tiles),
        "n_sampled": n_sampled,
        "n_sampled_empty": n_sampled_empty,
        "tile_shape": tiles,
    }
