"""Input bytes and chunk reads per overlap: how much a halo multiplies what is read.

    python benchmarks/halo_reads.py                  # 64M image, tiles = chunks (64^3)
    python benchmarks/halo_reads.py --size 512M --overlaps 0 8 32

Each tile reads its halo box, which touches the neighbouring chunks; without reuse every
such chunk is fetched and decoded whole, once per tile that touches it. This runs
``tile_process`` (touch, local threads) on the speed benchmark's image for each overlap,
counts the input's chunk-file reads (requests) and their bytes, and reports both divided by
the image's chunk count and stored bytes (1.0 = every input byte read once), next to the
run with overlap 0 measured in the same process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

import _data

HERE = os.path.dirname(os.path.abspath(__file__))


def stored(path: str) -> tuple[int, int]:
    """(chunk files, bytes) of the zarr array at ``path``."""
    files = size = 0
    for folder, _, names in os.walk(os.path.join(path, "c")):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(folder, name))
    return files, size


def measure(image: str, overlap: int, tile: int, workers: int) -> dict[str, float]:
    import dask
    from scipy import ndimage as ndi

    import patchworks._store.chunkio as chunkio
    from patchworks import tile_process

    root = os.path.abspath(image)
    counts = {"requests": 0, "bytes": 0}
    lock = threading.Lock()
    original = chunkio.read_file

    def counting(path: str) -> bytes | None:
        data = original(path)
        if path.startswith(root) and data is not None:
            with lock:
                counts["requests"] += 1
                counts["bytes"] += len(data)
        return data

    def fn(block):
        return ndi.label(block > 0)[0].astype("int32")

    chunkio.read_file = counting
    try:
        start = time.perf_counter()
        with dask.config.set(num_workers=workers):
            tile_process(image, fn, tile_shape=(tile,) * 3, overlap=overlap, compute=False)
        seconds = time.perf_counter() - start
    finally:
        chunkio.read_file = original
    return {**counts, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64M", choices=sorted(_data.SIZES))
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 8, 32])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default=os.path.join(HERE, "_work"))
    ns = parser.parse_args(argv)
    os.makedirs(ns.workdir, exist_ok=True)
    image = _data.make_image(os.path.join(ns.workdir, f"image-{ns.size}.zarr"), ns.size)
    files, size = stored(image)
    print(f"image {ns.size}: {files} chunks, {size / 2**20:.1f} MiB stored; tiles {ns.tile}^3")
    base = None
    with tempfile.TemporaryDirectory():
        for overlap in ns.overlaps:
            r = measure(image, overlap, ns.tile, ns.workers)
            base = base or r
            print(
                f"overlap {overlap:3d}: {r['requests']:6d} requests = "
                f"{r['requests'] / files:5.2f} x chunks, {r['bytes'] / 2**20:8.1f} MiB = "
                f"{r['bytes'] / size:5.2f} x stored; {r['seconds']:.2f} s "
                f"({r['seconds'] / base['seconds']:.2f} x overlap {ns.overlaps[0]})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
