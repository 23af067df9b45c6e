"""patchworks — run any segmentation function over an arbitrarily large image, tile by
tile, in parallel, and merge the per-tile results into one label array with globally
consistent IDs, streaming from zarr to zarr.
"""

from ._cluster import make_local_cluster
from ._empty import estimate_empty_tiles
from ._overlap import suggest_overlap
from ._pipeline import merge_tile_labels, tile_process
from ._preview import preview
from ._resume import output_status
from ._version import __version__
from .errors import PatchworksError

__all__ = [
    "PatchworksError",
    "__version__",
    "estimate_empty_tiles",
    "make_local_cluster",
    "merge_tile_labels",
    "output_status",
    "preview",
    "suggest_overlap",
    "tile_process",
]
