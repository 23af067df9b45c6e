"""Remote stores through fsspec URLs: a local HTTP server and the in-memory filesystem."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from conftest import same_partition
from ngff import write_ome_image
from patchworks import tile_process
from patchworks._tools.info import describe
from patchworks.datasets import THRESHOLD, blobs
from patchworks.errors import ImageNotFoundError

FULL = np.ones((3, 3, 3), dtype=bool)


def fn(tile):
    return ndi.label(tile > THRESHOLD, structure=np.ones((3,) * tile.ndim))[0].astype("int32")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path over HTTP on 127.0.0.1 (a random free port) for one test."""
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_over_http(http_root, version):
    image = np.stack([blobs((8, 48, 48), radius=4, seed=s) for s in (4, 5)])
    write_ome_image("img.zarr", image, axes="czyx", version=version, chunks=(1, 4, 24, 24))
    url = f"{http_root}/img.zarr"
    labels = tile_process(url, fn, channel=0, overlap=1, compute=True)
    assert same_partition(labels, ndi.label(image[0] > THRESHOLD, structure=FULL)[0])
    assert describe(url, channel=1)["n_tiles"] == 8
    with pytest.raises(ImageNotFoundError, match=r"`image` path does not exist: 'http://"):
        tile_process(f"{http_root}/missing.zarr", fn)


def test_memory_filesystem():
    image = blobs((6, 40, 40), radius=4, seed=6)
    zarr.create_array("memory://patchworks-test/plain.zarr", data=image, chunks=(3, 20, 20))
    labels = tile_process("memory://patchworks-test/plain.zarr", fn, compute=True)
    assert same_partition(labels, ndi.label(image > THRESHOLD, structure=FULL)[0])


def test_missing_http_backend_names_the_extra(monkeypatch):
    import importlib.util

    from patchworks.errors import MissingDependencyError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "aiohttp" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match=r'pip install "patchworks\[remote\]"'):
        tile_process("https://example.invalid/img.zarr", fn)
