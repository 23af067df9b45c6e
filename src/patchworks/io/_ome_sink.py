"""Write labels as the OME-Zarr ecosystem expects: an NGFF label image with a pyramid.

For an OME-Zarr input without ``write_to`` the labels go to ``labels/<label_name>`` inside
the image, registered in ``labels``' metadata; with ``write_to`` (or
``output_format="ome-zarr"``) they form a standalone label image there. Either way:

* the NGFF version and zarr format of the input (0.4 → zarr v2, 0.5 → zarr v3; 0.5 for
  inputs without NGFF metadata), its axes without the channel, and the scale/translation
  of the level that was segmented;
* a pyramid mirroring the input's levels (else halving y and x down to ~256 voxels),
  downsampled with ``"mode"`` or ``"nearest"``, which never invent IDs;
* label-sized chunks (default about 1 MiB, dividing the tile shape) and the zstd level 1
  codec patchworks uses for all label arrays.

The pipeline writes full-resolution labels to a hidden sibling of the destination (a plain
``write_to`` as far as it knows, so resume and locking work unchanged). ``finish`` then
moves that array into a private build folder as level 0 (or copies it, tile by tile, when
the zarr format, chunks or codecs differ), computes the pyramid, writes the metadata and
moves the label image into place; nothing appears at the destination before that.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from patchworks._fs import remove_tree
from patchworks.errors import InvalidParameterError, OutputExistsError
from patchworks.io._axes import Axes
from patchworks.io._ngff import (
    check_array_options,
    check_chunks,
    compressors_for,
    copy_block,
    label_chunks,
    label_levels,
    register_label,
    replace_output,
)
from patchworks.io._pyramid import LevelJob, PyramidMethod, check_method, downsample_chunk
from patchworks.io._storage import is_url
from patchworks.io._table import carry_table
from patchworks.io._zarr_sink import check_writable, check_write_to, open_result

logger = logging.getLogger(__name__)


@dataclass
class LabelOutput:
    """Where and how one run's label image is written."""

    final_path: str
    labels_group: str | None  # the image's labels/ group when writing inside the image
    name: str
    version: str
    zarr_format: int
    axes: Axes
    levels: list[dict[str, Any]]  # per level: shape, factors, scale, translation
    method: PyramidMethod
    chunks: tuple[int, ...] | None
    compressors: Any
    source_image: str | None
    overwrite: bool
    build_path: str | None = field(default=None)
    done: bool = field(default=False)

    @property
    def target(self) -> str:
        """Where the run publishes the full-resolution labels (see :attr:`level0_path`)."""
        return self.level0_path

    @property
    def level0_path(self) -> str:
        """Where the pipeline writes the full-resolution labels (a hidden sibling)."""
        return level0_path_for(self.final_path)

    def array_options(self, chunks: tuple[int, ...]) -> dict[str, Any]:
        """``zarr.create_array`` options of one level."""
        options: dict[str, Any] = {
            "chunks": chunks,
            "zarr_format": self.zarr_format,
            "compressors": compressors_for(self.compressors, self.zarr_format),
            "fill_value": 0,
        }
        if self.zarr_format == 2:
            options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        return options

    def finish(self, executor: Any, plan: Any, result: Any, *, compute: bool) -> Any:
        """Level 0, pyramid and metadata; move the label image into place; new result."""
        import zarr

        written = zarr.open_array(self.level0_path, mode="r")
        chunks = self.chunks or label_chunks(plan.tile_shape, np.dtype(written.dtype))
        parent = os.path.dirname(os.path.abspath(self.final_path))
        self.build_path = tempfile.mkdtemp(
            prefix=f".{os.path.basename(self.final_path)}.",
            suffix=".patchworks-build",
            dir=parent,
        )
        level0 = os.path.join(self.build_path, "0")
        carry_table(self.level0_path, self.build_path)  # objects=: beside the levels
        if self._reusable(written, chunks):
            os.replace(self.level0_path, level0)
            previous = zarr.open_array(level0, mode="r")
        else:
            previous = self._level(
                level0,
                written,
                chunks,
                self.levels[0],
                executor,
                block=copy_block(plan.tile_shape, chunks),
                label="level 0",
            )
        for k, level in enumerate(self.levels[1:], start=1):
            previous = self._level(
                os.path.join(self.build_path, str(k)),
                previous,
                chunks,
                level,
                executor,
                label=f"level {k}",
            )
        group = zarr.open_group(self.build_path, mode="a", zarr_format=self.zarr_format)  # type: ignore[arg-type]
        group.attrs.update(self.metadata())
        replace_output(self.build_path, self.final_path, self.overwrite)
        if self.labels_group is not None:
            register_label(self.labels_group, self.name, self.version, self.zarr_format)
        self.done = True
        remove_tree(self.level0_path)
        if compute:
            return result
        return open_result(os.path.join(self.final_path, "0"), compute=False)

    def _reusable(self, written: Any, chunks: tuple[int, ...]) -> bool:
        """Whether the pipeline's array already has this image's format, chunks and codec."""
        return (
            self.zarr_format == 3
            and self.compressors is None
            and written.metadata.zarr_format == 3
            and tuple(written.chunks) == tuple(chunks)
        )

    def _level(
        self,
        path: str,
        previous: Any,
        chunks: tuple[int, ...],
        level: dict[str, Any],
        executor: Any,
        *,
        label: str,
        block: tuple[int, ...] | None = None,
    ) -> Any:
        import zarr

        attrs = dict(previous.attrs) if label == "level 0" else {}
        clipped = tuple(min(c, n) for c, n in zip(chunks, level["shape"], strict=True))
        target = zarr.create_array(
            store=path,
            shape=level["shape"],
            dtype=previous.dtype,
            attributes=attrs,
            overwrite=True,
            **self.array_options(clipped),
        )
        job = LevelJob(
            source=previous,
            target=target,
            factors=level["factors"],
            method=self.method,
            block=block,
        )
        executor.map(
            downsample_chunk, job, range(job.n_chunks), desc=f"pyramid {label}", unit="block"
        )
        return target

    def abort(self, *, keep: bool = False) -> None:
        """Remove what an unfinished run left (its full-resolution labels too, unless
        ``keep``: a resumable run needs them), and a ``labels`` folder it created."""
        if self.done:
            return
        remove_tree(self.build_path)
        if not keep:
            remove_tree(self.level0_path)
        group = self.labels_group
        if group is not None and os.path.isdir(group) and not os.listdir(group):
            os.rmdir(group)

    def metadata(self) -> dict[str, Any]:
        """The label image's group attributes (NGFF multiscales + image-label)."""
        datasets = []
        for k, level in enumerate(self.levels):
            transforms = [{"type": "scale", "scale": list(level["scale"])}]
            if any(level["translation"]):
                shift = list(level["translation"])
                transforms.append({"type": "translation", "translation": shift})
            datasets.append({"path": str(k), "coordinateTransformations": transforms})
        multiscale: dict[str, Any] = {
            "name": self.name,
            "axes": self.axes.to_ngff(),
            "datasets": datasets,
            "type": self.method,
        }
        image_label: dict[str, Any] = {}
        if self.source_image is not None:
            image_label["source"] = {"image": self.source_image}
        if self.version == "0.5":
            return {
                "ome": {"version": "0.5", "multiscales": [multiscale], "image-label": image_label}
            }
        multiscale["version"] = self.version
        image_label["version"] = self.version
        return {"multiscales": [multiscale], "image-label": image_label}


