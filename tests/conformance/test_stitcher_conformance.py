"""The stitchers patchworks ships pass the stitcher conformance suite (patchworks.testing)."""

from __future__ import annotations

from patchworks.stitch import IoU, Touch
from patchworks.testing.conformance import StitcherTests


class TestTouch(StitcherTests):
    exact_for_components = True
    joins_separated_objects = True

    def make_stitcher(self):
        return Touch()


class TestTouchFaces(StitcherTests):
    connectivity = 1
    exact_for_components = True
    joins_separated_objects = True

    def make_stitcher(self):
        return Touch(connectivity=1)


class TestIoU(StitcherTests):
    overlap = 4
    joins_separated_objects = True
    separates_touching_instances = True
    needs_overlap = True

    def make_stitcher(self):
        return IoU()
