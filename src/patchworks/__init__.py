"""patchworks — run any segmentation function over an arbitrarily large image, tile by
tile, in parallel, and merge the per-tile results into one label array with globally
consistent IDs, streaming from zarr to zarr.
"""

from patchworks._api import merge_tile_labels, tile_process
from patchworks._engine.overlap import suggest_overlap
from patchworks._store.rundir import output_status
from patchworks._tools.cluster import make_local_cluster
from patchworks._tools.empty import estimate_empty_tiles
from patchworks._tools.objects import measure_labels
from patchworks._tools.preview import preview
from patchworks._tools.view import view
from patchworks._version import __version__
from patchworks.errors import PatchworksError
from patchworks.io._table import read_objects

__all__ = [
    "PatchworksError",
    "__version__",
    "estimate_empty_tiles",
    "make_local_cluster",
    "measure_labels",
    "merge_tile_labels",
    "output_status",
    "preview",
    "read_objects",
    "suggest_overlap",
    "tile_process",
    "view",
]
