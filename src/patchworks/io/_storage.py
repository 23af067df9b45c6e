"""Open zarr stores by local path or fsspec URL (``http://``, ``s3://``, ``memory://``...).

zarr builds an ``FsspecStore`` for any URL with a protocol; this module adds what users
need around it: stores are opened read-only, a missing fsspec backend (``aiohttp`` for
HTTP) is reported with the ``pip install`` line, and a remote path that holds nothing
is reported as not found.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from patchworks.errors import missing_dependency

#: URL protocols and the package fsspec needs for each (beyond fsspec itself).
BACKENDS = {"http": "aiohttp", "https": "aiohttp", "s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}

#: File-like modes zarr accepts (``zarr.open``'s ``mode``).
AccessMode = Literal["r", "r+", "a", "w", "w-"]


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL with a protocol other than ``file://``.

    Examples
    --------
    >>> is_url("https://example.org/image.zarr"), is_url("image.zarr")
    (True, False)
    """
    return "://" in path and not path.startswith("file://")


def protocol(path: str) -> str:
    return path.split("://", 1)[0].lower() if "://" in path else "file"


def open_zarr(path: str, *, mode: AccessMode = "r") -> Any:
    """Open the zarr array or group at ``path`` (a local path or an fsspec URL)."""
    import zarr

    if is_url(path):
        for package in ("fsspec", BACKENDS.get(protocol(path))):
            if package and importlib.util.find_spec(package) is None:
                raise missing_dependency(package, "remote", f"Reading {protocol(path)}:// URLs")
    try:
        return zarr.open(path, mode=mode)
    except FileNotFoundError:
        raise
    except Exception as exc:
        if is_url(path) and _looks_missing(exc):
            raise FileNotFoundError(path) from exc
        raise


def _looks_missing(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("not found", "404", "nosuchkey", "no such"))
