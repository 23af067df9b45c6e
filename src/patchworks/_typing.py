"""Type aliases of the public signatures: what each argument accepts, named once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import os

    import dask.array as da
    import zarr

#: A filesystem path.
PathLike: TypeAlias = "str | os.PathLike[str]"
#: An image: a path or URL to a zarr array or group (OME-Zarr too) or a TIFF file, or an
#: in-memory or lazy array.
ImageLike: TypeAlias = "str | os.PathLike[str] | NDArray[Any] | da.Array | zarr.Array[Any]"
#: ``fn(tile) -> labels``: integer labels with the tile's spatial shape (a NumPy array, or
#: any array NumPy can take: CuPy, PyTorch, dask).
TileFunction: TypeAlias = Callable[[NDArray[Any]], Any]
#: A tile's core size per axis, ``None`` (the storage chunks) or ``"auto"``.
TileShapeLike: TypeAlias = Sequence[int] | Literal["auto"] | None
#: A halo in voxels, per axis or for all, or ``"auto"`` (about one object diameter).
OverlapLike: TypeAlias = int | Sequence[int] | Literal["auto"]
#: An integer label dtype (``"int32"``, ``np.uint32``, ...).
DTypeLike: TypeAlias = str | np.dtype[Any] | type[np.integer[Any]]

__all__ = ["DTypeLike", "ImageLike", "OverlapLike", "PathLike", "TileFunction", "TileShapeLike"]
