"""Every ```python block of the README and docs/ runs (in order, one namespace per page).

Each block runs in a fresh folder holding a small ``image.zarr`` and a
``my_staged_labels.zarr``, with ``fn`` and ``my_segment_fn`` defined as the README leaves
them to the reader. Blocks that need Cellpose or StarDist model weights (not available
offline) are covered by the plugin tests instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import zarr

from patchworks.datasets import THRESHOLD, write_blobs_zarr

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
NEEDS_WEIGHTS = ("cellpose", "stardist", "StarDist")


def fn(tile):
    from skimage.measure import label

    return label(tile > THRESHOLD).astype("int32")


my_segment_fn = fn


def _prepare(folder: Path) -> None:
    write_blobs_zarr(str(folder / "image.zarr"), (4, 64, 64), chunks=(2, 32, 32), radius=5)
    import dask.array as da

    staged = da.from_zarr(str(folder / "image.zarr")).map_blocks(fn, dtype="int32").compute()
    group = zarr.open_group(str(folder / "my_staged_labels.zarr"), mode="w")
    group.create_array("raw_labels", data=staged, chunks=(2, 32, 32))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the GPU cluster example, on a CPU
    namespace = {"fn": fn, "my_segment_fn": my_segment_fn, "__name__": "__docs__"}
    for k, code in enumerate(blocks):
        if any(word in code for word in NEEDS_WEIGHTS):
            continue
        folder = tmp_path / f"block{k}"
        folder.mkdir()
        _prepare(folder)
        os.chdir(folder)
        exec(compile(code, f"{page.name}[block {k}]", "exec"), namespace)
