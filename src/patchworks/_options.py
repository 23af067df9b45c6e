"""One frozen run specification, built once from the public keywords, with every check.

:func:`tile_spec` and :func:`merge_spec` turn the keywords of
:func:`~patchworks.tile_process` and :func:`~patchworks.merge_tile_labels` into one
:class:`RunSpec` (the model: zarr's ``ArrayConfig`` and ``parse_array_config``). Each check
runs before any work starts and raises an error that names the parameter and the value
received (SPEC §4); the orchestrator (:mod:`patchworks._run`) then only reads the spec.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.autosize import auto_tile_shape, tile_budget
from patchworks._engine.objects_spec import ObjectsSpec, parse_objects
from patchworks._engine.overlap import halo_plan
from patchworks._plan import TilePlan, normalize_tile_shape
from patchworks.errors import InvalidImageError, InvalidParameterError, ParameterTypeError
from patchworks.io import Sink, parse_sink
from patchworks.io._labeled import open_label_store, regular_chunks
from patchworks.io._source import ImageSource, open_image
from patchworks.stitch import STITCHERS, Stitcher, parse_stitcher

#: Where a run's per-tile labels come from: ``fn`` on the image's tiles, the blocks of a
#: dask array (computed once each), or a user's label store (read where it is).
InputKind = Literal["image", "blocks", "store"]


@dataclass(frozen=True)
class RunSpec:
    """Everything one run does, checked. Built by :func:`tile_spec` or :func:`merge_spec`."""

    image: Any  # as given (a path is recorded in the output's metadata and fingerprint)
    source: ImageSource
    input: InputKind
    stitcher: Stitcher
    connectivity: int  # recorded in the output's metadata
    dtype: np.dtype[Any]
    sink: Sink | None  # None: the labels are returned, not written
    compute: bool
    progress: bool
    sequential: bool
    overwrite: bool
    resume: bool
    temp_dir: str | None
    keep_temp: bool
    retries: int
    fn: Callable[[NDArray[Any]], Any] | None = None
    tile_shape: Any = None  # tile_process: tuple, None or "auto", resolved by the run
    overlap: Any = 0  # tile_process: int, tuple or "auto", resolved by the run
    use_gpu: bool = False
    skip_empty: bool = False
    empty_threshold: float | None = None
    time_as_space: bool = False  # tile_process: join across a time axis too
    plan: TilePlan | None = None  # merge_tile_labels: the user's tiling
    blocks: Any = None  # merge_tile_labels on a dask array: the array
    objects: ObjectsSpec | None = None  # objects=, min_size=, max_size=, objects_to=


def tile_spec(image: Any, fn: Any, **kw: Any) -> RunSpec:
    """The :class:`RunSpec` of ``tile_process(image, fn, **kw)`` (every keyword given)."""
    check_fn(fn)
    source = open_image(
        image, channel_axis=kw["channel_axis"], level=kw["level"], channel=kw["channel"]
    )
    stitch = fn_stitch(fn) if kw["stitch"] is None else kw["stitch"]
    stitcher = _stitcher(stitch, kw["connectivity"], kw["iou_threshold"])
    connectivity = _connectivity(stitcher, kw["connectivity"], source.ndim)
    overlap = kw["overlap"]
    if overlap is None:
        overlap = "auto" if stitcher.keeps_halo else 0
    dtype = check_dtype(kw["dtype"])
    threshold = check_empty_threshold(kw["empty_threshold"])
    tile_shape = kw["tile_shape"]
    if tile_shape is not None and not isinstance(tile_shape, str):
        normalize_tile_shape(tile_shape, source.shape)  # fail on bad input before sizing
    sink = parse_sink(
        kw["write_to"],
        source,
        output_format=kw["output_format"],
        label_name=kw["label_name"],
        output_chunks=kw["output_chunks"],
        output_compressors=kw["output_compressors"],
        pyramid=kw["pyramid"],
    )
    return RunSpec(
        image=image,
        source=source,
        input="image",
        stitcher=stitcher,
        connectivity=connectivity,
        dtype=dtype,
        sink=sink,
        fn=fn,
        tile_shape=tile_shape,
        overlap=overlap,
        use_gpu=bool(kw["use_gpu"]),
        skip_empty=bool(kw["skip_empty"]),
        empty_threshold=threshold,
        time_as_space=_flag(kw["time_as_space"], "time_as_space"),
        objects=_objects(kw, source, source, sink),
        **_common(kw),
    )


def merge_spec(labeled: Any, **kw: Any) -> RunSpec:
    """The :class:`RunSpec` of ``merge_tile_labels(labeled, **kw)`` (every keyword given)."""
    import dask.array as da

    dtype = check_dtype(kw["dtype"])
    stitcher = _stitcher(kw["stitch"], kw["connectivity"], kw["iou_threshold"])
    overlap, tile_shape = kw["overlap"], kw["tile_shape"]
    if not stitcher.keeps_halo and not (isinstance(overlap, int) and overlap == 0):
        raise InvalidParameterError(
            '`overlap` describes blocks that are overlapping tiles, which only stitch="iou" '
            f"uses; got overlap={overlap!r} with stitch={stitcher.name!r}."
        )
    blocks = None
    if isinstance(labeled, da.Array):
        blocks = labeled
        source = open_image(labeled, name="labeled")
        if tile_shape is not None:
            raise InvalidParameterError(
                "`tile_shape` cannot be given with a dask array input: its chunks are the "
                f"tiles; got tile_shape={tile_shape!r}."
            )
        if stitcher.keeps_halo:
            plan = halo_plan(labeled.chunks, overlap)
        else:
            plan = TilePlan(source.shape, regular_chunks(labeled), (0,) * source.ndim)
    else:
        if stitcher.keeps_halo:
            raise InvalidParameterError(
                f'`stitch="{stitcher.name}"` needs `labeled` as a dask array of overlapping '
                "tiles (one halo'd tile per block); got labeled of type "
                f"{type(labeled).__name__}."
            )
        source = open_label_store(labeled, kw["input_component"])
        if tile_shape is None and source.chunks is None:
            raise InvalidParameterError(
                "`tile_shape` is needed for a NumPy input (it has no chunks to use as tiles); "
                "got tile_shape=None."
            )
        tiles = normalize_tile_shape(
            tile_shape if tile_shape is not None else source.chunks, source.shape
        )
        plan = TilePlan(source.shape, tiles, (0,) * source.ndim)
    if source.dtype.kind not in "iu":
        raise InvalidImageError(f"`labeled` must hold integer labels; got dtype {source.dtype}.")
    connectivity = _connectivity(stitcher, kw["connectivity"], source.ndim)
    sink = parse_sink(kw["write_to"], source, output_format="zarr")
    image = _intensity_image(kw["image"], plan.shape)
    return RunSpec(
        image=labeled,
        source=source,
        input="blocks" if blocks is not None else "store",
        stitcher=stitcher,
        connectivity=connectivity,
        dtype=dtype,
        sink=sink,
        plan=plan,
        blocks=blocks,
        objects=_objects(kw, image, image if image is not None else source, sink),
        **_common(kw),
    )


def _objects(kw: dict[str, Any], image: Any, scale_of: Any, sink: Any) -> ObjectsSpec | None:
    return parse_objects(
        kw["objects"],
        min_size=kw["min_size"],
        max_size=kw["max_size"],
        objects_to=kw["objects_to"],
        image=image,
        scale_of=scale_of,
        has_output=sink is not None,
        overwrite=bool(kw["overwrite"]),
    )


def _intensity_image(image: Any, shape: tuple[int, ...]) -> ImageSource | None:
    """``image=`` of merge_tile_labels (measured under the labels), opened and checked."""
    if image is None:
        return None
    source = open_image(image, name="image")
    if source.shape != shape:
        raise InvalidParameterError(
            f"`image` must have the labels' shape {shape}; got shape {source.shape}."
        )
    return source


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterError(f"`{name}` must be True or False; got {value!r}.")
    return value


def _common(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "compute": bool(kw["compute"]),
        "progress": bool(kw["progress"]),
        "sequential": bool(kw["sequential_labels"]),
        "overwrite": bool(kw["overwrite"]),
        "resume": kw.get("resume", False),
        "temp_dir": kw["temp_dir"],
        "keep_temp": bool(kw["keep_temp"]),
        "retries": kw["retries"],
    }


def fn_stitch(fn: Any) -> str:
    """The stitch mode ``fn`` declares as ``fn.stitch`` (a model plugin: ``"iou"``), else
    ``"touch"``.

    >>> class Model:
    ...     stitch = "iou"
    >>> fn_stitch(Model()), fn_stitch(len)
    ('iou', 'touch')
    """
    declared = getattr(fn, "stitch", None)
    return declared if isinstance(declared, str) and declared in STITCHERS else "touch"


def _stitcher(stitch: Any, connectivity: Any, iou_threshold: Any) -> Stitcher:
    """The stitcher of ``stitch=``; a bad ``connectivity`` is left to :func:`_connectivity`,
    which knows the image's number of axes for its message."""
    check_iou_threshold(iou_threshold)
    valid = (
        isinstance(connectivity, numbers.Integral)
        and not isinstance(connectivity, bool)
        and int(connectivity) >= 1
    )
    return parse_stitcher(
        stitch, connectivity=int(connectivity) if valid else None, iou_threshold=iou_threshold
    )


def _connectivity(stitcher: Stitcher, connectivity: Any, ndim: int) -> int:
    """The connectivity recorded for the run: the stitcher's own, when it has one."""
    own = getattr(stitcher, "connectivity", None)
    return check_connectivity(connectivity if connectivity is not None else own, ndim)


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


def check_iou_threshold(iou_threshold: Any) -> None:
    if (
        isinstance(iou_threshold, bool)
        or not isinstance(iou_threshold, numbers.Real)
        # typeshed's numbers.Real has no reflected comparisons, so `0 < Real` fails to check
        or not 0 < cast(float, iou_threshold) <= 1
    ):
        raise InvalidParameterError(
            f"`iou_threshold` must be a number in (0, 1]; got {iou_threshold!r}."
        )


def check_dtype(dtype: Any) -> np.dtype[Any]:
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
