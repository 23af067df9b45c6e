"""The contract between the tile stage's results and a stitch mode's merge.

The tile stage leaves, per tile, a label count, face slabs and staged labels
(:class:`MergeInputs`). A stitch mode (:mod:`patchworks.stitch`) turns them into a
:class:`Joined`: the label map (stage 4) and the two ways to apply it (stage 5) — write
every tile's final labels to an output array, or compute them lazily on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.execute import Executor
from patchworks._engine.labelmap import LabelMap
from patchworks._engine.objects import TileStats
from patchworks._engine.staged import TileLabels
from patchworks._plan import TilePlan
from patchworks._store.facestore import FaceIndex
from patchworks._store.staging import Staging


@dataclass(frozen=True)
class MergeInputs:
    """What the tile stage left for the merge, whichever way the tiles were staged."""

    plan: TilePlan
    staging: Staging
    labels: TileLabels
    counts: NDArray[Any]  # local labels per tile (int64)
    faces: FaceIndex  # where each tile's face slabs are
    executor: Executor
    sequential: bool
    dtype: np.dtype[Any]
    contacts: NDArray[np.int64]  # per tile: how its distinct labels touch (._engine.contacts)
    objects: tuple[TileStats | None, ...] = ()  # per tile, when the tile stage measured

    @property
    def occupied(self) -> list[int]:
        """Indices of the tiles that have labels."""
        return [int(i) for i in np.flatnonzero(self.counts)]


class Joined(Protocol):
    """A stitch mode's merge result: the label map, and how to apply it."""

    @property
    def label_map(self) -> LabelMap:
        """Final label of every (tile, local label)."""
        ...

    @property
    def info(self) -> dict[str, Any]:
        """What the output's metadata records about the join (e.g. the connectivity)."""
        ...

    def write(self, executor: Executor, output: Any) -> LabelMap:
        """Write every tile's final labels to ``output`` (chunks = tiles); return the
        label map with exact counts."""
        ...

    def lazy(self, *, with_ids: bool) -> Any:
        """A dask array of final labels computed on demand. ``with_ids``: the face store
        (and any IDs in it) lives as long as the result is used."""
        ...
