"""Fault injection: SIGKILL a real ``resume=True`` run at random moments, then resume it.

For each seed the script writes a seeded blobs image, runs the segmentation once without
interruption (the reference), then starts the same run in a child process again and again,
killing it with SIGKILL after a random delay (drawn from the seed) — during start-up, the
tile stage, a zarr write, a log append, the merge, the relabel or the publish, wherever the
delay lands. Finally the run is allowed to finish. The result must equal the reference
voxel for voxel, and nothing but the image, the reference and the output may be left in
the folder.

Run it by hand (``--help`` for the options)::

    python tests/crash_run.py --seeds 0 1 2 3 4 --kills 6

``tests/test_fault_injection.py`` runs a small version in the default test suite and a
larger one under ``-m slow``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPE = (16, 64, 64)
TILE = (8, 16, 16)
DELAY_S = 0.06


def slow_label(tile):
    """Threshold + label, with a pause so that kills land inside the tile stage too."""
    from skimage.measure import label

    from patchworks.datasets import THRESHOLD

    time.sleep(DELAY_S)
    return label(tile > THRESHOLD).astype("int32")


def child(folder: str, tile: tuple[int, ...], write_to: str) -> None:
    """The run that gets killed: exactly the call a user would repeat after a crash."""
    from patchworks import tile_process

    tile_process(
        os.path.join(folder, "image.zarr"),
        slow_label,
        tile_shape=tile,
        overlap=3,
        write_to=os.path.join(folder, write_to),
        resume=True,
        sequential_labels=True,
    )


def _start(folder: str, tile: tuple[int, ...], write_to: str) -> subprocess.Popen:
    env = {**os.environ, "DASK_NUM_WORKERS": "2", "PYTHONHASHSEED": "0"}
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        folder,
        "--write-to",
        write_to,
        "--tile",
        *map(str, tile),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed with exit code {proc.returncode}:\n{err.decode()}")


def prepare(folder: str, shape: tuple[int, ...] = SHAPE, tile: tuple[int, ...] = TILE) -> float:
    """Write the image and the uninterrupted reference; return the reference's wall time."""
    from patchworks.datasets import write_blobs_zarr

    write_blobs_zarr(os.path.join(folder, "image.zarr"), shape, chunks=tile, radius=4, seed=1)
    began = time.perf_counter()
    _finish(_start(folder, tile, "reference.zarr"), "the reference run")
    return time.perf_counter() - began


def _tiles_done(folder: str, out: str) -> int | str:
    """Finished tiles recorded when the kill landed ("published" once the output is out)."""
    from patchworks._store.resume import LOG, read_tile_log, run_dir_for

    if os.path.exists(os.path.join(folder, out)):
        return "published"
    return len(
        read_tile_log(os.path.join(run_dir_for(os.path.join(folder, out)), "state", LOG), 1 << 62)
    )


def crash_and_resume(
    folder: str, seed: int, *, kills: int, duration: float, tile: tuple[int, ...] = TILE
) -> dict:
    """Kill the run ``kills`` times at random moments, let it finish, compare."""
    import zarr

    rng = np.random.default_rng(seed)
    out = f"out-{seed}.zarr"
    landed = []
    for _ in range(kills):
        delay = float(rng.uniform(0.05, 0.95) * duration)
        proc = _start(folder, tile, out)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed.append(
                {"at": round(delay / duration, 2), "tiles_done": _tiles_done(folder, out)}
            )
            continue
        _finish(proc, "a run that finished before its kill")
        break
    _finish(_start(folder, tile, out), "the resumed run")
    result = zarr.open_array(os.path.join(folder, out), mode="r")[...]
    reference = zarr.open_array(os.path.join(folder, "reference.zarr"), mode="r")[...]
    leftovers = sorted(
        set(os.listdir(folder))
        - {"image.zarr", "reference.zarr"}
        - {f"out-{s}.zarr" for s in range(seed + 1)}
    )
    return {
        "seed": seed,
        "kills": landed,
        "identical": bool(np.array_equal(result, reference)),
        "complete": bool(
            zarr.open_array(os.path.join(folder, out)).attrs["patchworks"]["complete"]
        ),
        "leftovers": leftovers,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--kills", type=int, default=4, help="SIGKILLs per seed")
    parser.add_argument("--shape", type=int, nargs="+", default=list(SHAPE))
    parser.add_argument("--tile", type=int, nargs="+", default=list(TILE))
    parser.add_argument("--folder", help="work folder (default: a new temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--write-to", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tile = tuple(args.tile)
    if args.child:
        child(args.child, tile, args.write_to)
        return 0
    folder = args.folder or tempfile.mkdtemp(prefix="patchworks-crash-")
    try:
        duration = prepare(folder, tuple(args.shape), tile)
        reports = [
            crash_and_resume(folder, seed, kills=args.kills, duration=duration, tile=tile)
            for seed in args.seeds
        ]
    finally:
        if not args.folder:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"reference_s": round(duration, 2), "runs": reports}, indent=1))
    ok = all(r["identical"] and r["complete"] and not r["leftovers"] for r in reports)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
