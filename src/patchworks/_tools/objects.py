"""``measure_labels``: the per-object table of a label image that already exists.

The merge-only path of the measurement (no ``fn``, no label map): each tile of the label
image (its storage chunks, or ``tile_shape``) is measured with the image under it,
keyed by the labels as they are, and the tiles' rows are combined by label
(:mod:`patchworks._engine.objects`). Memory grows with the number of objects, not voxels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from patchworks._engine.execute import Executor
from patchworks._engine.measure import Measure
from patchworks._engine.objects import TileStats, columns, combine, tile_stats
from patchworks._engine.objects_spec import parse_objects
from patchworks._options import _intensity_image
from patchworks._plan import TilePlan, normalize_tile_shape
from patchworks.errors import InvalidImageError, InvalidParameterError
from patchworks.io._labeled import open_label_store
from patchworks.io._source import ImageSource
from patchworks.io._table import TABLE_NAME, write_table


@dataclass(frozen=True)
class _MeasureJob:
    plan: TilePlan
    labels: ImageSource
    measure: Measure


def _measure_tile(job: _MeasureJob, index: int) -> TileStats:
    tile = job.plan.tile(index)
    labels = job.labels.read(tile.core)
    origin = tuple(s.start for s in tile.core)
    return tile_stats(labels, job.measure.image_core(tile), origin=origin)


def measure_labels(
    labels: Any,
    *,
    image: Any = None,
    objects: Any = True,
    objects_to: str | os.PathLike[str] | None = None,
    input_component: str | None = None,
    tile_shape: tuple[int, ...] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Any:
    """Measure every object of an existing label image, tile by tile.

    Parameters
    ----------
    labels : str, os.PathLike, zarr.Array, numpy.ndarray or dask.array.Array
        A label image (integer labels, 0 = background), e.g. a patchworks output.
    image : str, os.PathLike or array, optional
        The image the labels segment (same shape), for the intensity properties.
    objects : True or sequence of str
        The properties, as in :func:`tile_process`.
    objects_to : str or os.PathLike, optional
        Also write the table there (Parquet; CSV for ``.csv``). ``"inside"`` writes it
        inside ``labels`` (a label output folder) as ``objects.parquet``, where
        :func:`read_objects` finds it.
    input_component, tile_shape
        The array inside a zarr group, and the tiles (default: the storage chunks).
    overwrite : bool
        Replace an existing table.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per label, columns as ``skimage.measure.regionprops_table`` names them.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 1, 0, 2], [0, 0, 0, 2]])
    >>> measure_labels(labels, objects=["area"], tile_shape=(2, 2))["area"].tolist()
    [2.0, 2.0]
    """
    import pandas as pd

    source = open_label_store(labels, input_component)
    if source.dtype.kind not in "iu":
        raise InvalidImageError(f"`labels` must hold integer labels; got dtype {source.dtype}.")
    intensity = _intensity_image(image, source.shape)
    inside = isinstance(objects_to, str) and objects_to == "inside"
    if inside:
        if not isinstance(labels, str | os.PathLike) or not os.path.isdir(labels):
            raise InvalidParameterError(
                "`objects_to='inside'` needs `labels` as the path of a label output folder; "
                f"got labels of type {type(labels).__name__}."
            )
        objects_to = os.path.join(os.fspath(labels), TABLE_NAME)
    spec = parse_objects(
        objects,
        min_size=None,
        max_size=None,
        objects_to=objects_to,
        image=intensity,
        scale_of=intensity if intensity is not None else source,
        has_output=True,
        overwrite=overwrite,
    )
    if spec is None or not spec.table:
        raise InvalidParameterError(f"`objects` must be True or property names; got {objects!r}.")
    given = tile_shape if tile_shape is not None else source.chunks
    if given is None:
        given = tuple(min(n, 256) for n in source.shape)
    plan = TilePlan(source.shape, normalize_tile_shape(given, source.shape), (0,) * source.ndim)
    job = _MeasureJob(plan=plan, labels=source, measure=spec.measure)
    executor = Executor(progress=progress)
    parts = executor.map(_measure_tile, job, range(plan.n_tiles), desc="objects")
    stats = combine(list(parts), ndim=plan.ndim, channels=spec.measure.columns)
    table = columns(stats, spec.properties, scale=spec.scale, channels=spec.measure.channels)
    if spec.to is not None:
        write_table(table, spec.to)
    return pd.DataFrame(table)
