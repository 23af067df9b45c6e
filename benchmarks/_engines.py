"""The engines of the speed benchmark, each run in its own subprocess.

``python _engines.py ENGINE JSON`` runs one engine on the benchmark image and prints one
JSON line: ``{"seconds": ..., "fn_seconds": ..., "output": ..., "component": ...}``.
``seconds`` is the wall time of the engine's call itself, after its package is imported
(a user has their session open already); everything the call imports lazily counts.
``run.py`` starts these subprocesses, samples their memory and checks their output.

All engines label ``image > THRESHOLD`` with face connectivity (6-connected in 3D), the
one connectivity every engine supports (patchworks 3.3.0's ``tile_process`` joins tiles
across faces only), and use ``workers`` threads.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

THRESHOLD = 400  # patchworks.datasets.THRESHOLD; repeated so the peer venv needs no import


class TimedLabel:
    """``fn(tile) = scipy.ndimage.label(tile > THRESHOLD)``, summing its own run time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        from scipy import ndimage as ndi

        start = time.perf_counter()
        labels = ndi.label(tile > THRESHOLD)[0]
        with self._lock:
            self.seconds += time.perf_counter() - start
        return labels


class TimedWatershed(TimedLabel):
    """An expensive ``fn``: split ``tile > THRESHOLD`` into cells by a distance-transform
    watershed (markers: the cores farther than ``DEPTH`` voxels from the background),
    SciPy only, so that the peer's venv runs it too."""

    DEPTH = 6.0

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        from scipy import ndimage as ndi

        start = time.perf_counter()
        mask = tile > THRESHOLD
        distance = ndi.distance_transform_edt(mask)
        markers = ndi.label(distance > self.DEPTH)[0].astype(np.int32)
        markers[~mask] = -1  # background floods as its own basin, then is dropped
        level = (distance.max() - distance).astype(np.uint16)
        labels = ndi.watershed_ift(level, markers)
        labels[labels < 0] = 0
        with self._lock:
            self.seconds += time.perf_counter() - start
        return labels


def make_fn(a: dict) -> TimedLabel:
    """The benchmark's ``fn``: ``a["fn"]`` is "label" (cheap, the default) or
    "watershed" (expensive)."""
    return TimedWatershed() if a.get("fn", "label") == "watershed" else TimedLabel()


def _boxes(shape, tile):
    """Grid coordinates and box of every tile."""
    grid = [-(-n // t) for n, t in zip(shape, tile, strict=True)]
    for coords in np.ndindex(*grid):
        yield (
            coords,
            tuple(
                slice(c * t, min(c * t + t, n)) for c, t, n in zip(coords, tile, shape, strict=True)
            ),
        )


def floor(a: dict) -> dict:
    """Read every tile of the input and write an int32 label-like array (its mask).

    Reads and writes use the same direct chunk-file path patchworks uses (``_chunkio``),
    so the floor is the fastest I/O this machine does with these files, not zarr's.
    """
    import zarr

    try:  # the layered package (0.3); ab.py also times builds from before it
        from patchworks._store.chunkio import ChunkIO
        from patchworks.io._zarr import create_label_array
    except ImportError:
        from patchworks._chunkio import ChunkIO  # type: ignore[no-redef]
        from patchworks._staging import create_label_array  # type: ignore[no-redef]

    tile = tuple(a["tile"])
    start = time.perf_counter()
    image = zarr.open_array(a["image"], mode="r")
    source = ChunkIO.of(image)
    out = create_label_array(a["out"], image.shape, tile, "int32")
    io = ChunkIO.of(out)

    def one(item):
        coords, box = item
        block = source.read_box(box) if source is not None else image[box]
        io.write(coords, (block > THRESHOLD).astype("int32"))

    with ThreadPoolExecutor(a["workers"]) as pool:
        list(pool.map(one, _boxes(image.shape, tile)))
    return {"seconds": time.perf_counter() - start, "output": a["out"]}


def ours(a: dict, **options) -> dict:
    import dask
    import dask.array

    from patchworks import tile_process

    fn = make_fn(a)
    with dask.config.set(num_workers=a["workers"]):
        start = time.perf_counter()
        tile_process(
            a["image"],
            fn,
            tile_shape=tuple(a["tile"]),
            connectivity=1,
            write_to=a["out"],
            **options,
        )
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "fn_seconds": fn.seconds / a["workers"], "output": a["out"]}


def ours_touch_overlap(a: dict) -> dict:
    """``stitch="touch"`` with the halo the IoU rows use (the baseline they compare to)."""
    return ours(a, overlap=a["overlap"])


def ours_iou(a: dict) -> dict:
    return ours(a, overlap=a["overlap"], stitch="iou")


def stage_tile_labels(a: dict) -> dict:
    """Untimed set-up of ``ours-merge``: a per-tile label zarr as a user's pipeline writes it."""
    import zarr

    tile = tuple(a["tile"])
    image = zarr.open_array(a["image"], mode="r")
    out = zarr.create_array(
        a["out"], shape=image.shape, chunks=tile, dtype="int32", fill_value=0, overwrite=True
    )
    fn = TimedLabel()

    def one(item):
        _, box = item
        out[box] = fn(image[box]).astype("int32")

    start = time.perf_counter()
    with ThreadPoolExecutor(a["workers"]) as pool:
        list(pool.map(one, _boxes(image.shape, tile)))
    return {"seconds": time.perf_counter() - start, "output": a["out"]}


def ours_merge(a: dict) -> dict:
    import dask
    import dask.array

    from patchworks import merge_tile_labels

    with dask.config.set(num_workers=a["workers"]):
        start = time.perf_counter()
        merge_tile_labels(a["staged"], connectivity=1, write_to=a["out"])
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "output": a["out"]}


