"""stitch="iou": touching instances stay apart across seams, split instances join."""

from __future__ import annotations

import threading

import dask.array as da
import fastremap
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from conftest import same_partition
from patchworks import make_local_cluster, merge_tile_labels, suggest_overlap, tile_process
from patchworks.errors import InvalidParameterError, StitchingWarning, TileFunctionError
from patchworks.stitch._iou import match_labels


def exact_fn(tile):
    """A perfect instance segmenter: the image holds instance IDs; renumber them."""
    return fastremap.renumber(np.asarray(tile, dtype=np.int64), preserve_zero=True)[0]


def rim_fn(tile):
    """Like ``exact_fn`` but blind on the outermost voxel of whatever it is given."""
    labels = exact_fn(tile)
    inner = np.zeros(labels.shape, dtype=bool)
    inner[tuple(slice(1, -1) if n > 2 else slice(None) for n in labels.shape)] = True
    return np.where(inner, labels, 0)


def cells(shape, n_seeds, rng, background=0.15):
    """Densely packed touching cells: Voronoi regions of random seeds, with some gaps."""
    seeds = np.zeros(shape, dtype=np.int32)
    points = tuple(rng.integers(0, n, n_seeds) for n in shape)
    seeds[points] = np.arange(1, n_seeds + 1)
    _, nearest = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[tuple(nearest)]
    labels[rng.random(shape) < background] = 0
    # one object per connected piece, so the truth is well defined
    pieces = np.zeros(shape, dtype=np.int64)
    top = 0
    for value in np.unique(labels[labels > 0]):
        comp, n = ndi.label(labels == value, structure=np.ones((3,) * len(shape)))
        pieces[comp > 0] = comp[comp > 0] + top
        top += n
    return pieces


def n_objects(labels):
    return np.unique(labels[labels > 0]).size


def test_touching_pair_across_seam_stays_two_and_split_object_joins():
    truth = np.zeros((16, 16), dtype=np.int32)
    truth[2:6, 4:8] = 1
    truth[2:6, 8:12] = 2  # touches object 1 exactly at the seam between columns 7 and 8
    truth[9:14, 6:11] = 3  # crosses the seam
    touch = tile_process(truth, exact_fn, tile_shape=(8, 8), overlap=3, compute=True)
    iou = tile_process(truth, exact_fn, tile_shape=(8, 8), overlap=3, stitch="iou", compute=True)
    assert n_objects(touch) == 2  # touch merges the two distinct cells
    assert same_partition(iou, truth)


@pytest.mark.parametrize("ndim", [2, 3])
def test_objects_meeting_at_a_tile_corner(ndim):
    shape, seam = (12,) * ndim, 6
    truth = np.zeros(shape, dtype=np.int32)
    corners = np.indices((2,) * ndim).reshape(ndim, -1).T
    for value, corner in enumerate(corners, start=1):  # one cube per tile, meeting at the corner
        truth[tuple(slice(seam - 2, seam) if c == 0 else slice(seam, seam + 2) for c in corner)] = (
            value
        )
    blob = np.zeros(shape, dtype=np.int32)  # and one object centred on the corner
    blob[(slice(seam - 1, seam + 1),) * ndim] = 1
    for scene in (truth, blob):
        iou = tile_process(
            scene, exact_fn, tile_shape=(seam,) * ndim, overlap=2, stitch="iou", compute=True
        )
        assert same_partition(iou, scene)
    touch = tile_process(truth, exact_fn, tile_shape=(seam,) * ndim, overlap=2, compute=True)
    assert n_objects(touch) == 1 < n_objects(truth) == 2**ndim


@pytest.mark.parametrize(
    ("shape", "tile_shape", "overlap"),
    [((60, 70), (16, 20), 5), ((24, 30, 28), (10, 12, 9), (3, 4, 3))],
)
@pytest.mark.parametrize("fn", [exact_fn, rim_fn])
def test_dense_touching_cells_match_the_truth(shape, tile_shape, overlap, fn):
    rng = np.random.default_rng(3)
    truth = cells(shape, 60 if len(shape) == 2 else 80, rng)
    iou = tile_process(
        truth,
        fn,
        tile_shape=tile_shape,
        overlap=overlap,
        stitch="iou",
        sequential_labels=True,
        compute=True,
    )
    if fn is exact_fn:
        assert same_partition(iou, truth)
    else:  # the rim of the image itself is lost; everything else is exact
        inner = tuple(slice(1, -1) for _ in shape)
        assert same_partition(iou[inner], rim_fn(truth)[inner])
    assert np.array_equal(np.unique(iou), np.arange(n_objects(iou) + 1))
    with pytest.warns(StitchingWarning, match='stitch="iou"'):  # touching instances
        touch = tile_process(truth, fn, tile_shape=tile_shape, overlap=overlap, compute=True)
    assert n_objects(touch) < n_objects(truth)  # touching cells joined at the seams


