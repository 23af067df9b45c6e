"""``make_local_cluster``: a process-based dask cluster on this machine, GPU-aware."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from patchworks.errors import ClusterConfigurationError

if TYPE_CHECKING:
    from distributed import Client, SpecCluster

logger = logging.getLogger(__name__)


def visible_gpus() -> list[str]:
    """IDs of the GPUs this process may use (``CUDA_VISIBLE_DEVICES`` or NVML)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()


GUARD = 'if __name__ == "__main__":'


def check_main_guard() -> None:
    """Raise when worker processes would run the calling script again and start clusters.

    dask starts worker processes with multiprocessing's "spawn" method, which imports the
    main script anew in each of them. A script that calls :func:`make_local_cluster` at
    its top level, outside ``if __name__ == "__main__":``, would start a cluster in every
    worker while it starts (multiprocessing's wall of tracebacks and "Nanny failed to
    start"). Both sides are checked: the script itself, before anything is started, and
    a worker process during its start-up.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        main = sys.modules.get("__main__")
        script = getattr(main, "__file__", None) or "the main script"
        raise ClusterConfigurationError(
            f"make_local_cluster() was called while a worker process was starting (it "
            f"imports {script} again); put the cluster and the run under `{GUARD}` there."
        )
    import dask

    method = dask.config.get("distributed.worker.multiprocessing-method", "spawn")
    if method not in ("spawn", "forkserver"):
        return  # forked workers do not import the script again
    where = _unguarded_call()
    if where is not None:
        path, line = where
        raise ClusterConfigurationError(
            f"make_local_cluster() is called at the top level of {path} (line {line}), "
            f"outside `{GUARD}`: every dask worker process imports that script again "
            f"and would start a cluster of its own; put the cluster and the run under "
            f"`{GUARD}`."
        )


def _unguarded_call() -> tuple[str, int] | None:
    """(script, line) when the running main script's top-level code, at the statement now
    running, lies outside ``if __name__ == "__main__":``; None otherwise or unknown."""
    import ast

    frame = sys._getframe(1)
    outermost = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            outermost = frame
        frame = frame.f_back  # type: ignore[assignment]  # None ends the loop
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if (
        outermost is None
        or not path
        or os.path.abspath(outermost.f_code.co_filename) != (os.path.abspath(path))
    ):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    line = outermost.f_lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            end = max(getattr(n, "end_lineno", n.lineno) or n.lineno for n in node.body)
            if node.body[0].lineno <= line <= end:
                return None
    return path, line


def _is_main_test(test: object) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    import ast

    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


def make_local_cluster(
    *,
    use_gpu: bool = False,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | float | None = "auto",
    **cluster_kwargs: object,
) -> tuple[Client, SpecCluster]:
    """Start a process-based dask ``LocalCluster`` and a client connected to it.

    Parameters
    ----------
    use_gpu : bool
        One single-threaded worker per visible GPU, each pinned to its device through
        ``CUDA_VISIBLE_DEVICES``. Raises :class:`~patchworks.errors.ClusterConfigurationError`
        when no GPU is visible.
    n_workers, threads_per_worker, memory_limit
        Passed to ``LocalCluster`` (CPU mode). By default one worker per core with one
        thread each, which suits the GIL-holding Python in many segmenters.
    **cluster_kwargs
        Extra options for the cluster (``dashboard_address``, ``local_directory``...).

    Returns
    -------
    client, cluster : distributed.Client, distributed.SpecCluster
        Close both when done (``client.close(); cluster.close()``).

    Raises
    ------
    patchworks.errors.ClusterConfigurationError
        When called from a script's top level outside ``if __name__ == "__main__":``
        (dask's worker processes import the script again), or while a worker process
        is starting; with ``use_gpu=True`` and no visible GPU.

    Examples
    --------
    >>> client, cluster = make_local_cluster(n_workers=1, dashboard_address=None)
    >>> len(client.scheduler_info()["workers"])
    1
    >>> client.close(); cluster.close()
    """
    check_main_guard()
    from distributed import Client, LocalCluster

    if not use_gpu:
        # distributed is unannotated: its constructors are untyped calls
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers if n_workers is not None else (os.cpu_count() or 1),
            threads_per_worker=threads_per_worker if threads_per_worker is not None else 1,
            processes=True,
            memory_limit=memory_limit,
            **cluster_kwargs,
        )
        return Client(cluster), cluster  # type: ignore[no-untyped-call]

    gpus = visible_gpus()
    if not gpus:
        raise ClusterConfigurationError(
            "`use_gpu=True` needs at least one visible GPU, but none was found (no NVML "
            "devices and no CUDA_VISIBLE_DEVICES); got use_gpu=True. Use use_gpu=False for a "
            "CPU cluster."
        )
    if n_workers is not None and n_workers != len(gpus):
        raise ClusterConfigurationError(
            f"`n_workers` must equal the number of visible GPUs ({len(gpus)}) with "
            f"use_gpu=True; got n_workers={n_workers}."
        )
    return _gpu_cluster(gpus, memory_limit=memory_limit, **cluster_kwargs)


def _gpu_cluster(
    gpus: list[str], *, memory_limit: str | float | None, **cluster_kwargs: object
) -> tuple[Client, SpecCluster]:
    from distributed import Client, Nanny, Scheduler, SpecCluster

    dashboard = cluster_kwargs.pop("dashboard_address", ":0")
    workers = {
        f"gpu-{gpu}": {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "memory_limit": memory_limit,
                "env": {"CUDA_VISIBLE_DEVICES": gpu},
            },
        }
        for gpu in gpus
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard}}
    # distributed is unannotated: its constructors are untyped calls
    cluster = SpecCluster(workers=workers, scheduler=scheduler, **cluster_kwargs)  # type: ignore[no-untyped-call]
    logger.info("started %d GPU workers pinned to devices %s", len(gpus), gpus)
    return Client(cluster), cluster  # type: ignore[no-untyped-call]
