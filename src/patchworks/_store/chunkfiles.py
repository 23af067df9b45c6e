"""The chunk files themselves: reading one, writing one whole in place, removing one.

:class:`patchworks._store.chunkio.ChunkIO` encodes and decodes the chunks of the label
arrays patchworks creates; these are the filesystem operations under it. A missing chunk
file reads as the fill value 0, so an all-zero chunk is removed rather than written.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "c", "0")  # the folder "c" does not exist
>>> write_file(path, b"longer"); write_file(path, b"new"); read_file(path)
b'new'
>>> remove_chunk(path); read_file(path) is None
True
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import numpy.typing as npt


def read_file(path: str) -> bytes | None:
    """The bytes of the chunk file at ``path``; None when it was never written."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return None


def drop_if_empty(path: str, block: npt.NDArray[np.generic]) -> bool:
    """Remove the chunk file at ``path`` if ``block`` is all zeros (zarr reads a missing
    chunk as fill value 0); whether it was."""
    if block.any():
        return False
    remove_chunk(path)
    return True


def remove_chunk(path: str) -> None:
    """Remove the chunk file at ``path``, if any: zarr reads a missing chunk as fill
    value 0."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` as the whole content of ``path``.

    An existing chunk (the relabel stage rewriting a tile in place) is overwritten and then
    cut to length instead of being truncated first: truncating frees the file's blocks
    and allocates them again, which costs a few milliseconds per chunk on filesystems
    mounted with ``discard``, while rewriting them in place costs microseconds.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)  # no O_TRUNC: see above
    except FileNotFoundError:  # the chunk's folder does not exist yet
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
