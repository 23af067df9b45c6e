"""Seeded benchmark images, generated chunk by chunk in parallel with bounded memory.

The image is a uint16 volume of Gaussian blobs on a noisy background
(:mod:`patchworks.datasets`). Blobs are large (radius 20 voxels) and dense enough to fuse
into objects that span many 64^3 tiles, which is what stresses the merge. Each chunk is a
pure function of the seed and its index, so the image is identical whatever the number of
processes, and a finished image is reused between runs (a marker attribute records the
parameters it was made with).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SIZES = {
    # name: shape of a uint16 volume of that many bytes
    "64M": (128, 512, 512),
    "512M": (512, 512, 1024),
    "4G": (1024, 1024, 2048),
}
CHUNKS = (64, 64, 64)
RADIUS = 20.0
DENSITY = 0.3
SEED = 42


def _params(shape: tuple[int, ...]) -> dict:
    return {
        "shape": list(shape),
        "chunks": list(CHUNKS),
        "radius": RADIUS,
        "density": DENSITY,
        "seed": SEED,
    }


def _write_chunks(path: str, shape, boxes_ids) -> None:
    import zarr

    from patchworks.datasets import (
        _n_blobs,
        blob_table,
        blobs_region,
    )

    array = zarr.open_array(path, mode="r+")
    centres, radii = blob_table(
        shape, n_blobs=_n_blobs(shape, RADIUS, DENSITY), radius=RADIUS, seed=SEED
    )
    for box, chunk_id in boxes_ids:
        array[box] = blobs_region(box, centres, radii, seed=SEED, chunk_id=chunk_id)


def make_image(path: str, size: str, *, workers: int = 2) -> str:
    """Write (or reuse) the benchmark image of ``size`` at ``path``; return ``path``."""
    import zarr

    shape = SIZES[size]
    if os.path.exists(path):
        existing = zarr.open_array(path, mode="r")
        if dict(existing.attrs).get("benchmark") == {**_params(shape), "complete": True}:
            return path
    array = zarr.create_array(
        path,
        shape=shape,
        chunks=CHUNKS,
        dtype="uint16",
        overwrite=True,
        attributes={"benchmark": _params(shape)},
    )
    grid = [range(0, n, c) for n, c in zip(shape, CHUNKS, strict=True)]
    jobs = []
    for chunk_id, starts in enumerate(np.ndindex(*[len(g) for g in grid])):
        box = tuple(
            slice(g[i], min(g[i] + c, n))
            for g, i, c, n in zip(grid, starts, CHUNKS, shape, strict=True)
        )
        jobs.append((box, chunk_id))
    per_task = max(1, math.ceil(len(jobs) / (8 * workers)))
    with ProcessPoolExecutor(workers) as pool:
        futures = [
            pool.submit(_write_chunks, path, shape, jobs[k : k + per_task])
            for k in range(0, len(jobs), per_task)
        ]
        for future in futures:
            future.result()
    array.attrs["benchmark"] = {**_params(shape), "complete": True}
    return path