def level0_path_for(final_path: str) -> str:
    """The hidden sibling of a label image at ``final_path`` where a run builds and
    publishes its full-resolution labels (its run directory lives beside it).

    Examples
    --------
    >>> level0_path_for("/data/seg.zarr")
    '/data/.seg.zarr.patchworks-level0.zarr'
    """
    parent, base = os.path.split(os.path.abspath(final_path))
    return os.path.join(parent, f".{base}.patchworks-level0.zarr")


@dataclass(frozen=True)
class OmeZarrSink:
    """An NGFF label image with a pyramid: at ``path``, or with ``path=None`` inside an
    OME-Zarr input as ``labels/<name>`` (see docs/formats.md).

    Parameters
    ----------
    path : str or os.PathLike, optional
        Where the label image goes (None: inside the OME-Zarr input image).
    name : str
        The label image's name (its folder under ``labels/`` inside the image).
    chunks : tuple of int, optional
        Chunks of every level (default: about 1 MiB, dividing the tile shape).
    compressors : optional
        Codecs of every level, as zarr accepts them (default: zstd level 1).
    pyramid : {"mode", "nearest"}
        How coarser levels are downsampled (neither invents IDs).
    """

    path: str | os.PathLike[str] | None = None
    name: str = "patchworks"
    chunks: Any = None
    compressors: Any = None
    pyramid: str = "mode"

    def open(
        self, image: Any, source: Any, *, dtype: np.dtype[Any], overwrite: bool, resume: bool
    ) -> LabelOutput:
        write_to = check_write_to(self.path, overwrite=overwrite or resume, image=image)
        return plan_label_output(
            image,
            source,
            dtype=dtype,
            write_to=write_to,
            label_name=self.name,
            output_chunks=self.chunks,
            output_compressors=self.compressors,
            pyramid=self.pyramid,
            overwrite=overwrite,
        )


