"""Before ``fn`` runs anywhere: every worker proves it sees the run's storage and can load
``fn``.

On a cluster whose workers run on other machines, a folder on the client's own disk (the
default scratch under ``/tmp``, a ``write_to`` on a laptop) does not exist for the workers;
zarr and the chunk writers would create it in each worker's private ``/tmp`` and the tiles
would land where no other stage looks. So before the tile stage ships anything to the
workers, the client writes a probe file in each location the workers will use, and every
worker (``Client.run``, once per worker, outside the task queue) checks, without creating
any folder, that the location exists, reads the client's probe, and writes a probe of its
own, which the client then reads. The same call unpickles ``fn`` on every worker and on the
scheduler (which unpickles the tasks too): a module missing there is named, with the fix,
instead of dask's ``FutureCancelledError: ... lost dependencies``.

Without a distributed client (local threads) every task runs in this process: nothing to
check. Workers that join the cluster after the check are not checked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from patchworks._store.accounting import SHARED_STORAGE_FIX
from patchworks.errors import ClusterConfigurationError, StorageNotSharedError

PROBE_PREFIX = ".patchworks-probe-"


@dataclass(frozen=True)
class Location:
    """A folder the workers will use: ``name`` (for messages) and ``path``; ``write``:
    the workers write there (else they only read, e.g. the input image)."""

    name: str
    path: str
    write: bool = True


def _probe_name(token: str, who: str) -> str:
    return f"{PROBE_PREFIX}{token}-{who}"


def worker_probe(
    locations: Sequence[Location], token: str, fn_bytes: bytes | None
) -> dict[str, Any]:
    """On a worker: check each location without creating anything but one probe file;
    load ``fn``. Returns what went wrong (``problems``), the probes written and the host."""
    who = uuid.uuid4().hex
    problems: list[str] = []
    written: list[str] = []
    for loc in locations:
        if not loc.write:
            if not os.path.exists(loc.path):
                relative = (
                    ""
                    if os.path.isabs(loc.path)
                    else f" (from {os.getcwd()!r}; give an absolute path)"
                )
                problems.append(f"{loc.name} {loc.path!r} does not exist there{relative}")
            continue
        if not os.path.isdir(loc.path):
            problems.append(f"{loc.name} {loc.path!r} does not exist there")
            continue
        try:
            with open(os.path.join(loc.path, _probe_name(token, "client")), "rb") as f:
                seen = f.read()
        except OSError as exc:
            seen = f"({type(exc).__name__})".encode()
        if seen != token.encode():
            problems.append(
                f"{loc.name} {loc.path!r} exists there but is not the client's folder of that "
                "name (the client's probe file is not in it)"
            )
            continue
        probe = os.path.join(loc.path, _probe_name(token, who))
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, who.encode())
            os.close(fd)
            written.append(probe)
        except OSError as exc:
            problems.append(f"{loc.name} {loc.path!r} cannot be written there ({exc.strerror})")
    return {
        "problems": problems,
        "written": written,
        "who": who,
        "host": socket.gethostname(),
        "fn": load_check(fn_bytes),
    }


def load_check(fn_bytes: bytes | None) -> str | None:
    """Unpickle ``fn`` here; None when it loads, else what is missing (``module:name``)."""
    if fn_bytes is None:
        return None
    import cloudpickle

    try:
        cloudpickle.loads(fn_bytes)
    except ImportError as exc:
        return f"module:{exc.name or exc}"
    except Exception as exc:
        return f"error:{type(exc).__name__}: {exc}"
    return None


def _fn_fix(fn: Any, missing: str, where: str) -> str:
    """The message for ``fn`` that cannot be loaded ``where``."""
    kind, _, what = missing.partition(":")
    if kind != "module":
        return f"`fn` cannot be loaded on {where} ({what})."
    module = sys.modules.get(what.split(".")[0])
    source = getattr(module, "__file__", None)
    upload = f"client.upload_file({source!r})" if source else "client.upload_file('<file>.py')"
    return (
        f"`fn` cannot be loaded on {where}: No module named {what!r} there. Install {what!r} "
        f"in the environment of the scheduler and every worker (the same as the client's), "
        f"or send a single-file module with `{upload}` before the run."
    )


def preflight(
    client: Any,
    locations: Sequence[Location],
    fn: Callable[..., Any] | None = None,
) -> None:
    """Raise :class:`~patchworks.errors.StorageNotSharedError` (or
    :class:`~patchworks.errors.ClusterConfigurationError` for ``fn``) unless every worker
    of ``client`` sees ``locations`` as the client does and can load ``fn``."""
    if client is None:
        return
    # A folder the client does not have yet (made later, by the client) is not checked.
    locations = [loc for loc in locations if not loc.write or os.path.isdir(loc.path)]
    token = uuid.uuid4().hex
    mine = []
    try:
        for loc in locations:
            if loc.write:
                path = os.path.join(loc.path, _probe_name(token, "client"))
                with open(path, "wb") as f:
                    f.write(token.encode())
                mine.append(path)
        fn_bytes = None
        if fn is not None:
            import cloudpickle

            fn_bytes = cloudpickle.dumps(fn)
        _check_scheduler(client, fn, fn_bytes)
        reports = _run_on_workers(client, list(locations), token, fn_bytes)
        _check_reports(reports, locations, fn)
    finally:
        for path in mine:
            with contextlib.suppress(OSError):
                os.remove(path)
        for loc in locations:  # the workers' probes (also those of a failed check)
            if loc.write and os.path.isdir(loc.path):
                for name in os.listdir(loc.path):
                    if name.startswith(_probe_name(token, "")):
                        with contextlib.suppress(OSError):
                            os.remove(os.path.join(loc.path, name))


def _check_scheduler(client: Any, fn: Any, fn_bytes: bytes | None) -> None:
    if fn_bytes is None:
        return
    try:
        missing = client.run_on_scheduler(load_check, fn_bytes)
    except ImportError as exc:  # patchworks itself is missing there
        raise ClusterConfigurationError(
            f"the dask scheduler cannot import {exc.name or 'patchworks'!r} ({exc}); install "
            "patchworks (and `fn`'s modules) in the scheduler's environment."
        ) from exc
    if missing is not None:
        raise ClusterConfigurationError(_fn_fix(fn, missing, "the dask scheduler"))


def _run_on_workers(
    client: Any, locations: list[Location], token: str, fn_bytes: bytes | None
) -> dict[str, Any]:
    reports: dict[str, Any] = client.run(
        worker_probe, locations, token, fn_bytes, on_error="return"
    )
    for address, report in reports.items():
        if isinstance(report, BaseException):
            name = getattr(report, "name", None) if isinstance(report, ImportError) else None
            hint = (
                f"install patchworks (the client's version) on every worker; {name!r} is missing"
                if name
                else "check the worker's log"
            )
            raise ClusterConfigurationError(
                f"the storage check could not run on the dask worker {address} "
                f"({type(report).__name__}: {report}); {hint}."
            ) from report
    return reports


def _check_reports(reports: dict[str, Any], locations: Sequence[Location], fn: Any) -> None:
    problems = []
    for address, report in sorted(reports.items()):
        for problem in report["problems"]:
            problems.append(f"worker {address} on host {report['host']}: {problem}")
        for probe in report["written"]:  # the client reads what each worker wrote
            try:
                with open(probe, "rb") as f:
                    ok = f.read() == report["who"].encode()
            except OSError:
                ok = False
            if not ok:
                folder = os.path.dirname(probe)
                problems.append(
                    f"worker {address} on host {report['host']}: a file it wrote in "
                    f"{folder!r} is not there for the client"
                )
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        raise StorageNotSharedError(
            f"not every dask worker sees the run's storage as the client does: {shown}. "
            f"{SHARED_STORAGE_FIX[0].upper()}{SHARED_STORAGE_FIX[1:]} (docs/storage.md)."
        )
    for address, report in sorted(reports.items()):
        if report["fn"] is not None:
            raise ClusterConfigurationError(_fn_fix(fn, report["fn"], f"the dask worker {address}"))
