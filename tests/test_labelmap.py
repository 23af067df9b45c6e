"""Label-map invariants: background stays 0, sequential has no gaps, pair order is irrelevant."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from patchworks._engine.faces import cross_offsets
from patchworks._engine.labelmap import build_label_map
from patchworks._engine.local import TAG_SHIFT


@st.composite
def tables(draw):
    counts = draw(st.lists(st.integers(0, 6), min_size=1, max_size=8))
    labelled = [(t, n) for t, n in enumerate(counts) if n]
    pairs = []
    if len(labelled) >= 2:
        for _ in range(draw(st.integers(0, 12))):
            (ta, na), (tb, nb) = draw(st.permutations(labelled))[:2]
            a = (ta << TAG_SHIFT) | draw(st.integers(1, na))
            b = (tb << TAG_SHIFT) | draw(st.integers(1, nb))
            pairs.append((a, b))
    return np.array(counts), np.array(pairs, dtype=np.int64).reshape(-1, 2)


def all_finals(label_map, counts):
    return [label_map.lut(t, int(n)) for t, n in enumerate(counts)]


@settings(max_examples=200, deadline=None)
@given(tables(), st.booleans(), st.randoms())
def test_label_map_invariants(table, sequential, random):
    counts, pairs = table
    m = build_label_map(counts, pairs, sequential=sequential)
    luts = all_finals(m, counts)
    assert all(lut[0] == 0 for lut in luts)
    finals = np.concatenate([lut[1:] for lut in luts]) if luts else np.empty(0)
    assert (finals > 0).all()
    assert np.unique(finals).size == m.n_labels
    assert finals.max(initial=0) == m.max_label
    if sequential:
        assert np.array_equal(np.unique(finals), np.arange(1, m.n_labels + 1))
    # Joined labels share a final label.
    for a, b in pairs:
        fa = luts[a >> TAG_SHIFT][a & 0xFFFFFFFF]
        fb = luts[b >> TAG_SHIFT][b & 0xFFFFFFFF]
        assert fa == fb
    # Pair order and direction do not matter; duplicates do not either.
    shuffled = pairs[::-1][:, ::-1] if pairs.size else pairs
    doubled = np.concatenate([shuffled, pairs]) if pairs.size else pairs
    m2 = build_label_map(counts, doubled, sequential=sequential)
    for lut, lut2 in zip(luts, all_finals(m2, counts), strict=True):
        assert np.array_equal(lut, lut2)
    del random


def test_label_map_stores_only_boundary_objects():
    counts = np.array([1000, 1000])
    pairs = np.array([[(1 << TAG_SHIFT) | 5, 7]])
    m = build_label_map(counts, pairs, sequential=True)
    assert m.boundary_ids.size == 2
    assert m.n_labels == 1999


def test_cross_offsets_match_scipy_structure():
    from scipy import ndimage as ndi

    for ndim in (1, 2, 3, 4):
        for connectivity in range(1, ndim + 1):
            structure = ndi.generate_binary_structure(ndim, connectivity)
            for axis in range(ndim):
                plane = np.take(structure, [2], axis=axis)  # neighbours one step along axis
                expected = {
                    tuple(int(i) - 1 for b, i in enumerate(idx) if b != axis)
                    for idx in zip(*np.nonzero(plane), strict=True)
                }
                assert set(cross_offsets(ndim, axis, connectivity)) == expected
