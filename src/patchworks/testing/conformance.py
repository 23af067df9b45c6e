"""Conformance suites for the two extension points: sinks and stitchers.

Every :class:`patchworks.io.Sink` (what ``write_to=`` takes besides a path) and every
:class:`patchworks.stitch.Stitcher` (what ``stitch=`` takes besides a name) must pass
these tests. As with zarr's ``zarr.testing.store.StoreTests``, a base class holds the
tests and a test suite subclasses it once per implementation: the subclass provides a
factory hook (:meth:`SinkTests.make_sink`, :meth:`StitcherTests.make_stitcher`) and sets
class attributes that say what the implementation promises; only what it promises is
checked (a test for a promise it does not make is skipped).

The classes are plain pytest classes: their names do not start with ``Test``, so pytest
collects only the subclasses, and their tests take pytest's ``tmp_path`` fixture. Each
test runs a few small images (at most 64x64 or 24³ voxels) through
:func:`~patchworks.tile_process` or :func:`~patchworks.merge_tile_labels`.

Examples
--------
For assertion messages that show the compared values, register the suites for pytest's
assertion rewriting before they are imported: ``pytest.register_assert_rewrite(
"patchworks.testing")`` at the top of your ``conftest.py``. Then, in a test module of your
own (one that pytest collects)::

    from patchworks.testing.conformance import SinkTests, StitcherTests

    class TestMySink(SinkTests):
        def make_sink(self, path):
            return MySink(path)

        def read_output(self, path):  # the labels MySink left at ``path``
            return my_reader(path)

    class TestMyStitcher(StitcherTests):
        overlap = 4                   # the overlap the tests run with
        separates_touching_instances = True

        def make_stitcher(self):
            return MyStitcher()
"""

from patchworks.testing._sink_suite import SinkTests
from patchworks.testing._stitcher_suite import StitcherTests

__all__ = ["SinkTests", "StitcherTests"]
