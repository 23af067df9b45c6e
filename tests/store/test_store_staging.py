"""patchworks._store.staging: the scratch folder and the staged local labels."""

from __future__ import annotations

import os
import pickle
import tempfile

import numpy as np
import pytest
import zarr

from patchworks._plan import TilePlan
from patchworks._store.facestore import FaceStore
from patchworks._store.staging import Staging, create_staging, scratch_dir
from patchworks.errors import InvalidParameterError

PLAN = TilePlan(shape=(6, 5), tile_shape=(4, 3), halo=(0, 0))  # grid (2, 2), edge tiles


def test_scratch_dir_under_temp_dir(tmp_path):
    scratch = scratch_dir(None, str(tmp_path))
    assert os.path.isdir(scratch)
    assert os.path.dirname(scratch) == str(tmp_path)
    name = os.path.basename(scratch)
    assert name.startswith("patchworks-") and name.endswith(".patchworks-tmp")


def test_scratch_dir_next_to_the_output_and_named_after_it(tmp_path):
    write_to = tmp_path / "out" / "labels.zarr"
    scratch = scratch_dir(str(write_to), None)
    assert os.path.dirname(scratch) == str(tmp_path / "out")  # the parent is created
    name = os.path.basename(scratch)
    assert name.startswith(".labels.zarr.") and name.endswith(".patchworks-tmp")


def test_scratch_dir_temp_dir_wins_over_the_output_folder(tmp_path):
    (tmp_path / "tmp").mkdir()
    scratch = scratch_dir(str(tmp_path / "out.zarr"), str(tmp_path / "tmp"))
    assert os.path.dirname(scratch) == str(tmp_path / "tmp")
    assert os.path.basename(scratch).startswith(".out.zarr.")


def test_scratch_dir_for_a_relative_output_is_in_the_current_folder(tmp_path):
    scratch = scratch_dir("out.zarr", None)  # tests run inside tmp_path
    assert os.path.dirname(scratch) == str(tmp_path)


def test_scratch_dir_defaults_to_the_system_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    scratch = scratch_dir(None, None)
    assert os.path.dirname(scratch) == str(tmp_path)


def test_scratch_dirs_are_unique_per_run(tmp_path):
    names = {scratch_dir(str(tmp_path / "out.zarr"), None) for _ in range(5)}
    assert len(names) == 5


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_scratch_dir_rejects_a_temp_dir_that_is_not_a_directory(tmp_path, kind):
    temp_dir = tmp_path / kind
    if kind == "file":
        temp_dir.write_bytes(b"")
    with pytest.raises(InvalidParameterError) as info:
        scratch_dir(None, str(temp_dir))
    assert str(info.value) == f"`temp_dir` must be an existing directory; got {str(temp_dir)!r}."
    assert isinstance(info.value, ValueError)


def test_create_staging_puts_labels_in_scratch_with_tile_chunks(tmp_path):
    staging = create_staging(
        PLAN, labels_path=None, labels_dtype=np.dtype("int32"), scratch=str(tmp_path)
    )
    assert isinstance(staging.faces, FaceStore)
    assert staging.faces.root == str(tmp_path / "faces") and os.path.isdir(staging.faces.root)
    assert os.path.isdir(tmp_path / "labels.zarr")
    assert staging.labels.shape == PLAN.shape
    assert staging.labels.chunks == PLAN.tile_shape
    assert staging.labels.dtype == np.dtype("int32")
    assert staging.tile_shape == PLAN.tile_shape and staging.scratch == str(tmp_path)
    assert staging.runs_allowed


def test_create_staging_at_the_output_path_with_attributes(tmp_path):
    out = str(tmp_path / "out.zarr")
    create_staging(
        PLAN,
        labels_path=out,
        labels_dtype=np.dtype("uint16"),
        scratch=str(tmp_path / "scratch"),
        labels_attributes={"run": "x"},
    )
    assert zarr.open_array(out).attrs["run"] == "x"
    assert not os.path.exists(tmp_path / "scratch" / "labels.zarr")


