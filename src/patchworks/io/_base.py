"""The I/O contracts: where an image comes from (:class:`Source`) and where labels go
(:class:`Sink`).

A :class:`Sink` is what ``write_to=`` takes besides a path. Opening it for a run
(:meth:`Sink.open`) checks the destination before any work starts and returns an
:class:`Output`: the full-resolution label array the run builds and publishes at
:attr:`Output.target` (its run directory, lock and resume state live beside it), and what
happens after — :meth:`Output.finish` (e.g. a pyramid and NGFF metadata) or
:meth:`Output.abort`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from patchworks._plan import TilePlan


class TaskMap(Protocol):
    """Runs one stage's per-item tasks in parallel (the engine's executor)."""

    def map(
        self, fn: Callable[[Any, Any], Any], job: Any, items: Sequence[Any], *, desc: str
    ) -> list[Any]: ...


@runtime_checkable
class Source(Protocol):
    """A readable, picklable image: spatial ``shape`` (channels excluded), ``dtype``,
    storage ``chunks`` (None for unchunked arrays) and box reads."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...

    @property
    def chunks(self) -> tuple[int, ...] | None: ...

    def read(self, box: tuple[slice, ...]) -> NDArray[Any]:
        """The voxels of the spatial ``box`` (all channels, channel axis kept)."""
        ...


class Output(Protocol):
    """One run's destination, opened by :meth:`Sink.open`."""

    @property
    def target(self) -> str:
        """Path of the full-resolution label array the run publishes (complete only)."""
        ...

    def finish(self, executor: TaskMap, plan: TilePlan, result: Any, *, compute: bool) -> Any:
        """After ``target`` is published: complete the output; return the result to hand
        the user (``result`` is what reading ``target`` gave)."""
        ...

    def abort(self, *, keep: bool) -> None:
        """The run failed: remove what it made here (keeping ``target`` with ``keep``)."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Where a run's labels go (``write_to=`` takes a path or one of these)."""

    def open(
        self, image: Any, source: Any, *, dtype: np.dtype[Any], overwrite: bool, resume: bool
    ) -> Output:
        """Check the destination for a run over ``source`` (read from ``image``) and
        return its :class:`Output`; raise before any work when it cannot be written."""
        ...
