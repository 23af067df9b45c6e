"""The layout of an NGFF label image: chunks, codecs, pyramid levels, registration.

Helpers of :mod:`patchworks.io._ome_sink`: what each level's shape, downsampling factors,
scale and translation are (mirroring the input's levels where it has them), the chunks
and codecs of the arrays, and how a finished label image is moved into place and listed
in its image's ``labels`` group.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from patchworks._fs import remove_tree
from patchworks.errors import InvalidParameterError, OutputExistsError
from patchworks.io._axes import Axes
from patchworks.io._pyramid import default_factors

#: Default upper bound on the bytes of one output chunk.
CHUNK_BYTES = 1 << 20


def label_chunks(tile_shape: tuple[int, ...], dtype: np.dtype[Any]) -> tuple[int, ...]:
    """Chunks that divide ``tile_shape`` and hold at most about 1 MiB of labels.

    Examples
    --------
    >>> label_chunks((64, 512, 512), np.dtype("int32"))
    (64, 64, 64)
    """
    chunks = list(tile_shape)
    while math.prod(chunks) * dtype.itemsize > CHUNK_BYTES:
        even = [i for i, c in enumerate(chunks) if c % 2 == 0 and c > 32]
        if not even:
            break
        axis = max(even, key=lambda i: chunks[i])
        chunks[axis] //= 2
    return tuple(chunks)


def check_chunks(chunks: Any, ndim: int) -> tuple[int, ...] | None:
    if chunks is None:
        return None
    try:
        sizes = tuple(int(c) for c in chunks)
    except (TypeError, ValueError):
        sizes = ()
    if len(sizes) != ndim or any(c < 1 for c in sizes):
        raise InvalidParameterError(
            f"`output_chunks` must have one positive size per label axis ({ndim}); got {chunks!r}."
        )
    return sizes


def copy_block(tile_shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Copy regions covering whole tiles and whole output chunks (when that is cheap)."""
    block = []
    for t, c in zip(tile_shape, chunks, strict=True):
        common = math.lcm(t, c)
        block.append(common if common <= 4 * max(t, c) else c)
    return tuple(block)


def compressors_for(compressors: Any, zarr_format: int) -> Any:
    if compressors is not None:
        return compressors
    if zarr_format == 2:
        from numcodecs import Zstd

        return Zstd(level=1)
    from patchworks.io._zarr import label_compressors

    return label_compressors()


def check_array_options(options: dict[str, Any], dtype: np.dtype[Any]) -> None:
    import zarr

    try:
        zarr.create_array(store={}, shape=options["chunks"], dtype=dtype, **options)
    except Exception as exc:
        raise InvalidParameterError(
            f"`output_compressors` must be codecs zarr format {options['zarr_format']} "
            f"accepts; got {options['compressors']!r} ({type(exc).__name__}: {exc})."
        ) from exc


def label_levels(source: Any, axes: Axes) -> list[dict[str, Any]]:
    """Shape, factors, scale and translation of every label level."""
    ome, shape = source.ome, tuple(source.shape)
    if ome is not None:
        scale0, shift0 = ome.scale, ome.translation
    elif axes.scale is not None:  # a TIFF's pixel sizes
        scale0, shift0 = axes.scale, (0.0,) * len(shape)
    else:
        scale0, shift0 = (1.0,) * len(shape), (0.0,) * len(shape)
    levels = [
        {"shape": shape, "factors": (1,) * len(shape), "scale": scale0, "translation": shift0}
    ]
    mirrored = _mirror(source) if ome is not None else None
    if mirrored is not None:
        return levels + mirrored
    total = [1] * len(shape)
    for factors in default_factors(shape, axes.types):
        total = [t * f for t, f in zip(total, factors, strict=True)]
        levels.append(
            {
                "shape": tuple(math.ceil(n / t) for n, t in zip(shape, total, strict=True)),
                "factors": factors,
                "scale": tuple(s * t for s, t in zip(scale0, total, strict=True)),
                "translation": tuple(
                    u + (t - 1) * s / 2 for u, s, t in zip(shift0, scale0, total, strict=True)
                ),
            }
        )
    return levels


def _mirror(source: Any) -> list[dict[str, Any]] | None:
    """The input's coarser levels, when each is an integer downsampling of the one before."""
    import zarr

    ome = source.ome
    try:
        group: Any = zarr.open_group(ome.url, mode="r")
        shapes = [
            tuple(group[lv.path].shape[i] for i in ome.kept) for lv in ome.image.levels[ome.level :]
        ]
    except Exception:  # unreadable coarser levels: fall back to the default pyramid
        return None
    if len(shapes) < 2:
        return None
    out = []
    for before, after, level in zip(
        shapes, shapes[1:], ome.image.levels[ome.level + 1 :], strict=False
    ):
        factors = tuple(max(1, round(b / a)) for b, a in zip(before, after, strict=True))
        if any(
            not (b // f <= a <= -(-b // f)) for b, a, f in zip(before, after, factors, strict=True)
        ):
            return None
        out.append(
            {
                "shape": after,
                "factors": factors,
                "scale": tuple(level.scale[i] for i in ome.kept),
                "translation": tuple(level.translation[i] for i in ome.kept),
            }
        )
    return out


def replace_output(built: str, final: str, overwrite: bool) -> None:
    if os.path.exists(final):
        if not overwrite:
            raise OutputExistsError(
                f"{final!r} appeared during the run; the new label image is kept at {built!r}."
            )
        retired = built + ".replaced"
        os.replace(final, retired)
        os.replace(built, final)
        remove_tree(retired)
    else:
        os.replace(built, final)


def register_label(labels_group: str, name: str, version: str, zarr_format: int) -> None:
    """Add ``name`` to the ``labels`` list of the image's labels group."""
    import zarr

    group = zarr.open_group(labels_group, mode="a", zarr_format=zarr_format)  # type: ignore[arg-type]
    attrs: dict[str, Any] = dict(group.attrs)
    if version == "0.5":
        ome = dict(attrs.get("ome", {}))
        names = list(ome.get("labels", []))
        group.attrs["ome"] = {
            **ome,
            "version": "0.5",
            "labels": [*names, name] if name not in names else names,
        }
    else:
        names = list(attrs.get("labels", []))
        group.attrs["labels"] = [*names, name] if name not in names else names