def test_create_staging_refuses_to_overwrite_existing_labels(tmp_path):
    out = str(tmp_path / "out.zarr")
    create_staging(PLAN, labels_path=out, labels_dtype=np.dtype("int32"), scratch=str(tmp_path))
    # the orchestrator checks `overwrite` before staging; here zarr's own error stands
    with pytest.raises(zarr.errors.ContainsArrayError):
        create_staging(PLAN, labels_path=out, labels_dtype=np.dtype("int32"), scratch=str(tmp_path))


def test_create_staging_without_labels(tmp_path):
    staging = create_staging(
        PLAN,
        labels_path=None,
        labels_dtype=np.dtype("int32"),
        scratch=str(tmp_path),
        stage_labels=False,
    )
    assert staging.labels is None and staging.labels_io is None
    assert not staging.runs_allowed
    assert os.listdir(tmp_path) == ["faces"]


def _local_labels(rng, core):
    shape = tuple(s.stop - s.start for s in core)
    return rng.integers(0, 4, size=shape).astype(np.uint8)


@pytest.mark.parametrize("index", range(PLAN.n_tiles))
def test_write_labels_voxels_read_back_per_tile(tmp_path, rng, index):
    staging = create_staging(
        PLAN, labels_path=None, labels_dtype=np.dtype("int32"), scratch=str(tmp_path)
    )
    tile = PLAN.tile(index)
    local = _local_labels(rng, tile.core)
    staging.write_labels(tile.position, tile.core, int(local.max()), voxels=local)
    np.testing.assert_array_equal(staging.labels_io.read_local(tile.position), local)


def test_write_labels_runs_read_back(tmp_path):
    staging = create_staging(
        PLAN, labels_path=None, labels_dtype=np.dtype("int32"), scratch=str(tmp_path)
    )
    tile = PLAN.tile(0)  # a full 4 x 3 tile: 12 voxels
    lengths, values = np.array([5, 4, 3]), np.array([1, 0, 2])
    staging.write_labels(tile.position, tile.core, 2, runs=(lengths, values))
    expected = np.repeat(values, lengths).reshape(4, 3)
    np.testing.assert_array_equal(staging.labels_io.read_local(tile.position), expected)


def test_write_labels_needs_voxels_without_runs(tmp_path):
    staging = create_staging(
        PLAN, labels_path=None, labels_dtype=np.dtype("int32"), scratch=str(tmp_path)
    )
    tile = PLAN.tile(0)
    with pytest.raises(ValueError, match="`voxels`"):
        staging.write_labels(tile.position, tile.core, 1)


def test_write_labels_through_zarr_when_chunks_are_not_the_tiles(tmp_path, rng):
    labels = zarr.create_array(
        str(tmp_path / "labels.zarr"), shape=PLAN.shape, chunks=(2, 2), dtype="int32", fill_value=0
    )
    faces = FaceStore.create(str(tmp_path / "faces"))
    staging = Staging(labels=labels, faces=faces, tile_shape=PLAN.tile_shape, scratch=str(tmp_path))
    assert staging.labels_io is None and not staging.runs_allowed
    tile = PLAN.tile(3)
    local = _local_labels(rng, tile.core)
    staging.write_labels(
        tile.position, tile.core, 3, runs=(np.array([6]), np.array([1])), voxels=local
    )
    np.testing.assert_array_equal(labels[tile.core], local)  # voxels win: runs need chunk access
    with pytest.raises(ValueError, match="`voxels`"):
        staging.write_labels(tile.position, tile.core, 1, runs=(np.array([6]), np.array([1])))


def test_staging_pickles_and_reopens_on_the_other_side(tmp_path, rng):
    staging = create_staging(
        PLAN, labels_path=None, labels_dtype=np.dtype("int32"), scratch=str(tmp_path)
    )
    assert staging.labels_io is not None  # cached on this side
    copy = pickle.loads(pickle.dumps(staging))
    tile = PLAN.tile(1)
    local = _local_labels(rng, tile.core)
    copy.write_labels(tile.position, tile.core, int(local.max()), voxels=local)
    np.testing.assert_array_equal(staging.labels_io.read_local(tile.position), local)
