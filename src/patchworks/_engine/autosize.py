"""``tile_shape=None`` and ``tile_shape="auto"``: choose a tile shape for the user.

``None`` uses the image's storage chunks (one tile per chunk: every chunk is read once).
``"auto"`` grows a tile from the storage chunks until its working set fills the memory
each concurrent task may use: free RAM (psutil) shared by the parallel tasks, or free GPU
memory (nvidia-ml-py) with ``use_gpu=True``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Bytes of working memory assumed per voxel of a tile, per byte of input voxel:
#: the halo'd input, float32 copies made by typical segmenters and the int32 labels.
WORK_FACTOR_CPU = 12
WORK_FACTOR_GPU = 24
#: Tiles beyond this many voxels stop adding throughput and hurt load balance.
MAX_TILE_VOXELS = 2**24
MIN_TILE_VOXELS = 2**12
FALLBACK_RAM = 4 * 2**30
FALLBACK_VRAM = 4 * 2**30


def free_ram_bytes() -> int:
    """Available system memory (psutil), or a conservative 4 GiB when unknown."""
    try:
        import psutil
    except ImportError:
        logger.warning("psutil is not installed; assuming 4 GiB of free RAM for tile sizing")
        return FALLBACK_RAM
    return int(psutil.virtual_memory().available)


def free_vram_bytes() -> int:
    """Free memory of the first visible GPU (nvidia-ml-py), or 4 GiB when unknown."""
    try:
        import pynvml
    except ImportError:
        logger.warning(
            'nvidia-ml-py is not installed (pip install "patchworks[gpu]"); assuming 4 GiB '
            "of free GPU memory for tile sizing"
        )
        return FALLBACK_VRAM
    try:
        pynvml.nvmlInit()
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free)
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:
        logger.warning("could not query GPU memory (%s); assuming 4 GiB", exc)
        return FALLBACK_VRAM


def auto_tile_shape(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: tuple[int, ...] | None,
    *,
    budget_bytes: int,
) -> tuple[int, ...]:
    """Largest chunk-aligned tile whose working set fits ``budget_bytes``.

    Axes stored one plane per chunk (chunk size 1) stay one plane thick: such data is
    organised for plane-by-plane (2-D) processing. Other axes grow by doubling, smallest
    first, so tiles stay close to cubes.

    Examples
    --------
    >>> auto_tile_shape((1000, 4000, 4000), np.dtype("uint16"), (1, 512, 512),
    ...                 budget_bytes=2**30)
    (1, 4000, 4000)
    >>> auto_tile_shape((600, 600, 600), np.dtype("uint8"), (64, 64, 64), budget_bytes=2**28)
    (256, 256, 256)
    """
    itemsize = np.dtype(dtype).itemsize
    per_voxel = itemsize * WORK_FACTOR_CPU
    limit = max(MIN_TILE_VOXELS, min(MAX_TILE_VOXELS, budget_bytes // per_voxel))
    step = list(chunks) if chunks is not None else [1] * len(shape)
    tile = [min(s, n) for s, n in zip(step, shape, strict=True)]
    growable = [b for b, s in enumerate(step) if s > 1 or chunks is None]
    while True:
        candidates = [b for b in growable if tile[b] < shape[b]]
        if not candidates:
            break
        b = min(candidates, key=lambda axis: tile[axis])
        grown = tile.copy()
        grown[b] = min(tile[b] * 2, shape[b])
        if math.prod(grown) > limit:
            break
        tile = grown
    return tuple(tile)


def tile_budget(n_tasks: int, *, use_gpu: bool) -> int:
    """Bytes of working memory one task may use."""
    if use_gpu:
        return free_vram_bytes() * WORK_FACTOR_CPU // WORK_FACTOR_GPU
    return free_ram_bytes() // max(1, n_tasks) // 2
