"""Stitch modes: how the labels of neighbouring tiles become one object.

``stitch=`` in :func:`~patchworks.tile_process` and :func:`~patchworks.merge_tile_labels`
takes a name from :data:`STITCHERS` or any object implementing :class:`Stitcher`:

>>> from patchworks.stitch import IoU, Touch, parse_stitcher
>>> parse_stitcher("touch", connectivity=1)
Touch(connectivity=1)
>>> parse_stitcher(IoU(threshold=0.3))
IoU(threshold=0.3)

A new mode is one new module with a class implementing :class:`Stitcher` (and its
:class:`Seams`), registered in :data:`STITCHERS` if it should have a name
(docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from patchworks.errors import InvalidParameterError
from patchworks.stitch._base import Seams, Stitcher
from patchworks.stitch._iou import IoU
from patchworks.stitch._touch import Touch

#: The named stitch modes (``stitch=``, ``--stitch``): each is a factory called as
#: ``factory(connectivity=..., iou_threshold=...)`` with the flat keywords of
#: :func:`~patchworks.tile_process`, ignoring those its mode does not use.
STITCHERS: dict[str, Callable[..., Stitcher]] = {
    "touch": lambda connectivity=None, iou_threshold=0.5: Touch(connectivity=connectivity),
    "iou": lambda connectivity=None, iou_threshold=0.5: IoU(threshold=iou_threshold),
}


def parse_stitcher(
    stitch: str | Stitcher, *, connectivity: int | None = None, iou_threshold: Any = 0.5
) -> Stitcher:
    """The stitcher for ``stitch=``: a name from :data:`STITCHERS` (built from
    ``connectivity`` / ``iou_threshold``) or a :class:`Stitcher`, returned as it is."""
    if isinstance(stitch, str):
        if stitch not in STITCHERS:
            names = ", ".join(repr(m) for m in STITCHERS)
            raise InvalidParameterError(f"`stitch` must be one of {names}; got {stitch!r}.")
        return STITCHERS[stitch](connectivity=connectivity, iou_threshold=iou_threshold)
    if isinstance(stitch, Stitcher):
        if isinstance(stitch, Touch) and connectivity is not None:
            if stitch.connectivity is not None and stitch.connectivity != connectivity:
                raise InvalidParameterError(
                    f"`connectivity` ({connectivity!r}) differs from the connectivity of "
                    f"`stitch` ({stitch!r}); give it in one place."
                )
            return Touch(connectivity=connectivity)
        return stitch
    names = ", ".join(repr(m) for m in STITCHERS)
    raise InvalidParameterError(
        f"`stitch` must be one of {names} or a patchworks.stitch.Stitcher; got {stitch!r}."
    )


__all__ = ["STITCHERS", "IoU", "Seams", "Stitcher", "Touch", "parse_stitcher"]
