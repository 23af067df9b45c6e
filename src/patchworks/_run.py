"""The one orchestrator: plan → tiles → faces → label map → relabel and write.

:func:`run` wires the stages for both entry points (``tile_process`` and
``merge_tile_labels``), from a checked :class:`~patchworks._options.RunSpec`. Each stage
is a function from the previous stage's result to its own, run by the executor over
tiles; no stage calls another. The stitch mode decides what each tile keeps and how the
tiles are joined; the sink decides where the labels go; the run directory
(:class:`~patchworks._store.resume.OutputRun`) owns the lock, scratch and resume state.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

import numpy as np

from patchworks._engine.execute import Executor
from patchworks._engine.labelmap import LabelMap
from patchworks._engine.measure import Measure, exact_counts
from patchworks._engine.merge import Joined, MergeInputs
from patchworks._engine.objects_out import check_finished_table, measure_objects, write_objects
from patchworks._engine.overlap import fit_model_grid, resolve_overlap
from patchworks._engine.preflight import Location, preflight
from patchworks._engine.staged import StagedLabels, TileLabels, UserLabels
from patchworks._engine.tiles import TileJob, process_tile, scan_label_store, stage_label_block
from patchworks._fs import fsync_tree, remove_tree
from patchworks._options import RunSpec, check_picklable, resolve_tile_shape
from patchworks._plan import TilePlan, normalize_overlap
from patchworks._store.facestore import FaceIndex
from patchworks._store.resume import OutputRun, check_resume
from patchworks._store.staging import Staging, create_staging
from patchworks._store.verify import verify_output, verify_staged
from patchworks._version import __version__
from patchworks.errors import InvalidParameterError
from patchworks.io import Output
from patchworks.io._zarr import create_label_array
from patchworks.io._zarr_sink import mark_complete, open_result, publish

logger = logging.getLogger(__name__)


def run(spec: RunSpec) -> Any:
    """Run ``spec`` to the end; return the labels (NumPy with ``compute``, else dask)."""
    executor = Executor(progress=spec.progress, retries=spec.retries)
    if executor.client is not None and spec.fn is not None:
        check_picklable(spec.fn)
    output = _open_output(spec)
    target = output.target if output is not None else None
    resume = check_resume(spec.resume, target)
    out = OutputRun(
        target,
        resume=resume,
        overwrite=spec.overwrite,
        temp_dir=spec.temp_dir,
        keep_temp=spec.keep_temp,
    )
    try:
        plan = spec.plan or _plan(spec, out, executor)  # stage 1
        executor.announce(_start_line(spec, executor, plan, output))
        fingerprint = _fingerprint(spec, out, plan)
        if out.finished(fingerprint):
            result = out.finished_result(compute=spec.compute)
            result = _finish(output, executor, plan, result, compute=spec.compute)
            check_finished_table(spec.objects, output)
            return result
        staging = _staging(spec, out, plan, fingerprint)
        labels = _tile_labels(spec, staging, plan)
        seams = spec.stitcher.begin(plan, staging.scratch, anchor=staging.labels)
        job = TileJob(
            plan=plan,
            staging=staging,
            labels_dtype=spec.dtype,
            labels=labels,
            seams=seams,
            source=spec.source,
            fn=spec.fn,
            skip_empty=spec.skip_empty,
            empty_threshold=spec.empty_threshold,
            measure=_tile_measure(spec),
        )
        _preflight(spec, executor, staging, output)  # before anything runs on a worker
        summaries = _stage_tiles(spec, out, executor, job)  # stage 2
        inputs = MergeInputs(
            plan=plan,
            staging=staging,
            labels=labels,
            counts=np.array([s.n_local for s in summaries], dtype=np.int64),
            faces=FaceIndex.of([s.faces for s in summaries]),
            executor=executor,
            sequential=spec.sequential,
            dtype=spec.dtype,
            contacts=np.array([s.contacts for s in summaries], dtype=np.int64),
            objects=tuple(s.objects for s in summaries) if job.measure else (),
        )
        # Every tile's staged data is where the client looks, before anything reads it.
        verify_staged(plan, staging, seams, inputs.counts, inputs.faces, in_place=labels.in_place)
        info = _tile_info(spec, plan, summaries, out)
        del summaries  # ~600 B per tile; the counts and the face index hold what is needed
        joined = seams.join(inputs)  # stages 3 and 4
        joined, objects = measure_objects(
            spec.objects, joined, executor, sequential=spec.sequential, mode=spec.stitcher.name
        )
        label_map = joined.label_map
        logger.info(
            "merge: %d objects, %d boundary objects",
            label_map.n_labels,
            label_map.boundary_ids.size,
        )
        if not labels.keeps_ids and not resume:  # resume keeps faces until published
            remove_tree(staging.faces.root)
        if output is None:
            write_objects(spec.objects, objects, None)
            result = _lazy_result(joined, labels, staging, compute=spec.compute)  # stage 5
            out.close()
            return result
        built = _output_array(labels, staging, plan, spec.dtype, resumable=resume)
        label_map = joined.write(executor, built)  # stage 5
        if built is not labels.array:  # (relabelled in place: every chunk was read above)
            verify_output(plan, built, inputs.faces, in_place=labels.in_place)
        if objects is not None:
            label_map = exact_counts(label_map, objects)
            info.update(write_objects(spec.objects, objects, str(built.store.root)))
        info.update(joined.info)
        _publish(built, output.target, _run_info(spec, label_map, info), staging, durable=resume)
        out.close()
        result = open_result(output.target, compute=spec.compute)
        return _finish(output, executor, plan, result, compute=spec.compute)
    except BaseException:
        out.abort()
        if output is not None:
            output.abort(keep=resume or spec.keep_temp)
        raise


def _preflight(spec: RunSpec, executor: Executor, staging: Staging, output: Output | None) -> None:
    """Every worker sees the scratch, the output's folder and a local input, and loads
    ``fn`` (:mod:`patchworks._engine.preflight`; nothing to check without a cluster)."""
    if executor.client is None:
        return
    places = [Location("the run's scratch folder", staging.scratch)]
    if output is not None:
        folder = os.path.dirname(os.path.abspath(output.target))
        places.append(Location("the folder of `write_to`", folder))
    if isinstance(spec.image, str | os.PathLike) and "://" not in os.fspath(spec.image):
        places.append(Location("the input", os.fspath(spec.image), write=False))  # as read
    preflight(executor.client, places, spec.fn)


def _tile_measure(spec: RunSpec) -> Measure | None:
    """What the tile stage measures (stitch modes that measure in the tile stage)."""
    if spec.objects is None or not getattr(spec.stitcher, "measures_tiles", False):
        return None
    return spec.objects.measure


def _open_output(spec: RunSpec) -> Output | None:
    if spec.sink is None:
        return None
    return spec.sink.open(
        spec.image, spec.source, dtype=spec.dtype, overwrite=spec.overwrite, resume=spec.resume
    )


def _plan(spec: RunSpec, out: OutputRun, executor: Executor) -> TilePlan:
    """Stage 1: the tiles of ``tile_process`` (a resumed run keeps its tile shape)."""
    tiles = out.stored_tile_shape(spec.tile_shape) or resolve_tile_shape(
        spec.tile_shape, spec.source, n_tasks=executor.n_workers, use_gpu=spec.use_gpu
    )
    separate = () if spec.time_as_space else spec.source.time_axes
    names = ", ".join(repr(n) for n in spec.source.axis_names(separate))
    tiles = one_per_time_point(tiles, separate, given=spec.tile_shape, names=names)
    tiles = fit_model_grid(spec.fn, tiles, spec.source.shape, spec.tile_shape, spec.overlap)
    overlap = resolve_overlap(spec.overlap, spec.source, spec.fn, tiles, stitch=spec.stitcher)
    halo = normalize_overlap(overlap, tiles)
    if any(halo[i] for i in separate):
        raise InvalidParameterError(
            f"`overlap` must be 0 along the time axis {names} (each time "
            f"point is labelled on its own); got overlap={overlap!r}. Pass "
            "time_as_space=True to treat time as space."
        )
    spec.stitcher.check_halo(halo, overlap, tiles, spec.source.shape)
    plan = TilePlan(shape=spec.source.shape, tile_shape=tiles, halo=halo, separate=separate)
    logger.info("tile_process: %d tiles of %s over %s", plan.n_tiles, tiles, spec.source.shape)
    return plan


def _start_line(spec: RunSpec, executor: Executor, plan: TilePlan, output: Output | None) -> str:
    """What the run is about to do, for its progress display."""
    tiles = "tile" if plan.n_tiles == 1 else "tiles"
    text = f"{plan.n_tiles} {tiles} of {plan.tile_shape}"
    if any(plan.halo):
        text += f" with overlap {plan.halo}"
    text += f" over {plan.shape}, "
    if executor.client is None:
        text += f"{executor.n_workers} threads"
    else:
        workers = len(executor.client.scheduler_info().get("workers", {}))
        text += f"{executor.n_workers} threads on {workers} dask workers"
    if output is not None:
        # an OME-Zarr label image is built beside its final place; name that place
        return f"{text}, writing {getattr(output, 'final_path', output.target)}"
    return text + (", result in memory" if spec.compute else ", lazy result")


def one_per_time_point(
    tiles: tuple[int, ...], separate: tuple[int, ...], *, given: Any, names: str
) -> tuple[int, ...]:
    """Tiles one voxel thick along the ``separate`` (time) axes; a ``tile_shape`` the
    user gave that is thicker there is refused."""
    if not separate:
        return tiles
    explicit = given is not None and not isinstance(given, str)
    if explicit and any(tiles[i] != 1 for i in separate):
        raise InvalidParameterError(
            f"`tile_shape` must be 1 along the time axis {names} (each time point is "
            f"labelled on its own); got tile_shape={tuple(given)!r}. Pass "
            "time_as_space=True to label across time points."
        )
    return tuple(1 if i in separate else t for i, t in enumerate(tiles))


def _fingerprint(spec: RunSpec, out: OutputRun, plan: TilePlan) -> dict[str, Any] | None:
    if spec.input != "image":
        return None
    return out.fingerprint(
        spec.image,
        spec.source,
        spec.fn,
        plan,
        labels_dtype=spec.dtype,
        skip_empty=spec.skip_empty,
        empty_threshold=spec.empty_threshold,
        stitch=spec.stitcher.name,
    )


def _staging(
    spec: RunSpec, out: OutputRun, plan: TilePlan, fingerprint: dict[str, Any] | None
) -> Staging:
    if spec.input == "image":
        return out.staging(plan, spec.dtype, fingerprint)
    return create_staging(
        plan,
        labels_path=None,
        labels_dtype=spec.dtype,
        scratch=out.new_scratch(),
        stage_labels=spec.input == "blocks",
    )


def _tile_labels(spec: RunSpec, staging: Staging, plan: TilePlan) -> TileLabels:
    """Where the tile stage leaves local labels: staged by us, or the user's store."""
    if staging.labels is not None:
        return StagedLabels(staging.labels, plan.tile_shape)
    return UserLabels(spec.source.array, plan.tile_shape)


