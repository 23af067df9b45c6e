"""Where per-tile results live between the tile stage and the relabel stage.

Two things are staged, both as zarr arrays whose chunks are aligned to tiles so every tile
writes whole chunks and no locks are needed:

* ``labels`` — each tile's core labels renumbered to *local labels* ``1..n`` (0 stays
  background). When ``write_to`` is given this is the output array itself, which the
  relabel stage rewrites in place: no second full copy on disk.
* ``faces`` — for every axis, the first (``lo``) and last (``hi``) plane of every tile's
  core, in local labels. The face stage reads only these thin planes to find labels that
  touch across tile boundaries, never whole tiles.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._plan import TilePlan

FACE_DTYPE = np.dtype("uint32")


def face_shape(plan: TilePlan, axis: int) -> tuple[int, ...]:
    """Shape of the face array of ``axis``: one plane per grid row along that axis."""
    shape = list(plan.shape)
    shape[axis] = plan.grid[axis]
    return tuple(shape)


def face_chunks(plan: TilePlan, axis: int) -> tuple[int, ...]:
    chunks = list(plan.tile_shape)
    chunks[axis] = 1
    return tuple(chunks)


@dataclass(frozen=True)
class Staging:
    """Handles to the staged arrays of one run (picklable; opened lazily on workers).

    Attributes
    ----------
    labels : zarr.Array or None
        Per-tile local labels (chunks = tile shape), or None when the labels are read from
        the user's own label store (``merge_tile_labels`` on a zarr path).
    faces_lo, faces_hi : tuple of zarr.Array
        Per axis, the first and last core plane of every tile, in local labels.
    scratch : str or None
        Directory of temporary data to delete at the end of the run.
    """

    labels: Any
    faces_lo: tuple[Any, ...]
    faces_hi: tuple[Any, ...]
    scratch: str | None

    def write_faces(self, plan: TilePlan, position: tuple[int, ...], local: np.ndarray) -> None:
        """Store the lo/hi core planes of the tile at ``position``."""
        core = plan.core(position)
        for axis in range(plan.ndim):
            box = list(core)
            box[axis] = slice(position[axis], position[axis] + 1)
            lo = np.take(local, [0], axis=axis).astype(FACE_DTYPE, copy=False)
            self.faces_lo[axis][tuple(box)] = lo
            if self.faces_hi[axis] is not self.faces_lo[axis]:
                hi = np.take(local, [-1], axis=axis).astype(FACE_DTYPE, copy=False)
                self.faces_hi[axis][tuple(box)] = hi

    def read_face(
        self, plan: TilePlan, axis: int, row: int, side: str, box: tuple[slice, ...]
    ) -> np.ndarray:
        """Read the ``side`` ("lo" or "hi") planes of grid row ``row`` over ``box``.

        ``box`` spans the other axes (its entry for ``axis`` is ignored); the result has
        length 1 along ``axis``.
        """
        region = list(box)
        region[axis] = slice(row, row + 1)
        if side == "hi" and plan.tile_shape[axis] == 1:
            side = "lo"  # one-voxel-thick tiles: the first plane is the last one
        faces = self.faces_lo if side == "lo" else self.faces_hi
        return np.asarray(faces[axis][tuple(region)])


def _create_array(path: str, shape, chunks, dtype, *, attributes=None) -> Any:
    import zarr

    return zarr.create_array(
        store=path,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        attributes=attributes or {},
        overwrite=False,
        write_data=True,
    )


def scratch_dir(write_to: str | None, temp_dir: str | None) -> str:
    """Create a private directory for temporary data.

    Next to ``write_to`` when given (same filesystem, visible to cluster workers that can
    see the output), otherwise under ``temp_dir`` or the system temporary directory. The
    name is unique per run, so concurrent runs in one folder never collide.
    """
    if temp_dir is not None:
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
        labels = _create_array(
            path, plan.shape, plan.tile_shape, labels_dtype, attributes=labels_attributes
        )
    lo, hi = [], []
    for axis in range(plan.ndim):
        shape, chunks = face_shape(plan, axis), face_chunks(plan, axis)
        lo.append(_create_array(os.path.join(scratch, f"faces_lo_{axis}.zarr"), shape, chunks,
                                FACE_DTYPE))
        if plan.tile_shape[axis] > 1:
            hi.append(_create_array(os.path.join(scratch, f"faces_hi_{axis}.zarr"), shape,
                                    chunks, FACE_DTYPE))
        else:
            hi.append(lo[-1])
    return Staging(labels=labels, faces_lo=tuple(lo), faces_hi=tuple(hi), scratch=scratch)


def remove_tree(path: str | None) -> None:
    """Delete a directory tree if it exists (temporary data, or an output we created)."""
    if path and os.path.exists(path):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
