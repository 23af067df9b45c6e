"""Per-tile overhead: 50,000 tiles of a trivial function, end to end.

    python benchmarks/overhead.py              # 50,000 tiles, 2 workers
    python benchmarks/overhead.py --tiles 5000 # quicker

The image is a 2D uint8 array of random foreground (about half the pixels) cut into 4x8
tiles; ``fn`` thresholds the tile and returns it as labels (one label per tile: every
tile stages labels and faces and is relabelled, the worst case for overhead). Overhead
per tile is ``(wall - time inside fn / workers) / tiles``: everything patchworks does
around ``fn`` — planning, reading, checking, renumbering, staging labels and faces, finding
pairs, the label map and the relabelled write — with ``write_to`` a zarr on local disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

TILE = (4, 8)


class Trivial:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.lock = threading.Lock()

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        labels = (tile > 0).astype(np.int32)
        with self.lock:
            self.seconds += time.perf_counter() - start
        return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default=None)
    ns = parser.parse_args(argv)

    import dask
    import dask.array

    from patchworks import tile_process

    rows = max(1, round((ns.tiles / 2) ** 0.5))
    cols = max(1, ns.tiles // rows)
    n_tiles = rows * cols
    rng = np.random.default_rng(0)
    image = (rng.random((rows * TILE[0], cols * TILE[1])) > 0.5).astype(np.uint8)
    workdir = ns.workdir or tempfile.mkdtemp(prefix="patchworks-overhead-")
    out = os.path.join(workdir, "labels.zarr")
    shutil.rmtree(out, ignore_errors=True)
    fn = Trivial()
    with dask.config.set(num_workers=ns.workers):
        start = time.perf_counter()
        tile_process(image, fn, tile_shape=TILE, connectivity=1, write_to=out)
        wall = time.perf_counter() - start
    shutil.rmtree(workdir, ignore_errors=True)
    per_tile_ms = (wall - fn.seconds / ns.workers) / n_tiles * 1e3
    result = {
        "tiles": n_tiles,
        "workers": ns.workers,
        "wall_s": round(wall, 2),
        "fn_s": round(fn.seconds, 2),
        "overhead_ms_per_tile": round(per_tile_ms, 3),
        "load_average": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
