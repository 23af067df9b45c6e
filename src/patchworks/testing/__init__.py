"""Helpers for testing pipelines built on patchworks.

:func:`assert_same_partition` and :func:`same_partition` compare two label images up to
renaming labels: the check to make against a whole-image reference such as
:func:`scipy.ndimage.label`. Hypothesis strategies for images and tilings live in
:mod:`patchworks.testing.strategies`, which needs the optional ``hypothesis`` package;
importing this package does not import it.

Examples
--------
>>> import numpy as np
>>> from patchworks.testing import assert_same_partition
>>> assert_same_partition(np.array([0, 5, 5, 9]), np.array([0, 1, 1, 2]))
"""

from patchworks.testing._partition import assert_same_partition, same_partition

__all__ = ["assert_same_partition", "same_partition"]
