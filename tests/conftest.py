"""Shared fixtures and helpers for the patchworks test suite."""

from __future__ import annotations

import numpy as np
import pytest


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images are equal up to renaming IDs (background must match)."""
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    if a.shape != b.shape or not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == np.unique(a).size == np.unique(b).size


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder, so relative paths never leak into the repo."""
    monkeypatch.chdir(tmp_path)
