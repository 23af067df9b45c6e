"""Wire the stages together: plan → tiles → faces → label map → relabel and write.

The public entry points. Each stage is a function from the previous stage's result to its
own; the executor runs a stage's per-tile tasks in parallel. This module runs the first half
(open, plan, run ``fn`` per tile or stage the user's labels); ``._merge`` wires the second
half (faces → label map → relabel and publish). No stage calls another.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from patchworks._engine.execute import Executor
from patchworks._store.facestore import FaceIndex
from patchworks.stitch._iou import create_seams
from patchworks.io._labeled import open_label_store, regular_chunks
from patchworks.io._ome_sink import plan_label_output
from patchworks._engine.merge import MergeRun, merge
from patchworks.io._zarr_sink import check_write_to
from patchworks._engine.overlap import check_merge_overlap, halo_plan, resolve_overlap
from patchworks._options import (
    check_connectivity,
    check_dtype,
    check_empty_threshold,
    check_fn,
    check_picklable,
    check_stitch,
    resolve_tile_shape,
)
from patchworks._plan import TilePlan, normalize_overlap, normalize_tile_shape
from patchworks._store.resume import OutputRun, check_resume
from patchworks.io._source import open_image
from patchworks._store.staging import create_staging
from patchworks._engine.tiles import TileJob, process_tile, scan_label_store, stage_label_block
from patchworks.errors import InvalidImageError, InvalidParameterError

logger = logging.getLogger(__name__)


def tile_process(
    image: Any,
    fn: Any,
    *,
    tile_shape: Any = None,
    overlap: Any = 0,
    write_to: Any = None,
    compute: bool = False,
    progress: bool = False,
    sequential_labels: bool = False,
    skip_empty: bool = False,
    empty_threshold: float | None = None,
    use_gpu: bool = False,
    stitch: str = "touch",
    iou_threshold: float = 0.5,
    connectivity: int | None = None,
    resume: bool = False,
    channel_axis: int | None = None,
    level: int | str | None = None,
    dtype: Any = "int32",
    overwrite: bool = False,
    temp_dir: str | None = None,
    keep_temp: bool = False,
    retries: int = 0,
    channel: int | None = None,
    label_name: str = "patchworks",
    output_format: str = "auto",
    output_chunks: Any = None,
    output_compressors: Any = None,
    pyramid: str = "mode",
) -> Any:
    """Run ``fn`` over ``image`` tile by tile and merge the labels into one label image.

    Parameters
    ----------
    image : str, os.PathLike, numpy.ndarray, dask.array.Array or zarr.Array
        The image: a path or URL to a zarr array or group (zarr v2 or v3; OME-Zarr level
        ``level``), a TIFF path, or an in-memory / lazy array.
    fn : callable
        ``fn(tile) -> labels``: integer labels with the tile's spatial shape, 0 for
        background, IDs local to the tile. Runs exactly once per tile.
    tile_shape : tuple of int, None or "auto"
        Core size of a tile. ``None`` uses the image's storage chunks (``"auto"`` for
        arrays without chunks); ``"auto"`` sizes tiles from free RAM (or free GPU memory
        with ``use_gpu=True``).
    overlap : int, tuple of int or "auto"
        Halo in voxels added around each tile before ``fn`` sees it (clipped at the image
        border); a scalar adds no halo on axes where the tile is one voxel thick.
        ``"auto"`` runs ``fn`` once on a central tile-sized sample and uses about one
        object diameter (see :func:`suggest_overlap`).
    write_to : str or os.PathLike, optional
        Path of the output zarr array. Labels stream there; it appears only once complete.
    compute : bool
        Return a NumPy array instead of a lazy dask array.
    progress : bool
        Show tqdm progress bars.
    sequential_labels : bool
        Make the final labels exactly ``1..N``.
    skip_empty : bool
        Do not run ``fn`` on tiles whose core has no voxel above ``empty_threshold``
        (default 0); they become background.
    empty_threshold : float, optional
        Threshold for ``skip_empty`` (see :func:`estimate_empty_tiles`).
    use_gpu : bool
        Size ``tile_shape="auto"`` from free GPU memory.
    stitch : {"touch", "iou"}
        How labels are joined across tiles: ``"touch"`` joins labels that touch across a
        core face, which is exact for connected components; ``"iou"`` joins labels only
        where both tiles' predictions of the overlap agree, so touching instances stay
        apart (needs ``overlap`` of about one object diameter; see docs/stitching.md).
    iou_threshold : float
        With ``stitch="iou"``, the IoU (inside the overlap two tiles share) at which two
        predictions are the same object.
    connectivity : int, optional
        Which neighbours touch, as in :func:`scipy.ndimage.generate_binary_structure`
        (1 = faces only, ``ndim`` = full, the default). Use the connectivity ``fn`` uses.
    resume : bool
        Re-run only unfinished tiles of an interrupted run.
    channel_axis : int, optional
        Axis of ``image`` holding channels; ``fn`` receives all channels of a tile.
    level : int or str, optional
        Resolution level of an OME-Zarr multiscale image (default 0, the full resolution).
    dtype : str or numpy.dtype
        Integer dtype of the output labels.
    overwrite : bool
        Replace an existing ``write_to`` (only once the new result is complete).
    temp_dir : str, optional
        Where temporary data goes (default: next to ``write_to``, else the system's).
    keep_temp : bool
        Keep temporary data on failure, for inspection.
    retries : int
        Times a failed task is retried on a ``dask.distributed`` cluster.
    channel : int, optional
        Segment this channel (named by OME axes metadata, or ``channel_axis``).
    label_name, output_format, output_chunks, output_compressors, pyramid
        OME-Zarr label output: ``labels/<label_name>`` inside an OME-Zarr input, or a label
        image at ``write_to`` (``output_format`` "auto", "zarr" or "ome-zarr"), its chunks
        and codecs, and the pyramid's downsampling ("mode" or "nearest"); see
        docs/formats.md.

    Returns
    -------
    labels : numpy.ndarray or dask.array.Array
        Labels with the image's spatial shape and globally unique IDs.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> image = np.zeros((8, 8), dtype="uint8")
    >>> image[1:7, 3:5] = 1          # one object crossing the tile seam at row 4
    >>> labels = tile_process(image, lambda t: ndi.label(t)[0], tile_shape=(4, 4),
    ...                       compute=True)
    >>> np.unique(labels).tolist()
    [0, 1]
    """
    check_fn(fn)
    source = open_image(image, channel_axis=channel_axis, level=level, channel=channel)
    stitch = check_stitch(stitch, iou_threshold)
    connectivity = check_connectivity(connectivity, source.ndim)
    out_dtype = check_dtype(dtype)
    threshold = check_empty_threshold(empty_threshold)
    if tile_shape is not None and not isinstance(tile_shape, str):
        normalize_tile_shape(tile_shape, source.shape)  # fail on bad input before sizing
    write_path = check_write_to(write_to, overwrite=overwrite or resume is True, image=image)
    output = plan_label_output(
        image,
        source,
        write_to=write_path,
        output_format=output_format,
        label_name=label_name,
        output_chunks=output_chunks,
        output_compressors=output_compressors,
        pyramid=pyramid,
        overwrite=overwrite,
        dtype=out_dtype,
    )
    write_path = output.level0_path if output is not None else write_path
    resume = check_resume(resume, write_path)
    executor = Executor(progress=progress, retries=retries)
    if executor.client is not None:
        check_picklable(fn)
    out = OutputRun(
        write_path, resume=resume, overwrite=overwrite, temp_dir=temp_dir, keep_temp=keep_temp
    )
    try:
        tiles = out.stored_tile_shape(tile_shape) or resolve_tile_shape(
            tile_shape, source, n_tasks=executor.n_workers, use_gpu=use_gpu
        )
        overlap = resolve_overlap(overlap, source, fn, tiles, stitch=stitch)
        plan = TilePlan(
            shape=source.shape, tile_shape=tiles, halo=normalize_overlap(overlap, tiles)
        )
        logger.info("tile_process: %d tiles of %s over %s", plan.n_tiles, tiles, source.shape)
        fingerprint = out.fingerprint(
            image,
            source,
            fn,
            plan,
            labels_dtype=out_dtype,
            skip_empty=skip_empty,
            empty_threshold=threshold,
            stitch=stitch,
        )
        if out.finished(fingerprint):
            result = out.finished_result(compute=compute)
            return output.finish(executor, result, plan, compute=compute) if output else result
        staging = out.staging(plan, out_dtype, fingerprint)
        seams = create_seams(stitch, plan, staging.scratch, iou_threshold, anchor=staging.labels)
        job = TileJob(
            plan=plan,
            staging=staging,
            labels_dtype=out_dtype,
            source=source,
            fn=fn,
            skip_empty=skip_empty,
            empty_threshold=threshold,
            seams=seams,
        )
        summaries = out.run_tiles(executor, process_tile, job, plan.n_tiles)
        run = MergeRun(
            plan=plan,
            staging=staging,
            counts=np.array([s.n_labels for s in summaries], dtype=np.int64),
            faces=FaceIndex.of([s.faces for s in summaries]),
            labels=staging.labels,
            compact=True,
            executor=executor,
            connectivity=connectivity,
            sequential=sequential_labels,
            dtype=out_dtype,
            write_to=write_path,
            info={
                "tile_shape": list(plan.tile_shape),
                "overlap": list(plan.halo),
                "stitch": stitch,
                "skipped_tiles": int(sum(s.skipped for s in summaries)),
                **out.info(),
            },
            resumable=resume,
            seams=seams,
        )
        del summaries  # ~600 B per tile; the counts and the face index hold what is needed
        result = merge(run, compute=compute)
        out.close()
        return output.finish(executor, result, plan, compute=compute) if output else result
    except BaseException:
        out.abort()
        if output is not None:
            output.abort(keep=resume or keep_temp)
        raise


def merge_tile_labels(
    labeled: Any,
    *,
    input_component: str | None = None,
    write_to: Any = None,
    progress: bool = False,
    sequential_labels: bool = False,
    connectivity: int | None = None,
    compute: bool = False,
    tile_shape: Any = None,
    stitch: str = "touch",
    iou_threshold: float = 0.5,
    overlap: Any = 0,
    dtype: Any = "int32",
    overwrite: bool = False,
    temp_dir: str | None = None,
    keep_temp: bool = False,
    retries: int = 0,
) -> Any:
    """Merge per-tile labels (IDs local to each tile) into globally consistent labels.

    Parameters
    ----------
    labeled : dask.array.Array, str, os.PathLike, zarr.Array or numpy.ndarray
        Per-tile labels. For a dask array each chunk is one tile (each block is computed
        exactly once). For a zarr path or array, tiles are its chunks unless
        ``tile_shape`` says otherwise; a NumPy array needs ``tile_shape``.
    input_component : str, optional
        Path of the label array inside the zarr group ``labeled``.
    write_to, progress, sequential_labels, connectivity, compute, dtype, overwrite, \
temp_dir, keep_temp, retries
        As in :func:`tile_process`.
    tile_shape : tuple of int, optional
        The tiling the labels were made with, for zarr or NumPy input (default: a zarr
        input's chunks). It must be exactly that tiling: IDs are local to each tile, so a
        different grid would join or split objects. Patchworks cannot check this.
    stitch, iou_threshold : str, float
        As in :func:`tile_process`. ``stitch="iou"`` needs a dask array whose blocks are
        overlapping tiles: ``fn`` run on ``dask.array.overlap.overlap(image, depth=overlap,
        boundary="none")``, untrimmed.
    overlap : int or tuple of int
        With ``stitch="iou"``, the depth each block extends past its core (clipped at the
        image border).

    Returns
    -------
    labels : numpy.ndarray or dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> tiles = da.from_array(np.array([[1, 1, 1, 0], [0, 0, 0, 2]]), chunks=(2, 2))
    >>> merge_tile_labels(tiles, connectivity=1, sequential_labels=True, compute=True).tolist()
    [[1, 1, 1, 0], [0, 0, 0, 2]]
    """
    import dask.array as da

    out_dtype = check_dtype(dtype)
    stitch = check_stitch(stitch, iou_threshold)
    check_merge_overlap(stitch, overlap)
    is_dask = isinstance(labeled, da.Array)
    if is_dask:
        source = open_image(labeled, name="labeled")
        plan_tiles = regular_chunks(labeled) if stitch == "touch" else ()
        if tile_shape is not None:
            raise InvalidParameterError(
                "`tile_shape` cannot be given with a dask array input: its chunks are the "
                f"tiles; got tile_shape={tile_shape!r}."
            )
    else:
        if stitch == "iou":
            raise InvalidParameterError(
                '`stitch="iou"` needs `labeled` as a dask array of overlapping tiles (one '
                f"halo'd tile per block); got labeled of type {type(labeled).__name__}."
            )
        source = open_label_store(labeled, input_component)
        if tile_shape is None and source.chunks is None:
            raise InvalidParameterError(
                "`tile_shape` is needed for a NumPy input (it has no chunks to use as tiles); "
                "got tile_shape=None."
            )
        plan_tiles = normalize_tile_shape(
            tile_shape if tile_shape is not None else source.chunks, source.shape
        )
    if source.dtype.kind not in "iu":
        raise InvalidImageError(f"`labeled` must hold integer labels; got dtype {source.dtype}.")
    connectivity = check_connectivity(connectivity, source.ndim)
    write_path = check_write_to(write_to, overwrite=overwrite, image=labeled)
    executor = Executor(progress=progress, retries=retries)
    plan = TilePlan(shape=source.shape, tile_shape=plan_tiles, halo=(0,) * source.ndim)
    if stitch == "iou":
        plan = halo_plan(labeled.chunks, overlap)

    out = OutputRun(write_path, overwrite=overwrite, temp_dir=temp_dir, keep_temp=keep_temp)
    try:
        scratch = out.new_scratch()
        staging = create_staging(
            plan, labels_path=None, labels_dtype=out_dtype, scratch=scratch, stage_labels=is_dask
        )
        seams = create_seams(stitch, plan, scratch, iou_threshold, anchor=staging.labels)
        job = TileJob(plan, staging, out_dtype, source=source, seams=seams)
        if is_dask:
            summaries = _stage_dask_blocks(executor, job, labeled)
        else:
            summaries = executor.map(scan_label_store, job, range(plan.n_tiles), desc="tiles")
        run = MergeRun(
            plan=plan,
            staging=staging,
            counts=np.array([s.n_labels for s in summaries], dtype=np.int64),
            faces=FaceIndex.of([s.faces for s in summaries]),
            labels=staging.labels if is_dask else source.array,
            compact=is_dask,
            executor=executor,
            connectivity=connectivity,
            sequential=sequential_labels,
            dtype=out_dtype,
            write_to=write_path,
            info={"tile_shape": list(plan.tile_shape), "stitch": stitch},
            seams=seams,
        )
        result = merge(run, compute=compute)
        out.close()
        return result
    except BaseException:
        out.abort()
        raise


def _stage_dask_blocks(executor: Executor, job: TileJob, labeled: Any) -> list[Any]:
    """Compute each block of a lazy label array once and stage it."""
    import dask

    blocks = labeled.to_delayed().ravel()
    shared = dask.delayed(job, traverse=False)
    stage = dask.delayed(stage_label_block, pure=True)
    tasks = [stage(shared, index, block) for index, block in enumerate(blocks)]
    return executor.compute(tasks, desc="tiles")
