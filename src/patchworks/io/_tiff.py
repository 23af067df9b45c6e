"""Read TIFF and OME-TIFF through tifffile's zarr interface, without loading the file.

tifffile exposes a TIFF series (and each level of a pyramidal OME-TIFF) as a zarr store
whose chunks are the file's tiles or strips. :class:`TiffArray` wraps one level as a lazy,
picklable array: workers reopen the file on first read. The series' axes string (for
example ``"TCZYX"`` in OME-TIFF, ``"YXS"`` for RGB) says which axis holds channels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from patchworks.errors import InvalidImageError, InvalidParameterError, missing_dependency
from patchworks.io._axes import Axes
from patchworks.io._ome import AxisView, select_axes

if TYPE_CHECKING:
    from types import ModuleType

    from numpy.typing import NDArray

_TYPES = {"C": "channel", "S": "channel", "T": "time"}


def _tifffile() -> ModuleType:
    try:
        import tifffile
    except ImportError:
        raise missing_dependency("tifffile", "tiff", "Reading TIFF images") from None
    return tifffile


class TiffArray:
    """One level of one TIFF series as a lazy array with NumPy basic slicing.

    Examples
    --------
    >>> import os, tempfile, numpy as np, tifffile
    >>> path = os.path.join(tempfile.mkdtemp(), "doc.tif")
    >>> tifffile.imwrite(path, np.arange(24, dtype="uint8").reshape(2, 3, 4))
    >>> array = TiffArray(path)
    >>> array.shape, int(array[1, 2, 3])
    ((2, 3, 4), 23)
    """

    def __init__(self, path: str, *, series: int = 0, level: int = 0) -> None:
        self.path, self.series, self.level = path, series, level
        self._array: Any = None
        array = self._open()
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.chunks = tuple(int(c) for c in array.chunks)

    def _open(self) -> Any:
        if self._array is None:
            import zarr

            store = _tifffile().imread(self.path, aszarr=True, series=self.series, level=self.level)
            self._array = zarr.open_array(store, mode="r")
        return self._array

    def __getitem__(self, box: int | slice | tuple[int | slice, ...]) -> NDArray[Any]:
        return np.asarray(self._open()[box])

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_array": None}  # reopened on the worker


#: NGFF unit names of the length units TIFF writers use.
_UNITS = {
    "µm": "micrometer",  # U+00B5 MICRO SIGN (U+03BC GREEK MU is folded into it by _unit)
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometer": "micrometer",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
    "cm": "centimeter",
    "centimeter": "centimeter",
    "m": "meter",
    "meter": "meter",
    "s": "second",
    "sec": "second",
    "second": "second",
    "ms": "millisecond",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hour": "hour",
}


def _unit(name: object) -> str | None:
    """The NGFF name of a TIFF writer's unit (None when it is not one we know)."""
    text = str(name).strip().lower().replace("\\u00b5", "µ").replace("\u03bc", "µ")
    return _UNITS.get(text)


def pixel_sizes(tif: Any, axes: str) -> dict[str, tuple[float, str]]:
    """Pixel size and NGFF unit per axis letter (of the file's first level), from OME-XML
    or ImageJ metadata. A size whose unit is not known is left out: without its unit a
    number would put the labels at a wrong scale."""
    found: dict[str, tuple[float, str]] = {}

    def put(letter: str, size: object, unit: str | None) -> None:
        if size and unit is not None:
            found[letter] = (float(size), unit)  # type: ignore[arg-type]  # a number

    if tif.is_ome and tif.ome_metadata:
        import tifffile

        image = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
        pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
        for letter in "XYZ":
            unit = _unit(pixels.get(f"PhysicalSize{letter}Unit", "µm"))
            put(letter, pixels.get(f"PhysicalSize{letter}"), unit)
        put("T", pixels.get("TimeIncrement"), _unit(pixels.get("TimeIncrementUnit", "s")))
    elif tif.is_imagej and tif.imagej_metadata is not None:
        meta = tif.imagej_metadata
        length_unit = _unit(meta.get("unit", ""))
        page = tif.pages[0]
        for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
            if tag in page.tags:
                num, den = page.tags[tag].value
                put(letter, den / num if num else None, length_unit)  # pixels per unit
        if "Z" in axes.upper():
            put("Z", meta.get("spacing"), length_unit)
        if "T" in axes.upper():
            put("T", meta.get("finterval"), _unit(meta.get("tunit", "sec")))
    return found


def tiff_axes(axes: str, sizes: dict[str, tuple[float, str]] | None = None) -> Axes:
    """Axes from a tifffile axes string: C and S are channels, T is time, others space;
    with ``sizes`` (:func:`pixel_sizes`), their pixel sizes and units.

    Examples
    --------
    >>> tiff_axes("TCZYX").types
    ('time', 'channel', 'space', 'space', 'space')
    """
    names, types = [], []
    seen_channel = False
    for letter in axes.upper():
        kind = _TYPES.get(letter, "space")
        if kind == "channel":
            kind = "time" if seen_channel else kind  # a second channel-like axis: not spatial
            seen_channel = True
        names.append(letter.lower())
        types.append(kind)
    sizes = sizes or {}
    units = tuple(sizes[a][1] if a in sizes else None for a in axes.upper())
    scale = tuple(sizes[a][0] if a in sizes else 1.0 for a in axes.upper()) if sizes else None
    return Axes(tuple(names), tuple(types), units, scale)


def open_tiff(
    path: str,
    *,
    level: int | str | None,
    channel: int | None,
    channel_axis: int | None,
) -> tuple[TiffArray | AxisView, int | None, Axes]:
    """The array to segment from a TIFF file, its channel axis, and the axes of its labels
    (the file's axes without channel and dropped singletons)."""
    tifffile = _tifffile()
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            n_levels, axes = len(series.levels), series.axes
            shapes = [tuple(level.shape) for level in series.levels]
            sizes = pixel_sizes(tif, axes)
    except Exception as exc:
        raise InvalidImageError(
            f"`image` {path!r} could not be read as TIFF ({type(exc).__name__}: {exc})."
        ) from exc
    k = 0 if level is None else level
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < n_levels:
        raise InvalidParameterError(
            f"`level` must be an index in 0..{n_levels - 1} for TIFF {path!r} (its pyramid "
            f"levels); got {level!r}."
        )
    array = TiffArray(path, level=int(k))
    # the sizes are of level 0: a coarser level's pixels are larger by its downsampling
    for i, letter in enumerate(axes.upper()):
        if letter in sizes and letter != "T":
            size, unit = sizes[letter]
            sizes[letter] = (size * shapes[0][i] / shapes[int(k)][i], unit)
    file_axes = tiff_axes(axes, sizes)
    index, new_channel_axis, kept = select_axes(
        array.shape, file_axes, channel=channel, channel_axis=channel_axis, url=path
    )
    label_axes = file_axes.drop([i for i in range(file_axes.ndim) if i not in kept])
    if all(i is None for i in index):
        return array, new_channel_axis, label_axes
    return AxisView(array, index), new_channel_axis, label_axes
