"""``make_local_cluster``: a process-based dask cluster on this machine, GPU-aware."""

from __future__ import annotations

import logging
import os
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

    Examples
    --------
    >>> client, cluster = make_local_cluster(n_workers=1, dashboard_address=None)
    >>> len(client.scheduler_info()["workers"])
    1
    >>> client.close(); cluster.close()
    """
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
