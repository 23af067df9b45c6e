"""Every ```python block of the README and docs/ runs (in order, one namespace per page).

Each block runs in a fresh folder. For the README (the seed's examples) the folder holds a
small ``image.zarr`` and a ``my_staged_labels.zarr``, with ``fn`` and ``my_segment_fn``
defined as the README leaves them to the reader; the pages of docs/ get nothing: what a
block needs, it (or an earlier block of its page) makes. Blocks that need Cellpose or StarDist model weights (not available
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
    """The README's blocks are the seed's examples, which leave ``fn`` and the image to the
    reader; the pages of docs/ are self-contained: each block runs in an empty folder, with
    nothing defined but what the page's earlier blocks define, as a script would
    (``__name__ == "__main__"``)."""
    blocks = BLOCK.findall(page.read_text())
    if not blocks:
        pytest.skip(f"{page.name} has no python blocks")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the GPU cluster example, on a CPU
    readme = page.name == "README.md"
    namespace = (
        {"fn": fn, "my_segment_fn": my_segment_fn, "__name__": "__docs__"}
        if readme
        else {"__name__": "__main__"}
    )
    for k, code in enumerate(blocks):
        if any(word in code for word in NEEDS_WEIGHTS):
            continue
        folder = tmp_path / f"block{k}"
        folder.mkdir()
        if readme:
            _prepare(folder)
        os.chdir(folder)
        exec(compile(code, f"{page.name}[block {k}]", "exec"), namespace)


def test_readme_blocks_run_in_order_in_one_folder(tmp_path, monkeypatch):
    """A reader who runs the README's blocks one after the other in one folder: no block
    writes where an earlier one did (that would stop with OutputExistsError)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    _prepare(tmp_path)
    os.chdir(tmp_path)
    namespace = {"fn": fn, "my_segment_fn": my_segment_fn, "__name__": "__docs__"}
    for k, code in enumerate(BLOCK.findall((ROOT / "README.md").read_text())):
        if not any(word in code for word in NEEDS_WEIGHTS):
            exec(compile(code, f"README.md[block {k}]", "exec"), namespace)
