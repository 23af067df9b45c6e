"""The run directory of an output: one writer at a time, and where an output stands.

Every run that writes ``write_to`` owns the private directory
``.<name>.patchworks-run/`` next to it, locked with ``fcntl.flock`` for the whole run, so a
second run on the same output refuses at once (:class:`~patchworks.errors.OutputLockedError`)
while runs on other outputs in the same folder never meet. The lock dies with its process,
so a killed run never blocks the next one. What the directory holds is
:mod:`patchworks._store.resume`'s.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from patchworks.errors import OutputLockedError
from patchworks.io._ome_sink import level0_path_for
from patchworks.io._zarr_sink import is_complete

logger = logging.getLogger(__name__)

RUN_SUFFIX = ".patchworks-run"


def run_dir_for(write_to: str) -> str:
    """The private run directory of ``write_to``.

    Examples
    --------
    >>> run_dir_for("/data/labels.zarr")
    '/data/.labels.zarr.patchworks-run'
    """
    path = os.path.abspath(write_to)
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{RUN_SUFFIX}")


def lock_run_dir(run_dir: str) -> int | None:
    """Create and lock ``run_dir``; the descriptor holds the lock (None: no locking)."""
    import fcntl

    for _ in range(100):
        os.makedirs(run_dir, exist_ok=True)
        fd = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(
                f"another patchworks run is writing the same `write_to` right now (it holds "
                f"the lock on {run_dir!r}); wait for it to finish or choose another path."
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            logger.warning("cannot lock %s (%s); concurrent runs are not detected", run_dir, exc)
            os.close(fd)
            return None
        try:  # the directory may have been removed by the run that held it before us
            if os.stat(run_dir).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OutputLockedError(f"could not lock {run_dir!r}: it keeps disappearing.")


def output_status(write_to: Any) -> str:
    """Where the output ``write_to`` of :func:`~patchworks.tile_process` stands.

    Returns
    -------
    status : str
        ``"complete"``: ``write_to`` holds a finished result (patchworks moves an output
        into place only after its last write). ``"running"``: a run is writing it now.
        ``"interrupted"``: a run stopped before the end; with ``resume=True`` the same
        call finishes it. ``"incomplete"``: something is at ``write_to`` that patchworks
        did not mark complete. ``"missing"``: nothing is there.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "labels.zarr")
    >>> output_status(out)
    'missing'
    >>> from patchworks import tile_process
    >>> _ = tile_process(np.eye(4, dtype="uint8"), lambda t: t.astype("int32"),
    ...                  tile_shape=(2, 2), write_to=out)
    >>> output_status(out)
    'complete'
    >>> import shutil; shutil.rmtree(os.path.dirname(out))
    """
    import fcntl

    path = os.fspath(write_to)
    # A plain output's run directory is beside it; an OME-Zarr label image's is beside
    # the hidden level-0 array its run publishes first.
    run_dirs = [
        d for d in (run_dir_for(path), run_dir_for(level0_path_for(path))) if os.path.isdir(d)
    ]
    for run_dir in run_dirs:
        fd = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "running"
        except OSError:
            pass
        finally:
            os.close(fd)
    if run_dirs and not os.path.exists(path):
        return "interrupted"
    if not os.path.exists(path):
        return "missing"
    try:
        import zarr

        node = zarr.open(path, mode="r")
    except Exception:
        return "incomplete"
    attrs: dict[str, Any] = dict(node.attrs)
    if is_complete(node) or (
        not isinstance(node, zarr.Array) and "multiscales" in attrs.get("ome", attrs)
    ):
        return "complete"
    return "incomplete"
