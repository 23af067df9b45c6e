"""A PNG to check a run at a glance: one plane (or a max projection), labels, tile seams,
and a caption (which plane, the tile shape, how many objects).

The image plane is contrast-stretched to grey (0.5-99.5 percentiles), every object gets
its own colour (a hash of its ID, so neighbours rarely match) blended over it with its
outline drawn solid, and the tile grid of the run is drawn as thin yellow lines, so an
object cut at a seam shows up as two colours meeting at a line. Only the displayed plane
(or, for a projection, one slab of planes at a time) is read, and large planes are read
with a stride down to ``size`` pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from patchworks.errors import InvalidParameterError, missing_dependency

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from patchworks.io._source import ImageSource

SEAM_RGB = (255, 220, 0)


def preview(
    image: Any,
    *,
    labels: Any = None,
    write_to: str = "preview.png",
    plane: int | None = None,
    projection: Literal["max"] | None = None,
    tile_shape: Sequence[int] | None = None,
    size: int = 1024,
    level: int | str | None = None,
    channel: int | None = None,
    channel_axis: int | None = None,
) -> str:
    """Render a PNG of one plane (or a max projection) with labels and tile seams.

    Parameters
    ----------
    image : str, os.PathLike or array
        The image, as :func:`patchworks.tile_process` takes it.
    labels : str, os.PathLike or array, optional
        Labels to overlay: a zarr array, an OME-Zarr label image, or an array. Default:
        ``labels/patchworks`` inside an OME-Zarr ``image`` when present, else none.
    write_to : str
        Path of the PNG.
    plane : int, optional
        Index along the first axis of a 3-D image (default: the middle plane).
    projection : {None, "max"}
        ``"max"``: maximum projection along the first axis instead of one plane.
    tile_shape : tuple of int, optional
        Tile grid to draw; default: the run's, recorded in the labels' metadata, else the
        image's storage chunks.
    size : int
        Longest side of the PNG in pixels: larger planes are read with a stride, smaller
        ones enlarged by an integer factor (at most 4).
    level, channel, channel_axis
        As in :func:`patchworks.tile_process`; with ``channel_axis`` the channels are
        averaged for display.

    Returns
    -------
    str
        ``write_to``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> image = np.zeros((64, 64), dtype="uint8"); image[10:30, 20:50] = 200
    >>> labels = (image > 0).astype("int32")
    >>> path = preview(image, labels=labels, tile_shape=(32, 32), size=128,
    ...                write_to=os.path.join(tempfile.mkdtemp(), "p.png"))
    >>> from PIL import Image
    >>> picture = Image.open(path)
    >>> picture.width  # enlarged 2x to fill size=128; a caption strip below
    128
    >>> picture.text["Description"]
    'the whole image, 64 x 64 px; tiles (32, 32) (seams in yellow); 1 object shown'
    """
    from patchworks.io._source import open_image

    if projection not in (None, "max"):
        raise InvalidParameterError(f'`projection` must be None or "max"; got {projection!r}.')
    source = open_image(image, level=level, channel=channel, channel_axis=channel_axis)
    if source.ndim < 2:
        raise InvalidParameterError(
            f"`image` must have at least 2 spatial axes to preview; got shape {source.shape}."
        )
    box, step = _display_box(source.shape, plane, size)
    grey = _read(source, box, step, projection, is_labels=False)
    label_source = _label_source(image, labels, source)
    overlay = None
    if label_source is not None:
        overlay = _read(label_source, box, step, projection, is_labels=True)
    tiles = _tile_shape(tile_shape, label_source, source)
    rows, cols = _seams(tiles, source.shape, box, step)
    zoom = min(4, max(1, size // max(grey.shape)))  # small images: enlarge, pixels stay sharp
    if zoom > 1:
        grey = grey.repeat(zoom, axis=0).repeat(zoom, axis=1)
        overlay = None if overlay is None else overlay.repeat(zoom, 0).repeat(zoom, 1)
        rows, cols = [r * zoom for r in rows], [c * zoom for c in cols]
    rgb = render(grey, overlay, seams=(rows, cols))
    try:
        from PIL import Image, PngImagePlugin
    except ImportError:
        raise missing_dependency("pillow", "all", "Writing PNG previews") from None
    text = caption(source, box, projection, tiles, label_source, overlay, step)
    picture = with_caption(Image.fromarray(rgb), text)
    info = PngImagePlugin.PngInfo()
    info.add_text("Description", "; ".join(text))
    os.makedirs(os.path.dirname(os.path.abspath(write_to)), exist_ok=True)
    picture.save(write_to, pnginfo=info)
    return write_to


def caption(
    source: ImageSource,
    box: list[int | slice],
    projection: str | None,
    tiles: tuple[int, ...] | None,
    labels: ImageSource | None,
    overlay: NDArray[Any] | None,
    step: int,
) -> list[str]:
    """The lines under the picture: what is shown, the tiles, the objects."""
    names = list(source.axes.names) if source.axes is not None else []
    if source.ome is not None:
        names = list(source.ome.axes.names)
    shape = source.shape
    if len(shape) > 2:
        axis = names[-3] if len(names) == len(shape) else "first axis"
        if projection == "max":
            shown = f"max projection over {axis} ({shape[-3]} planes)"
        else:
            shown = f"plane {box[-3]} of {shape[-3]} along {axis}"
    else:
        shown = "the whole image"
    shown += f", {shape[-2]} x {shape[-1]} px" + (f" (every {step}th shown)" if step > 1 else "")
    lines = [shown]
    lines.append(f"tiles {tuple(tiles)} (seams in yellow)" if tiles else "no tile grid")
    if overlay is not None and labels is not None:
        here = int(np.unique(overlay[overlay > 0]).size)
        meta = dict(getattr(labels.array, "attrs", {}) or {}).get("patchworks", {})
        total = f" of {meta['n_labels']} in the labels" if "n_labels" in meta else ""
        lines.append(f"{here} object{'' if here == 1 else 's'} shown{total}")
    else:
        lines.append("no labels")
    return lines


def with_caption(picture: Any, lines: list[str]) -> Any:
    """``picture`` with ``lines`` of text on a dark strip below it (wrapped to fit)."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(picture)
    width = max(picture.width, 1)
    wrapped: list[str] = []
    for line in lines:
        words, current = line.split(" "), ""
        for word in words:
            trial = f"{current} {word}".strip()
            if current and draw.textlength(trial) > width - 8:
                wrapped.append(current)
                current = word
            else:
                current = trial
        wrapped.append(current)
    height = 12 * len(wrapped) + 6
    out = Image.new("RGB", (picture.width, picture.height + height), (20, 20, 20))
    out.paste(picture, (0, 0))
    text = ImageDraw.Draw(out)
    for k, line in enumerate(wrapped):
        text.text((4, picture.height + 3 + 12 * k), line, fill=(235, 235, 235))
    return out