def _stage_tiles(spec: RunSpec, out: OutputRun, executor: Executor, job: TileJob) -> list[Any]:
    """Stage 2: ``fn`` per tile, each dask block computed once, or a user's store scanned."""
    n_tiles = job.plan.n_tiles
    if spec.input == "image":
        return out.run_tiles(executor, process_tile, job, n_tiles)
    if spec.input == "store":
        return executor.map(scan_label_store, job, range(n_tiles), desc="tiles")
    from dask.delayed import delayed

    blocks = spec.blocks.to_delayed().ravel()
    shared = delayed(job, traverse=False)
    stage = delayed(stage_label_block, pure=True)
    return executor.compute(
        [stage(shared, index, block) for index, block in enumerate(blocks)], desc="tiles"
    )


def _tile_info(
    spec: RunSpec, plan: TilePlan, summaries: list[Any], out: OutputRun
) -> dict[str, Any]:
    info: dict[str, Any] = {"tile_shape": list(plan.tile_shape), "stitch": spec.stitcher.name}
    if spec.input == "image":
        info["overlap"] = list(plan.halo)
        if plan.separate:
            info["time_axes"] = list(plan.separate)  # labelled per time point
        info["skipped_tiles"] = int(sum(s.skipped for s in summaries))
        info.update(out.info())
    return info


