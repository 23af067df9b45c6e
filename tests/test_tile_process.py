"""tile_process behaviour beyond the central property: inputs, options, guarantees."""

from __future__ import annotations

import os
import threading
from collections import Counter
from unittest import mock

import dask.array as da
import fastremap
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from conftest import same_partition
from patchworks import estimate_empty_tiles, merge_tile_labels, tile_process
from patchworks._plan import TilePlan


def full_label(tile):
    return ndi.label(tile > 0, structure=np.ones((3,) * tile.ndim))[0]


@pytest.fixture
def volume(rng):
    return (ndi.gaussian_filter(rng.random((16, 40, 40)), 2) > 0.5).astype("uint8")


def expected_of(image):
    return ndi.label(image > 0, structure=np.ones((3,) * image.ndim))[0]


def test_plan_cores_partition_the_image():
    plan = TilePlan(shape=(10, 7, 3), tile_shape=(4, 3, 3), halo=(2, 5, 0))
    seen = np.zeros(plan.shape, dtype=int)
    for tile in plan.tiles():
        seen[tile.core] += 1
        halo = np.zeros(plan.shape, dtype=bool)
        halo[tile.halo_box] = True
        assert halo[tile.core].all()
        assert tile.halo_shape[0] <= 4 + 2 * 2
    assert (seen == 1).all()


def test_zarr_v2_and_v3_paths(volume):
    expected = expected_of(volume)
    for fmt in (2, 3):
        path = f"img_v{fmt}.zarr"
        zarr.create_array(path, data=volume, chunks=(8, 16, 16), zarr_format=fmt)
        result = tile_process(path, full_label, compute=True)  # tiles = storage chunks
        assert same_partition(result, expected)


def test_zarr_group_with_one_array_and_ome_levels(volume):
    group = zarr.open_group("ome.zarr", mode="w")
    group.create_array("0", data=volume, chunks=(8, 20, 20))
    group.create_array("1", data=volume[:, ::2, ::2], chunks=(8, 20, 20))
    group.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}, {"path": "1"}]}]
    assert tile_process("ome.zarr", full_label, compute=True).shape == (16, 40, 40)
    # an OME-Zarr input gets its labels written inside (labels/patchworks) unless told not to
    assert tile_process(
        "ome.zarr", full_label, level=1, compute=True, output_format="zarr"
    ).shape == (16, 20, 20)


def test_dask_numpy_zarr_inputs_agree(volume):
    expected = expected_of(volume)
    inputs = [
        volume,
        da.from_array(volume, chunks=(4, 10, 10)),
        zarr.create_array("a.zarr", data=volume, chunks=(5, 9, 11)),
    ]
    for image in inputs:
        result = tile_process(image, full_label, tile_shape=(6, 13, 13), overlap=3, compute=True)
        assert same_partition(result, expected)


def test_four_dimensional_image(rng):
    image = (ndi.gaussian_filter(rng.random((6, 7, 8, 9)), 1) > 0.5).astype("uint8")
    for connectivity in (1, 4):
        structure = ndi.generate_binary_structure(4, connectivity)
        result = tile_process(
            image,
            lambda t, s=structure: ndi.label(t, structure=s)[0],
            tile_shape=(2, 3, 4, 5),
            overlap=1,
            connectivity=connectivity,
            compute=True,
        )
        assert same_partition(result, ndi.label(image, structure=structure)[0])


def test_fn_runs_exactly_once_per_tile_and_sees_the_halo(volume):
    calls = Counter()
    lock = threading.Lock()

    def counting(tile):
        with lock:
            calls[tile.shape] += 1
        return full_label(tile)

    plan = TilePlan(shape=volume.shape, tile_shape=(8, 20, 20), halo=(2, 2, 2))
    tile_process(volume, counting, tile_shape=(8, 20, 20), overlap=2, write_to="o.zarr")
    assert sum(calls.values()) == plan.n_tiles == 8
    assert set(calls) == {t.halo_shape for t in plan.tiles()}


def test_scalar_overlap_adds_no_halo_on_single_plane_axes(volume):
    shapes = set()

    def record(tile):
        shapes.add(tile.shape)
        return full_label(tile)

    tile_process(volume, record, tile_shape=(1, 20, 20), overlap=20, compute=True)
    assert shapes == {(1, 40, 40)}


def test_channel_axis_gives_fn_all_channels(volume):
    image = np.stack([volume, 1 - volume], axis=-1)

    def first_channel(tile):
        assert tile.shape[-1] == 2
        return full_label(tile[..., 0])

    result = tile_process(
        image, first_channel, channel_axis=-1, tile_shape=(8, 16, 16), overlap=1, compute=True
    )
    assert same_partition(result, expected_of(volume))


