"""A bounded cache of decoded input chunks, shared by the tiles of one run on one worker.

A tile reads its halo box, which reaches into the chunks of its neighbours; read chunk by
chunk, every chunk is fetched and decoded once per tile that touches it (27 times in 3-D
when the halo reaches every neighbour: 15x the image's bytes for the speed benchmark's
64^3 tiles with overlap 8). Tiles run in index order, so a neighbour's chunks were usually
just read: keeping the most recently used decoded chunks, up to :data:`CACHE_BYTES`, reads
each input chunk about once (``benchmarks/halo_reads.py``). The cache lives with one run's
tile job (never across runs, so a rewritten input is never served from it) and is empty
whenever the job is unpickled.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from numpy.typing import NDArray

#: Most bytes of decoded chunks one worker process keeps per run.
CACHE_BYTES = 256 << 20


class ChunkCache:
    """Least recently used decoded chunks, by grid coordinates, up to ``max_bytes``
    (thread-safe; picklable as an empty cache).

    Examples
    --------
    >>> import numpy as np
    >>> cache = ChunkCache(max_bytes=16)
    >>> cache.put((0,), np.zeros(8, "uint8")); cache.put((1,), np.ones(8, "uint8"))
    >>> cache.get((0,)) is not None                 # (0,) is now the most recent
    True
    >>> cache.put((2,), np.ones(8, "uint8"))         # evicts (1,), the least recent
    >>> cache.get((1,)) is None, cache.nbytes
    (True, 16)
    """

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._chunks: OrderedDict[tuple[int, ...], NDArray[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0

    def get(self, coords: tuple[int, ...]) -> NDArray[Any] | None:
        with self._lock:
            chunk = self._chunks.get(coords)
            if chunk is not None:
                self._chunks.move_to_end(coords)
            return chunk

    def put(self, coords: tuple[int, ...], chunk: NDArray[Any]) -> None:
        if chunk.nbytes > self.max_bytes:
            return
        chunk.flags.writeable = False  # shared by every tile that reads it
        with self._lock:
            old = self._chunks.pop(coords, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._chunks[coords] = chunk
            self.nbytes += chunk.nbytes
            while self.nbytes > self.max_bytes:
                _, evicted = self._chunks.popitem(last=False)
                self.nbytes -= evicted.nbytes

    def __getstate__(self) -> dict[str, Any]:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_bytes"])  # type: ignore[misc]