def _lazy_result(joined: Joined, labels: TileLabels, staging: Staging, *, compute: bool) -> Any:
    """Stage 5 without an output: final labels computed on demand (or now, ``compute``)."""
    # The IDs live in scratch: only a result computed now may use them.
    lazy = joined.lazy(with_ids=compute)
    if compute:
        result = np.asarray(lazy.compute())
        remove_tree(staging.scratch)
        return result
    if labels.in_place:  # staged labels back the result: keep them while it lives
        weakref.finalize(labels.array, remove_tree, staging.scratch)
    else:
        remove_tree(staging.scratch)  # only faces were staged; the user's store backs it
    return lazy


def _output_array(
    labels: TileLabels, staging: Staging, plan: TilePlan, dtype: np.dtype[Any], *, resumable: bool
) -> Any:
    """The array stage 5 writes: over the staged labels, or a new one (a resumable run
    keeps its staged labels intact until the output is published)."""
    if labels.in_place and not resumable:
        return labels.array
    name = "output.zarr" if labels.in_place else "labels.zarr"
    return create_label_array(
        os.path.join(staging.scratch, name), plan.shape, plan.tile_shape, dtype
    )


def _run_info(spec: RunSpec, label_map: LabelMap, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": __version__,
        "n_labels": int(label_map.n_labels),
        "max_label": int(label_map.max_label),
        "sequential_labels": bool(spec.sequential),
        "connectivity": int(spec.connectivity),
        **info,
    }  # the stitcher's own record (``Joined.info``) is in ``info``


def _publish(
    built: Any, target: str, info: dict[str, Any], staging: Staging, *, durable: bool
) -> None:
    """Mark the built array complete and move it to ``target`` (its last writes)."""
    if durable:
        fsync_tree(str(built.store.root))
    mark_complete(built, info)
    publish(str(built.store.root), target, staging.scratch)
    remove_tree(staging.scratch)


def _finish(
    output: Output | None, executor: Executor, plan: TilePlan, result: Any, *, compute: bool
) -> Any:
    """The user's result: the published labels, completed by the sink (a pyramid...)."""
    return output.finish(executor, plan, result, compute=compute) if output else result