def test_tiff_input(volume, tmp_path):
    import tifffile

    tifffile.imwrite("img.tif", volume)
    result = tile_process("img.tif", full_label, tile_shape=(4, 16, 16), compute=True)
    assert same_partition(result, expected_of(volume))


def test_skip_empty_does_not_call_fn_on_empty_tiles():
    image = np.zeros((32, 32), dtype="uint16")
    image[2:6, 2:6] = 500
    seen = []
    result = tile_process(
        image,
        lambda t: seen.append(1) or full_label(t > 100),
        tile_shape=(8, 8),
        skip_empty=True,
        empty_threshold=100,
        compute=True,
    )
    assert len(seen) == 1
    assert result.max() == 1 and (result > 0).sum() == 16
    info = estimate_empty_tiles(image, tile_shape=(8, 8), sample_size=100)
    assert info["n_tiles"] == 16 and info["n_sampled"] == 16
    assert info["n_empty"] == 15 and 0 < info["threshold"] < 500


def test_lazy_result_without_write_to_cleans_up(volume, tmp_path):
    result = tile_process(volume, full_label, tile_shape=(8, 16, 16), temp_dir=str(tmp_path))
    assert isinstance(result, da.Array)
    assert len(os.listdir(tmp_path)) == 1  # the staged labels back the lazy array
    assert same_partition(result.compute(), expected_of(volume))
    del result
    import gc

    gc.collect()
    assert os.listdir(tmp_path) == []


def test_write_to_output_is_complete_and_chunked_by_tile(volume):
    result = tile_process(
        volume, full_label, tile_shape=(8, 16, 16), write_to="out.zarr", sequential_labels=True
    )
    out = zarr.open_array("out.zarr")
    meta = out.attrs["patchworks"]
    assert meta["complete"] is True and meta["n_labels"] == int(result.max().compute())
    assert out.chunks == (8, 16, 16) and out.dtype == np.int32
    assert sorted(os.listdir(".")) == ["out.zarr"]  # no temporary data left


def test_progress_bars_only_when_asked(volume, capsys):
    tile_process(volume, full_label, tile_shape=(8, 20, 20), compute=True)
    assert capsys.readouterr().err == ""
    tile_process(volume, full_label, tile_shape=(8, 20, 20), compute=True, progress=True)
    err = capsys.readouterr().err
    assert "tiles" in err and "faces" in err


def test_tile_shape_none_on_numpy_and_auto(volume):
    for tile_shape in (None, "auto"):
        result = tile_process(volume, full_label, tile_shape=tile_shape, compute=True)
        assert same_partition(result, expected_of(volume))


def test_uint64_output_and_fn_returning_uint64(volume):
    def big_ids(tile):
        return full_label(tile).astype("uint64") * np.uint64(2**40)

    result = tile_process(volume, big_ids, tile_shape=(8, 16, 16), dtype="uint64", compute=True)
    assert result.dtype == np.uint64 and same_partition(result, expected_of(volume))


def test_merge_tile_labels_zarr_with_tile_shape_and_numpy(volume):
    staged = da.from_array(volume, chunks=(8, 20, 20)).map_blocks(full_label).compute()
    result = merge_tile_labels(staged, tile_shape=(8, 20, 20), compute=True)
    assert same_partition(result, expected_of(volume))
    zarr.create_array("s.zarr", data=staged, chunks=(4, 10, 10))
    result = merge_tile_labels("s.zarr", tile_shape=(8, 20, 20), write_to="m.zarr")
    assert same_partition(result.compute(), expected_of(volume))


@pytest.mark.parametrize("spread", [1, 10**12])
def test_merge_of_a_user_store_maps_its_labels_without_renumbering_twice(volume, spread):
    """The relabel stage maps a user's labels through the IDs kept at the scan (a table
    indexed by label, and no fastremap renumbering at all); labels too large for such a
    table are renumbered by fastremap at the scan and again, identically, at the relabel."""
    staged = da.from_array(volume, chunks=(8, 20, 20)).map_blocks(full_label).compute()
    staged = staged.astype("uint64") * np.uint64(spread)  # same partition, sparse IDs
    zarr.create_array("s.zarr", data=staged, chunks=(8, 20, 20))
    calls = Counter()
    real = fastremap.renumber

    def counting(*args, **kwargs):
        calls["renumber"] += 1
        return real(*args, **kwargs)

    with mock.patch("fastremap.renumber", counting):
        result = merge_tile_labels("s.zarr", write_to="m.zarr", sequential_labels=True)
    assert same_partition(result.compute(), expected_of(volume))
    occupied = sum(
        bool(staged[i : i + 8, j : j + 20, k : k + 20].any())
        for i in (0, 8)
        for j in (0, 20)
        for k in (0, 20)
    )
    assert calls["renumber"] == (0 if spread == 1 else 2 * occupied)
