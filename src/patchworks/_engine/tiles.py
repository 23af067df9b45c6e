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

from patchworks._store.chunkio import ChunkIO, chunk_io, reusable
from patchworks._store.facestore import FaceRef, face_planes
from patchworks._plan import Tile, TilePlan
from patchworks.io._source import ImageSource
from patchworks._store.staging import Staging
from patchworks.errors import ImageReadError, InvalidLabelsError, LabelOverflowError, TileFunctionError


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
) -> tuple[np.ndarray, int]:
    """Check ``result`` against the label contract; return it as a NumPy array, and its
    largest label (0 when empty).

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
    if not result.size:
        return result, 0
    # One pass for both the largest label and the sign check: as unsigned, a negative
    # label reads as more than the signed type's maximum.
    top = int(result.view(f"u{result.dtype.itemsize}").max())
    if result.dtype.kind == "i" and top > np.iinfo(result.dtype).max:
        raise InvalidLabelsError(
            f"{origin} must return non-negative labels (0 = background); got minimum "
            f"{int(result.min())} {where}."
        )
    return result, top


def dense_limit(size: int) -> int:
    """Largest label for which a table indexed by label costs no more than ``size`` voxels
    of labels (the renumbering and the relabel stage's table stay bounded by the tile)."""
    return max(size, 1 << 16)


@dataclass(frozen=True)
class LocalLabels:
    """How one tile's labels become local labels ``1..n`` (0 stays background).

    Two ways, chosen by the largest label: labels below :func:`dense_limit` get local
    labels in increasing order of label, through a table indexed by label (``table``;
    None when the labels are ``1..n`` already, the common case, which needs no copy).
    Larger, sparse IDs are renumbered by fastremap in order of first appearance
    (``renumbered``). Both are deterministic, so the relabel stage can repeat them on a
    block read back from a user's store and get the same local labels.

    ``labels`` may live in a thread's reusable buffer: use this within the tile's stage.
    """

    n: int
    ids: np.ndarray  # ids[local - 1] is the label that became local label ``local``
    labels: np.ndarray  # the tile's labels, in the narrowest type that holds them
    table: np.ndarray | None = None
    renumbered: np.ndarray | None = None
    runs: LabelRuns | None = None  # the runs of ``labels``, when they are long (dense IDs)

    def whole(self) -> np.ndarray:
        """The tile's local labels."""
        if self.renumbered is not None:
            return self.renumbered
        return self.labels if self.table is None else self.table[self.labels]

    def run_lengths(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The tile's local labels as runs of the C-order flattened tile: the length of
        every run and its local label; None when the runs were too short to keep."""
        if self.runs is None:
            return None
        lengths = np.diff(self.runs.starts, append=self.labels.size)
        values = self.runs.values
        return lengths, (values if self.table is None else self.table[values])

    def faces(self) -> list[np.ndarray]:
        """The tile's :func:`face_planes`, in local labels (only they are mapped)."""
        if self.renumbered is not None:
            return face_planes(self.renumbered)
        planes = face_planes(self.labels)
        return planes if self.table is None else [self.table[p] for p in planes]


def to_local_labels(
    labels: np.ndarray, labels_dtype: np.dtype, tile: Tile, *, top: int | None = None
) -> LocalLabels:
    """Find the labels of a tile and how they become local labels ``1..n``.

    ``top`` bounds the labels from above when known (their maximum, or that of a larger
    array they were cut from), which saves a pass over them.

    Examples
    --------
    >>> from patchworks._plan import TilePlan
    >>> tile = TilePlan((4,), (4,), (0,)).tile(0)
    >>> local = to_local_labels(np.array([0, 9, 4, 9]), np.dtype("int32"), tile)
    >>> local.n, local.ids.tolist(), local.whole().tolist()
    (2, [4, 9], [0, 2, 1, 2])
    """
    if top is None:
        top = int(labels.max()) if labels.size else 0
    if top < dense_limit(labels.size):
        narrow = np.min_scalar_type(top)
        if narrow.itemsize < labels.dtype.itemsize:
            # Scanning, staging and slicing faces all go faster on the narrow copy.
            buffer = reusable("narrow", labels.shape, narrow)
            np.copyto(buffer, labels, casting="unsafe")
            labels = buffer
        runs = LabelRuns.of(labels.reshape(-1))
        present = np.zeros(top + 1, dtype=bool)
        present[runs.values] = True
        present[0] = False
        ids = np.flatnonzero(present)
        if not ids.size or ids[-1] == ids.size:  # already 1..n
            table = None
        else:
            table = np.zeros(int(ids[-1]) + 1, dtype=np.min_scalar_type(ids.size))
            table[ids] = np.arange(1, ids.size + 1, dtype=table.dtype)
        local = LocalLabels(
            n=int(ids.size),
            ids=ids.astype(np.uint64),
            labels=labels,
            table=table,
            runs=runs if runs.long else None,
        )
    else:
        renumbered, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
        ids = _ids_of(mapping)
        local = LocalLabels(n=int(ids.size), ids=ids, labels=labels, renumbered=renumbered)
    if local.n > np.iinfo(labels_dtype).max:
        raise LabelOverflowError(
            f"{tile.describe()} has {local.n} labels, more than the output `dtype` "
            f"{labels_dtype} can hold ({np.iinfo(labels_dtype).max}); pass dtype='int64'."
        )
    return local


#: Shortest mean run length (voxels) at which a tile's local labels are staged as runs.
MIN_MEAN_RUN = 16


@dataclass(frozen=True)
class LabelRuns:
    """The runs of equal values of a 1-D array of labels: where each starts, its value.

    Every distinct value appears as the value of some run, so the runs find which labels
    are present while looking up only the first voxel of each run: segmentations come in
    long runs, so that is a few percent of the voxels, in NumPy loops that release the GIL
    (fastremap's ``unique`` holds it throughout, which serialises the threads). When the
    runs are long they are also how the tile is staged (:meth:`ChunkIO.write_runs`).

    Examples
    --------
    >>> LabelRuns.of(np.repeat([0, 5, 0], 20)).starts.tolist()
    [0, 20, 40]
    >>> short = LabelRuns.of(np.array([3, 3, 0, 0, 1, 3, 3]))  # mean run under 16 voxels
    >>> short.long, short.values.tolist()
    (False, [3, 0, 1, 3])
    """

    starts: np.ndarray
    values: np.ndarray
    long: bool  # mean run length at least MIN_MEAN_RUN voxels

    @classmethod
    def of(cls, flat: np.ndarray) -> LabelRuns:
        changes = reusable("starts", flat.shape, bool)
        changes[:1] = True
        np.not_equal(flat[1:], flat[:-1], out=changes[1:])
        long = np.count_nonzero(changes) * MIN_MEAN_RUN <= flat.size
        # Short runs: only the values are kept (a compress is cheaper than positions).
        starts = np.flatnonzero(changes) if long else np.empty(0, dtype=np.intp)
        values = flat[starts] if long else np.compress(changes, flat)
        return cls(starts=starts, values=values, long=bool(long))


def _ids_of(mapping: dict[Any, Any]) -> np.ndarray:
    """The label that became each local label ``1..n`` (``ids[local - 1]``)."""
    n = len(mapping) - (0 in mapping)  # the mapping always holds 0 -> 0
    ids = np.zeros(n, dtype=np.uint64)
    labels = np.fromiter(mapping.keys(), dtype=np.uint64, count=len(mapping))
    local = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
    ids[local[local > 0] - 1] = labels[local > 0]
    return ids


def stage_local_labels(job: TileJob, tile: Tile, local: LocalLabels) -> TileSummary:
    """Write a tile's local labels and face slabs to the staging store.

    When the labels stay in the user's store (no staged labels), only the faces are
    converted to local labels, and the face store also keeps the user's label of each
    local label, so the relabel stage can map the user's labels straight to final ones.
    """
    if not local.n:
        return TileSummary(index=tile.index, n_labels=0)
    ids = None
    if job.staging.labels is not None:
        staging = job.staging
        runs = local.run_lengths() if staging.runs_allowed else None
        voxels = local.whole() if runs is None else None
        staging.write_labels(tile.position, tile.core, local.n, runs=runs, voxels=voxels)
    else:
        ids = local.ids
    faces = job.staging.faces.append(local.labels.shape, local.faces(), local.n, ids)
    return TileSummary(index=tile.index, n_labels=local.n, faces=faces)


def run_fn(
    job: TileJob, tile: Tile, data: np.ndarray, *, crop: bool = True
) -> tuple[np.ndarray, int]:
    """Call ``fn`` on the halo'd tile data, check the result and crop it to the core;
    return the labels and the largest label of the whole result (see ``check_labels``)."""
    assert job.fn is not None
    try:
        result = job.fn(data)
    except Exception as exc:
        raise TileFunctionError(
            f"`fn` raised {type(exc).__name__}: {exc} on {tile.describe()}."
        ) from exc
    labels, top = check_labels(result, tile.halo_shape, tile)
    return (labels[tile.crop] if crop else labels), top


def read_source_box(
    source: ImageSource,
    tile: Tile,
    box: Any,
    *,
    name: str = "image",
    io: ChunkIO | None = None,
    reuse: bool = False,
) -> np.ndarray:
    """Read ``box`` of ``source``; a damaged or unreachable store names the tile.

    ``io`` reads the box from the chunk files directly, bypassing zarr (see ``_chunkio``),
    into this thread's reusable buffer with ``reuse`` (never for data handed to ``fn``).
    """
    try:
        if io is not None:
            return io.read_box(box, reuse=reuse)
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
        return job.seams.stage(job, tile, *run_fn(job, tile, data, crop=False))
    labels, top = run_fn(job, tile, data)
    local = to_local_labels(labels, job.labels_dtype, tile, top=top)
    return stage_local_labels(job, tile, local)


def stage_label_block(job: TileJob, index: int, block: Any) -> TileSummary:
    """Stage 2 for a tile whose labels already exist (``merge_tile_labels``)."""
    tile = job.plan.tile(index)
    if job.seams is not None:  # one halo'd tile per block
        labels, top = check_labels(block, tile.halo_shape, tile, origin="the labeled input")
        return job.seams.stage(job, tile, labels, top)
    labels, top = check_labels(block, tile.core_shape, tile, origin="the labeled input")
    local = to_local_labels(labels, job.labels_dtype, tile, top=top)
    return stage_local_labels(job, tile, local)


def scan_label_store(job: TileJob, index: int) -> TileSummary:
    """Stage 2 for a tile of a user's label store: faces only, labels stay where they are."""
    assert job.source is not None
    tile = job.plan.tile(index)
    io = job.source_io  # direct chunk-file reads when the store's layout allows them
    block = read_source_box(job.source, tile, tile.core, name="labeled", io=io, reuse=True)
    return stage_label_block(job, index, block)