@st.composite
def scenes(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 12 if ndim == 3 else 30)) for _ in range(ndim))
    tile_shape = tuple(draw(st.integers(1, n + 2)) for n in shape)
    overlap = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).integers(0, 4, shape)
    truth = np.zeros(shape, dtype=np.int64)
    for value in (1, 2, 3):  # touching objects: connected pieces of each value
        comp, _ = ndi.label(values == value, structure=np.ones((3,) * ndim))
        truth[comp > 0] = comp[comp > 0] + truth.max()
    return truth, tile_shape, overlap


@given(scenes())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_iou_with_a_perfect_segmenter_recovers_every_instance(scene):
    truth, tile_shape, overlap = scene
    result = tile_process(
        truth,
        exact_fn,
        tile_shape=tile_shape,
        overlap=overlap,
        stitch="iou",
        sequential_labels=True,
        compute=True,
    )
    assert same_partition(result, truth)
    assert result.max() == n_objects(truth)


def test_write_to_lazy_and_gappy_results_agree(tmp_path):
    truth = cells((40, 40), 30, np.random.default_rng(5))
    options = dict(tile_shape=(12, 12), overlap=4, stitch="iou")
    written = tile_process(truth, exact_fn, write_to=tmp_path / "out.zarr", compute=True, **options)
    lazy = tile_process(truth, exact_fn, **options)
    assert same_partition(written, truth)
    assert same_partition(np.asarray(lazy.compute()), truth)
    attrs = zarr.open_array(tmp_path / "out.zarr", mode="r").attrs
    assert attrs["patchworks"]["n_labels"] == n_objects(truth)
    assert attrs["patchworks"]["stitch"] == "iou"
    sequential = tile_process(
        truth,
        exact_fn,
        write_to=tmp_path / "seq.zarr",
        sequential_labels=True,
        compute=True,
        **options,
    )
    info = zarr.open_array(tmp_path / "seq.zarr", mode="r").attrs["patchworks"]
    assert info["n_labels"] == info["max_label"] == sequential.max() == n_objects(truth)


def test_one_plane_per_tile_stitches_planes_like_cellpose():
    truth2d = cells((30, 30), 12, np.random.default_rng(8), background=0.3)
    truth = np.repeat(truth2d[None], 6, axis=0)  # columns of cells through the stack
    result = tile_process(
        truth, exact_fn, tile_shape=(1, 15, 15), overlap=4, stitch="iou", compute=True
    )
    assert same_partition(result, truth)


def test_merge_tile_labels_on_a_users_overlapping_tiling():
    truth = cells((36, 44), 25, np.random.default_rng(11))
    image = da.from_array(truth, chunks=(12, 11))
    halo = da.overlap.overlap(image, depth=3, boundary="none")
    labeled = halo.map_blocks(exact_fn, dtype="int64")
    merged = merge_tile_labels(
        labeled, stitch="iou", overlap=3, sequential_labels=True, compute=True
    )
    assert same_partition(merged, truth)
    with pytest.raises(InvalidParameterError, match="blocks must be overlapping tiles"):
        merge_tile_labels(labeled, stitch="iou", overlap=2)
    with pytest.raises(InvalidParameterError, match='only stitch="iou" uses; got overlap=3'):
        merge_tile_labels(labeled, overlap=3)
    with pytest.raises(InvalidParameterError, match="needs `labeled` as a dask array"):
        merge_tile_labels(truth, stitch="iou", overlap=3, tile_shape=(12, 11))


def test_match_labels_is_one_to_one_best_first():
    a = np.array([1, 1, 1, 1, 2, 2, 0, 0])
    b = np.array([7, 7, 7, 8, 8, 8, 8, 0])
    # 1~7: IoU 3/4; 2~8: IoU 2/4; 1~8: IoU 1/7
    assert match_labels(a, b, 0.5).tolist() == [[1, 7], [2, 8]]
    assert match_labels(a, b, 0.6).tolist() == [[1, 7]]
    assert match_labels(a, np.zeros_like(b), 0.1).shape == (0, 2)


def test_suggest_overlap_and_auto():
    truth = cells((64, 64), 40, np.random.default_rng(2), background=0.0)
    suggested = suggest_overlap(truth, exact_fn)
    assert all(4 <= s <= 30 for s in suggested)
    result = tile_process(
        truth, exact_fn, tile_shape=(20, 20), overlap="auto", stitch="iou", compute=True
    )
    assert same_partition(result, truth)
    with pytest.raises(InvalidParameterError, match="`overlap` must be an integer, a tuple"):
        tile_process(truth, exact_fn, tile_shape=(20, 20), overlap="wide")


