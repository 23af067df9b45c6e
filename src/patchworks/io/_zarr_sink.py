"""Plain zarr output (:class:`ZarrSink`): refuse to clobber, build in private, publish only
when complete.

A run builds its labels inside a private scratch directory next to ``write_to`` and moves
the finished array into place with a rename only after the last write, with
``attrs["patchworks"]["complete"] = True``. A crash therefore never leaves something at
``write_to`` that looks like a finished output, and an existing ``write_to`` is replaced
only with ``overwrite=True`` and only once the new result is complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from patchworks._fs import fsync_dir, remove_tree
from patchworks.errors import InvalidParameterError, OutputExistsError, OutputNotWritableError

METADATA_KEY = "patchworks"


def check_write_to(write_to: Any, *, overwrite: bool, image: Any = None) -> str | None:
    """Validate ``write_to`` before any work starts; return it as a path (or None)."""
    if write_to is None:
        return None
    if not isinstance(write_to, str | os.PathLike):
        raise InvalidParameterError(
            f"`write_to` must be a filesystem path (str or os.PathLike), a patchworks.io.Sink "
            f"or None; got an object of type {type(write_to).__name__}."
        )
    path = os.fspath(write_to)
    if not path.strip():
        raise InvalidParameterError(
            f"`write_to` must be a path to the output (or None to return the labels); got {path!r}."
        )
    if "://" in path:
        raise InvalidParameterError(
            f"`write_to` must be a local filesystem path (remote outputs are written by "
            f"staging to a shared filesystem); got {path!r}."
        )
    if isinstance(image, str | os.PathLike) and os.path.abspath(os.fspath(image)) == (
        os.path.abspath(path)
    ):
        raise InvalidParameterError(
            f"`write_to` must differ from the input image path; got {path!r} for both."
        )
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(
            f"`write_to` {path!r} already exists; pass overwrite=True to replace it (only "
            "once the new result is complete) or choose another path."
        )
    check_writable(path)
    return path


def check_writable(path: str) -> None:
    """Raise :class:`~patchworks.errors.OutputNotWritableError` unless a file can be
    created in the folder of ``path`` (or in the nearest folder above it that exists, where
    the missing ones will be made): a probe file is written and removed."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        if os.path.exists(folder):
            raise OutputNotWritableError(
                f"`write_to` {path!r} cannot be written: {folder!r} is a file, not a folder; "
                "choose another path."
            )
        folder = os.path.dirname(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".patchworks-probe-", dir=folder)
    except OSError as exc:
        raise OutputNotWritableError(
            f"`write_to` {path!r} cannot be written: no file can be created in {folder!r} "
            f"({type(exc).__name__}: {exc.strerror or exc}); choose a folder you can write "
            "to, or fix its permissions."
        ) from exc
    os.close(fd)
    os.remove(probe)


def is_complete(array: Any) -> bool:
    """Whether a zarr array was fully written by patchworks."""
    return bool(dict(array.attrs).get(METADATA_KEY, {}).get("complete", False))


def mark_complete(array: Any, info: dict[str, Any]) -> None:
    """Record run information and flag the array complete (its last write)."""
    array.attrs[METADATA_KEY] = {**info, "complete": True}


def open_result(write_to: str, *, compute: bool) -> Any:
    """The published output as a lazy dask array, or as NumPy with ``compute``.

    Opened as a zarr array first and given a fresh name: ``da.from_zarr`` on a path sets
    up an fsspec mapper and hashes the array to name it, tens of milliseconds that every
    call paid for nothing (the output was just written; no graph shares it).
    """
    import uuid

    import dask.array as da
    import numpy as np
    import zarr

    array = zarr.open_array(os.path.abspath(write_to), mode="r")  # workers may run elsewhere
    result = da.from_zarr(array, name=f"patchworks-{uuid.uuid4().hex}")  # type: ignore[no-untyped-call]  # dask: unannotated
    return np.asarray(result.compute()) if compute else result


def publish(built: str, write_to: str, scratch: str) -> None:
    """Move the finished array ``built`` to ``write_to``, replacing an old one last."""
    if os.path.exists(write_to):
        retired = os.path.join(scratch, "replaced-output")
        os.replace(write_to, retired)
        try:
            os.replace(built, write_to)
        except BaseException:
            os.replace(retired, write_to)
            raise
        remove_tree(retired)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(write_to)), exist_ok=True)
        os.replace(built, write_to)
    fsync_dir(os.path.dirname(os.path.abspath(write_to)))  # the rename survives a power cut


@dataclass(frozen=True)
class ZarrSink:
    """A plain zarr array of labels at ``path`` (chunks = tiles, zstd, no pyramid).

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from patchworks import tile_process
    >>> out = os.path.join(tempfile.mkdtemp(), "labels.zarr")
    >>> labels = tile_process(np.eye(4, dtype="uint8"), lambda t: t.astype("int32"),
    ...                       tile_shape=(2, 2), write_to=ZarrSink(out))
    >>> labels.shape
    (4, 4)
    """

    path: str | os.PathLike[str]

    def open(
        self, image: Any, source: Any, *, dtype: Any, overwrite: bool, resume: bool
    ) -> ZarrOutput:
        path = check_write_to(self.path, overwrite=overwrite or resume, image=image)
        assert path is not None
        return ZarrOutput(target=path)


@dataclass(frozen=True)
class ZarrOutput:
    """The opened :class:`ZarrSink`: the published array is the whole output."""

    target: str

    def finish(self, executor: Any, plan: Any, result: Any, *, compute: bool) -> Any:
        return result

    def abort(self, *, keep: bool) -> None:
        return None
