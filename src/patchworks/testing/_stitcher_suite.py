"""The stitcher conformance suite: :class:`StitcherTests` (see
:mod:`patchworks.testing.conformance`)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import patchworks
from patchworks.errors import InvalidParameterError, TileFunctionError
from patchworks.stitch import Stitcher, parse_stitcher
from patchworks.testing import assert_same_partition
from patchworks.testing._suite_helpers import (
    Components,
    Instances,
    Labels,
    Probe,
    Shipped,
    as_numpy,
    balls,
    cored,
    n_objects,
    noise,
    touching_cells,
    with_marker,
)

__all__ = ["StitcherTests"]


class StitcherTests:
    """The tests every :class:`patchworks.stitch.Stitcher` must pass.

    Subclass it in a test module, implement :meth:`make_stitcher` and set the class
    attributes to what the stitcher promises. Every stitcher must give globally unique
    IDs (objects far from seams come out as they are), keep background 0 where ``fn``
    says so, honour ``sequential_labels`` and ``dtype``, give the same labels lazily,
    computed and written, pickle (itself and what :meth:`~patchworks.stitch.Stitcher.begin`
    returns: both ship to workers) and resume an interrupted run.
    """

    #: The overlap the tests run with (a stitcher that matches predictions needs one).
    overlap: ClassVar[int] = 0
    #: Connectivity of the test's ``fn = label(tile > 0)`` (None: full): the one the
    #: stitcher is made for.
    connectivity: ClassVar[int | None] = None
    #: With ``fn = label(tile > 0)``, the result is the same partition as labelling the
    #: whole image at once, for any tiling and overlap.
    exact_for_components: ClassVar[bool] = False
    #: Objects well apart from each other come out whole and distinct when the overlap
    #: is at least their diameter, also where they cross seams and tile corners.
    joins_separated_objects: ClassVar[bool] = False
    #: Two instances pressed together at a seam stay two (and one crossing it is one).
    separates_touching_instances: ClassVar[bool] = False
    #: Works in ``merge_tile_labels`` (on a dask array whose blocks are the tiles, or the
    #: overlapping tiles of ``dask.array.overlap.overlap`` when it keeps halos).
    merges_user_tiles: ClassVar[bool] = True
    #: Refuses (InvalidParameterError, before any tile runs) to stitch without overlap.
    needs_overlap: ClassVar[bool] = False
    #: Tile side of the tests; their images are a few tiles wide.
    tile: ClassVar[int] = 12

    def make_stitcher(self) -> Stitcher:
        """A new stitcher to test."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_stitcher()")

    # helpers

    def _fn(self) -> Components:
        return Components(self.connectivity)

    def _reference(self, image: Labels) -> Labels:
        """``label(image > 0)`` over the whole image at once."""
        labels: Labels = self._fn()(image)
        return labels

    def _image(self, ndim: int = 2, seed: int = 0) -> Labels:
        shape = (3 * self.tile,) * 2 if ndim == 2 else (2 * self.tile,) * 3
        return noise(shape, seed=seed, density=0.4 if ndim == 2 else 0.25)

    def _run(
        self,
        image: Labels,
        fn: Any = None,
        *,
        tile_shape: tuple[int, ...] | None = None,
        stitch: Any = None,
        overlap: Any = None,
        compute: bool = True,
        **options: Any,
    ) -> Any:
        return patchworks.tile_process(
            image,
            fn if fn is not None else self._fn(),
            tile_shape=tile_shape or (self.tile,) * image.ndim,
            overlap=self.overlap if overlap is None else overlap,
            stitch=stitch if stitch is not None else self.make_stitcher(),
            compute=compute,
            **options,
        )

    # tests

    def test_is_a_stitcher(self) -> None:
        stitcher = self.make_stitcher()
        assert isinstance(stitcher, Stitcher)
        assert isinstance(stitcher.name, str) and stitcher.name
        assert isinstance(stitcher.keeps_halo, bool)
        assert parse_stitcher(stitcher) is stitcher  # stitch=<the object> is used as given

    def test_stitcher_is_picklable(self) -> None:
        stitcher = self.make_stitcher()
        copy = pickle.loads(pickle.dumps(stitcher))
        assert type(copy) is type(stitcher)
        assert (copy.name, copy.keeps_halo) == (stitcher.name, stitcher.keeps_halo)
        image = self._image()
        assert np.array_equal(self._run(image, stitch=copy), self._run(image, stitch=stitcher))

    def test_seams_are_picklable(self, tmp_path: Path) -> None:
        image = self._image()
        expected = self._run(image)
        shipped = Shipped(self.make_stitcher())
        assert np.array_equal(self._run(image, stitch=shipped), expected)
        written = self._run(image, stitch=shipped, write_to=tmp_path / "labels.zarr")
        assert np.array_equal(written, expected)
        assert len(shipped.begun) == 2

    def test_ids_are_unique_across_tiles(self) -> None:
        tile = max(self.tile, 2 * self.overlap + 10)
        truth = cored((3, 3), tile)
        result = self._run(truth, Instances(), tile_shape=(tile, tile))
        assert_same_partition(result, truth)
        sequential = self._run(truth, Instances(), tile_shape=(tile, tile), sequential_labels=True)
        assert np.array_equal(np.unique(sequential), np.arange(n_objects(truth) + 1))

    @pytest.mark.parametrize("ndim", [2, 3])
    def test_background_stays_background(self, ndim: int) -> None:
        image = self._image(ndim)
        result = self._run(image)
        assert np.array_equal(result == 0, image == 0)

    @pytest.mark.parametrize("mode", ["compute", "lazy", "write_to"])
    def test_sequential_labels(self, tmp_path: Path, mode: str) -> None:
        image = self._image()
        plain = self._run(image)
        options: dict[str, Any] = {"sequential_labels": True}
        if mode == "write_to":
            options["write_to"] = tmp_path / "labels.zarr"
        result = self._run(image, compute=mode != "lazy", **options)
        result = as_numpy(result) if mode == "lazy" else result
        assert np.array_equal(np.unique(result), np.arange(n_objects(plain) + 1))
        assert_same_partition(result, plain)  # renamed, nothing else

    @pytest.mark.parametrize("ndim", [2, 3])
    def test_lazy_computed_and_written_agree(self, tmp_path: Path, ndim: int) -> None:
        import zarr

        image = self._image(ndim)
        computed = self._run(image)
        assert isinstance(computed, np.ndarray)
        lazy = as_numpy(self._run(image, compute=False))
        path = tmp_path / "labels.zarr"
        written = self._run(image, write_to=path)
        lazily_written = as_numpy(self._run(image, write_to=tmp_path / "l.zarr", compute=False))
        for other in (lazy, written, lazily_written, zarr.open_array(path, mode="r")[...]):
            assert np.array_equal(other, computed)

    @pytest.mark.parametrize("dtype", ["uint16", "int64"])
    def test_dtype(self, tmp_path: Path, dtype: str) -> None:
        image = self._image()
        computed = self._run(image, dtype=dtype)
        lazy = self._run(image, dtype=dtype, compute=False)
        written = self._run(image, dtype=dtype, write_to=tmp_path / "labels.zarr")
        assert computed.dtype == lazy.dtype == written.dtype == np.dtype(dtype)
        assert as_numpy(lazy).dtype == np.dtype(dtype)
        assert_same_partition(computed, self._run(image))

    def test_empty_image(self) -> None:
        image = np.zeros((3 * self.tile,) * 2, dtype=np.uint8)
        assert not self._run(image).any()
        assert not self._run(image, sequential_labels=True).any()

    def test_one_tile(self) -> None:
        image = self._image()
        result = self._run(image, tile_shape=image.shape)
        assert_same_partition(result, self._reference(image))

    def test_name_is_recorded(self, tmp_path: Path) -> None:
        import zarr

        stitcher = self.make_stitcher()
        path = tmp_path / "labels.zarr"
        self._run(self._image(), stitch=stitcher, write_to=path)
        attrs: dict[str, Any] = dict(zarr.open_array(path, mode="r").attrs)
        info = attrs["patchworks"]
        assert info["stitch"] == stitcher.name and info["complete"] is True

    def test_merge_tile_labels(self, tmp_path: Path) -> None:
        if not self.merges_user_tiles:
            pytest.skip("the stitcher does not promise to work in merge_tile_labels")
        import dask.array

        da: Any = dask.array  # (dask is not annotated)
        stitcher = self.make_stitcher()
        image = self._image()
        tiles = (self.tile, self.tile + 1)  # the last tile along axis 1 is smaller
        blocks = da.from_array(image, chunks=tiles)
        overlap = self.overlap if stitcher.keeps_halo else 0
        if stitcher.keeps_halo:
            blocks = da.overlap.overlap(blocks, depth=overlap, boundary="none")
        labeled = blocks.map_blocks(self._fn(), dtype=np.int32)
        expected = self._run(image, stitch=stitcher, tile_shape=tiles, overlap=overlap)
        merged = patchworks.merge_tile_labels(
            labeled, stitch=stitcher, overlap=overlap, compute=True
        )
        assert_same_partition(merged, expected)
        written = patchworks.merge_tile_labels(
            labeled,
            stitch=stitcher,
            overlap=overlap,
            sequential_labels=True,
            write_to=tmp_path / "merged.zarr",
            compute=True,
        )
        assert_same_partition(written, expected)
        assert np.array_equal(np.unique(written), np.arange(n_objects(expected) + 1))

    def test_resume_after_a_failure(self, tmp_path: Path) -> None:
        path = tmp_path / "labels.zarr"
        image = with_marker(self._image())
        expected = self._run(image)
        probe = Probe(self._fn(), armed=[True])
        with pytest.raises(TileFunctionError):
            self._run(image, probe, write_to=path, resume=True)
        assert not os.path.exists(path)
        probe.armed.clear()
        ran = len(probe.calls)
        result = self._run(image, probe, write_to=path, resume=True)
        assert 0 < len(probe.calls) - ran < 9  # finished tiles (of 3x3) did not run again
        assert np.array_equal(result, expected)

    def test_needs_overlap(self) -> None:
        if not self.needs_overlap:
            pytest.skip("the stitcher does not promise to refuse overlap=0")
        probe = Probe(self._fn())
        with pytest.raises(InvalidParameterError):
            self._run(self._image(), probe, overlap=0)
        assert probe.calls == []

    @pytest.mark.parametrize(
        ("shape", "tile_shape", "overlap"),
        [
            ((64,), (10,), 0),
            ((40, 44), (12, 10), 0),
            ((40, 44), (16, 16), 3),
            ((16, 18, 20), (7, 8, 9), (1, 2, 0)),
        ],
        ids=["1d", "2d", "2d-overlap", "3d"],
    )
    def test_exact_for_components(
        self, shape: tuple[int, ...], tile_shape: tuple[int, ...], overlap: Any
    ) -> None:
        if not self.exact_for_components:
            pytest.skip("the stitcher does not promise exact connected components")
        image = noise(shape, seed=len(shape), density=0.45 if len(shape) < 3 else 0.25)
        result = self._run(image, tile_shape=tile_shape, overlap=overlap or self.overlap)
        assert_same_partition(result, self._reference(image))

    @pytest.mark.parametrize("ndim", [2, 3])
    def test_separated_objects(self, ndim: int) -> None:
        if not self.joins_separated_objects:
            pytest.skip("the stitcher does not promise to join separated objects")
        diameter, spacing = 5, 8
        shape, tile = ((48, 48), 16) if ndim == 2 else ((24, 24, 24), 12)
        image = balls(shape, diameter=diameter, spacing=spacing, offset=tile)
        assert (image.take(tile - 1, axis=0) & image.take(tile, axis=0)).any()  # on seams
        result = self._run(image, tile_shape=(tile,) * ndim, overlap=diameter)
        assert_same_partition(result, self._reference(image))

    def test_touching_instances_stay_apart(self) -> None:
        if not self.separates_touching_instances:
            pytest.skip("the stitcher does not promise to keep touching instances apart")
        truth = touching_cells()
        result = self._run(truth, Instances(), tile_shape=(8, 8), overlap=3)
        assert_same_partition(result, truth)
