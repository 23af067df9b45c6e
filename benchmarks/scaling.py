"""Scaling measurements behind docs/scaling.md.

    python benchmarks/scaling.py --image benchmarks/_work/image-512M.zarr --tile 64
    python benchmarks/scaling.py --synthetic     # label map at 10^5 tiles, up to 10^7 pairs

``--image`` runs ``tile_process`` on a benchmark image and reports what reaches the client:
tiles, objects, boundary objects, face pairs, and the bytes of each table. ``--synthetic``
builds label maps for 10^5 tiles from random pair tables of growing size (objects chain
across tiles like the blobs of the benchmark image) and reports time and the growth of
peak RSS, so the cost at 10^9 objects can be extrapolated from measured points.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np


def image_run(image: str, tile: int, workers: int) -> dict:
    import dask
    import dask.array
    from scipy import ndimage as ndi

    from patchworks import _pipeline, tile_process

    seen: dict = {}
    build = _pipeline.build_label_map

    def recording(counts, pairs, **kwargs):
        start = time.perf_counter()
        label_map = build(counts, pairs, **kwargs)
        seen.update(
            tiles=int(counts.size),
            objects_in_tiles=int(counts.sum()),
            objects=int(label_map.n_labels),
            boundary_objects=int(label_map.boundary_ids.size),
            pairs=len(pairs),
            counts_bytes=int(counts.nbytes),
            pairs_bytes=int(pairs.nbytes),
            label_map_bytes=int(
                sum(
                    getattr(label_map, f).nbytes
                    for f in ("offsets", "boundary_ids", "boundary_final", "merged_away")
                )
            ),
            label_map_seconds=round(time.perf_counter() - start, 4),
        )
        return label_map

    _pipeline.build_label_map = recording
    out = tempfile.mkdtemp(prefix="patchworks-scaling-")
    try:
        with dask.config.set(num_workers=workers):
            start = time.perf_counter()
            tile_process(
                image,
                lambda t: ndi.label(t > 400)[0],
                tile_shape=(tile,) * 3,
                connectivity=1,
                write_to=os.path.join(out, "labels.zarr"),
            )
            seen["wall_seconds"] = round(time.perf_counter() - start, 2)
    finally:
        _pipeline.build_label_map = build
        shutil.rmtree(out, ignore_errors=True)
    seen["tile"] = tile
    seen["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return seen


def synthetic(n_tiles: int, boundary_per_tile: int, seed: int = 0) -> dict:
    """Label map for ``n_tiles`` tiles whose boundary objects pair with the next tile's."""
    try:  # the layered package (0.3)
        from patchworks._engine.local import tag
    except ImportError:
        from patchworks._faces import tag  # type: ignore[no-redef]
    from patchworks._engine.labelmap import build_label_map

    rng = np.random.default_rng(seed)
    counts = np.full(n_tiles, 4 * boundary_per_tile, dtype=np.int64)  # 1/4 touch a face
    lower = np.repeat(np.arange(n_tiles - 1), boundary_per_tile)
    local = np.tile(np.arange(1, boundary_per_tile + 1), n_tiles - 1)
    partner = rng.integers(1, boundary_per_tile + 1, size=local.size)
    pairs = np.stack([tag(lower + 1, local), tag(lower, partner)], axis=1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    label_map = build_label_map(counts, pairs, sequential=True, dtype="int64")
    seconds = time.perf_counter() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {
        "tiles": n_tiles,
        "objects_in_tiles": int(counts.sum()),
        "pairs": len(pairs),
        "pairs_mib": round(pairs.nbytes / 2**20, 1),
        "boundary_objects": int(label_map.boundary_ids.size),
        "label_map_mib": round(
            sum(
                getattr(label_map, f).nbytes
                for f in ("offsets", "boundary_ids", "boundary_final", "merged_away")
            )
            / 2**20,
            1,
        ),
        "seconds": round(seconds, 2),
        "peak_rss_growth_mib": round(grown / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image")
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--synthetic", action="store_true")
    ns = parser.parse_args(argv)
    if ns.image:
        print(json.dumps(image_run(ns.image, ns.tile, ns.workers)), flush=True)
    if ns.synthetic:
        for per_tile in (1, 10, 100):
            print(json.dumps(synthetic(100_000, per_tile)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
