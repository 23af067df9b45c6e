"""The merge half of a run: faces → label map → relabel and write (or return lazily).

`tile_process` and `merge_tile_labels` (in ``_pipeline``) differ only in how the per-tile
labels get staged; both hand a :class:`MergeRun` to :func:`merge`, which wires the last
three stages together and publishes the output.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from patchworks._fs import fsync_tree
from patchworks._engine.execute import Executor
from patchworks._engine.faces import EMPTY_PAIRS, FaceJob, plan_face_tasks, plane_pairs
from patchworks._store.facestore import FaceIndex
from patchworks._engine.labelmap import LabelMap, build_label_map
from patchworks.io._zarr_sink import mark_complete, open_result, publish
from patchworks._plan import TilePlan
from patchworks._engine.relabel import RelabelJob, lazy_relabel, relabel_tile
from patchworks._fs import remove_tree
from patchworks._store.staging import Staging
from patchworks.io._zarr import create_label_array
from patchworks._version import __version__

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeRun:
    """What the merge half of a run needs, whichever way the tiles were staged."""

    plan: TilePlan
    staging: Staging
    counts: np.ndarray  # labels per tile
    faces: FaceIndex  # where each tile's face slabs are
    labels: Any  # local labels (compact) or the user's own label array
    compact: bool
    executor: Executor
    connectivity: int
    sequential: bool
    dtype: np.dtype
    write_to: str | None
    info: dict[str, Any]
    resumable: bool = False  # keep staged data intact until published (resume=True)
    seams: Any = None  # stitch="iou" (see ._iou), else None for "touch"


def merge(run: MergeRun, *, compute: bool) -> Any:
    """Faces → label map → relabel; write or return lazily. Cleans up scratch data."""
    plan, executor = run.plan, run.executor
    occupied = [int(i) for i in np.flatnonzero(run.counts)]
    if run.seams is not None:
        stitched = run.seams.stitch(
            executor, run.counts, sequential=run.sequential, dtype=run.dtype
        )
        label_map = stitched.label_map
    else:
        face_job = FaceJob(
            plan=plan,
            store=run.staging.faces,
            index=run.faces,
            connectivity=run.connectivity,
            tasks=plan_face_tasks(plan, run.counts, run.connectivity),
        )
        tasks = range(len(face_job.tasks))
        pairs = [p for p in executor.map(plane_pairs, face_job, tasks, desc="faces") if p.size]
        label_map = build_label_map(
            run.counts,
            np.concatenate(pairs) if pairs else EMPTY_PAIRS,
            sequential=run.sequential,
            dtype=run.dtype,
        )
    logger.info(
        "merge: %d objects, %d boundary objects", label_map.n_labels, label_map.boundary_ids.size
    )
    scratch = run.staging.scratch
    # Resume keeps faces until the output is published; a user's label store needs the
    # label IDs kept with them for the relabel stage (see ``_relabel.relabel_block``).
    if run.compact and not run.resumable:
        _drop_faces(run.staging)
    if run.write_to is None:
        if run.seams is not None:
            lazy = stitched.lazy()
        else:
            # The IDs live in scratch: only a result computed now may use them.
            job = _relabel_job(run, label_map, output=None, with_ids=compute)
            lazy = lazy_relabel(job)
        if compute:
            result = np.asarray(lazy.compute())
            remove_tree(scratch)
            return result
        if run.compact:
            _remove_when_unused(run.labels, scratch)
        else:
            remove_tree(scratch)  # only faces were staged; the user's store backs the result
        return lazy

    built = _output_array(run)
    if run.seams is not None:
        label_map = stitched.write(executor, built)
    else:
        executor.map(
            relabel_tile, _relabel_job(run, label_map, output=built), occupied, desc="relabel"
        )
    if run.resumable:
        fsync_tree(str(built.store.root))
    mark_complete(built, _run_info(run, label_map))
    publish(str(built.store.root), run.write_to, scratch)
    remove_tree(scratch)
    return open_result(run.write_to, compute=compute)


def _relabel_job(
    run: MergeRun, label_map: LabelMap, output: Any, *, with_ids: bool = True
) -> RelabelJob:
    return RelabelJob(
        plan=run.plan,
        label_map=label_map,
        labels=run.labels,
        compact=run.compact,
        dtype=run.dtype,
        output=output,
        faces=run.staging.faces if with_ids and not run.compact else None,
        face_index=run.faces,
    )


def _output_array(run: MergeRun) -> Any:
    """The array the relabel stage writes: in place over staged labels, or a new one."""
    if run.compact and not run.resumable:
        return run.labels  # in place; a resumable run keeps its staged labels intact
    return create_label_array(
        os.path.join(run.staging.scratch, "output.zarr" if run.compact else "labels.zarr"),
        run.plan.shape,
        run.plan.tile_shape,
        run.dtype,
    )


def _run_info(run: MergeRun, label_map: LabelMap) -> dict[str, Any]:
    return {
        "version": __version__,
        "n_labels": int(label_map.n_labels),
        "max_label": int(label_map.max_label),
        "sequential_labels": bool(run.sequential),
        "connectivity": int(run.connectivity),
        **run.info,
    }


def _drop_faces(staging: Staging) -> None:
    remove_tree(staging.faces.root)


def _remove_when_unused(anchor: Any, scratch: str) -> None:
    """Delete ``scratch`` once the object backing the lazy result is garbage collected."""
    weakref.finalize(anchor, remove_tree, scratch)
