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
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

#: Largest buffer :func:`reusable` keeps per thread and purpose.
REUSABLE_BYTES = 64 << 20

_buffers = threading.local()


def reusable(purpose: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """An uninitialised array that this thread reuses for ``purpose`` from call to call.

    A fresh tile-sized array costs a page fault per 4 KiB the first time it is written
    (about 0.7 ms per MiB here, and the faults of concurrent threads contend with each
    other), and glibc gives such memory back to the system when it is freed, so every
    tile paid again. Stages that consume a block before their thread reads the next one
    decode into, and compute into, these instead. The caller must not keep the array.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > REUSABLE_BYTES:
        return np.empty(shape, dtype=dtype)
    cache: dict[str, npt.NDArray[np.uint8]] | None = getattr(_buffers, "cache", None)
    if cache is None:
        cache = _buffers.cache = {}
    buffer = cache.get(purpose)
    if buffer is None or buffer.nbytes < nbytes:
        buffer = cache[purpose] = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


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
