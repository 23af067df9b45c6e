"""Where a tile's labels wait between the tile stage and the relabel stage.

One contract, :class:`TileLabels`, with two implementations:

* :class:`StagedLabels` — the tile stage wrote each tile's local labels ``1..n`` (as runs
  when they are long, else voxel by voxel) into an array patchworks created, whose chunks
  are the tiles. The relabel stage maps them through the tile's table and may write the
  final labels over them, in place.
* :class:`UserLabels` — the labels stay in the user's own per-tile label store
  (:func:`~patchworks.merge_tile_labels` on a zarr path). The tile stage keeps only each
  tile's label IDs (with its face slabs), and the relabel stage maps the user's labels
  straight to final labels; the user's store is never written.

The relabel stage (:mod:`patchworks._engine.relabel`) and the tile stage
(:mod:`patchworks._engine.tiles`) talk to either through the same four calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from patchworks._engine.local import (
    LocalLabels,
    apply_lut,
    dense_limit,
    expand_runs,
    to_local_labels,
)
from patchworks._plan import Tile
from patchworks._store.accounting import require_chunk
from patchworks._store.chunkio import ChunkIO, read_tile, tile_io
from patchworks._store.staging import Staging


class TileLabels(Protocol):
    """The per-tile labels of one run, as the tile and relabel stages see them."""

    @property
    def array(self) -> Any:
        """The array holding the labels (chunks = tiles for staged labels)."""
        ...

    @property
    def in_place(self) -> bool:
        """Whether final labels may be written over :attr:`array` (patchworks made it)."""
        ...

    @property
    def keeps_ids(self) -> bool:
        """Whether the relabel stage needs each tile's label IDs from the face store."""
        ...

    @property
    def per_tile(self) -> bool:
        """Whether a lazy result reads each tile itself (:meth:`final`) rather than map
        dask blocks of :attr:`array` (:meth:`map_block`)."""
        ...

    def keep(self, staging: Staging, tile: Tile, local: LocalLabels) -> NDArray[Any] | None:
        """Tile stage: keep a tile's local labels; return the IDs to keep with its faces
        (None when the staged labels are all the relabel stage needs)."""
        ...

    def final(
        self, tile: Tile, lut: NDArray[Any], ids: NDArray[Any] | None, out: NDArray[Any] | None
    ) -> NDArray[Any]:
        """Relabel stage: read ``tile``'s labels and map them through ``lut``
        (``lut[local]`` is the final label; ``ids[local - 1]`` the label it came from)."""
        ...

    def map_block(
        self,
        tile: Tile,
        block: NDArray[Any],
        lut: NDArray[Any],
        ids: NDArray[Any] | None,
        out: NDArray[Any] | None,
    ) -> NDArray[Any]:
        """Map a tile's block of labels, already read, through ``lut``."""
        ...


@dataclass(frozen=True)
class StagedLabels:
    """Local labels staged by the tile stage in ``array`` (chunks = ``tile_shape``)."""

    array: Any
    tile_shape: tuple[int, ...]
    in_place: bool = True
    keeps_ids: bool = False

    @cached_property
    def io(self) -> ChunkIO | None:
        """Direct chunk access (None: go through zarr)."""
        return tile_io(self.array, self.tile_shape)

    @property
    def per_tile(self) -> bool:
        return self.io is not None  # runs are read by chunk, not as a dask block

    def keep(self, staging: Staging, tile: Tile, local: LocalLabels) -> NDArray[Any] | None:
        runs = local.run_lengths() if staging.runs_allowed else None
        voxels = local.whole() if runs is None else None
        staging.write_labels(tile.position, tile.core, local.n, runs=runs, voxels=voxels)
        return None

    def final(
        self, tile: Tile, lut: NDArray[Any], ids: NDArray[Any] | None, out: NDArray[Any] | None
    ) -> NDArray[Any]:
        # Only tiles with labels are read here: their chunk must be there (never fill 0).
        where = tile.describe()
        runs = self.io.read_runs(tile.position, expect=where) if self.io is not None else None
        if runs is not None:  # staged as runs: map each run's label, then expand the runs
            return expand_runs(*runs, lut).reshape(tile.core_shape)
        if self.io is not None:
            block = self.io.read_local(tile.position, reuse=out is not None, expect=where)
        else:
            require_chunk(self.array, tile.position, where)
            block = read_tile(self.array, None, tile.position, tile.core, reuse=out is not None)
        return apply_lut(block, lut, out)

    def map_block(
        self,
        tile: Tile,
        block: NDArray[Any],
        lut: NDArray[Any],
        ids: NDArray[Any] | None,
        out: NDArray[Any] | None,
    ) -> NDArray[Any]:
        return apply_lut(block, lut, out)  # local labels already


@dataclass(frozen=True)
class UserLabels:
    """A user's per-tile labels, read where they are (chunks need not be the tiles)."""

    array: Any
    tile_shape: tuple[int, ...]
    in_place: bool = False
    keeps_ids: bool = True
    per_tile: bool = False

    @cached_property
    def io(self) -> ChunkIO | None:
        return tile_io(self.array, self.tile_shape)

    def keep(self, staging: Staging, tile: Tile, local: LocalLabels) -> NDArray[Any] | None:
        return local.ids  # the labels stay in the user's store

    def final(
        self, tile: Tile, lut: NDArray[Any], ids: NDArray[Any] | None, out: NDArray[Any] | None
    ) -> NDArray[Any]:
        block = read_tile(self.array, self.io, tile.position, tile.core, reuse=out is not None)
        return self.map_block(tile, block, lut, ids, out)

    def map_block(
        self,
        tile: Tile,
        block: NDArray[Any],
        lut: NDArray[Any],
        ids: NDArray[Any] | None,
        out: NDArray[Any] | None,
    ) -> NDArray[Any]:
        n_local = lut.size - 1
        top = int(ids.max()) if ids is not None and ids.size == n_local else None
        if ids is not None and top is not None and top < dense_limit(block.size):
            # Map the user's labels straight to final labels: no second renumbering.
            table = np.zeros(top + 1, dtype=lut.dtype)
            table[ids] = lut[1:]
            return apply_lut(block, table, out)
        # Sparse IDs, or IDs no longer at hand (a lazy result outlives the face store):
        # find the local labels again exactly as the tile stage did.
        local = to_local_labels(block, np.dtype(np.int64), tile)
        return apply_lut(local.whole(), lut, out)
