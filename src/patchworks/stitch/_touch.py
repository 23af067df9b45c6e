"""``stitch="touch"``: labels that touch across a face between tile cores are one object.

Exact for connected components: with ``fn = label(tile > t)`` and the connectivity ``fn``
uses, the result is the same partition as labelling the whole image at once. The tile
stage crops each tile's labels to its core and stages its local labels and face slabs;
the face stage pairs labels that touch across each face (:mod:`patchworks._engine.faces`),
the label map joins the pairs (:mod:`patchworks._engine.labelmap`), and the relabel
stage applies it (:mod:`patchworks._engine.relabel`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.execute import Executor
from patchworks._engine.faces import EMPTY_PAIRS, FaceJob, plan_face_tasks, plane_pairs
from patchworks._engine.labelmap import LabelMap, build_label_map
from patchworks._engine.local import to_local_labels
from patchworks._engine.merge import MergeInputs
from patchworks._engine.relabel import RelabelJob, lazy_relabel, relabel_tile
from patchworks._engine.tiles import TileJob, TileSummary, stage_local_labels
from patchworks._plan import Tile, TilePlan
from patchworks.errors import InvalidParameterError


@dataclass(frozen=True)
class Touch:
    """Join labels that touch across a face between tile cores.

    Parameters
    ----------
    connectivity : int, optional
        Which neighbours touch, as in :func:`scipy.ndimage.generate_binary_structure`
        (1 = faces only, ``ndim`` = full, the default). Use the connectivity ``fn`` uses.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> from patchworks import tile_process
    >>> image = np.eye(4, dtype="uint8")        # a diagonal: voxels touch by corners
    >>> labels = tile_process(image, lambda t: ndi.label(t)[0], tile_shape=(2, 2),
    ...                       stitch=Touch(connectivity=1), compute=True)
    >>> len(np.unique(labels)) - 1                # faces only: four objects
    4
    """

    connectivity: int | None = None
    name: ClassVar[str] = "touch"
    keeps_halo: ClassVar[bool] = False

    def __post_init__(self) -> None:
        c = self.connectivity
        if c is not None and (isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1):
            raise InvalidParameterError(
                f"`connectivity` must be a positive integer or None; got {c!r}."
            )

    def check_halo(
        self, halo: tuple[int, ...], overlap: Any, tile_shape: tuple[int, ...], shape: Any
    ) -> None:
        return None  # any halo works: labels are cropped to the core

    def begin(self, plan: TilePlan, scratch: str, *, anchor: Any = None) -> TouchSeams:
        connectivity = plan.ndim if self.connectivity is None else int(self.connectivity)
        if connectivity > plan.ndim:
            raise InvalidParameterError(
                f"`connectivity` must be an integer in 1..{plan.ndim} (the image's number of "
                f"spatial axes) or None; got {connectivity!r}."
            )
        return TouchSeams(plan=plan, connectivity=connectivity)


@dataclass(frozen=True)
class TouchSeams:
    """One ``stitch="touch"`` run: crop, stage local labels and faces; pair touching faces."""

    plan: TilePlan
    connectivity: int

    def stage(self, job: TileJob, tile: Tile, labels: NDArray[Any], top: int) -> TileSummary:
        local = to_local_labels(labels[tile.crop], job.labels_dtype, tile, top=top)
        return stage_local_labels(job, tile, local)

    def join(self, inputs: MergeInputs) -> TouchJoined:
        face_job = FaceJob(
            plan=self.plan,
            store=inputs.staging.faces,
            index=inputs.faces,
            connectivity=self.connectivity,
            tasks=plan_face_tasks(self.plan, inputs.counts, self.connectivity),
        )
        tasks = range(len(face_job.tasks))
        found = inputs.executor.map(plane_pairs, face_job, tasks, desc="faces")
        pairs = [p for p in found if p.size]
        label_map = build_label_map(
            inputs.counts,
            np.concatenate(pairs) if pairs else EMPTY_PAIRS,
            sequential=inputs.sequential,
            dtype=inputs.dtype,
        )
        return TouchJoined(inputs=inputs, label_map=label_map)


@dataclass(frozen=True)
class TouchJoined:
    """The label map of a touch run, applied tile by tile."""

    inputs: MergeInputs
    label_map: LabelMap

    def _job(self, output: Any = None, *, with_ids: bool = True) -> RelabelJob:
        inputs = self.inputs
        return RelabelJob(
            plan=inputs.plan,
            label_map=self.label_map,
            labels=inputs.labels,
            dtype=inputs.dtype,
            output=output,
            faces=inputs.staging.faces if with_ids else None,
            face_index=inputs.faces,
        )

    def write(self, executor: Executor, output: Any) -> LabelMap:
        executor.map(relabel_tile, self._job(output), self.inputs.occupied, desc="relabel")
        return self.label_map

    def lazy(self, *, with_ids: bool) -> Any:
        return lazy_relabel(self._job(with_ids=with_ids))
