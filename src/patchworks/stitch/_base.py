"""The stitching contract: how the labels of neighbouring tiles become one object.

``stitch=`` takes a name from :data:`patchworks.stitch.STITCHERS` or any object that
implements :class:`Stitcher`. A stitch mode has two halves, both shipped to the workers as
one picklable :class:`Seams` object per run: what the tile stage keeps of each tile
(:meth:`Seams.stage`), and the merge that joins tiles into a label map and applies it
(:meth:`Seams.join`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from patchworks._engine.merge import Joined, MergeInputs
from patchworks._engine.tiles import TileStager
from patchworks._plan import TilePlan


class Seams(TileStager, Protocol):
    """One run's stitch state: staged by every tile, joined once by the merge."""

    def join(self, inputs: MergeInputs) -> Joined:
        """Stages 3-4: join the tiles' labels into a label map."""
        ...


@runtime_checkable
class Stitcher(Protocol):
    """How labels are joined across tiles (the contract behind ``stitch=``).

    Attributes
    ----------
    name : str
        Recorded in the output's metadata and the resume fingerprint.
    keeps_halo : bool
        Whether the tile stage keeps ``fn``'s labels over the whole halo box (matching
        predictions needs them) rather than over the core only.
    """

    @property
    def name(self) -> str: ...

    @property
    def keeps_halo(self) -> bool: ...

    def check_halo(
        self, halo: tuple[int, ...], overlap: Any, tile_shape: tuple[int, ...], shape: Any
    ) -> None:
        """Raise :class:`~patchworks.errors.InvalidParameterError` when this mode cannot
        stitch tiles of ``tile_shape`` over an image of ``shape`` with ``halo``."""
        ...

    def begin(self, plan: TilePlan, scratch: str, *, anchor: Any = None) -> Seams:
        """Set up one run over ``plan`` (scratch data under ``scratch``; ``anchor`` is
        the run's output-shaped label array, which may back a lazy result). A resumed
        run calls this again on the same ``scratch`` and must find what it left there."""
        ...
