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

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ._chunkio import ChunkIO, tile_io, write_tile
from ._codecs import label_compressors
from ._facestore import FaceStore
from ._plan import TilePlan
from .errors import InvalidParameterError

if TYPE_CHECKING:
    from ._tiles import LocalLabels


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
        self, position: tuple[int, ...], core: tuple[slice, ...], local: LocalLabels
    ) -> None:
        """Store the :class:`~patchworks._tiles.LocalLabels` of the tile at ``position``
        (one whole chunk) compactly: as runs when they are long (:meth:`ChunkIO.write_runs`),
        else voxel by voxel (:meth:`ChunkIO.write_local`), unless the array is not one we
        can write directly."""
        if self.labels_io is None:
            write_tile(self.labels, None, position, core, local.whole().astype(self.labels.dtype))
            return
        runs = local.run_lengths()
        if runs is not None:
            self.labels_io.write_runs(position, *runs, local.n)
        else:
            self.labels_io.write_local(position, local.whole(), local.n)


def create_label_array(path: str, shape, chunks, dtype, *, attributes=None) -> Any:
    """A new zarr array for labels: fill value 0, label codec, no empty chunks stored."""
    import zarr

    return zarr.create_array(
        store=path,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        compressors=label_compressors(),
        chunk_key_encoding={"name": "default", "separator": "/"},
        attributes=attributes or {},
        overwrite=False,
        write_data=True,
        config={"write_empty_chunks": False},
    )


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
        parent = temp_dir
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
    labels_dtype: np.dtype,
    scratch: str,
    stage_labels: bool = True,
    labels_attributes: dict | None = None,
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


def remove_tree(path: str | None) -> None:
    """Delete a directory tree if it exists (temporary data, or an output we created)."""
    if path and os.path.exists(path):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
