"""``stitch="touch"``: labels that touch across a face between tile cores are one object.

Exact for connected components: with ``fn = label(tile > t)`` and the connectivity ``fn``
uses, the result is the same partition as labelling the whole image at once. The tile
stage crops each tile's labels to its core and stages its local labels and face slabs;
the face stage pairs labels that touch across each face (:mod:`patchworks._engine.faces`),
the label map joins the pairs (:mod:`patchworks._engine.labelmap`), and the relabel
stage applies it (:mod:`patchworks._engine.relabel`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from patchworks._engine import contacts as contact
from patchworks._engine.execute import Executor
from patchworks._engine.faces import EMPTY_PAIRS, FaceJob, plan_face_tasks, plane_pairs
from patchworks._engine.labelmap import LabelMap, build_label_map
from patchworks._engine.local import to_local_labels
from patchworks._engine.measure import Measure, reduce_local
from patchworks._engine.merge import MergeInputs
from patchworks._engine.objects import TileStats
from patchworks._engine.relabel import RelabelJob, lazy_relabel, relabel_tile
from patchworks._engine.tiles import TileJob, TileSummary, stage_local_labels
from patchworks._plan import Tile, TilePlan
from patchworks.errors import InvalidParameterError, StitchingWarning

logger = logging.getLogger(__name__)


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
    measures_tiles: ClassVar[bool] = True  # objects= measured in the tile stage

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
        stride = contact.sample_stride(plan.n_tiles, math.prod(plan.tile_shape))
        return TouchSeams(plan=plan, connectivity=self.connectivity, stride=stride)


@dataclass(frozen=True)
class TouchSeams:
    """One ``stitch="touch"`` run: crop, stage local labels and faces; pair touching faces.

    ``connectivity`` None: the connectivity ``fn`` uses, as the tiles show it
    (:mod:`patchworks._engine.contacts`); full connectivity when no tile shows it.
    """

    plan: TilePlan
    connectivity: int | None
    stride: int = 1  # tiles whose contacts are checked (see ._engine.contacts)

    def stage(
        self, job: TileJob, tile: Tile, labels: NDArray[Any], top: int, image: Any = None
    ) -> TileSummary:
        local = to_local_labels(labels[tile.crop], job.labels_dtype, tile, top=top)
        checked = local.n and tile.index % self.stride == 0
        found = contact.tile_contacts(local.labels) if checked else 0
        return stage_local_labels(job, tile, local, contacts=found, image=image)

    def join(self, inputs: MergeInputs) -> TouchJoined:
        connectivity, info, notes = self._connectivity(inputs.contacts)
        pairs = self._pairs(inputs, connectivity)
        if info["connectivity_from"] == "assumed" and connectivity > 1:
            diagonal = contact.diagonal_joins(pairs, self._pairs(inputs, 1))
            info["seam_joins_only_diagonal"] = diagonal
            if diagonal:
                notes.append(
                    f"Labels touching only diagonally joined objects across tile seams "
                    f"({diagonal} join{'s' if diagonal > 1 else ''}), and no tile showed "
                    f"which connectivity `fn` labels with (connectivity {connectivity} was "
                    "assumed, which joins them). If `fn` is scipy.ndimage.label with its "
                    "default structure, pass connectivity=1; if it joins diagonal "
                    f"neighbours (skimage.measure.label's default), pass "
                    f"connectivity={connectivity}."
                )
        label_map = build_label_map(
            inputs.counts, pairs, sequential=inputs.sequential, dtype=inputs.dtype
        )
        for note in notes:  # once the map is built: an error there comes first
            warnings.warn(note, StitchingWarning, stacklevel=3)
        return TouchJoined(inputs=inputs, label_map=label_map, info=info)

    def _pairs(self, inputs: MergeInputs, connectivity: int) -> NDArray[np.int64]:
        """The pairs of tagged labels that touch across faces at ``connectivity``."""
        face_job = FaceJob(
            plan=self.plan,
            store=inputs.staging.faces,
            index=inputs.faces,
            connectivity=connectivity,
            tasks=plan_face_tasks(self.plan, inputs.counts, connectivity),
        )
        tasks = range(len(face_job.tasks))
        found = inputs.executor.map(plane_pairs, face_job, tasks, desc="faces", unit="block")
        pairs = [p for p in found if p.size]
        return np.concatenate(pairs) if pairs else EMPTY_PAIRS

    def _connectivity(self, masks: NDArray[np.int64]) -> tuple[int, dict[str, Any], list[str]]:
        """The connectivity of the merge, what the output records about it, and what the
        user should be warned of."""
        ndim = self.plan.ndim
        touching = contact.n_touching(masks)
        notes = []
        if touching:
            notes.append(
                f"{touching} tiles have distinct labels touching face to face, as instance "
                'segmentations (Cellpose, StarDist) give: stitch="touch" joins touching '
                'objects across tile seams. Use stitch="iou" with an overlap of about one '
                "object diameter to keep them apart (docs/stitching.md)."
            )
        if self.connectivity is not None:
            connectivity, source = int(self.connectivity), "given"
            against = contact.contradicted(masks, connectivity)
            if against is not None:
                notes.append(
                    f"`connectivity={connectivity}` joins voxels that touch at {against} "
                    f"steps, but `fn` left distinct labels touching that way inside tiles: it "
                    f"labels with connectivity {against - 1}. Objects may be joined across "
                    f"tile seams that `fn` keeps apart; pass connectivity={against - 1} (or "
                    "leave it None to follow the tiles)."
                )
        else:
            inferred = contact.infer_connectivity(masks, ndim)
            connectivity = ndim if inferred is None else inferred
            source = "assumed" if inferred is None else "tiles"
            logger.info("connectivity %d (%s)", connectivity, source)
        info = {
            "connectivity": connectivity,
            "connectivity_from": source,
            "tiles_with_touching_labels": touching,
        }
        return connectivity, info, notes


@dataclass(frozen=True)
class TouchJoined:
    """The label map of a touch run, applied tile by tile."""

    inputs: MergeInputs
    label_map: LabelMap
    info: dict[str, Any] = field(default_factory=dict)

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

    def with_label_map(self, label_map: LabelMap) -> TouchJoined:
        """The same join applying ``label_map`` (e.g. with size filters)."""
        return dataclasses.replace(self, label_map=label_map)

    def measure(self, executor: Executor, measure: Measure) -> TileStats:
        """The objects' statistics, from what the tile stage measured."""
        return reduce_local(
            self.label_map,
            list(self.inputs.objects),
            ndim=self.inputs.plan.ndim,
            channels=measure.columns,
        )
