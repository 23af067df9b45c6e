"""Progress of a run's stages (``progress=True``): bars in a terminal, lines in a log.

Every stage counts its tasks in its own unit (tiles, blocks of boundary planes, blocks of
a pyramid level). On a terminal (or in a notebook) each stage gets a tqdm bar whose
elapsed time is redrawn every second, so a stage whose first tile takes minutes still
shows that it is alive. When stderr is a file or a pipe (a SLURM log, ``nohup``,
``2>run.log``) a bar's carriage returns would pile up in one endless line, so each stage
writes plain lines instead: one every :func:`log_interval` seconds
(``PATCHWORKS_PROGRESS_INTERVAL``, default 10) while it runs and one when it ends, with
the count, the rate and, once tasks have finished, the time left::

    patchworks: tiles: 0/8 tiles, 10 s elapsed
    patchworks: tiles: 3/8 tiles, 5 s/tile, 20 s elapsed, about 25 s left
    patchworks: tiles: 8/8 tiles in 38 s (4.75 s/tile)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["ProgressBar", "announce", "log_interval", "progress_bar"]

#: Seconds between a bar's redraws on a terminal (its elapsed time ticks).
REDRAW = 1.0
#: Seconds between two lines of a stage in a log, unless the environment says otherwise.
DEFAULT_LOG_INTERVAL = 10.0


class ProgressBar(Protocol):
    """What a stage calls on its progress display."""

    def update(self, n: int = 1) -> object: ...


def log_interval() -> float:
    """Seconds between a stage's lines in a log: ``PATCHWORKS_PROGRESS_INTERVAL`` or 10.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("PATCHWORKS_PROGRESS_INTERVAL", None) and None
    >>> log_interval()
    10.0
    """
    raw = os.environ.get("PATCHWORKS_PROGRESS_INTERVAL", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_LOG_INTERVAL
    return value if value > 0 else DEFAULT_LOG_INTERVAL


def _interactive(stream: IO[str]) -> bool:
    """Whether bars can be drawn: a terminal, or a Jupyter kernel (tqdm.auto's widget)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    return "ipykernel" in sys.modules


def announce(text: str) -> None:
    """Write one line about the run to stderr, above any bar being drawn."""
    stream = sys.stderr
    if _interactive(stream):
        from tqdm.auto import tqdm

        tqdm.write(f"patchworks: {text}", file=stream)
    else:
        print(f"patchworks: {text}", file=stream, flush=True)


class NoBar:
    """What a stage updates when no progress is shown (tqdm is not even imported)."""

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None


class _Ticker:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, interval: float, tick: Any) -> None:
        self._stop = threading.Event()
        self._interval = interval
        self._tick = tick
        self._thread = threading.Thread(target=self._loop, name="patchworks-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Bar:
    """A tqdm bar redrawn every second, so its elapsed time moves before the first task."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, leave=True, file=sys.stderr)
        self._ticker = _Ticker(REDRAW, self._bar.refresh)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ticker.stop()
        self._bar.close()

    def update(self, n: int = 1) -> None:
        self._bar.update(n)


def _duration(seconds: float) -> str:
    """``'42 s'``, ``'3 min 5 s'``, ``'2 h 10 min'``.

    Examples
    --------
    >>> _duration(4.2), _duration(185), _duration(7830)
    ('4 s', '3 min 5 s', '2 h 10 min')
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _rate(done: int, elapsed: float, unit: str) -> str:
    """Tasks per second, or seconds per task when slower than one a second.

    Examples
    --------
    >>> _rate(30, 10.0, "tile"), _rate(3, 45.0, "tile"), _rate(5000, 3.9, "block")
    ('3 tiles/s', '15 s/tile', '1282 blocks/s')
    """
    per_second = done / elapsed if elapsed > 0 else float("inf")
    if per_second >= 1:
        return f"{_number(per_second)} {unit}s/s"
    return f"{_number(elapsed / done)} s/{unit}"


def _number(value: float) -> str:
    """Three significant digits, without an exponent: ``'0.215'``, ``'15.2'``, ``'1270'``."""
    if value == float("inf") or value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


class LogLines:
    """A stage's progress as plain lines: every ``interval`` s while it runs, and at the end."""

    def __init__(
        self, total: int, desc: str, unit: str, stream: IO[str], *, interval: float
    ) -> None:
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.done = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._ticker = _Ticker(interval, self._report)

    def _units(self, n: int) -> str:
        return self.unit if n == 1 else f"{self.unit}s"

    def _status(self, elapsed: float) -> str:
        done, total = self.done, self.total
        text = f"{done}/{total} {self._units(total)}"
        if done:
            text += f", {_rate(done, elapsed, self.unit)}"
        text += f", {_duration(elapsed)} elapsed"
        if 0 < done < total:
            text += f", about {_duration(elapsed / done * (total - done))} left"
        return text

    def _line(self, text: str) -> None:
        print(f"patchworks: {self.desc}: {text}", file=self.stream, flush=True)

    def _report(self) -> None:
        with self._lock:
            self._line(self._status(time.monotonic() - self._start))

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._ticker.stop()
        if exc_type is not None:
            return  # the error says what happened
        elapsed = time.monotonic() - self._start
        with self._lock:
            units = self._units(self.total)
            text = f"{self.done}/{self.total} {units} in {_duration(elapsed)}"
            if self.done:
                text += f" ({_rate(self.done, elapsed, self.unit)})"
            self._line(text)

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.done += n


def progress_bar(
    total: int, desc: str, *, unit: str = "tile", enabled: bool
) -> AbstractContextManager[ProgressBar]:
    """The progress display of one stage of ``total`` tasks counted in ``unit``."""
    if not enabled:
        return NoBar()
    if _interactive(sys.stderr):
        return _Bar(total, desc, unit)
    return LogLines(total, desc, unit, sys.stderr, interval=log_interval())
