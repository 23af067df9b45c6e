"""The sink conformance suite: :class:`SinkTests` (see :mod:`patchworks.testing.conformance`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

import patchworks
from patchworks.errors import OutputExistsError, TileFunctionError
from patchworks.io import Sink
from patchworks.testing import assert_same_partition
from patchworks.testing._suite_helpers import (
    Components,
    Labels,
    Probe,
    as_numpy,
    noise,
    with_marker,
)

__all__ = ["SinkTests"]


class SinkTests:
    """The tests every :class:`patchworks.io.Sink` must pass.

    Subclass it in a test module, implement :meth:`make_sink` (and :meth:`read_output`
    when the output at the path is not one zarr array), and set the class attributes to
    what the sink promises. The sink's output must be at the path given to
    :meth:`make_sink`.
    """

    #: ``patchworks.output_status(path)`` reports the output: ``"complete"`` after a
    #: run, ``"interrupted"`` after a failed ``resume=True`` run.
    reports_status: ClassVar[bool] = True
    #: A failed ``resume=True`` run is finished by the same call again.
    resumable: ClassVar[bool] = True
    #: ``resume=True`` over the finished output of the same call returns it without
    #: running ``fn`` (False: it refuses with OutputExistsError, the output untouched).
    resume_returns_finished: ClassVar[bool] = True
    #: Names the sink publishes beside the output, besides the output itself, with
    #: ``{name}`` standing for the output's file name (e.g. ``("{name}.json",)``).
    companions: ClassVar[tuple[str, ...]] = ()
    #: Image and tile shape of the tests (2-D; the 3-D test uses 12x16x16 in 8³ tiles).
    shape: ClassVar[tuple[int, ...]] = (40, 44)
    tile_shape: ClassVar[tuple[int, ...]] = (16, 16)

    def _published(self, path: Path) -> list[str]:
        """What a finished run leaves beside it: the output and its companions."""
        return [path.name, *(c.format(name=path.name) for c in self.companions)]

    def make_sink(self, path: Path) -> Sink:
        """A new sink whose output goes to ``path`` (which does not exist yet)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_sink(path)")

    def read_output(self, path: Path) -> Labels:
        """The full-resolution labels the sink left at ``path`` (default: a zarr array)."""
        import zarr

        return np.asarray(zarr.open_array(os.fspath(path), mode="r")[...])

    # helpers

    def _image(self, seed: int = 0, shape: tuple[int, ...] | None = None) -> Labels:
        return noise(shape or self.shape, seed=seed)

    def _labels(self, image: Labels, tile_shape: tuple[int, ...] | None = None) -> Labels:
        """The labels of the same run without a sink."""
        tiles = tile_shape or self.tile_shape
        return patchworks.tile_process(image, Components(), tile_shape=tiles, compute=True)

    def _write(
        self,
        image: Labels,
        path: Path,
        fn: Any = None,
        *,
        tile_shape: tuple[int, ...] | None = None,
        compute: bool = True,
        **options: Any,
    ) -> Any:
        return patchworks.tile_process(
            image,
            fn if fn is not None else Components(),
            tile_shape=tile_shape or self.tile_shape,
            write_to=self.make_sink(path),
            compute=compute,
            **options,
        )

    @staticmethod
    def _site(tmp_path: Path) -> Path:
        """A folder holding one unrelated file, for the output to go next to."""
        site = tmp_path / "site"
        site.mkdir()
        (site / "neighbour.txt").write_text("not patchworks'")
        return site

    # tests

    def test_is_a_sink(self, tmp_path: Path) -> None:
        path = tmp_path / "labels.zarr"
        sink = self.make_sink(path)
        assert isinstance(sink, Sink)
        assert not os.path.exists(path)  # building a sink writes nothing

    @pytest.mark.parametrize("compute", [True, False], ids=["compute", "lazy"])
    @pytest.mark.parametrize("ndim", [2, 3])
    def test_labels_match_a_run_without_sink(
        self, tmp_path: Path, ndim: int, compute: bool
    ) -> None:
        shape, tiles = (self.shape, self.tile_shape) if ndim == 2 else ((12, 16, 16), (8, 8, 8))
        image = self._image(shape=shape)
        expected = self._labels(image, tiles)
        path = tmp_path / "labels.zarr"
        result = self._write(image, path, tile_shape=tiles, compute=compute)
        if compute:
            assert isinstance(result, np.ndarray)
        else:
            result = as_numpy(result)
        assert_same_partition(result, expected)  # same objects, same background
        written = self.read_output(path)
        assert written.dtype == result.dtype == np.dtype("int32")
        assert np.array_equal(written, result)  # the result is what is at the path

    def test_dtype_is_kept(self, tmp_path: Path) -> None:
        path = tmp_path / "labels.zarr"
        result = self._write(self._image(), path, dtype="uint16")
        written = self.read_output(path)
        assert written.dtype == result.dtype == np.dtype("uint16")
        assert_same_partition(written, self._labels(self._image()))

    def test_published_only_when_complete(self, tmp_path: Path) -> None:
        site = self._site(tmp_path)
        before = sorted(os.listdir(site))
        path = site / "labels.zarr"
        probe = Probe(Components(), watch=os.fspath(path))
        self._write(self._image(), path, probe)
        assert probe.seen and not any(probe.seen)  # nothing at the path while tiles ran
        assert os.path.exists(path)
        assert sorted(os.listdir(site)) == sorted([*before, *self._published(path)])

    def test_failed_run_leaves_nothing(self, tmp_path: Path) -> None:
        site = self._site(tmp_path)
        before = sorted(os.listdir(site))
        path = site / "labels.zarr"
        probe = Probe(Components(), watch=os.fspath(path), armed=[True])
        with pytest.raises(TileFunctionError):
            self._write(with_marker(self._image()), path, probe)
        assert probe.calls and not any(probe.seen)
        assert not os.path.exists(path)
        assert sorted(os.listdir(site)) == before  # no stray files beside it either

    def test_existing_output_needs_overwrite(self, tmp_path: Path) -> None:
        site = self._site(tmp_path)
        path = site / "labels.zarr"
        self._write(self._image(seed=0), path)
        first = self.read_output(path)
        before = sorted(os.listdir(site))
        other = self._image(seed=1)
        probe = Probe(Components())
        with pytest.raises(OutputExistsError):
            self._write(other, path, probe)
        assert probe.calls == []  # refused before any work
        assert np.array_equal(self.read_output(path), first)
        assert sorted(os.listdir(site)) == before

        probe = Probe(Components(), watch=os.fspath(path))
        result = self._write(other, path, probe, overwrite=True)
        assert probe.seen and all(probe.seen)  # the old output stays until the new is done
        written = self.read_output(path)
        assert np.array_equal(written, result)
        assert_same_partition(written, self._labels(other))
        assert sorted(os.listdir(site)) == before

    def test_output_status(self, tmp_path: Path) -> None:
        if not self.reports_status:
            pytest.skip("the sink does not promise that output_status reports it")
        path = tmp_path / "labels.zarr"
        before = patchworks.output_status(path)
        assert before == "missing", before
        self._write(self._image(), path)
        after = patchworks.output_status(path)
        assert after == "complete", after

    def test_output_status_while_running(self, tmp_path: Path) -> None:
        if not self.reports_status:
            pytest.skip("the sink does not promise that output_status reports it")
        path = tmp_path / "labels.zarr"
        probe = Probe(Components(), watch=os.fspath(path))
        self._write(self._image(), path, probe)
        assert set(probe.status) == {"running"}, probe.status

    def test_resume_over_a_finished_output(self, tmp_path: Path) -> None:
        if not self.resumable:
            pytest.skip("the sink does not promise resume=True")
        path = tmp_path / "labels.zarr"
        image = self._image()
        first = self._write(image, path, Probe(Components()), resume=True)
        probe = Probe(Components())
        if self.resume_returns_finished:
            again = self._write(image, path, probe, resume=True)
            assert np.array_equal(again, first)
        else:
            with pytest.raises(OutputExistsError):
                self._write(image, path, probe, resume=True)
        assert probe.calls == []  # no tile ran again
        assert np.array_equal(self.read_output(path), first)

    def test_resume_after_a_failure(self, tmp_path: Path) -> None:
        if not self.resumable:
            pytest.skip("the sink does not promise resume=True")
        site = self._site(tmp_path)
        before = sorted(os.listdir(site))
        path = site / "labels.zarr"
        image = with_marker(self._image())
        probe = Probe(Components(), armed=[True])
        with pytest.raises(TileFunctionError):
            self._write(image, path, probe, resume=True)
        assert not os.path.exists(path)
        probe.armed.clear()
        ran = len(probe.calls)
        result = self._write(image, path, probe, resume=True)
        grid = [-(-n // t) for n, t in zip(image.shape, self.tile_shape, strict=True)]
        assert 0 < len(probe.calls) - ran < int(np.prod(grid))  # finished tiles: not again
        assert_same_partition(result, self._labels(image))
        assert np.array_equal(self.read_output(path), result)
        assert sorted(os.listdir(site)) == sorted([*before, *self._published(path)])

    def test_output_status_of_an_interrupted_run(self, tmp_path: Path) -> None:
        if not (self.reports_status and self.resumable):
            pytest.skip("the sink does not promise output_status and resume=True")
        path = tmp_path / "labels.zarr"
        image = with_marker(self._image())
        probe = Probe(Components(), armed=[True])
        with pytest.raises(TileFunctionError):
            self._write(image, path, probe, resume=True)
        status = patchworks.output_status(path)
        assert status == "interrupted", status
        probe.armed.clear()
        self._write(image, path, probe, resume=True)
        status = patchworks.output_status(path)
        assert status == "complete", status
