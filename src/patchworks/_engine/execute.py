"""Run one stage's tasks on the active dask client, or on local threads without one.

A stage is ``func(job, index)`` over tile indices, where ``job`` is a small frozen
dataclass with everything the workers need. With a ``dask.distributed`` client the job is
scattered once and tasks are submitted in a sliding window (bounded scheduler memory at
10^5+ tiles); without one, a thread pool runs them (NumPy, zarr codecs and most
segmentation code release the GIL). Either way results come back as they finish,
progress is shown when asked (:mod:`patchworks._engine.progress`: bars on a terminal,
lines in a log), and the first failure cancels the rest and is raised.
"""

from __future__ import annotations

import logging
import numbers
import os
import queue
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import dask

from patchworks._engine.progress import ProgressBar, announce, progress_bar
from patchworks.errors import (
    ClusterConfigurationError,
    InvalidParameterError,
    StagedDataMissingError,
    TileFunctionError,
)

if TYPE_CHECKING:
    from dask.typing import Key

logger = logging.getLogger(__name__)

T = TypeVar("T")
J = TypeVar("J")
T_co = TypeVar("T_co", covariant=True)


class _Done(Protocol[T_co]):
    """A finished future: a ``concurrent.futures`` or a ``distributed`` one."""

    def result(self) -> T_co: ...


IN_PROCESS_FIX = (
    "the active dask client runs its workers inside this process (LocalCluster with "
    "processes=False), where patchworks' tile and merge tasks would block each other; "
    "start a process-based cluster instead: "
    "`client, cluster = patchworks.make_local_cluster()`"
)


def active_client() -> Any | None:
    """The current ``dask.distributed`` client, or None when there is none."""
    if "distributed" not in sys.modules:
        return None  # no client without distributed imported; importing it costs ~1 s
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()  # type: ignore[no-untyped-call]  # distributed: unannotated
    except ValueError:
        return None


def check_client(client: Any) -> None:
    """Raise if ``client`` would deadlock the merge (workers in this very process)."""
    workers = client.scheduler_info().get("workers", {})
    if any(str(address).startswith("inproc://") for address in workers):
        raise ClusterConfigurationError(IN_PROCESS_FIX)


def _local_threads() -> int:
    configured = dask.config.get("num_workers", None)
    return int(configured) if configured else (os.cpu_count() or 1)


def _serial_requested() -> bool:
    return dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded")


def _call(index: int, stage: Callable[[J, int], T], job: J) -> T:
    return stage(job, index)


SHARED_TASK_BYTES = 8 << 20


def _salvage(finished: Iterable[tuple[_Done[T], int]], collect: Callable[[int, T], None]) -> None:
    """After a failure, still hand over the tasks that succeeded (resume keeps them)."""
    for future, index in finished:
        try:
            value = future.result()
        except BaseException:
            continue
        collect(index, value)


def _identity(job: J) -> J:
    return job


def _pickled_size(job: object) -> int:
    """Bytes ``job`` takes pickled; array buffers are counted, not copied."""
    import cloudpickle

    buffers: list[int] = []
    try:
        head = cloudpickle.dumps(
            job, protocol=5, buffer_callback=lambda b: buffers.append(b.raw().nbytes)
        )
    except Exception:
        return sys.maxsize  # let scatter report the pickling error
    return len(head) + sum(buffers)


def _share(client: Any, job: object) -> Any:
    """A future for ``job`` on the cluster, shipped once per stage.

    A small job becomes a task: if every worker holding it dies, the scheduler simply
    recomputes it, so killed workers cost nothing but their tiles in flight. A large one
    (an in-memory image) is scattered to every worker instead.
    """
    if _pickled_size(job) <= SHARED_TASK_BYTES:
        return client.submit(_identity, job, pure=False)
    [future] = client.scatter([job], broadcast=True, hash=False)
    return future


def _task_failure(exc: Exception, job: object, index: int, retries: int) -> Exception:
    """Name the tile of a failed task; say that retries were used up."""
    from distributed import KilledWorker

    plan = getattr(job, "plan", None)
    where = plan.tile(index).describe() if plan is not None else f"task {index}"
    if isinstance(exc, KilledWorker):
        return TileFunctionError(
            f"the workers running {where} died too often ({exc}); a tile that exhausts "
            "memory or crashes `fn` does this (this tile, or one that ran beside it): try a "
            "smaller `tile_shape` or fewer threads per worker."
        )
    if isinstance(exc, StagedDataMissingError) and " of tile " not in str(exc):
        return StagedDataMissingError(f"while staging {where}: {exc}")
    if retries:
        exc.add_note(
            f"patchworks: {where} failed on all {1 + retries} attempts (retries={retries})."
        )
    return exc


def _check_retries(retries: object) -> int:
    """``retries`` counts extra attempts of a failed task: a non-negative integer."""
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise InvalidParameterError(f"`retries` must be a non-negative integer; got {retries!r}.")
    return int(retries)