def dask_image(a: dict) -> dict:
    import dask
    import dask.array as da
    from dask_image import ndmeasure

    with dask.config.set(scheduler="threads", num_workers=a["workers"]):
        start = time.perf_counter()
        image = da.from_zarr(a["image"]).rechunk(tuple(a["tile"]))
        labels, _ = ndmeasure.label(image > THRESHOLD)
        labels.astype("int32").to_zarr(a["out"], overwrite=True)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "output": a["out"]}


def peer(a: dict, **options) -> dict:
    """patchworks 3.3.0 from the package index, in its own venv (see run.py)."""
    import dask.array as da

    import patchworks

    assert patchworks.__version__.startswith("3.3"), patchworks.__version__
    fn = make_fn(a)
    start = time.perf_counter()
    image = da.from_zarr(a["image"]).rechunk(tuple(a["tile"]))
    patchworks.tile_process(
        image,
        fn,
        tile_shape=tuple(a["tile"]),
        max_workers=a["workers"],
        progress=False,
        write_to=a["out"],
        **({"overlap": 0} | options),
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "fn_seconds": fn.seconds / a["workers"],
        "output": a["out"],
        "component": "labels",
    }


def peer_iou(a: dict) -> dict:
    """patchworks 3.3.0's ``stitch="iou"`` at the same tiles and overlap."""
    return peer(a, overlap=a["overlap"], stitch="iou")


def _whole_image(a: dict, label) -> dict:
    """Threshold the image chunk by chunk into one mask, label it at once, write it."""
    import zarr

    start = time.perf_counter()
    image = zarr.open_array(a["image"], mode="r")
    mask = np.empty(image.shape, dtype=bool)
    for _, box in _boxes(image.shape, image.chunks):
        mask[box] = image[box] > THRESHOLD
    labels = label(mask)
    del mask
    out = zarr.create_array(
        a["out"],
        shape=image.shape,
        chunks=tuple(a["tile"]),
        dtype=labels.dtype,
        fill_value=0,
        overwrite=True,
    )
    out[...] = labels
    return {"seconds": time.perf_counter() - start, "output": a["out"]}


def scipy_whole(a: dict) -> dict:
    from scipy import ndimage as ndi

    return _whole_image(a, lambda mask: ndi.label(mask, output=np.int32)[0])


def cc3d_whole(a: dict) -> dict:
    import cc3d

    return _whole_image(a, lambda mask: cc3d.connected_components(mask, connectivity=6))


ENGINES = {
    "floor": floor,
    "ours": ours,
    "ours-touch-ov": ours_touch_overlap,
    "ours-iou": ours_iou,
    "peer-iou": peer_iou,
    "stage-tile-labels": stage_tile_labels,
    "ours-merge": ours_merge,
    "dask-image": dask_image,
    "peer": peer,
    "scipy": scipy_whole,
    "cc3d": cc3d_whole,
}


def _cpu_seconds() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


PRELOAD = {
    "floor": ["zarr", "patchworks"],
    "ours": ["zarr", "dask.array", "scipy.ndimage", "patchworks"],
    "ours-merge": ["zarr", "dask.array", "patchworks"],
    "dask-image": ["zarr", "dask.array", "dask_image.ndmeasure"],
    "ours-touch-ov": ["zarr", "dask.array", "scipy.ndimage", "patchworks"],
    "ours-iou": ["zarr", "dask.array", "scipy.ndimage", "patchworks"],
    "peer": ["zarr", "dask.array", "scipy.ndimage", "patchworks"],
    "peer-iou": ["zarr", "dask.array", "scipy.ndimage", "patchworks"],
    "scipy": ["zarr", "scipy.ndimage"],
    "cc3d": ["zarr", "cc3d"],
}

if __name__ == "__main__":
    import importlib

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for module in PRELOAD.get(sys.argv[1], []):
        importlib.import_module(module)  # a user's session has imported these already
    cpu = _cpu_seconds()
    result = ENGINES[sys.argv[1]](json.loads(sys.argv[2]))
    # CPU seconds of the call (all threads and child processes): steadier than wall time
    # on a shared machine
    result["cpu_seconds"] = _cpu_seconds() - cpu
    print(json.dumps(result))
