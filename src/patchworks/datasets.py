"""Seeded synthetic images for demos, tests and benchmarks, generated chunk by chunk.

Images are sums of Gaussian blobs on a noisy background. Every chunk is computed from the
blob list and a chunk-seeded noise generator alone, so images far larger than RAM are
written with bounded memory and are identical for a given seed whatever the chunking
order or the number of workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import zarr
    from numpy.typing import DTypeLike, NDArray

BACKGROUND = 100.0
NOISE = 10.0
PEAK = 1000.0
#: Intensity that separates blobs from background in :func:`blobs` images.
THRESHOLD = 400


def blob_table(
    shape: Sequence[int], *, n_blobs: int, radius: float, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Seeded blob centres (n, ndim) and radii (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, size=(n_blobs, len(shape))) * np.asarray(shape)
    radii = rng.uniform(0.5 * radius, 1.5 * radius, size=n_blobs)
    return centres, radii


def blobs_region(
    box: tuple[slice, ...],
    centres: NDArray[np.float64],
    radii: NDArray[np.float64],
    *,
    seed: int,
    chunk_id: int,
    dtype: DTypeLike = "uint16",
) -> NDArray[Any]:
    """Render the image inside ``box`` (the blobs that reach it plus seeded noise)."""
    lo = np.array([s.start for s in box])
    hi = np.array([s.stop for s in box])
    image: NDArray[np.float32] = np.full(tuple(hi - lo), BACKGROUND, dtype=np.float32)
    reach = 3 * radii[:, None]
    near = np.all((centres + reach > lo) & (centres - reach < hi), axis=1)
    for centre, radius in zip(centres[near], radii[near], strict=True):
        b_lo = np.maximum(np.floor(centre - 3 * radius).astype(int), lo)
        b_hi = np.minimum(np.ceil(centre + 3 * radius).astype(int), hi)
        if np.any(b_hi <= b_lo):
            continue
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(b_lo, b_hi, strict=True))]
        d2 = sum((g + 0.5 - c) ** 2 for g, c in zip(grids, centre, strict=True))
        local = tuple(slice(a - o, b - o) for a, b, o in zip(b_lo, b_hi, lo, strict=True))
        np.maximum(
            image[local],
            BACKGROUND + PEAK * np.exp(-d2 / (2 * (radius / 2) ** 2)),
            out=image[local],
        )
    noise = np.random.default_rng((seed, chunk_id)).normal(0, NOISE, image.shape)
    image += noise.astype(np.float32)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        np.clip(image, info.min, info.max, out=image)
    return image.astype(dtype)


def blobs(
    shape: Sequence[int] = (64, 256, 256),
    *,
    radius: float = 8.0,
    density: float = 0.3,
    seed: int = 0,
    dtype: DTypeLike = "uint16",
) -> NDArray[Any]:
    """A blobs image in memory (small shapes only).

    ``density`` is the expected share of the volume covered by blobs.

    Examples
    --------
    >>> image = blobs((32, 32), radius=4, seed=1)
    >>> image.shape, image.dtype.name, bool(image.max() > THRESHOLD)
    ((32, 32), 'uint16', True)
    """
    centres, radii = blob_table(
        shape, n_blobs=_n_blobs(shape, radius, density), radius=radius, seed=seed
    )
    box = tuple(slice(0, n) for n in shape)
    return blobs_region(box, centres, radii, seed=seed, chunk_id=0, dtype=dtype)


def _n_blobs(shape: Sequence[int], radius: float, density: float) -> int:
    ndim = len(shape)
    unit_ball = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    volume = unit_ball * radius**ndim
    return max(1, int(density * math.prod(shape) / volume))


def write_blobs_zarr(
    path: str,
    shape: Sequence[int] = (64, 256, 256),
    *,
    chunks: Sequence[int] | None = None,
    radius: float = 8.0,
    density: float = 0.3,
    seed: int = 0,
    dtype: DTypeLike = "uint16",
    overwrite: bool = False,
) -> zarr.Array[Any]:
    """Write a blobs image to a zarr array at ``path``, one chunk at a time.

    Returns the zarr array. Memory stays at a few chunks whatever the image size.
    """
    import zarr

    shape = tuple(int(n) for n in shape)
    chunks = tuple(chunks) if chunks is not None else tuple(min(n, 128) for n in shape)
    array = zarr.create_array(
        store=path,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        overwrite=overwrite,
        attributes={
            "patchworks_example": {
                "generator": "blobs",
                "seed": seed,
                "radius": radius,
                "density": density,
                "threshold": THRESHOLD,
            }
        },
    )
    centres, radii = blob_table(
        shape, n_blobs=_n_blobs(shape, radius, density), radius=radius, seed=seed
    )
    grid = [range(0, n, c) for n, c in zip(shape, chunks, strict=True)]
    for chunk_id, starts in enumerate(np.ndindex(*[len(g) for g in grid])):
        box = tuple(
            slice(g[i], min(g[i] + c, n))
            for g, i, c, n in zip(grid, starts, chunks, shape, strict=True)
        )
        array[box] = blobs_region(box, centres, radii, seed=seed, chunk_id=chunk_id, dtype=dtype)
    return array


def write_blobs_ome_zarr(
    path: str,
    shape: Sequence[int] = (64, 256, 256),
    *,
    chunks: Sequence[int] | None = None,
    radius: float = 8.0,
    density: float = 0.3,
    seed: int = 0,
    n_levels: int = 3,
    voxel_size: Sequence[float] | None = None,
    overwrite: bool = False,
) -> zarr.Group:
    """Write a blobs image as an OME-Zarr 0.5 image (zarr v3) with a multiscale pyramid.

    Level 0 is :func:`write_blobs_zarr`'s image; each further level halves y and x
    (2x2 mean), chunk by chunk. Axes are named ``z, y, x`` (``y, x`` in 2-D) with
    ``voxel_size`` as the level-0 scale in micrometres. Returns the zarr group.

    Examples
    --------
    >>> import os, tempfile
    >>> group = write_blobs_ome_zarr(os.path.join(tempfile.mkdtemp(), "b.ome.zarr"),
    ...                              (4, 64, 64), chunks=(4, 32, 32), n_levels=2)
    >>> [group[str(k)].shape for k in range(2)]
    [(4, 64, 64), (4, 32, 32)]
    """
    import zarr

    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        from patchworks.errors import InvalidParameterError

        raise InvalidParameterError(f"`shape` must be 2-D (y, x) or 3-D (z, y, x); got {shape}.")
    chunks = tuple(chunks) if chunks is not None else tuple(min(n, 128) for n in shape)
    group = zarr.open_group(path, mode="w" if overwrite else "w-", zarr_format=3)
    write_blobs_zarr(f"{path}/0", shape, chunks=chunks, radius=radius, density=density, seed=seed)
    scale0 = [float(v) for v in (voxel_size or (1.0,) * len(shape))]
    datasets: list[Any] = [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale0}]}
    ]
    previous: Any = group["0"]
    for k in range(1, n_levels):
        factors = (1,) * (len(shape) - 2) + (2, 2)
        size = tuple(-(-n // f) for n, f in zip(previous.shape, factors, strict=True))
        level = group.create_array(str(k), shape=size, chunks=chunks, dtype=previous.dtype)
        for region in np.ndindex(*[-(-n // c) for n, c in zip(size, chunks, strict=True)]):
            out = tuple(
                slice(i * c, min((i + 1) * c, n))
                for i, c, n in zip(region, chunks, size, strict=True)
            )
            src = np.asarray(
                previous[
                    tuple(slice(s.start * f, s.stop * f) for s, f in zip(out, factors, strict=True))
                ]
            )
            pad = [(0, -n % f) for n, f in zip(src.shape, factors, strict=True)]
            src = np.pad(src.astype(np.float32), pad, mode="edge")
            split = [d for n, f in zip(src.shape, factors, strict=True) for d in (n // f, f)]
            mean = src.reshape(split).mean(axis=tuple(range(1, 2 * len(shape), 2)))
            level[out] = mean[tuple(slice(0, s.stop - s.start) for s in out)].astype(level.dtype)
        scale = [s * f**k for s, f in zip(scale0, factors, strict=True)]
        shift = [(f**k - 1) * s / 2 for s, f in zip(scale0, factors, strict=True)]
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": shift},
                ],
            }
        )
        previous = level
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"[-len(shape) :]]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"name": "blobs", "axes": axes, "datasets": datasets}],
    }
    return group


def _main(argv: list[str] | None = None) -> int:
    """``python -m patchworks.datasets PATH [--shape Z,Y,X]``: write an example OME-Zarr."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m patchworks.datasets", description="Write a seeded blobs OME-Zarr 0.5 image."
    )
    parser.add_argument("path")
    parser.add_argument("--shape", default="64,512,512")
    parser.add_argument("--chunks", default="32,128,128")
    args = parser.parse_args(argv)
    shape = tuple(int(n) for n in args.shape.split(","))
    chunks = tuple(int(n) for n in args.chunks.split(","))[-len(shape) :]
    write_blobs_ome_zarr(args.path, shape, chunks=chunks, radius=8, voxel_size=None)
    print(f"wrote {args.path}: blobs {shape}, chunks {chunks}, threshold {THRESHOLD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
