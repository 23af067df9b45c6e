"""Where per-tile results live between the tile stage and the relabel stage.

Two things are staged, written by each tile without locks:

* ``labels`` — each tile's core labels renumbered to *local labels* ``1..n`` (0 stays
  background), in a zarr array whose chunks are the tiles. When ``write_to`` is given this
  becomes the output array itself, which the relabel stage rewrites in place: no second
  full copy on disk.
* ``faces`` — every tile's *face slabs*: for every axis the first (``lo``) and last
  (``hi``) plane of the tile's core, in local labels, appended to per-thread segment files
  (:mod:`._facestore`). The face stage reads only these, never whole tiles.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from patchworks._plan import TilePlan
from patchworks._store.chunkio import ChunkIO, tile_io, write_tile
from patchworks._store.facestore import FaceStore
from patchworks.errors import InvalidParameterError
from patchworks.io._zarr import create_label_array


@dataclass(frozen=True)
class Staging:
    """Handles to the staged data of one run (picklable; opened lazily on workers).

    Attributes
    ----------
    labels : zarr.Array or None
        Per-tile local labels (chunks = tile shape), or None when the labels are read from
        the user's own label store (``merge_tile_labels`` on a zarr path).
    faces : FaceStore
        Every tile's face slabs in local labels (tiles without labels store none).
    tile_shape : tuple of int
        The tiles, which are the chunks of ``labels``.
    scratch : str
        Directory of temporary data to delete at the end of the run.
    """

    labels: Any
    faces: FaceStore
    tile_shape: tuple[int, ...]
    scratch: str

    @cached_property
    def labels_io(self) -> ChunkIO | None:
        """Direct chunk access to ``labels`` (None: go through zarr)."""
        return None if self.labels is None else tile_io(self.labels, self.tile_shape)

    def write_labels(
        self,
        position: tuple[int, ...],
        core: tuple[slice, ...],
        n: int,
        *,
        runs: tuple[NDArray[Any], NDArray[Any]] | None = None,
        voxels: NDArray[Any] | None = None,
    ) -> None:
        """Store the local labels ``1..n`` of the tile at ``position`` (one whole chunk)
        compactly: as ``runs`` (lengths, values) when the tile stage found them long
        (:meth:`ChunkIO.write_runs`), else ``voxels`` one by one
        (:meth:`ChunkIO.write_local`). ``voxels`` is needed whenever :attr:`runs_allowed`
        is false or ``runs`` is None."""
        if self.labels_io is None or runs is None:
            if voxels is None:
                raise ValueError("write_labels needs `voxels` when the runs cannot be staged")
            if self.labels_io is None:
                write_tile(self.labels, None, position, core, voxels.astype(self.labels.dtype))
            else:
                self.labels_io.write_local(position, voxels, n)
        else:
            self.labels_io.write_runs(position, *runs, n)

    @property
    def runs_allowed(self) -> bool:
        """Whether :meth:`write_labels` can stage runs (direct chunk access)."""
        return self.labels_io is not None


def scratch_dir(write_to: str | None, temp_dir: str | None) -> str:
    """Create a private directory for temporary data.

    Next to ``write_to`` when given (same filesystem, visible to cluster workers that can
    see the output), otherwise under ``temp_dir`` or the system temporary directory. The
    name is unique per run, so concurrent runs in one folder never collide.
    """
    if temp_dir is not None:
        if not os.path.isdir(temp_dir):
            raise InvalidParameterError(
                f"`temp_dir` must be an existing directory; got {temp_dir!r}."
            )
        parent = os.path.abspath(temp_dir)  # workers elsewhere resolve it as the client does
    elif write_to is not None:
        parent = os.path.dirname(os.path.abspath(write_to)) or "."
    else:
        parent = tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)
    prefix = f".{os.path.basename(os.path.abspath(write_to))}." if write_to else "patchworks-"
    return tempfile.mkdtemp(prefix=prefix, suffix=".patchworks-tmp", dir=parent)


def create_staging(
    plan: TilePlan,
    *,
    labels_path: str | None,
    labels_dtype: np.dtype[Any],
    scratch: str,
    stage_labels: bool = True,
    labels_attributes: dict[str, Any] | None = None,
) -> Staging:
    """Create the staged arrays of a run.

    ``labels_path`` is where local labels go (the output path when ``write_to`` is given);
    None puts them in ``scratch``. ``stage_labels=False`` skips the labels array entirely.
    """
    labels = None
    if stage_labels:
        path = labels_path if labels_path is not None else os.path.join(scratch, "labels.zarr")
        labels = create_label_array(
            path, plan.shape, plan.tile_shape, labels_dtype, attributes=labels_attributes
        )
    faces = FaceStore.create(os.path.join(scratch, "faces"))
    return Staging(labels=labels, faces=faces, tile_shape=plan.tile_shape, scratch=scratch)
