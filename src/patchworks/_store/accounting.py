"""Every tile's staged data accounted for: where each tile's chunks are, whether they are
there, and the error when they are not.

A missing chunk reads as zarr's fill value 0, so staged data that a later stage cannot see
(a worker wrote it to a folder that exists only on its own machine) would silently turn into
background. The stages therefore never read a chunk they expect as a fill value: a tile
that staged labels (its summary says how many) must have its chunks, and the client checks
that every such chunk is there, as it sees the storage, before the merge and before the
output is marked complete (:func:`verify_tiles`). The error names the tile, the path and
the fix (:data:`SHARED_STORAGE_FIX`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchworks._plan import TilePlan
from patchworks.errors import StagedDataMissingError

SHARED_STORAGE_FIX = (
    "the run's staged data must be on storage that the client and every dask worker see "
    "under the same path: put `write_to` (and `temp_dir`, where scratch goes) on a shared "
    "filesystem every worker mounts, not on a disk private to one machine (such as /tmp)"
)


def staged_data_missing(what: str, where: str, path: str, *, why: str = "is missing") -> Exception:
    """The error for a tile's staged data that a later stage expects and cannot use.

    Examples
    --------
    >>> print(staged_data_missing("the staged labels", "tile 3 at (0:4, 4:8)", "/s/c/0/1"))
    ... # doctest: +ELLIPSIS
    the staged labels of tile 3 at (0:4, 4:8) is missing at '/s/c/0/1'; the run's staged ...
    """
    return StagedDataMissingError(f"{what} of {where} {why} at {path!r}; {SHARED_STORAGE_FIX}.")


def tile_chunk(array: Any, plan: TilePlan, index: int) -> tuple[int, ...] | None:
    """Grid coordinates of the chunk of ``array`` that tile ``index`` writes, or None.

    A staged array is image-shaped (the tile writes its core), has one cell per grid
    position followed by the tile's box (it writes its own), or one row per tile (it
    writes row ``index``); its chunks are tile-aligned in every case.
    """
    shape = tuple(array.shape)
    position = plan.position(index)
    if shape == plan.shape:
        start = tuple(s.start for s in plan.core(position))
    elif shape[: plan.ndim] == plan.grid:
        start = (*position, *(0,) * (len(shape) - plan.ndim))
    elif shape and shape[0] == plan.n_tiles:
        start = (index,) + (0,) * (len(shape) - 1)
    else:
        return None
    return tuple(p // c for p, c in zip(start, array.chunks, strict=True))


def chunk_path(array: Any, coords: tuple[int, ...]) -> str | None:
    """The file of chunk ``coords`` of ``array`` on a local store (None: another store)."""
    root = getattr(array.store, "root", None)
    if root is None:
        return None
    return os.path.join(str(root), array.path, array.metadata.encode_chunk_key(coords))


def chunk_location(array: Any, coords: tuple[int, ...]) -> str:
    """Where chunk ``coords`` of ``array`` lives, for messages (a path or a store key)."""
    path = chunk_path(array, coords)
    if path is not None:
        return path
    key = array.metadata.encode_chunk_key(coords)
    return f"{array.store}/{array.path + '/' if array.path else ''}{key}"


def chunks_present(array: Any, coords: Sequence[tuple[int, ...]]) -> NDArray[np.bool_]:
    """Whether each chunk in ``coords`` of ``array`` exists in its store.

    On a local store every folder of chunk files is listed once (one ``scandir`` per
    folder instead of one ``stat`` per chunk); other stores are asked key by key.
    """
    found = np.zeros(len(coords), dtype=bool)
    root = getattr(array.store, "root", None)
    if root is None:
        from zarr.core.sync import sync

        prefix = f"{array.path}/" if array.path else ""
        for k, c in enumerate(coords):
            found[k] = bool(sync(array.store.exists(prefix + array.metadata.encode_chunk_key(c))))
        return found
    listed: dict[str, frozenset[str]] = {}
    for k, c in enumerate(coords):
        folder, name = os.path.split(chunk_path(array, c) or "")
        names = listed.get(folder)
        if names is None:
            try:
                with os.scandir(folder) as entries:
                    names = frozenset(e.name for e in entries)
            except (FileNotFoundError, NotADirectoryError):
                names = frozenset()
            listed[folder] = names
        found[k] = name in names
    return found


def verify_tiles(
    plan: TilePlan, arrays: Iterable[tuple[Any, NDArray[np.bool_]]], *, what: str
) -> None:
    """Raise :class:`~patchworks.errors.StagedDataMissingError` unless every array has the
    chunk of every tile marked in its mask (``(array, expected)`` pairs, ``expected[t]``:
    tile ``t`` wrote a chunk of ``array``); the error names the first missing tile."""
    for array, expected in arrays:
        tiles = np.flatnonzero(expected)
        coords = [tile_chunk(array, plan, int(t)) for t in tiles]
        known = [(int(t), c) for t, c in zip(tiles, coords, strict=True) if c is not None]
        if not known:
            continue
        present = chunks_present(array, [c for _, c in known])
        if present.all():
            continue
        missing = [k for k, ok in enumerate(present) if not ok]
        index, c = known[missing[0]]
        others = f" (and {len(missing) - 1} more tiles)" if len(missing) > 1 else ""
        raise staged_data_missing(
            what,
            plan.tile(index).describe() + others,
            chunk_location(array, c),
            why="is missing as the client sees the storage",
        )


def require_chunk(array: Any, coords: tuple[int, ...], where: str, *, what: str = "") -> None:
    """Raise :class:`~patchworks.errors.StagedDataMissingError` unless chunk ``coords`` of
    ``array``, which the tile described by ``where`` staged, exists (for reads through zarr,
    which would give its fill value)."""
    if not chunks_present(array, [coords])[0]:
        raise staged_data_missing(what or "the staged labels", where, chunk_location(array, coords))
