"""Stage 2 — tiles: run ``fn`` once per tile and stage its labels.

For each tile: read the halo box, call ``fn`` and check the result against the label
contract; the run's stitch mode then keeps what its merge needs (:class:`TileStager`):
``stitch="touch"`` crops to the core, finds the local labels ``1..n``
(:func:`~patchworks._engine.local.to_local_labels`) and stages them with the face slabs
(:func:`stage_local_labels`); ``stitch="iou"`` stages the whole halo prediction. Only a
:class:`TileSummary` (a few integers) goes back to the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.local import LocalLabels
from patchworks._engine.measure import Measure, measure_local
from patchworks._engine.objects import TileStats
from patchworks._engine.staged import TileLabels
from patchworks._plan import Tile, TilePlan
from patchworks._store.chunkcache import ChunkCache
from patchworks._store.chunkio import ChunkIO, chunk_io
from patchworks._store.facestore import FaceRef
from patchworks._store.staging import Staging
from patchworks.errors import ImageReadError, InvalidLabelsError, TileFunctionError
from patchworks.io._source import ImageSource


@dataclass(frozen=True)
class TileSummary:
    """What the client learns about one staged tile."""

    index: int
    n_local: int  # local labels of the tile (1..n_local)
    skipped: bool = False
    faces: FaceRef | None = None  # where its face slabs are (tiles with labels)
    contacts: int = 0  # how its distinct labels touch (see ._engine.contacts), if checked
    objects: TileStats | None = None  # its objects' statistics, when the run measures them


class TileStager(Protocol):
    """What a stitch mode keeps of each tile (see :class:`patchworks.stitch.Stitcher`)."""

    def stage(self, job: TileJob, tile: Tile, labels: NDArray[Any], top: int) -> TileSummary:
        """Keep ``labels`` (checked, over the tile's whole halo box; ``top`` is their
        largest label) for the merge; return what the client learns about the tile.

        When the run measures objects (``job.measure``), the call also gets ``image=``:
        the image data over the tile's halo box (None: read it where needed)."""
        ...


@dataclass(frozen=True)
class TileJob:
    """Everything a worker needs to stage tiles; shipped once per run, not per tile."""

    plan: TilePlan
    staging: Staging
    labels_dtype: np.dtype[Any]
    labels: TileLabels  # where local labels go (staged, or left in the user's store)
    seams: TileStager  # the stitch mode's tile-stage half
    source: ImageSource | None = None
    fn: Callable[[NDArray[Any]], Any] | None = None
    skip_empty: bool = False
    empty_threshold: float | None = None
    measure: Measure | None = None  # objects=: what the tile stage measures

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

    @cached_property
    def source_cache(self) -> ChunkCache | None:
        """Decoded input chunks shared by neighbouring tiles' halos on this worker (None
        without a halo, where each tile reads exactly its own chunks)."""
        return ChunkCache() if any(self.plan.halo) and self.source_io is not None else None


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
) -> tuple[NDArray[Any], int]:
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
    if not result.dtype.isnative:  # e.g. big-endian labels: every later step reads native
        result = result.astype(result.dtype.newbyteorder("="))
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


def stage_local_labels(
    job: TileJob, tile: Tile, local: LocalLabels, *, contacts: int = 0, image: Any = None
) -> TileSummary:
    """Keep a tile's local labels (:meth:`TileLabels.keep`) and write its face slabs.

    When the labels stay in the user's store, the face store also keeps the user's label
    of each local label, so the relabel stage can map the user's labels straight to final
    ones. With ``job.measure`` the objects of the core are measured too, from the image
    data ``image`` (over the halo box; None: read the core).
    """
    if not local.n:
        return TileSummary(index=tile.index, n_local=0)
    objects = None
    if job.measure is not None:
        objects = measure_local(job.measure, tile, local.whole(), local.n, image)
    ids = job.labels.keep(job.staging, tile, local)
    faces = job.staging.faces.append(local.labels.shape, local.faces(), local.n, ids)
    return TileSummary(
        index=tile.index, n_local=local.n, faces=faces, contacts=contacts, objects=objects
    )


def stage(
    job: TileJob, tile: Tile, labels: NDArray[Any], top: int, image: Any = None
) -> TileSummary:
    """Hand a tile's checked labels to the stitch mode (with its image data when the
    run measures objects)."""
    if job.measure is None:
        return job.seams.stage(job, tile, labels, top)
    stager: Any = job.seams
    summary: TileSummary = stager.stage(job, tile, labels, top, image=image)
    return summary


def run_fn(job: TileJob, tile: Tile, data: NDArray[Any]) -> tuple[NDArray[Any], int]:
    """Call ``fn`` on the halo'd tile data and check the result; return the labels and
    their largest label (see ``check_labels``)."""
    assert job.fn is not None
    try:
        result = job.fn(data)
    except Exception as exc:
        raise TileFunctionError(
            f"`fn` raised {type(exc).__name__}: {exc} on {tile.describe()}."
        ) from exc
    return check_labels(result, tile.halo_shape, tile)


def read_source_box(
    source: ImageSource,
    tile: Tile,
    box: Any,
    *,
    name: str = "image",
    io: ChunkIO | None = None,
    reuse: bool = False,
    cache: ChunkCache | None = None,
) -> NDArray[Any]:
    """Read ``box`` of ``source``; a damaged or unreachable store names the tile.

    ``io`` reads the box from the chunk files directly, bypassing zarr (see ``_chunkio``),
    into this thread's reusable buffer with ``reuse`` (never for data handed to ``fn``).
    """
    try:
        if io is not None:
            return io.read_box(box, reuse=reuse, cache=cache)
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
    data = read_source_box(
        job.source, tile, tile.halo_box, io=job.source_io, cache=job.source_cache
    )
    if job.skip_empty:
        core = data[job.source.full_box(tile.crop)]
        threshold = 0 if job.empty_threshold is None else job.empty_threshold
        if core.size == 0 or core.max() <= threshold:
            return TileSummary(index=index, n_local=0, skipped=True)
    return stage(job, tile, *run_fn(job, tile, data), image=data)


def stage_label_block(job: TileJob, index: int, block: Any) -> TileSummary:
    """Stage 2 for a tile whose labels already exist (``merge_tile_labels``): one block
    per tile, over its halo box (which is its core, unless the blocks overlap)."""
    tile = job.plan.tile(index)
    labels, top = check_labels(block, tile.halo_shape, tile, origin="the labeled input")
    return stage(job, tile, labels, top)


def scan_label_store(job: TileJob, index: int) -> TileSummary:
    """Stage 2 for a tile of a user's label store: faces only, labels stay where they are."""
    assert job.source is not None
    tile = job.plan.tile(index)
    io = job.source_io  # direct chunk-file reads when the store's layout allows them
    block = read_source_box(job.source, tile, tile.core, name="labeled", io=io, reuse=True)
    return stage_label_block(job, index, block)
