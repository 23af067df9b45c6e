"""Stage 2 — tiles: run ``fn`` once per tile and stage its labels.

For each tile: read the halo box, call ``fn``, check the result against the label
contract, crop it to the core, renumber it to local labels ``1..n`` and write the labels
and face planes to the staging store. Only a :class:`TileSummary` (a few integers) goes
back to the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fastremap
import numpy as np

from ._chunkio import ChunkIO, chunk_io
from ._facestore import FaceRef
from ._plan import Tile, TilePlan
from ._source import ImageSource
from ._staging import Staging
from .errors import ImageReadError, InvalidLabelsError, LabelOverflowError, TileFunctionError


@dataclass(frozen=True)
class TileSummary:
    """What the client learns about one staged tile."""

    index: int
    n_labels: int
    skipped: bool = False
    faces: FaceRef | None = None  # where its face slabs are (tiles with labels)


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to stage tiles; shipped once per run, not per tile."""

    plan: TilePlan
    staging: Staging
    labels_dtype: np.dtype
    source: ImageSource | None = None
    fn: Callable[[np.ndarray], Any] | None = None
    skip_empty: bool = False
    empty_threshold: float | None = None
    seams: Any = None  # stitch="iou": stages whole halo predictions (see ._iou.Seams)

    @cached_property
    def source_io(self) -> ChunkIO | None:
        """Direct chunk-file reads of the input when it is a zarr v3 array on local disk
        in a layout :class:`ChunkIO` reads, with no channel axis (else None: read through
        zarr). Zarr's per-call machinery holds the GIL for much of a read, which slows
        every other thread of the run; reading the chunk files directly does not."""
        if self.source is None:
            return None
        io = chunk_io(self.source.array)
        return io if io is not None and len(io.shape) == self.plan.ndim else None


def _as_numpy(result: Any) -> Any:
    """Bring array-likes (cupy, torch, dask, lists) to NumPy; leave other objects alone."""
    if isinstance(result, np.ndarray):
        return result
    module = type(result).__module__.split(".")[0]
    if module == "cupy":
        return result.get()
    if module == "torch":
        return result.detach().cpu().numpy()
    if hasattr(result, "__array__") and hasattr(result, "shape"):
        return np.asarray(result)
    return result


def check_labels(
    result: Any, expected_shape: tuple[int, ...], tile: Tile, *, origin: str = "`fn`"
) -> np.ndarray:
    """Check ``result`` against the label contract; return it as a NumPy array.

    Examples
    --------
    >>> from patchworks._plan import TilePlan
    >>> tile = TilePlan((4, 4), (4, 4), (0, 0)).tile(0)
    >>> check_labels(np.zeros((4, 4), "float32"), (4, 4), tile)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    patchworks.errors.InvalidLabelsError: `fn` must return integer labels; got dtype float32 ...
    """
    where = f"for {tile.describe()}"
    result = _as_numpy(result)
    if not isinstance(result, np.ndarray):
        raise InvalidLabelsError(
            f"{origin} must return a NumPy array of integer labels; got an object of type "
            f"{type(result).__name__} {where}."
        )
    if result.shape != expected_shape:
        raise InvalidLabelsError(
            f"{origin} must return labels with the tile's spatial shape {expected_shape}; "
            f"got shape {result.shape} {where}."
        )
    if result.dtype.kind not in "iu":
        raise InvalidLabelsError(
            f"{origin} must return integer labels; got dtype {result.dtype} {where}."
        )
    if result.dtype.kind == "i" and result.size and result.min() < 0:
        raise InvalidLabelsError(
            f"{origin} must return non-negative labels (0 = background); got minimum "
            f"{int(result.min())} {where}."
        )
    return result


def to_local_labels(
    labels: np.ndarray, labels_dtype: np.dtype, tile: Tile
) -> tuple[np.ndarray, int, dict[Any, Any]]:
    """Renumber labels to ``1..n`` in order of first appearance (0 stays 0).

    Returns the local labels, ``n`` and the mapping ``{label: local label}``. The
    renumbering is deterministic, so the relabel stage can repeat it on a block read back
    from a user's store and get the same local labels.
    """
    local, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
    n_labels = len(mapping) - (0 in mapping)  # the mapping always holds 0 -> 0
    if n_labels > np.iinfo(labels_dtype).max:
        raise LabelOverflowError(
            f"{tile.describe()} has {n_labels} labels, more than the output `dtype` "
            f"{labels_dtype} can hold ({np.iinfo(labels_dtype).max}); pass dtype='int64'."
        )
    return local, n_labels, mapping


