"""Durable file operations: what is on disk after a crash is either old or new, never torn.

A SIGKILL never loses data the kernel already accepted (``write`` returned), but a machine
crash or power loss can lose anything not yet flushed. The resume state therefore follows
three rules: write a whole file under a temporary name, flush it (``fsync``) and rename it
into place (:func:`atomic_write_bytes`); flush the directory after creating, renaming or
deleting entries in it (:func:`fsync_dir`); flush a tile's staged chunk files before
recording the tile as finished (:func:`fsync_paths`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable


def fsync_dir(path: str) -> None:
    """Flush a directory's entries (new, renamed or deleted files) to disk.

    Filesystems that cannot open or flush a directory (some network filesystems) are
    skipped silently: there the rename itself is the durable step.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> bool:
    """Flush one file's data to disk; False when the file does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def fsync_paths(paths: Iterable[str]) -> None:
    """Flush files (those that exist) and then each of their directories once."""
    folders = set()
    for path in paths:
        fsync_file(path)
        folders.add(os.path.dirname(path) or ".")
    for folder in sorted(folders):
        fsync_dir(folder)


def fsync_tree(root: str) -> None:
    """Flush every file and directory below ``root`` (a finished zarr store)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write_bytes(os.path.join(folder, "state.json"), b"{}")
    >>> open(os.path.join(folder, "state.json"), "rb").read(), os.listdir(folder)
    (b'{}', ['state.json'])
    >>> import shutil; shutil.rmtree(folder)
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def durable_replace(src: str, dst: str) -> None:
    """``os.replace`` followed by flushing both parent directories."""
    os.replace(src, dst)
    fsync_dir(os.path.dirname(os.path.abspath(dst)))
    src_folder = os.path.dirname(os.path.abspath(src))
    if src_folder != os.path.dirname(os.path.abspath(dst)):
        fsync_dir(src_folder)


def remove_tree(path: str | None) -> None:
    """Delete a directory tree if it exists (temporary data, or an output we created)."""
    if path and os.path.exists(path):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
