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
* fn: module and qualified name plus a hash of its code (without line numbers), of the
  user's own functions and classes it calls, and of the plain values it reads (closure
  cells, defaults, module-level numbers and strings, ``functools.partial`` arguments,
  instance attributes). A different function, a changed body or a changed threshold are
  detected; library code and big objects (a loaded model) count by name only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from patchworks._plan import TilePlan
from patchworks._version import __version__
from patchworks.errors import ImageReadError
from patchworks.io._source import ImageSource

if TYPE_CHECKING:
    from numpy.typing import NDArray

logger = logging.getLogger(__name__)

SAMPLED_CHUNKS = 8
FULL_HASH_BYTES = 1 << 30
#: Layout of the resume state (staged arrays, face store, tile summaries). Bump it when
#: the layout changes, so a state written by another layout is never reused; 2: face slabs
#: in per-thread segment files and compact staged labels; 3: one frame per tile in those
#: files, local labels in increasing order of label; 4: those frames in LZ4 instead of zlib;
#: 5: staged local labels as runs when the runs are long; 6: the layered package (the
#: pickled staging handles and tile summaries name the new module paths).
STATE_FORMAT = 6


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _hash_array(array: NDArray[Any]) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.data.cast("B"))
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
        identity["metadata"] = _digest(
            json.dumps(metadata.to_dict(), default=str, sort_keys=True).encode()
        )
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


_SIMPLE = (int, float, complex, str, bytes, bool, type(None), np.generic)
_SMALL_ARRAY = 1 << 20


class _FnHasher:
    """Hash what ``fn`` computes with, stably across processes and edits that don't matter.

    Code is hashed without line numbers (moving a function in its file changes nothing);
    the user's own functions and classes it calls are followed; plain values (numbers,
    strings, small arrays, tuples, ``functools.partial`` arguments, an object's plain
    attributes) are hashed by content; modules and library functions by name; mutable or
    opaque objects (lists, dicts, caches, a lazily loaded model) not at all, so state that
    fills up during a run never makes its restart look like a different call.
    """

    def __init__(self, home: str | None) -> None:
        self.hash = hashlib.blake2b(digest_size=16)
        self.home = home  # the module fn was defined in: its functions are followed
        self.seen: set[int] = set()

    def add(self, text: object) -> None:
        self.hash.update(repr(text).encode())

    def value(self, value: object, depth: int = 0) -> None:
        """Hash plain data and the user's own code; skip None and mutable objects."""
        if value is None:
            return  # often a slot filled later (a lazily loaded model)
        if isinstance(value, _SIMPLE):
            self.add((type(value).__name__, value))
        elif isinstance(value, np.ndarray):
            self.add(("ndarray", value.shape, value.dtype.str))
            if value.nbytes <= _SMALL_ARRAY:
                self.add(_hash_array(value))
        elif depth > 6:
            return
        elif isinstance(value, tuple | frozenset):
            self.add((type(value).__name__, len(value)))
            items = sorted(value, key=repr) if isinstance(value, frozenset) else value
            for item in list(items)[:1000]:
                self.value(item, depth + 1)
        elif isinstance(value, functools.partial):
            self.value(value.func, depth + 1)
            self.value(value.args, depth + 1)
            self.items(value.keywords, depth + 1)
        elif isinstance(value, types.FunctionType | types.MethodType | type):
            self.callable(value, depth)
        elif isinstance(value, types.ModuleType | types.BuiltinFunctionType):
            self.add(getattr(value, "__name__", "?"))
        elif depth == 0:  # fn is a callable object: its class and its plain attributes
            self.callable(type(value), depth)
            self.items(getattr(value, "__dict__", {}), depth + 1)
        # anything else (lists, dicts, caches, models) may change while the run goes on

    def items(self, mapping: Mapping[str, object], depth: int) -> None:
        for key in sorted(mapping, key=repr)[:1000]:
            self.add(key)
            self.value(mapping[key], depth)

    def _own(self, obj: object) -> bool:
        module = getattr(obj, "__module__", None)
        return module is not None and (module == self.home or module == "__main__")

    def callable(self, obj: types.FunctionType | types.MethodType | type, depth: int) -> None:
        self.add((getattr(obj, "__module__", "?"), getattr(obj, "__qualname__", "?")))
        if id(obj) in self.seen or not self._own(obj):
            return  # library code: its name is its identity
        self.seen.add(id(obj))
        if isinstance(obj, types.MethodType):
            self.value(obj.__self__, depth + 1)
            obj = cast(types.FunctionType, obj.__func__)  # a method of the user's class
        if isinstance(obj, type):
            for key, member in sorted(vars(obj).items()):
                if isinstance(member, types.FunctionType):
                    self.add(key)
                    self.function(member, depth + 1)
            return
        self.function(obj, depth)

    def function(self, fn: types.FunctionType, depth: int) -> None:
        self.code(fn.__code__, fn.__globals__, depth)
        self.value(fn.__defaults__, depth + 1)
        self.value(fn.__kwdefaults__, depth + 1)
        for cell in fn.__closure__ or ():
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self.value(contents, depth + 1)

    def code(self, code: types.CodeType, globals_: dict[str, Any], depth: int) -> None:
        self.hash.update(code.co_code)
        self.add((code.co_names, code.co_varnames, code.co_freevars))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code(const, globals_, depth)
            else:
                self.add(const)
        for name in code.co_names:
            if name in globals_:
                self.add(name)
                self.value(globals_[name], depth + 1)


def fn_identity(fn: object) -> dict[str, Any]:
    """Identity of ``fn``: its qualified name and a hash of what it computes with.

    Examples
    --------
    >>> threshold = 0.5
    >>> def a(tile):
    ...     return tile > threshold
    >>> fn_identity(a) == fn_identity(a), fn_identity(a) == fn_identity(lambda t: t > 0.5)
    (True, False)
    """
    kind = fn if hasattr(fn, "__qualname__") else type(fn)
    module = getattr(kind, "__module__", None)
    name = f"{module or '?'}.{getattr(kind, '__qualname__', '?')}"
    hasher = _FnHasher(home=module)
    hasher.value(fn)
    return {"name": name, "code": hasher.hash.hexdigest()}


def run_fingerprint(
    image: Any,
    source: ImageSource,
    fn: object,
    plan: TilePlan,
    *,
    labels_dtype: np.dtype[Any],
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
    restored: dict[str, Any] = json.loads(json.dumps(fingerprint, sort_keys=True))
    return restored


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of the components that differ between two fingerprints."""
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
