"""Validation of the options shared by the public functions (SPEC §4).

Each check runs before any work starts and raises an error that names the parameter and
the value received.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, cast

import numpy as np

from patchworks._engine.autosize import auto_tile_shape, tile_budget
from patchworks._plan import normalize_tile_shape
from patchworks.io._source import ImageSource
from patchworks.errors import InvalidParameterError, ParameterTypeError

STITCH_MODES = ("touch", "iou")


def check_fn(fn: Any) -> None:
    if not callable(fn):
        raise ParameterTypeError(
            f"`fn` must be a callable taking a tile array and returning labels; got an "
            f"object of type {type(fn).__name__}."
        )


def check_picklable(fn: Any) -> None:
    """Process-based clusters ship ``fn`` to workers: fail early if it cannot travel."""
    import cloudpickle

    try:
        cloudpickle.dumps(fn)
    except Exception as exc:
        raise ParameterTypeError(
            f"`fn` must be picklable to run on a dask.distributed cluster; pickling {fn!r} "
            f"failed with {type(exc).__name__}: {exc}."
        ) from exc


def check_connectivity(connectivity: Any, ndim: int) -> int:
    """``None`` means full connectivity (``ndim``), like ``skimage.measure.label``."""
    if connectivity is None:
        return ndim
    if (
        isinstance(connectivity, bool)
        or not isinstance(connectivity, numbers.Integral)
        or not 1 <= int(connectivity) <= ndim
    ):
        raise InvalidParameterError(
            f"`connectivity` must be an integer in 1..{ndim} (the image's number of spatial "
            f"axes) or None; got {connectivity!r}."
        )
    return int(connectivity)


def check_stitch(stitch: Any, iou_threshold: Any) -> str:
    if stitch not in STITCH_MODES:
        raise InvalidParameterError(
            f"`stitch` must be one of {', '.join(repr(m) for m in STITCH_MODES)}; got {stitch!r}."
        )
    if (
        isinstance(iou_threshold, bool)
        or not isinstance(iou_threshold, numbers.Real)
        # typeshed's numbers.Real has no reflected comparisons, so `0 < Real` fails to check
        or not 0 < cast(float, iou_threshold) <= 1
    ):
        raise InvalidParameterError(
            f"`iou_threshold` must be a number in (0, 1]; got {iou_threshold!r}."
        )
    return str(stitch)


def check_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.kind not in "iu":
        raise InvalidParameterError(
            f"`dtype` must be an integer dtype for labels (e.g. 'int32', 'uint32', 'int64'); "
            f"got {dtype!r}."
        )
    return resolved


def check_empty_threshold(empty_threshold: Any) -> float | None:
    if empty_threshold is None:
        return None
    if isinstance(empty_threshold, bool) or not isinstance(empty_threshold, numbers.Real):
        raise InvalidParameterError(
            f"`empty_threshold` must be a number or None; got {empty_threshold!r}."
        )
    if math.isnan(empty_threshold):
        raise InvalidParameterError(
            f"`empty_threshold` must be a number or None, not NaN; got {empty_threshold!r}."
        )
    return float(empty_threshold)


def resolve_tile_shape(
    tile_shape: Any, source: ImageSource, *, n_tasks: int, use_gpu: bool
) -> tuple[int, ...]:
    """Turn ``tile_shape`` (tuple, None = storage chunks, "auto") into a tuple."""
    if tile_shape is None and source.chunks is not None:
        return normalize_tile_shape(source.chunks, source.shape)
    if tile_shape is None or (isinstance(tile_shape, str) and tile_shape == "auto"):
        channels = 1
        if source.channel_axis is not None:
            channels = int(source.array.shape[source.channel_axis])
        budget = tile_budget(n_tasks, use_gpu=use_gpu) // channels
        return auto_tile_shape(source.shape, source.dtype, source.chunks, budget_bytes=budget)
    if isinstance(tile_shape, str):
        raise InvalidParameterError(
            f'`tile_shape` must be a tuple, None or "auto"; got {tile_shape!r}.'
        )
    return normalize_tile_shape(tile_shape, source.shape)
