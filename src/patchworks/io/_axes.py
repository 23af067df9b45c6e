"""NGFF axes metadata: which axis is a channel, which are time and space.

OME-Zarr stores a name and (from 0.4 on) a type per axis. patchworks reads them instead of
guessing from the array's shape: the channel axis is the one typed ``"channel"`` (or named
``"c"`` in 0.3 files), time is ``"time"`` (``"t"``), and every other axis is spatial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patchworks.errors import InvalidImageError

_TYPE_BY_NAME = {"c": "channel", "t": "time", "z": "space", "y": "space", "x": "space"}


@dataclass(frozen=True)
class Axes:
    """Names, types and units of an image's axes, in array order.

    Examples
    --------
    >>> axes = Axes.from_ngff([{"name": "c", "type": "channel"}, "y", "x"], ndim=3)
    >>> axes.channel, axes.names
    (0, ('c', 'y', 'x'))
    >>> Axes.default(3).names
    ('z', 'y', 'x')
    """

    names: tuple[str, ...]
    types: tuple[str, ...]
    units: tuple[str | None, ...]
    #: Pixel size per axis (in ``units``), when the file records it (TIFF; an OME-Zarr
    #: image's sizes are its levels' ``scale``).
    scale: tuple[float, ...] | None = None

    @classmethod
    def from_ngff(
        cls, axes: Sequence[str | Mapping[str, Any]] | None, *, ndim: int, where: str = "image"
    ) -> Axes:
        """Parse NGFF ``axes`` (dicts in 0.4+, plain names in 0.3); default names if absent."""
        if not axes:
            return cls.default(ndim)
        if len(axes) != ndim:
            raise InvalidImageError(
                f"OME-Zarr `axes` of {where} must have one entry per array axis ({ndim}); got "
                f"{len(axes)} ({list(axes)})."
            )
        names, types, units = [], [], []
        for axis in axes:
            entry = {"name": axis} if isinstance(axis, str) else dict(axis)
            name = str(entry.get("name", ""))
            names.append(name)
            types.append(str(entry.get("type") or _TYPE_BY_NAME.get(name.lower(), "space")))
            units.append(entry.get("unit"))
        return cls(tuple(names), tuple(types), tuple(units))

    @classmethod
    def default(cls, ndim: int) -> Axes:
        """``(t,) z, y, x`` for arrays without metadata (channels must be given explicitly)."""
        names = ("t", "z", "y", "x")[-ndim:] if ndim <= 4 else tuple(f"d{i}" for i in range(ndim))
        types = tuple(_TYPE_BY_NAME.get(n, "space") for n in names)
        return cls(names, types, (None,) * ndim)

    @property
    def ndim(self) -> int:
        return len(self.names)

    @property
    def channel(self) -> int | None:
        """Index of the channel axis, or None."""
        found = [i for i, t in enumerate(self.types) if t == "channel"]
        return found[0] if found else None

    @property
    def spatial(self) -> tuple[int, ...]:
        """Indices of the space axes."""
        return tuple(i for i, t in enumerate(self.types) if t == "space")

    def drop(self, indices: Sequence[int]) -> Axes:
        """These axes without the axes at ``indices``."""
        keep = [i for i in range(self.ndim) if i not in set(indices)]
        return Axes(
            tuple(self.names[i] for i in keep),
            tuple(self.types[i] for i in keep),
            tuple(self.units[i] for i in keep),
            None if self.scale is None else tuple(self.scale[i] for i in keep),
        )

    def to_ngff(self) -> list[dict[str, str]]:
        """NGFF 0.4/0.5 ``axes`` entries."""
        out = []
        for name, kind, unit in zip(self.names, self.types, self.units, strict=True):
            entry = {"name": name, "type": kind}
            if unit:
                entry["unit"] = unit
            out.append(entry)
        return out