class Executor:
    """Runs the stages of one patchworks call.

    Parameters
    ----------
    progress : bool
        Show a tqdm bar per stage.
    retries : int
        Times a failed task is retried on a distributed cluster (worker death, flaky I/O).
    """

    def __init__(self, *, progress: bool = False, retries: int = 0) -> None:
        self.progress = progress
        self.retries = _check_retries(retries)
        self.client = active_client()
        if self.client is not None:
            check_client(self.client)

    def announce(self, text: str) -> None:
        """One line about the run on stderr, when progress is shown."""
        if self.progress:
            announce(text)

    @property
    def n_workers(self) -> int:
        """Tasks that run at once (threads over all workers)."""
        if self.client is None:
            return 1 if _serial_requested() else _local_threads()
        info = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.values()))

    def map(
        self,
        func: Callable[[J, int], T],
        job: J,
        indices: Sequence[int],
        *,
        desc: str,
        unit: str = "tile",
        on_result: Callable[[int, T], None] | None = None,
    ) -> list[T]:
        """``[func(job, i) for i in indices]``, in parallel; results in ``indices`` order."""
        results = cast("list[T]", [None] * len(indices))  # each slot is filled below
        position = {index: k for k, index in enumerate(indices)}

        def collect(index: int, value: T) -> None:
            results[position[index]] = value
            if on_result is not None:
                on_result(index, value)

        with progress_bar(len(indices), desc, unit=unit, enabled=self.progress) as bar:
            if self.client is not None:
                self._map_distributed(func, job, indices, collect, bar)
            elif _serial_requested() or len(indices) <= 1:
                for index in indices:
                    collect(index, func(job, index))
                    bar.update()
            else:
                self._map_threads(func, job, indices, collect, bar)
        return results

    def _window(self) -> int:
        return max(4 * self.n_workers, 32)

    def _map_threads(
        self,
        func: Callable[[J, int], T],
        job: J,
        indices: Iterable[int],
        collect: Callable[[int, T], None],
        bar: ProgressBar,
    ) -> None:
        # Finished futures arrive on a queue (one put per task), so the client thread does
        # O(1) work per finished task while holding the GIL, instead of re-arming a wait on
        # every pending future each time one finishes.
        pending: dict[Future[T], int] = {}
        finished: queue.SimpleQueue[Future[T]] = queue.SimpleQueue()
        todo = iter(indices)
        threads = ThreadPoolExecutor(max_workers=self.n_workers, thread_name_prefix="patchworks")
        with threads as pool:

            def submit() -> None:
                index = next(todo, None)
                if index is not None:
                    future = pool.submit(func, job, index)
                    pending[future] = index
                    future.add_done_callback(finished.put)

            try:
                for _ in range(self._window()):
                    submit()
                while pending:
                    future = finished.get()
                    collect(pending.pop(future), future.result())
                    bar.update()
                    submit()
            except BaseException:
                for future in pending:
                    future.cancel()
                wait(pending)  # tasks already running finish; hand over their results
                _salvage([(f, i) for f, i in pending.items() if not f.cancelled()], collect)
                raise

    def _map_distributed(
        self,
        func: Callable[[J, int], T],
        job: J,
        indices: Sequence[int],
        collect: Callable[[int, T], None],
        bar: ProgressBar,
    ) -> None:
        from distributed import as_completed

        client = self.client
        assert client is not None  # only called with a client
        job_future = _share(client, job)
        todo = iter(indices)
        index_of: dict[str, int] = {}
        live: dict[str, Any] = {}

        def submit(count: int) -> list[Any]:
            batch = [i for _, i in zip(range(count), todo, strict=False)]
            if not batch:
                return []
            futures: list[Any] = client.map(
                _call, batch, stage=func, job=job_future, pure=False, retries=self.retries
            )
            index_of.update((f.key, i) for f, i in zip(futures, batch, strict=True))
            live.update((f.key, f) for f in futures)
            return futures

        # distributed is unannotated: its as_completed iterator is typed Any here.
        queue: Any = as_completed(submit(self._window()))  # type: ignore[no-untyped-call]
        try:
            for future in queue:
                index = index_of.pop(future.key)
                live.pop(future.key, None)
                try:
                    value = future.result()
                except Exception as exc:
                    error = _task_failure(exc, job, index, self.retries)
                    if error is exc:
                        raise
                    raise error from exc
                collect(index, value)
                bar.update()
                for new in submit(1):
                    queue.add(new)
        except BaseException:
            queue.clear()
            finished = [(f, index_of[k]) for k, f in live.items() if f.status == "finished"]
            _salvage(finished, collect)
            raise
        finally:
            client.cancel([job_future])

    def compute(self, tasks: Sequence[Any], *, desc: str) -> list[Any]:
        """Compute dask ``Delayed`` objects (one per tile) with progress; results in order."""
        with progress_bar(len(tasks), desc, enabled=self.progress) as bar:
            if self.client is not None:
                from distributed import as_completed

                futures = self.client.compute(list(tasks), retries=self.retries)
                try:
                    # distributed is unannotated
                    for future in as_completed(futures):  # type: ignore[no-untyped-call]
                        future.result()
                        bar.update()
                except BaseException:
                    self.client.cancel(futures)
                    raise
                return [future.result() for future in futures]
            from dask.base import compute
            from dask.callbacks import Callback

            wanted = {task.key for task in tasks}

            class _Tick(Callback):
                def _posttask(
                    self, key: Key, result: object, dsk: object, state: object, worker_id: object
                ) -> None:
                    if key in wanted:
                        bar.update()

            scheduler = "sync" if _serial_requested() else "threads"
            with _Tick():  # type: ignore[no-untyped-call]  # dask's Callback: unannotated
                results = compute(  # type: ignore[no-untyped-call]  # dask: unannotated
                    *tasks, scheduler=scheduler, num_workers=self.n_workers
                )
                return list(results)
