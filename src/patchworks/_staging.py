"""Where per-tile results live between the tile stage and the relabel stage.

Two things are staged, both as zarr arrays whose chunks are aligned to tiles so every tile
writes whole chunks and no locks are needed:

* ``labels`` — each tile's core labels renumbered to *local labels* ``1..n`` (0 stays
  background). When ``write_to`` is given this becomes the output array itself, which the
  relabel stage rewrites in place: no second full copy on disk.
* ``faces`` — one row per tile holding all its *face slabs*: for every axis the first
  (``lo``) and last (``hi``) plane of the tile's core, in local labels, flattened one after
  the other (see :class:`FaceLayout`). A tile writes its faces as one chunk, and the face
  stage reads the rows of a batch of tiles and their lower neighbours in one request,
  never whole tiles.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ._chunkio import ChunkIO, chunk_io, tile_io, write_tile
from ._codecs import label_compressors
from ._plan import TilePlan
from .errors import InvalidParameterError

FACE_DTYPE = np.dtype("uint32")


@dataclass(frozen=True)
class FaceLayout:
    """Where each face slab sits in a tile's row of the ``faces`` array.

    Every slab is stored with the full tile shape (length 1 along its axis); tiles at the
    image border fill only the part covered by their core and leave zeros elsewhere. On an
    axis where tiles are one voxel thick the ``lo`` and ``hi`` slabs are the same plane and
    stored once.

    Examples
    --------
    >>> layout = FaceLayout.of((2, 3))
    >>> layout.row_length
    10
    >>> layout.slab_shape(0), layout.slab_shape(1)
    ((1, 3), (2, 1))
    >>> [layout.start(0, "lo"), layout.start(0, "hi"), layout.start(1, "lo"),
    ...  layout.start(1, "hi")]
    [0, 3, 6, 8]
    """

    tile_shape: tuple[int, ...]
    starts: tuple[tuple[int, int], ...]  # per axis: (start of lo, start of hi)
    row_length: int

    @classmethod
    def of(cls, tile_shape: tuple[int, ...]) -> FaceLayout:
        starts, cursor = [], 0
        for size in tile_shape:
            slab = math.prod(tile_shape) // size
            lo = cursor
            cursor += slab
            hi = lo
            if size > 1:
                hi = cursor
                cursor += slab
            starts.append((lo, hi))
        return cls(tile_shape=tuple(tile_shape), starts=tuple(starts), row_length=cursor)

    def slab_shape(self, axis: int) -> tuple[int, ...]:
        shape = list(self.tile_shape)
        shape[axis] = 1
        return tuple(shape)

    def start(self, axis: int, side: str) -> int:
        return self.starts[axis][0 if side == "lo" else 1]

    def pack(self, local: np.ndarray) -> np.ndarray:
        """One row holding every face slab of the core labels ``local``."""
        row = np.zeros(self.row_length, dtype=FACE_DTYPE)
        for axis in range(local.ndim):
            for side, plane in (("lo", 0), ("hi", -1)):
                if side == "hi" and self.tile_shape[axis] == 1:
                    continue
                shape = self.slab_shape(axis)
                start = self.start(axis, side)
                slab = row[start : start + math.prod(shape)].reshape(shape)
                core = np.take(local, [plane], axis=axis)
                slab[tuple(slice(0, n) for n in core.shape)] = core
        return row

    def slab(
        self, row: np.ndarray, axis: int, side: str, core_shape: tuple[int, ...]
    ) -> np.ndarray:
        """The ``side`` slab of ``axis`` from a packed row, cropped to ``core_shape``."""
        start = self.start(axis, side)
        shape = self.slab_shape(axis)
        slab = row[start : start + math.prod(shape)].reshape(shape)
        return slab[
            tuple(slice(0, 1) if b == axis else slice(0, n) for b, n in enumerate(core_shape))
        ]


@dataclass(frozen=True)
class Staging:
    """Handles to the staged arrays of one run (picklable; opened lazily on workers).

    Attributes
    ----------
    labels : zarr.Array or None
        Per-tile local labels (chunks = tile shape), or None when the labels are read from
        the user's own label store (``merge_tile_labels`` on a zarr path).
    faces : zarr.Array
        Shape ``(n_tiles, layout.row_length)``, one chunk per tile: every face slab of the
        tile in local labels (tiles without labels are never written and read as zeros).
    layout : FaceLayout
        Where each slab sits in a row of ``faces``.
    scratch : str
        Directory of temporary data to delete at the end of the run.
    """

    labels: Any
    faces: Any
    layout: FaceLayout
    scratch: str

    @cached_property
    def labels_io(self) -> ChunkIO | None:
        """Direct chunk access to ``labels`` (None: go through zarr)."""
        return None if self.labels is None else tile_io(self.labels, self.layout.tile_shape)

    @cached_property
    def faces_io(self) -> ChunkIO | None:
        return chunk_io(self.faces)

    def write_labels(
        self, position: tuple[int, ...], core: tuple[slice, ...], local: np.ndarray
    ) -> None:
        """Store the local labels of the tile at ``position`` (one whole chunk)."""
        write_tile(self.labels, self.labels_io, position, core, local)

    def write_faces(self, index: int, local: np.ndarray) -> None:
        """Store every face slab of tile ``index`` (core labels ``local``) as one chunk."""
        row = self.layout.pack(local)
        if self.faces_io is not None:
            self.faces_io.write((index, 0), row[None])
        else:
            self.faces[index : index + 1] = row[None]

    def read_faces(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        """The packed face rows of tiles ``indices`` (tiles never written read as zeros)."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if not indices.size:
            return {}
        if self.faces_io is not None:
            return {int(i): self.faces_io.read((int(i), 0))[0] for i in indices}
        rows = self.faces.get_orthogonal_selection((indices, slice(None)))
        return {int(i): rows[k] for k, i in enumerate(indices)}


def create_label_array(
    path: str, shape, chunks, dtype, *, attributes=None, separator: str = "/"
) -> Any:
    """A new zarr array for labels: fill value 0, label codec, no empty chunks stored.

    ``separator="."`` keeps every chunk file in one folder (``c.0.1``): right for arrays
    with one chunk per tile along one axis, where ``/`` would make a folder per tile.
    """
    import zarr

    return zarr.create_array(
        store=path,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        compressors=label_compressors(),
        chunk_key_encoding={"name": "default", "separator": separator},
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
    layout = FaceLayout.of(plan.tile_shape)
    faces = create_label_array(
        os.path.join(scratch, "faces.zarr"),
        (plan.n_tiles, layout.row_length),
        (1, layout.row_length),
        FACE_DTYPE,
        separator=".",
    )
    return Staging(labels=labels, faces=faces, layout=layout, scratch=scratch)


def remove_tree(path: str | None) -> None:
    """Delete a directory tree if it exists (temporary data, or an output we created)."""
    if path and os.path.exists(path):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
