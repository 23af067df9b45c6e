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
    "µm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometer": "micrometer",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
}


def pixel_sizes(tif: Any, axes: str) -> dict[str, tuple[float, str | None]]:
    """Pixel size and NGFF unit per axis letter, from OME-XML or ImageJ metadata."""
    found: dict[str, tuple[float, str | None]] = {}
    if tif.is_ome and tif.ome_metadata:
        import tifffile

        image = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
        pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
        for letter in "XYZ":
            size = pixels.get(f"PhysicalSize{letter}")
            if size:
                unit = str(pixels.get(f"PhysicalSize{letter}Unit", "µm"))
                found[letter] = (float(size), _UNITS.get(unit.lower()))
        if pixels.get("TimeIncrement"):
            unit = str(pixels.get("TimeIncrementUnit", "s"))
            found["T"] = (float(pixels["TimeIncrement"]), _UNITS.get(unit.lower()))
    elif tif.is_imagej and tif.imagej_metadata is not None:
        meta = tif.imagej_metadata
        length_unit = _UNITS.get(str(meta.get("unit", "")).lower().replace("\\u00b5", "µ"))
        page = tif.pages[0]
        for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
            if tag in page.tags:
                num, den = page.tags[tag].value
                if num and length_unit is not None:  # no unit: the resolution is DPI noise
                    found[letter] = (den / num, length_unit)
        if meta.get("spacing") and "Z" in axes.upper():
            found["Z"] = (float(meta["spacing"]), length_unit)
        if meta.get("finterval") and "T" in axes.upper():
            found["T"] = (float(meta["finterval"]), "second")
    return found


def tiff_axes(axes: str, sizes: dict[str, tuple[float, str | None]] | None = None) -> Axes:
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
    file_axes = tiff_axes(axes, sizes)
    index, new_channel_axis, kept = select_axes(
        array.shape, file_axes, channel=channel, channel_axis=channel_axis, url=path
    )
    label_axes = file_axes.drop([i for i in range(file_axes.ndim) if i not in kept])
    if all(i is None for i in index):
        return array, new_channel_axis, label_axes
    return AxisView(array, index), new_channel_axis, label_axes
