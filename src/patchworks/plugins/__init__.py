"""Ready-made ``fn`` callables for popular segmentation models.

Each plugin module (:mod:`patchworks.plugins.cellpose`, :mod:`patchworks.plugins.stardist`)
returns a small picklable callable that carries only the *description* of its model; the
model is loaded once when the callable is built (so missing weights fail at once), then
on first use once per worker process, and shared by every tile that process handles. The
packages are optional extras: ``pip install "patchworks[cellpose]"`` or ``pip install
"patchworks[stardist]"``.

Models expect percentile-normalised input. Give the factory the image
(``stardist_fn(model, image=IMAGE)``) and every tile is scaled with the image-wide
percentiles from :func:`image_percentiles`, so tiles agree with the untiled run; without
it each tile is normalised on its own and a :class:`TileNormalizationWarning` says so.
"""

from patchworks.plugins._models import (
    GPUUnavailableError,
    ModelNotFoundError,
    TileNormalizationWarning,
)
from patchworks.plugins._normalize import IntensityRange, fit_tiling, image_percentiles

__all__ = [
    "GPUUnavailableError",
    "IntensityRange",
    "ModelNotFoundError",
    "TileNormalizationWarning",
    "fit_tiling",
    "image_percentiles",
]
