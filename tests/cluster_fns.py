"""Tile functions for tests whose dask workers run in other processes: they import this
module by name (the folder ``tests/`` is on their ``PYTHONPATH``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

THRESHOLD = 0.5


def threshold_label(tile):
    """Connected components of ``tile > 0.5`` (full connectivity)."""
    return ndi.label(tile > THRESHOLD, structure=np.ones((3,) * tile.ndim))[0].astype("int32")
