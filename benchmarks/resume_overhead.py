"""Cost of resume=True: the same call with and without it, on the same image.

A trivial fn (threshold + label) makes the bookkeeping as visible as it can be: a real
model spends seconds per tile, next to which the per-tile log line and the flushes of the
tile's chunk files vanish. Runs alternate (plain, resumable, plain, ...) so machine load
hits both alike; the median of each is reported with the ratio.

    python benchmarks/resume_overhead.py --shape 64 512 512 --tile 32 128 128 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time


def segment(tile):
    from skimage.measure import label

    from patchworks.datasets import THRESHOLD

    return label(tile > THRESHOLD).astype("int32")


def main() -> None:
    from patchworks import tile_process
    from patchworks.datasets import write_blobs_zarr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[64, 512, 512])
    parser.add_argument("--tile", type=int, nargs="+", default=[32, 128, 128])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="patchworks-resume-bench-")
    try:
        image = os.path.join(folder, "image.zarr")
        write_blobs_zarr(image, args.shape, chunks=args.tile)
        times: dict[bool, list[float]] = {False: [], True: []}
        for k in range(args.repeats):
            for resume in (False, True):
                out = os.path.join(folder, f"out-{k}-{resume}.zarr")
                began = time.perf_counter()
                tile_process(
                    image,
                    segment,
                    tile_shape=tuple(args.tile),
                    overlap=4,
                    write_to=out,
                    resume=resume,
                )
                times[resume].append(time.perf_counter() - began)
                shutil.rmtree(out)
        plain, resumable = statistics.median(times[False]), statistics.median(times[True])
        n_tiles = 1
        for n, t in zip(args.shape, args.tile, strict=True):
            n_tiles *= -(-n // t)
        print(
            f"image {tuple(args.shape)}, tiles {tuple(args.tile)} ({n_tiles} tiles), "
            f"{args.repeats} runs each"
        )
        print(f"resume=False: median {plain:.2f} s  (runs {[round(t, 2) for t in times[False]]})")
        print(
            f"resume=True:  median {resumable:.2f} s  (runs {[round(t, 2) for t in times[True]]})"
        )
        print(f"overhead: {100 * (resumable / plain - 1):+.1f} %")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
