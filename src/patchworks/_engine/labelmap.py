"""Stage 4 — label map: from touching pairs to one final label per object.

Vocabulary: a tile's *local labels* are ``1..n_t``. Its *provisional IDs* are
``offsets[t] + local``, unique across the image (``offsets`` is the running sum of the
tiles' label counts). Pairs of provisional IDs that touch are joined by connected
components (:mod:`scipy.sparse.csgraph`); each component's *root* is its smallest member.

The :class:`LabelMap` stores only *boundary* objects (those in some pair). Every other
provisional ID maps by a formula, so the map's size grows with the number of objects that
touch a face, not with the number of objects or voxels:

* gappy (default): ``final = root`` — unique, with gaps where components were joined.
* sequential: ``final = root - (number of merged-away IDs below root)`` — exactly 1..N,
  computed per tile from the same tables, with no extra pass over the voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from patchworks._engine.local import check_label_count, provisional_ids, provisional_offsets

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class LabelMap:
    """Map from (tile, local label) to final label.

    Attributes
    ----------
    offsets : ndarray of int64, shape (n_tiles + 1,)
        ``offsets[t]`` is added to tile ``t``'s local labels to get provisional IDs.
    boundary_ids : ndarray of int64
        Sorted provisional IDs of objects that touch another tile.
    boundary_final : ndarray of int64
        Final label of each ``boundary_ids`` entry.
    merged_away : ndarray of int64
        Sorted provisional IDs that are not the root of their component (sequential only).
    sequential : bool
        Whether final labels are exactly ``1..n_labels``.
    n_labels : int
        Number of distinct objects.
    max_label : int
        Largest final label.

    Examples
    --------
    Two tiles with 2 and 1 labels; tile 0's label 2 touches tile 1's label 1:

    >>> pairs = np.array([[(1 << 32) | 1, 2]])
    >>> m = build_label_map(np.array([2, 1]), pairs, sequential=True)
    >>> m.n_labels, m.lut(0, 2).tolist(), m.lut(1, 1).tolist()
    (2, [0, 1, 2], [0, 2])
    """

    offsets: NDArray[np.int64]
    boundary_ids: NDArray[np.int64]
    boundary_final: NDArray[np.int64]
    merged_away: NDArray[np.int64]
    sequential: bool
    n_labels: int
    max_label: int

    def n_local(self, tile_index: int) -> int:
        """Number of local labels of one tile."""
        return int(self.offsets[tile_index + 1] - self.offsets[tile_index])

    def lut(
        self, tile_index: int, n_local: int, dtype: np.dtype[Any] | str = "int64"
    ) -> NDArray[np.integer[Any]]:
        """Lookup table ``local label -> final label`` for one tile (index 0 maps to 0)."""
        start = int(self.offsets[tile_index])
        provisional = np.arange(start, start + n_local + 1, dtype=np.int64)
        final = _final_of_survivors(provisional, self.merged_away, self.sequential)
        lo = np.searchsorted(self.boundary_ids, start + 1)
        hi = np.searchsorted(self.boundary_ids, start + n_local, side="right")
        final[self.boundary_ids[lo:hi] - start] = self.boundary_final[lo:hi]
        final[0] = 0
        return final.astype(dtype, copy=False)


def build_label_map(
    counts: ArrayLike,
    pairs: NDArray[np.integer[Any]],
    *,
    sequential: bool,
    dtype: np.dtype[Any] | str = "int64",
) -> LabelMap:
    """Join touching labels and build the map (raises if labels overflow ``dtype``).

    ``pairs`` may list a pair several times and in either order; the result is the same.
    """
    counts = np.asarray(counts, dtype=np.int64)
    offsets = provisional_offsets(counts)
    total = int(offsets[-1])

    if pairs.size:
        edges = provisional_ids(np.asarray(pairs, dtype=np.int64), offsets)
        nodes, inverse = np.unique(edges, return_inverse=True)
        inverse = inverse.reshape(edges.shape)
        graph = coo_matrix(
            (np.ones(len(inverse), dtype=bool), (inverse[:, 0], inverse[:, 1])),
            shape=(nodes.size, nodes.size),
        )
        _, component = connected_components(graph, directed=False)
        # ``nodes`` is sorted, so a component's first node in order is its smallest member.
        _, first = np.unique(component, return_index=True)
        roots = nodes[first][component]
        merged_away = nodes[nodes != roots]
    else:
        nodes = roots = merged_away = np.empty(0, dtype=np.int64)

    n_labels = total - merged_away.size
    max_label = n_labels if sequential else _largest_survivor(total, merged_away)
    fits_sequential = n_labels <= np.iinfo(np.dtype(dtype)).max
    check_label_count(
        max_label,
        dtype,
        f"the merged image has {n_labels} objects (largest label {max_label})",
        hint="" if sequential or not fits_sequential else " or sequential_labels=True",
    )
    return LabelMap(
        offsets=offsets,
        boundary_ids=nodes,
        boundary_final=_final_of_survivors(roots, merged_away, sequential),
        merged_away=merged_away,
        sequential=sequential,
        n_labels=n_labels,
        max_label=max_label,
    )


def _final_of_survivors(
    provisional: NDArray[np.int64], merged_away: NDArray[np.int64], sequential: bool
) -> NDArray[np.int64]:
    """Final label of provisional IDs that survive (are roots or never merged)."""
    if not sequential:
        return provisional
    return provisional - np.searchsorted(merged_away, provisional)


def _largest_survivor(total: int, merged_away: NDArray[np.int64]) -> int:
    """Largest ID in ``1..total`` not in the sorted ``merged_away``."""
    tail = merged_away[::-1] == total - np.arange(merged_away.size)
    run = merged_away.size if tail.all() else int(np.argmin(tail))
    return total - run
