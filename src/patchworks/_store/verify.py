"""The client's account of a run's staged data, checked before the merge and before the
output is marked complete.

Each tile's summary says what it staged: local labels (``n_local``, its face frame) and,
for a stitch mode with stores of its own (the halos of ``stitch="iou"``), one chunk per
tile with labels in every array of its seams. :func:`verify_staged` checks, as the client
sees the storage, that all of it is there; :func:`verify_output` checks the chunks the
relabel stage must have written. A chunk written on a worker's private disk is thus an
error naming the tile and the path, never background in the output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchworks._plan import TilePlan
from patchworks._store.accounting import verify_tiles
from patchworks._store.facestore import FaceIndex
from patchworks._store.staging import Staging
from patchworks._store.tilelog import staged_arrays


def seam_arrays(seams: object) -> list[Any]:
    """The per-tile stores of a stitch mode's seams: its zarr fields but ``anchor`` (the
    run's output-shaped array, which the tile stage does not write)."""
    if seams is None or not dataclasses.is_dataclass(seams):
        return []
    anchor = getattr(seams, "anchor", None)
    return [a for a in staged_arrays(seams) if a is not anchor]


def staged_label_tiles(faces: FaceIndex, *, in_place: bool) -> NDArray[np.bool_]:
    """Tiles that staged local labels in the run's labels array: those with a face frame,
    when the labels are staged by patchworks (``in_place``), not left in a user's store."""
    return (faces.segment >= 0) if in_place else np.zeros(faces.segment.size, dtype=bool)


def verify_staged(
    plan: TilePlan,
    staging: Staging,
    seams: object,
    counts: NDArray[np.integer[Any]],
    faces: FaceIndex,
    *,
    in_place: bool,
) -> None:
    """Raise :class:`~patchworks.errors.StagedDataMissingError` unless every tile's
    staged labels, face frame and stitch stores are where the client looks."""
    staging.faces.verify(faces)
    checks: list[tuple[Any, NDArray[np.bool_]]] = []
    if staging.labels is not None:
        checks.append((staging.labels, staged_label_tiles(faces, in_place=in_place)))
    occupied = np.asarray(counts) > 0
    checks.extend((array, occupied) for array in seam_arrays(seams))
    verify_tiles(plan, checks, what="the staged data")


def verify_output(plan: TilePlan, built: Any, faces: FaceIndex, *, in_place: bool) -> None:
    """Raise unless ``built`` has the chunk of every tile whose staged local labels the
    relabel stage turned into final labels (never 0, so always written)."""
    verify_tiles(
        plan,
        [(built, staged_label_tiles(faces, in_place=in_place))],
        what="the relabelled labels",
    )
