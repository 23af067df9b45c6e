"""What ``objects=``, ``min_size=``, ``max_size=`` and ``objects_to=`` ask of a run, checked.

:func:`parse_objects` turns those keywords into one frozen :class:`ObjectsSpec` (or None
when none is given) before any work starts: unknown property names, intensities without
an image, physical sizes without pixel sizes, a table with nowhere to go and bad size
bounds are refused with the parameter, the value and what to do.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from patchworks._engine.measure import Measure
from patchworks._engine.objects import GEOMETRY, INTENSITY, PHYSICAL, PROPERTIES
from patchworks.errors import InvalidParameterError, ParameterTypeError
from patchworks.io._table import check_table_path

#: ``objects=True``: these, plus intensities with an image and physical sizes with pixel
#: sizes.
DEFAULT = ("label", "area", "bbox", "centroid")


@dataclass(frozen=True)
class ObjectsSpec:
    """One run's measurement: the table's properties (empty: only size filters), the size
    range kept, where the table goes (None: inside the label output) and what the
    tiles measure."""

    properties: tuple[str, ...]
    min_size: int | None
    max_size: int | None
    to: str | None
    measure: Measure
    scale: tuple[float, ...] | None

    @property
    def table(self) -> bool:
        """Whether the run writes a table (``objects=`` given)."""
        return bool(self.properties)

    @property
    def filters(self) -> bool:
        return self.min_size is not None or self.max_size is not None


def pixel_sizes(source: Any) -> tuple[float, ...] | None:
    """Pixel size per spatial axis of ``source``, when its file records them."""
    ome = getattr(source, "ome", None)
    if ome is not None and len(ome.scale) == source.ndim:
        return tuple(float(s) for s in ome.scale)
    axes = getattr(source, "axes", None)
    if axes is not None and axes.scale is not None and len(axes.scale) == source.ndim:
        return tuple(float(s) for s in axes.scale)
    return None


def _size(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidParameterError(
            f"`{name}` must be a non-negative integer (a number of voxels) or None; got {value!r}."
        )
    return int(value)


def _names(objects: Any, *, intensity: bool, scale: bool) -> tuple[str, ...]:
    if objects is True:
        extra = (INTENSITY if intensity else ()) + (PHYSICAL if scale else ())
        return DEFAULT + extra
    if isinstance(objects, str) or not isinstance(objects, Sequence):
        raise ParameterTypeError(
            "`objects` must be True, None or a sequence of property names (as "
            f"skimage.measure.regionprops_table names them); got {objects!r}."
        )
    names = tuple(objects)
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown or not names:
        raise InvalidParameterError(
            f"`objects` must name properties among {', '.join(PROPERTIES)}; got "
            f"{list(names)!r}" + (f" (unknown: {unknown})." if unknown else ".")
        )
    if not intensity and any(n in INTENSITY for n in names):
        raise InvalidParameterError(
            f"`objects` {list(names)!r} asks for intensities, which need an image: pass "
            "image= to merge_tile_labels (tile_process measures its own image)."
        )
    if not scale and any(n in PHYSICAL for n in names):
        raise InvalidParameterError(
            f"`objects` {list(names)!r} asks for physical sizes, but the image records no "
            "pixel sizes (OME-Zarr scale or TIFF resolution); use area and centroid."
        )
    if "label" not in names:
        names = ("label", *names)
    return tuple(dict.fromkeys(names))


def parse_objects(
    objects: Any,
    *,
    min_size: Any,
    max_size: Any,
    objects_to: Any,
    image: Any,
    scale_of: Any,
    has_output: bool,
    overwrite: bool,
) -> ObjectsSpec | None:
    """The run's :class:`ObjectsSpec`; ``image`` is the ImageSource measured for
    intensities (None: labels only), ``scale_of`` the source whose pixel sizes count."""
    lo, hi = _size(min_size, "min_size"), _size(max_size, "max_size")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidParameterError(
            f"`min_size` must not exceed `max_size`; got min_size={lo}, max_size={hi}."
        )
    if objects is None or objects is False:
        if objects_to is not None:
            raise InvalidParameterError(
                f"`objects_to` needs objects= (True or property names); got objects={objects!r}."
            )
        if lo is None and hi is None:
            return None
        names: tuple[str, ...] = ()
    else:
        scale = pixel_sizes(scale_of)
        names = _names(objects, intensity=image is not None, scale=scale is not None)
    to = check_table_path(objects_to, overwrite=overwrite)
    if names and to is None and not has_output:
        raise InvalidParameterError(
            "`objects` needs somewhere to write the table: pass write_to= (the table goes "
            "inside the label output) or objects_to='objects.parquet'."
        )
    wants_intensity = any(n in INTENSITY for n in names)
    channels = None
    if wants_intensity and image.channel_axis is not None:
        channels = int(image.array.shape[image.channel_axis])
    measure = Measure(image=image if wants_intensity else None, channels=channels)
    scale = pixel_sizes(scale_of) if any(n in PHYSICAL for n in names) else None
    assert all(n in GEOMETRY + INTENSITY + PHYSICAL for n in names)
    return ObjectsSpec(
        properties=names, min_size=lo, max_size=hi, to=to, measure=measure, scale=scale
    )
