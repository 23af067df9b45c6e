"""Shared fixtures and helpers for the patchworks test suite."""

from __future__ import annotations

import numpy as np
import pytest

# Tests import the partition check from here: it is the one users get.
from patchworks.testing import same_partition

__all__ = ["same_partition"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder, so relative paths never leak into the repo."""
    monkeypatch.chdir(tmp_path)
