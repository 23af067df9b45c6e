"""Chunk-wise partition check: are two label arrays the same objects up to renaming?

Two label images are the same partition when they agree on background and the pairs
``(reference label, candidate label)`` over all foreground voxels form a bijection: each
reference label meets exactly one candidate label and vice versa. The pairs are collected
block by block (each block's distinct pairs only), so memory stays at a few blocks plus
one pair per object and block it touches, whatever the image size.
"""

from __future__ import annotations

import numpy as np


def _block_pairs(ref: np.ndarray, out: np.ndarray) -> np.ndarray | None:
    fg = ref != 0
    if not np.array_equal(fg, out != 0):
        return None
    r, o = ref[fg].astype(np.int64), out[fg].astype(np.int64)
    if not r.size:
        return np.empty((0, 2), dtype=np.int64)
    r_ids, r_inv = np.unique(r, return_inverse=True)
    o_ids, o_inv = np.unique(o, return_inverse=True)
    keys = np.unique(r_inv.astype(np.int64) * o_ids.size + o_inv)
    return np.stack([r_ids[keys // o_ids.size], o_ids[keys % o_ids.size]], axis=1)


def same_partition(reference, candidate, *, block: tuple[int, ...]) -> tuple[bool, str]:
    """Compare two zarr arrays (or array-likes) chunk by chunk; return (ok, reason)."""
    if tuple(reference.shape) != tuple(candidate.shape):
        return False, f"shape {candidate.shape} != {reference.shape}"
    grid = [-(-n // b) for n, b in zip(reference.shape, block, strict=True)]
    pairs = []
    for coords in np.ndindex(*grid):
        box = tuple(slice(c * b, (c + 1) * b) for c, b in zip(coords, block, strict=True))
        found = _block_pairs(np.asarray(reference[box]), np.asarray(candidate[box]))
        if found is None:
            return False, f"background differs in block {coords}"
        pairs.append(found)
    pairs = np.unique(np.concatenate(pairs), axis=0)
    n_ref, n_out = np.unique(pairs[:, 0]).size, np.unique(pairs[:, 1]).size
    if n_ref != len(pairs) or n_out != len(pairs):
        return False, (
            f"{len(pairs)} label pairs for {n_ref} reference and {n_out} "
            "candidate objects (split or merged objects)"
        )
    return True, f"{n_ref} objects"
