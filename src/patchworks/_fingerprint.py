"""Fingerprint of a run: which tiles a resumed run may reuse.

A staged tile may be reused only by a run that would stage exactly the same tile. That
depends on the image, on ``fn``, on the tile grid (``tile_shape`` and halo), on the label
dtype, on ``skip_empty`` / ``empty_threshold``, on the stitching mode and on the
patchworks version — and on nothing the merge stages decide (``sequential_labels``,
``connectivity``, ``compute``), because those stages always re-run.

The fingerprint is a dict of JSON-able components, so a mismatch can be reported by name
(:func:`differences`). Identities are cheap on terabyte inputs:

* image: its path (for path inputs), shape, dtype, chunks and channel axis, the zarr
  metadata, and a hash of the content of a few sampled chunks (first, last and evenly
  spaced ones, at most :data:`SAMPLED_CHUNKS`). A NumPy array up to :data:`FULL_HASH_BYTES`
  is hashed whole. Edits to chunks that were not sampled go unnoticed: change the output
  path (or pass ``overwrite=True``) after editing an image in place.
* fn: module and qualified name plus a hash of its pickled bytes (cloudpickle), so a
  different function, a changed body or different closure values are all detected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from typing import Any

import numpy as np

from ._plan import TilePlan
from ._source import ImageSource
from ._version import __version__
from .errors import ImageReadError

logger = logging.getLogger(__name__)

SAMPLED_CHUNKS = 8
FULL_HASH_BYTES = 1 << 30
STATE_FORMAT = 1


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _hash_array(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def _sample_positions(grid: tuple[int, ...], count: int) -> list[tuple[int, ...]]:
    """First, last and evenly spaced chunk positions of a chunk grid."""
    total = math.prod(grid)
    if total == 0:
        return []
    picks = sorted({round(k * (total - 1) / max(count - 1, 1)) for k in range(count)})
    return [tuple(int(p) for p in np.unravel_index(i, grid)) for i in picks]


def _chunked_samples(array: Any, chunks: tuple[int, ...]) -> list[str]:
    shape = tuple(int(n) for n in array.shape)
    grid = tuple(-(-n // c) for n, c in zip(shape, chunks, strict=True))
    hashes = []
    for position in _sample_positions(grid, SAMPLED_CHUNKS):
        box = tuple(
            slice(p * c, min((p + 1) * c, n))
            for p, c, n in zip(position, chunks, shape, strict=True)
        )
        try:
            block = array[box]
            if hasattr(block, "compute"):
                block = block.compute(scheduler="sync")
            block = np.asarray(block)
        except Exception as exc:
            raise ImageReadError(
                f"could not read `image` at box [{', '.join(f'{b.start}:{b.stop}' for b in box)}] "
                f"to fingerprint the run for resume=True ({type(exc).__name__}: {exc}); its "
                "store is damaged or unreachable."
            ) from exc
        hashes.append(_hash_array(block))
    return hashes


def image_identity(image: Any, source: ImageSource) -> dict[str, Any]:
    """Identity of the input image (see the module docstring)."""
    array = source.array
    identity: dict[str, Any] = {
        "type": type(array).__name__,
        "shape": [int(n) for n in array.shape],
        "dtype": np.dtype(array.dtype).str,
        "channel_axis": source.channel_axis,
    }
    if isinstance(image, str | os.PathLike):
        path = os.fspath(image)
        identity["path"] = path if "://" in path else os.path.abspath(path)
    metadata = getattr(array, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_dict"):
        identity["metadata"] = _digest(json.dumps(metadata.to_dict(), default=str,
                                                  sort_keys=True).encode())
    if isinstance(array, np.ndarray):
        if array.nbytes <= FULL_HASH_BYTES:
            identity["content"] = _hash_array(array)
        else:
            rows = max(1, array.shape[0] // (8 * SAMPLED_CHUNKS))
            identity["content"] = _chunked_samples(array, (rows, *array.shape[1:]))
        return identity
    chunks = getattr(array, "chunks", None)
    if chunks is not None:
        sizes = tuple(int(c[0]) if isinstance(c, tuple) else int(c) for c in chunks)
        identity["chunks"] = list(sizes)
        identity["content"] = _chunked_samples(array, sizes)
    return identity


def _class_code(cls: type) -> bytes:
    """Bytes of the methods of a class defined in a script (not importable by name)."""
    parts = []
    for klass in cls.__mro__:
        if klass is object:
            continue
        for key, value in sorted(vars(klass).items()):
            code = getattr(value, "__code__", None)
            if code is not None:
                parts.append(key.encode() + code.co_code + repr(code.co_consts).encode())
    return b"".join(parts)


def _pickled(fn: Any) -> bytes:
    import cloudpickle

    cls = type(fn)
    if not hasattr(fn, "__code__") and cls.__module__ == "__main__":
        # cloudpickle tags classes defined in a script with a random id per process;
        # hash the methods' code and the instance state instead, stable across restarts.
        state = fn.__getstate__() if hasattr(fn, "__getstate__") else vars(fn)
        return _class_code(cls) + cloudpickle.dumps(state, protocol=5)
    return cloudpickle.dumps(fn, protocol=5)


def fn_identity(fn: Any) -> dict[str, Any]:
    """Identity of ``fn``: its qualified name and a hash of its pickled bytes."""
    kind = fn if hasattr(fn, "__qualname__") else type(fn)
    name = f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', '?')}"
    try:
        data = _pickled(fn)
    except Exception as exc:  # unpicklable fn (fine on threads): fall back to its code
        logger.info("fingerprint: fn %s is not picklable (%s); hashing its code", name, exc)
        code = getattr(fn, "__code__", None) or getattr(type(fn).__call__, "__code__", None)
        data = b"" if code is None else code.co_code + repr(code.co_consts).encode()
    return {"name": name, "pickle": _digest(data)}


def run_fingerprint(
    image: Any,
    source: ImageSource,
    fn: Any,
    plan: TilePlan,
    *,
    labels_dtype: np.dtype,
    skip_empty: bool,
    empty_threshold: float | None,
    stitch: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All components a staged tile depends on, as a JSON-able dict.

    Examples
    --------
    >>> src = ImageSource(np.zeros((4, 4), "uint8"))
    >>> plan = TilePlan((4, 4), (2, 2), (1, 1))
    >>> a = run_fingerprint(src.array, src, abs, plan, labels_dtype=np.dtype("int32"),
    ...                     skip_empty=False, empty_threshold=None, stitch="touch")
    >>> b = run_fingerprint(src.array, src, abs, TilePlan((4, 4), (4, 2), (1, 1)),
    ...                     labels_dtype=np.dtype("int32"), skip_empty=False,
    ...                     empty_threshold=None, stitch="touch")
    >>> differences(a, b)
    ['tile_shape']
    """
    fingerprint = {
        "format": STATE_FORMAT,
        "version": __version__,
        "image": image_identity(image, source),
        "fn": fn_identity(fn),
        "tile_shape": list(plan.tile_shape),
        "overlap": list(plan.halo),
        "dtype": np.dtype(labels_dtype).str,
        "skip_empty": bool(skip_empty),
        "empty_threshold": empty_threshold,
        "stitch": stitch,
        **(extra or {}),
    }
    # Round-trip through JSON so a fingerprint read back from disk compares equal.
    return json.loads(json.dumps(fingerprint, sort_keys=True))


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the components that differ between two fingerprints."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