def test_iou_needs_an_overlap():
    truth = np.zeros((16, 16), dtype=np.int32)
    message = r'`stitch="iou"` needs `overlap` > 0 \(about one object diameter\)'
    with pytest.raises(InvalidParameterError, match=message + ".*got overlap=0"):
        tile_process(truth, exact_fn, tile_shape=(8, 8), stitch="iou", overlap=0)
    with pytest.raises(InvalidParameterError, match=r'overlap="auto" found no object'):
        tile_process(truth, exact_fn, tile_shape=(8, 8), stitch="iou")  # "auto" by default
    with pytest.raises(InvalidParameterError, match=message):
        merge_tile_labels(da.from_array(truth, chunks=8), stitch="iou")
    whole = tile_process(truth, exact_fn, tile_shape=(16, 16), stitch="iou", compute=True)
    assert not whole.any()  # one tile: nothing to stitch, no overlap needed


def packed_balls(shape, n, radii, rng, squeeze=0.8):
    """Image of touching balls of varied size (centres >= squeeze * (r1 + r2) apart)."""
    centres, radius = [], []
    for _ in range(n * 40):
        c, r = rng.uniform(0, shape), rng.uniform(*radii)
        near = zip(centres, radius, strict=True)
        if all(np.linalg.norm(c - c2) >= squeeze * (r + r2) for c2, r2 in near):
            centres.append(c)
            radius.append(r)
        if len(radius) == n:
            break
    grid = np.indices(shape)
    image = np.zeros(shape, dtype=np.float32)
    for c, r in zip(centres, radius, strict=True):
        d2 = sum((g - x) ** 2 for g, x in zip(grid, c, strict=True))
        image[d2 <= r * r] = 1
    return image


def watershed_fn(tile):
    """A realistic instance segmenter that sees only its tile: distance-transform watershed."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    foreground = tile > 0.5
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(foreground), 1.0)
    peaks = peak_local_max(distance, min_distance=3, labels=foreground, exclude_border=False)
    markers = np.zeros(tile.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-distance, markers, mask=foreground)


def agreement(a, b):
    """Fraction of objects of ``a`` matched by an object of ``b`` with IoU > 0.5."""
    pairs, inter = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_counts=True)
    keep = (pairs[0] > 0) & (pairs[1] > 0)
    pairs, inter = pairs[:, keep], inter[keep]
    size_a = np.bincount(a.ravel())[pairs[0]]
    size_b = np.bincount(b.ravel())[pairs[1]]
    return ((inter / (size_a + size_b - inter)) > 0.5).sum() / n_objects(a)


def test_watershed_tiles_stitched_by_iou_agree_with_the_untiled_run():
    image = packed_balls((48, 96, 96), 260, (4, 8), np.random.default_rng(0))
    untiled = watershed_fn(image)
    options = dict(tile_shape=(24, 48, 48), overlap=16, compute=True)
    iou = tile_process(image, watershed_fn, stitch="iou", **options)
    with pytest.warns(StitchingWarning, match="touching face to face"):
        touch = tile_process(image, watershed_fn, stitch="touch", **options)
    assert agreement(untiled, iou) > 0.99 and agreement(iou, untiled) > 0.99
    assert agreement(untiled, touch) < 0.9


CALLS = {"n": 0, "fail_after": None}
CALLS_LOCK = threading.Lock()


def flaky_exact_fn(tile):
    """``exact_fn`` that counts its calls and fails after ``CALLS["fail_after"]`` of them."""
    with CALLS_LOCK:
        CALLS["n"] += 1
        if CALLS["fail_after"] is not None and CALLS["n"] > CALLS["fail_after"]:
            raise RuntimeError("simulated crash")
    return exact_fn(tile)


def test_resume_keeps_the_halo_predictions_of_finished_tiles():
    truth = cells((40, 40), 30, np.random.default_rng(6))
    options = dict(
        tile_shape=(10, 10),
        overlap=3,
        stitch="iou",
        write_to="out.zarr",
        resume=True,
        sequential_labels=True,
    )
    CALLS.update(n=0, fail_after=6)
    with pytest.raises(TileFunctionError, match="simulated crash"):
        tile_process(truth, flaky_exact_fn, **options)
    CALLS.update(n=0, fail_after=None)
    result = tile_process(truth, flaky_exact_fn, compute=True, **options)
    assert CALLS["n"] < 16  # finished tiles were not run again
    assert same_partition(result, truth)


def test_iou_on_a_process_cluster():
    truth = cells((40, 48), 30, np.random.default_rng(9))
    client, cluster = make_local_cluster(n_workers=2, dashboard_address=None)
    try:
        result = tile_process(
            truth,
            exact_fn,
            tile_shape=(16, 16),
            overlap=4,
            stitch="iou",
            sequential_labels=True,
            write_to="out.zarr",
            compute=True,
        )
    finally:
        client.close()
        cluster.close()
    assert same_partition(result, truth)
