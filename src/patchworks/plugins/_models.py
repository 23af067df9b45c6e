"""A per-process cache of loaded models, shared by the plugin callables.

A plugin callable travels to workers as a few strings and numbers. The first tile a
process handles loads the model (under a lock, so threads of one worker never load it
twice); every later tile reuses it. Calls into one model are serialised by
:func:`model_lock`: the frameworks already use every core for one call, and neither
Cellpose's CPU path nor Keras is safe to enter from several threads at once.
:data:`LOADS` counts loads per key, so tests and users can check that a model was loaded
once per process, never once per tile.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, TypeVar, cast

from patchworks.errors import PatchworksError, missing_dependency

if TYPE_CHECKING:
    from types import ModuleType

_Model = TypeVar("_Model")

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_MODELS: dict[Hashable, object] = {}
_CALL_LOCKS: dict[Hashable, threading.Lock] = {}
LOADS: Counter[Hashable] = Counter()


class TileNormalizationWarning(UserWarning):
    """A plugin normalises each tile with its own percentiles (no ``image=`` given), so a
    tiled run can find objects that the whole-image run does not."""


class ModelNotFoundError(PatchworksError, FileNotFoundError):
    """The model's weights (a file or folder) do not exist; raised when the plugin is built."""


class GPUUnavailableError(PatchworksError, RuntimeError):
    """``gpu=True`` was asked for, but the framework sees no usable GPU on this machine."""


def cached_model(key: Hashable, load: Callable[[], _Model]) -> _Model:
    """The model for ``key``, loading it with ``load()`` the first time in this process.

    Anything the loader prints (some packages print progress) goes to the log instead.

    Examples
    --------
    >>> first = cached_model(("doc", 1), lambda: object())
    >>> cached_model(("doc", 1), lambda: object()) is first, LOADS[("doc", 1)]
    (True, 1)
    """
    with _LOCK:
        if key not in _MODELS:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                _MODELS[key] = load()
            LOADS[key] += 1
            if printed.getvalue().strip():
                logger.debug("loading %r printed: %s", key, printed.getvalue().strip())
        return cast(_Model, _MODELS[key])  # what ``load`` returned for this key


def model_lock(key: Hashable) -> threading.Lock:
    """The lock that serialises calls into the model ``key`` within this process."""
    with _LOCK:
        return _CALL_LOCKS.setdefault(key, threading.Lock())


def clear_models() -> None:
    """Forget every cached model of this process (the next tile loads it again)."""
    with _LOCK:
        _MODELS.clear()


def require(package: str, plugin: str) -> None:
    """Fail early, with the install line, when ``package`` (cellpose, stardist) is missing."""
    if importlib.util.find_spec(package) is None:
        raise missing_dependency(package, package, f"patchworks.plugins.{plugin}")


def import_models(package: str, plugin: str) -> ModuleType:
    """``<package>.models``; an installed but broken package (no torch / TensorFlow) is
    reported like a missing one."""
    require(package, plugin)
    try:
        return importlib.import_module(f"{package}.models")
    except ImportError as exc:
        raise missing_dependency(package, package, f"patchworks.plugins.{plugin}") from exc


def check_gpu(plugin: str, framework: str, available: Callable[[], bool]) -> None:
    """Raise :class:`GPUUnavailableError` unless ``available()`` (called only now) is true."""
    if not available():
        raise GPUUnavailableError(
            f"`gpu=True` needs a GPU that {framework} can use; {framework} sees none on this "
            f"machine. Pass gpu=False to {plugin} to run on the CPU."
        )