def label_ids(mapping: dict[Any, Any], n_labels: int) -> np.ndarray:
    """The label that became each local label ``1..n`` (``ids[local - 1]``).

    Examples
    --------
    >>> label_ids({0: 0, 17: 2, 5: 1}, 2).tolist()
    [5, 17]
    """
    ids = np.zeros(n_labels, dtype=np.uint64)
    labels = np.fromiter(mapping.keys(), dtype=np.uint64, count=len(mapping))
    local = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    ids[local[local > 0] - 1] = labels[local > 0]
    return ids


def stage_local_labels(
    job: TileJob, tile: Tile, local: np.ndarray, n_labels: int, mapping: dict[Any, Any]
) -> TileSummary:
    """Write a tile's local labels and face slabs to the staging store.

    When the labels stay in the user's store (no staged labels), the face store also
    keeps the user's label of each local label, so the relabel stage can map the user's
    labels straight to final ones instead of renumbering the block again.
    """
    if not n_labels:
        return TileSummary(index=tile.index, n_labels=0)
    ids = None
    if job.staging.labels is not None:
        job.staging.write_labels(tile.position, tile.core, local)
    else:
        ids = label_ids(mapping, n_labels)
    faces = job.staging.write_faces(local, ids)
    return TileSummary(index=tile.index, n_labels=n_labels, faces=faces)


def run_fn(job: TileJob, tile: Tile, data: np.ndarray, *, crop: bool = True) -> np.ndarray:
    """Call ``fn`` on the halo'd tile data, check the result and crop it to the core."""
    assert job.fn is not None
    try:
        result = job.fn(data)
    except Exception as exc:
        raise TileFunctionError(
            f"`fn` raised {type(exc).__name__}: {exc} on {tile.describe()}."
        ) from exc
    labels = check_labels(result, tile.halo_shape, tile)
    return labels[tile.crop] if crop else labels


def read_source_box(
    source: ImageSource, tile: Tile, box: Any, *, name: str = "image", io: ChunkIO | None = None
) -> np.ndarray:
    """Read ``box`` of ``source``; a damaged or unreachable store names the tile.

    ``io`` reads the box from the chunk files directly, bypassing zarr (see ``_chunkio``).
    """
    try:
        if io is not None:
            return io.read_box(box)
        return source.read(box)
    except Exception as exc:
        raise ImageReadError(
            f"could not read `{name}` for {tile.describe()} ({type(exc).__name__}: {exc}); "
            "its store is damaged or unreachable."
        ) from exc


def process_tile(job: TileJob, index: int) -> TileSummary:
    """Stage 2 for one tile of ``tile_process``: read, ``fn``, check, crop, stage."""
    assert job.source is not None
    tile = job.plan.tile(index)
    data = read_source_box(job.source, tile, tile.halo_box, io=job.source_io)
    if job.skip_empty:
        core = data[job.source.full_box(tile.crop)]
        threshold = 0 if job.empty_threshold is None else job.empty_threshold
        if core.size == 0 or core.max() <= threshold:
            return TileSummary(index=index, n_labels=0, skipped=True)
    if job.seams is not None:
        return job.seams.stage(job, tile, run_fn(job, tile, data, crop=False))
    labels = run_fn(job, tile, data)
    local, n_labels, mapping = to_local_labels(labels, job.labels_dtype, tile)
    return stage_local_labels(job, tile, local, n_labels, mapping)


def stage_label_block(job: TileJob, index: int, block: Any) -> TileSummary:
    """Stage 2 for a tile whose labels already exist (``merge_tile_labels``)."""
    tile = job.plan.tile(index)
    if job.seams is not None:  # one halo'd tile per block
        labels = check_labels(block, tile.halo_shape, tile, origin="the labeled input")
        return job.seams.stage(job, tile, labels)
    labels = check_labels(block, tile.core_shape, tile, origin="the labeled input")
    local, n_labels, mapping = to_local_labels(labels, job.labels_dtype, tile)
    return stage_local_labels(job, tile, local, n_labels, mapping)


def scan_label_store(job: TileJob, index: int) -> TileSummary:
    """Stage 2 for a tile of a user's label store: faces only, labels stay where they are."""
    assert job.source is not None
    tile = job.plan.tile(index)
    io = job.source_io  # direct chunk-file reads when the store's layout allows them
    block = read_source_box(job.source, tile, tile.core, name="labeled", io=io)
    return stage_label_block(job, index, block)
