"""The benchmark's own checks: the chunk-wise partition check, the overhead script and the
A/B script's plumbing."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import zarr
from scipy import ndimage as ndi

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))

import _check
import ab
import overhead


def test_partition_check_accepts_renaming_and_rejects_splits_and_merges(rng):
    image = ndi.gaussian_filter(rng.random((20, 30, 30)), 2) > 0.5
    reference = ndi.label(image)[0]
    ref = zarr.create_array("ref.zarr", data=reference, chunks=(8, 8, 8))
    renamed = np.where(reference > 0, reference * 7 + 1000, 0)
    assert _check.same_partition(ref, renamed, block=(8, 8, 8))[0]
    split = renamed.copy()
    obj = np.argwhere(reference == 1)
    split[tuple(obj[0])] = 5  # one voxel of object 1 renamed: object split
    ok, why = _check.same_partition(ref, split, block=(8, 8, 8))
    assert not ok and "split or merged" in why
    merged = np.where(reference > 0, 1, 0)
    assert not _check.same_partition(ref, merged, block=(8, 8, 8))[0]
    background = renamed.copy()
    background[reference == 0] = 3
    assert "background" in _check.same_partition(ref, background, block=(8, 8, 8))[1]


def test_overhead_script_reports_per_tile_overhead(capsys, tmp_path):
    overhead.main(["--tiles", "200", "--workdir", str(tmp_path / "w")])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tiles"] == 200
    assert result["overhead_ms_per_tile"] > 0


def test_ab_exports_a_revision_and_times_an_engine_with_it(tmp_path, rng):
    src = ab.export_src("HEAD", str(tmp_path))
    assert os.path.exists(os.path.join(src, "patchworks", "__init__.py"))
    image = str(tmp_path / "image.zarr")
    data = (rng.random((32, 32, 32)) * 800).astype("uint16")
    zarr.create_array(image, data=data, chunks=(16, 16, 16))
    args = {"image": image, "tile": [16] * 3, "workers": 2, "out": str(tmp_path / "out.zarr")}
    assert ab.run("ours", args, src) > 0
    assert not os.path.exists(args["out"])  # removed unless kept
    assert ab.run("floor", args, src, keep=True) > 0 and os.path.exists(args["out"])
