"""Label pyramid: downsampling keeps only existing IDs, chunk-wise equals whole-array."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zarr

from patchworks.io._pyramid import LevelJob, default_factors, downsample, downsample_chunk


def naive_mode(block: np.ndarray, factors) -> np.ndarray:
    """Most frequent label per block, ties to an object, then to first in block order."""
    out_shape = tuple(-(-n // f) for n, f in zip(block.shape, factors, strict=True))
    out = np.zeros(out_shape, dtype=block.dtype)
    padded = np.pad(
        block, [(0, -n % f) for n, f in zip(block.shape, factors, strict=True)], mode="edge"
    )
    for index in itertools.product(*(range(n) for n in out_shape)):
        region = padded[
            tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factors, strict=True))
        ]
        values = region.ravel().tolist()
        score = {v: values.count(v) - (0.5 if v == 0 else 0) for v in values}
        best = max(score.values())
        out[index] = next(v for v in values if score[v] == best)
    return out


@pytest.mark.parametrize(
    "shape, factors", [((7, 9), (2, 2)), ((3, 5, 6), (1, 2, 2)), ((4, 4, 5), (2, 2, 2))]
)
def test_mode_matches_naive_and_invents_nothing(rng, shape, factors):
    labels = rng.integers(0, 4, size=shape) * rng.integers(0, 2, size=shape)
    got = downsample(labels, factors, "mode")
    assert np.array_equal(got, naive_mode(labels, factors))
    assert set(np.unique(got)) <= set(np.unique(labels))
    nearest = downsample(labels, factors, "nearest")
    assert np.array_equal(nearest, labels[tuple(slice(None, None, f) for f in factors)])


def test_chunkwise_level_equals_whole_array(rng, tmp_path):
    labels = rng.integers(0, 50, size=(10, 37, 41)).astype("int32")
    source = zarr.create_array(str(tmp_path / "l0.zarr"), data=labels, chunks=(4, 16, 16))
    for method in ("mode", "nearest"):
        target = zarr.create_array(
            str(tmp_path / f"l1{method}.zarr"),
            shape=(10, 19, 21),
            chunks=(4, 8, 8),
            dtype="int32",
            fill_value=0,
        )
        job = LevelJob(source=source, target=target, factors=(1, 2, 2), method=method)
        for index in range(job.n_chunks):
            downsample_chunk(job, index)
        assert np.array_equal(target[...], downsample(labels, (1, 2, 2), method))


def test_default_factors_stop_near_256():
    assert default_factors((64, 2048, 1024), ("space",) * 3) == [(1, 2, 2)] * 3
    assert default_factors((100, 100), ("space",) * 2) == []