def plan_label_output(
    image: Any,
    source: Any,
    *,
    dtype: np.dtype[Any],
    write_to: str | None,
    label_name: str,
    output_chunks: Any,
    output_compressors: Any,
    pyramid: str,
    overwrite: bool,
) -> LabelOutput:
    """Plan the label image of one run (where, levels, chunks, codecs, metadata)."""
    method = check_method(pyramid)
    ome = source.ome
    if write_to is None and ome is None:
        raise InvalidParameterError(
            '`output_format="ome-zarr"` needs `write_to` for an input that is not an '
            "OME-Zarr image (labels go inside OME-Zarr inputs only); got write_to=None."
        )
    check_label_name(label_name)
    labels_group: str | None = None
    source_image: str | None
    if write_to is None:
        labels_group = os.path.join(ome.url, "labels")
        final = os.path.join(labels_group, label_name)
        check_writable(final)  # a read-only image: refused now, not after the tiles
        source_image = "../../"
    else:
        final = write_to
        local = isinstance(image, str | os.PathLike) and not is_url(os.fspath(image))
        source_image = os.path.relpath(os.fspath(image), final) if local else None
    if os.path.exists(final) and not overwrite:
        # Only published label images live at ``final`` (a resumable run keeps its state
        # beside a hidden level-0 array), so an existing one is a finished result even with
        # resume=True, which check_write_to lets pass.
        raise OutputExistsError(
            f"`label_name` {label_name!r} already exists in {labels_group!r}; pass "
            "overwrite=True to replace it or choose another label_name."
            if labels_group is not None
            else f"`write_to` {final!r} already exists (a finished label image); pass "
            "overwrite=True to replace it or choose another path."
        )
    version = ome.image.version if ome is not None else "0.5"
    version = version if version in ("0.4", "0.5") else "0.4"
    # the input's zarr format, so the labels are members of its hierarchy (0.4 metadata in
    # a zarr v3 group is mirrored as such rather than mixing formats)
    zarr_format = ome.image.zarr_format if ome is not None else 3
    axes = ome.axes if ome is not None else source.axes or Axes.default(len(source.shape))
    output = LabelOutput(
        final_path=final,
        labels_group=labels_group,
        name=label_name,
        version=version,
        zarr_format=zarr_format,
        axes=axes,
        levels=label_levels(source, axes),
        method=method,
        chunks=check_chunks(output_chunks, len(source.shape)),
        compressors=output_compressors,
        source_image=source_image,
        overwrite=overwrite,
    )
    check_array_options(output.array_options((1,) * len(source.shape)), dtype)
    os.makedirs(os.path.dirname(output.level0_path), exist_ok=True)
    return output


def check_label_name(name: Any) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or "/" in name
        or ("\\" in name)
    ):
        raise InvalidParameterError(
            "`label_name` must be a non-empty folder name without '/' that does not start "
            f"with '.'; got {name!r}."
        )
