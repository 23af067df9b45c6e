"""A/B of two builds of patchworks end to end, interleaved with the I/O floor.

    python benchmarks/ab.py --base HEAD~1              # the working tree against HEAD~1
    python benchmarks/ab.py --base main --tile 64 --pairs 8 --engine ours-merge

On a shared machine one run's time swings by 15 % or more from minute to minute, so two
builds measured minutes apart cannot be compared. Here every pair runs the floor, then
both builds back to back (alternating which goes first), each in its own subprocess of
``_engines.py`` with ``PYTHONPATH`` pointing at that build's ``src``. The fastest
``wall - fn`` of each build over all pairs, divided by the fastest floor, is the number
to compare; the medians are printed too.

The base build is exported with ``git archive`` into a temporary folder; the image is the
speed benchmark's (``run.py`` creates it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile

import _data
from run import run_engine

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUT_S = 600.0  # per engine run


def export_src(rev: str, into: str) -> str:
    """``src/`` of git revision ``rev``, extracted under ``into``; its path."""
    archive = os.path.join(into, "src.tar")
    subprocess.run(
        ["git", "-C", ROOT, "archive", "--format=tar", "-o", archive, rev, "src"], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return os.path.join(into, "src")


def run(engine: str, args: dict, src: str, *, keep: bool = False) -> float:
    """``wall - fn`` seconds of one engine run (``run.run_engine``, as the speed benchmark
    runs it) with the patchworks in ``src``; its output is removed afterwards unless
    ``keep``."""
    shutil.rmtree(args["out"], ignore_errors=True)
    result = run_engine(
        engine,
        args,
        python=sys.executable,
        timeout=TIMEOUT_S,
        env={**os.environ, "PYTHONPATH": src},
    )
    if "error" in result:
        raise SystemExit(f"{engine} with {src}: {result['error']}")
    if not keep:
        shutil.rmtree(args["out"], ignore_errors=True)
    return float(result["seconds"]) - float(result.get("fn_seconds", 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument(
        "--engine", default="ours", choices=["ours", "ours-merge", "ours-touch-ov", "ours-iou"]
    )
    parser.add_argument("--overlap", type=int, default=8, help="halo of ours-touch-ov, ours-iou")
    parser.add_argument("--fn", default="label", choices=["label", "watershed"])
    parser.add_argument("--size", default="512M", choices=sorted(_data.SIZES))
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", default=os.path.join(HERE, "_work"))
    ns = parser.parse_args(argv)

    os.makedirs(ns.workdir, exist_ok=True)
    image = os.path.join(ns.workdir, f"image-{ns.size}.zarr")
    _data.make_image(image, ns.size, workers=ns.workers)
    args = {
        "image": image,
        "tile": [ns.tile] * 3,
        "workers": ns.workers,
        "overlap": ns.overlap,
        "fn": ns.fn,
        "out": os.path.join(ns.workdir, "ab-out.zarr"),
    }
    with tempfile.TemporaryDirectory() as scratch:
        builds = {"base": export_src(ns.base, scratch), "this": os.path.join(ROOT, "src")}
        if ns.engine == "ours-merge":
            args["staged"] = os.path.join(ns.workdir, f"ab-staged-{ns.tile}.zarr")
            shutil.rmtree(args["staged"], ignore_errors=True)
            run("stage-tile-labels", {**args, "out": args["staged"]}, builds["this"], keep=True)
        times: dict[str, list[float]] = {"floor": [], "base": [], "this": []}
        for pair in range(ns.pairs):
            times["floor"].append(run("floor", args, builds["this"]))
            order = ["base", "this"] if pair % 2 == 0 else ["this", "base"]
            for name in order:
                times[name].append(run(ns.engine, args, builds[name]))
            print(f"pair {pair + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        if ns.engine == "ours-merge":
            shutil.rmtree(args["staged"], ignore_errors=True)
    floor = min(times["floor"])
    print(f"\n{ns.engine}, {ns.size}, tiles {ns.tile}^3, {ns.pairs} pairs; floor {floor:.2f} s")
    for name in ("base", "this"):
        best, median = min(times[name]), statistics.median(times[name])
        print(
            f"{name:5s} (wall - fn) fastest {best:.2f} s = {best / floor:.2f} x floor, "
            f"median {median:.2f} s = {median / floor:.2f} x floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