def _display_box(
    shape: tuple[int, ...], plane: int | None, size: int
) -> tuple[list[int | slice], int]:
    """Index per axis (ints for leading axes, slices for the last two) and the stride."""
    lead: list[int] = [0] * (len(shape) - 2)
    if lead:
        n = shape[-3]
        index = n // 2 if plane is None else plane
        if isinstance(index, bool) or not 0 <= index < n:
            raise InvalidParameterError(
                f"`plane` must be an index in 0..{n - 1} along the first axis; got {plane!r}."
            )
        lead[-1] = index
    step = max(1, math.ceil(max(shape[-2:]) / max(1, size)))
    return [*lead, slice(None), slice(None)], step


def _read(
    source: ImageSource,
    box: list[int | slice],
    step: int,
    projection: Literal["max"] | None,
    *,
    is_labels: bool,
) -> NDArray[Any]:
    """The displayed plane (or max projection) of ``source``, read in bands of rows."""
    shape = source.shape
    chunk_rows = source.chunks[-2] if source.chunks else 256
    band = max(step, chunk_rows // step * step)  # a multiple of the stride

    def plane_at(lead: list[int]) -> NDArray[Any]:
        parts = []
        for start in range(0, shape[-2], band):
            region = (
                *(slice(i, i + 1) for i in lead),
                slice(start, min(start + band, shape[-2])),
                slice(0, shape[-1]),
            )
            data = source.read(region)
            if source.channel_axis is not None:
                data = (
                    data.max(axis=source.channel_axis)
                    if is_labels
                    else data.mean(axis=source.channel_axis)
                )
            parts.append(data.reshape(data.shape[-2:])[::step, ::step])
        return np.concatenate(parts, axis=0)

    lead = [int(i) for i in box[:-2] if not isinstance(i, slice)]  # leading entries: ints
    if projection is None or len(shape) == 2:
        return plane_at(lead)
    out = plane_at([*lead[:-1], 0])
    for index in range(1, shape[-3]):
        out = np.maximum(out, plane_at([*lead[:-1], index]))
    return out


def _label_source(image: Any, labels: Any, source: ImageSource) -> ImageSource | None:
    from patchworks.io._source import open_image

    if labels is None:
        if source.ome is None:
            return None
        default = os.path.join(source.ome.url, "labels", "patchworks")
        if not os.path.isdir(default):
            return None
        labels = default
    found = open_image(labels, name="labels")
    if found.shape != tuple(source.shape):
        raise InvalidParameterError(
            f"`labels` must have the image's spatial shape {tuple(source.shape)} (pick the "
            f"matching `level`); got shape {found.shape}."
        )
    return found


def _tile_shape(
    tile_shape: Sequence[int] | None, labels: ImageSource | None, source: ImageSource
) -> tuple[int, ...] | None:
    if tile_shape is not None:
        return tuple(int(t) for t in tile_shape)
    if labels is not None:
        meta = dict(getattr(labels.array, "attrs", {}) or {}).get("patchworks", {})
        if meta.get("tile_shape"):
            return tuple(int(t) for t in meta["tile_shape"])
    return source.chunks


def _seams(
    tiles: tuple[int, ...] | None, shape: tuple[int, ...], box: list[int | slice], step: int
) -> tuple[list[int], list[int]]:
    """Display rows and columns where tile cores meet."""
    if tiles is None or len(tiles) != len(shape):
        return [], []
    rows = [r // step for r in range(tiles[-2], shape[-2], tiles[-2])]
    cols = [c // step for c in range(tiles[-1], shape[-1], tiles[-1])]
    return rows, cols


def label_colors(ids: NDArray[np.integer[Any]]) -> NDArray[np.uint8]:
    """A bright, stable RGB colour per label ID (golden-ratio hues).

    Examples
    --------
    >>> label_colors(np.array([1, 2])).shape
    (2, 3)
    """
    hue = (ids.astype(np.float64) * 0.6180339887) % 1.0
    k = (np.array([5.0, 3.0, 1.0]) + hue[:, None] * 6) % 6
    rgb = 1 - np.clip(np.minimum(k, 4 - k), 0, 1) * 0.85
    colors: NDArray[np.uint8] = (rgb * 255).astype(np.uint8)
    return colors


def render(
    grey: NDArray[Any],
    labels: NDArray[np.integer[Any]] | None,
    *,
    seams: tuple[list[int], list[int]] = ([], []),
) -> NDArray[np.uint8]:
    """Compose the RGB picture: stretched grey image, coloured labels, outlines, seams.

    Examples
    --------
    >>> rgb = render(np.arange(16.0).reshape(4, 4), np.eye(4, dtype=int), seams=([2], [2]))
    >>> rgb.shape, rgb.dtype.name
    ((4, 4, 3), 'uint8')
    """
    grey = grey.astype(np.float64)
    lo, hi = np.percentile(grey, [0.5, 99.5]) if grey.size else (0.0, 1.0)
    scaled = np.clip((grey - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat((scaled * 255)[..., None], 3, axis=-1)
    if labels is not None:
        ids, inverse = np.unique(labels, return_inverse=True)
        colors = label_colors(ids).astype(np.float64)[inverse.reshape(labels.shape)]
        inside = labels > 0
        rgb[inside] = 0.45 * rgb[inside] + 0.55 * colors[inside]
        edge = np.zeros(labels.shape, dtype=bool)
        edge[:-1] |= labels[:-1] != labels[1:]
        edge[1:] |= labels[1:] != labels[:-1]
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
        edge &= inside
        rgb[edge] = colors[edge]
    rows, cols = seams
    for r in rows:
        if 0 <= r < rgb.shape[0]:
            rgb[r, :] = SEAM_RGB
    for c in cols:
        if 0 <= c < rgb.shape[1]:
            rgb[:, c] = SEAM_RGB
    return rgb.astype(np.uint8)
