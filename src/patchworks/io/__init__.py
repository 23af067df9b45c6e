"""Where images come from and where labels go.

The contracts are :class:`Source` (a readable image) and :class:`Sink` (a destination
for labels; ``write_to=`` takes a path or a sink). The sinks patchworks ships are
registered in :data:`SINKS` by ``output_format`` name:

>>> sorted(SINKS)
['ome-zarr', 'zarr']

A new output format is one new module with a class implementing :class:`Sink` (and its
:class:`Output`), and one entry in :data:`SINKS`: a :data:`SinkFactory` under the
format's name (docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from patchworks.errors import InvalidParameterError
from patchworks.io._base import Output, Sink, Source, TaskMap
from patchworks.io._ngff import check_chunks
from patchworks.io._ome_sink import OmeZarrSink, check_label_name
from patchworks.io._pyramid import check_method
from patchworks.io._storage import is_url
from patchworks.io._zarr_sink import ZarrSink, check_write_to

logger = logging.getLogger(__name__)

#: Builds a sink from ``write_to`` (a path, or None for "no path given"), the image
#: ``source`` and the output keywords of :func:`~patchworks.tile_process` (``name``,
#: ``chunks``, ``compressors``, ``pyramid``; a format ignores those it does not use).
#: None: nothing to write, the labels are only returned.
SinkFactory = Callable[..., "Sink | None"]


def _zarr(write_to: Any, source: Any, **options: Any) -> Sink | None:
    return None if write_to is None else ZarrSink(write_to)


def _ome_zarr(write_to: Any, source: Any, **options: Any) -> Sink | None:
    ome = source.ome
    if write_to is None and ome is not None and is_url(ome.url):
        logger.info("remote OME-Zarr input %s: labels are returned, not written", ome.url)
        return None
    return OmeZarrSink(path=write_to, **options)  # None: labels/<name> inside the image


#: The output formats by name (``output_format=``, ``--output-format``).
SINKS: dict[str, SinkFactory] = {"zarr": _zarr, "ome-zarr": _ome_zarr}
#: What ``output_format=`` accepts: a name from :data:`SINKS`, or "auto" (with
#: ``write_to``: OME-Zarr for an OME-Zarr input, else plain zarr; without: nothing written).
OUTPUT_FORMATS = ("auto", *SINKS)


def parse_sink(
    write_to: Any,
    source: Any,
    *,
    output_format: str = "auto",
    label_name: str = "patchworks",
    output_chunks: Any = None,
    output_compressors: Any = None,
    pyramid: str = "mode",
) -> Sink | None:
    """The sink for ``write_to=`` (a path, a :class:`Sink`, or None) and the output
    keywords; None when the labels are only returned (no output written)."""
    formats = ("auto", *SINKS)
    if output_format not in formats:
        raise InvalidParameterError(
            f"`output_format` must be one of {list(formats)}; got {output_format!r}."
        )
    check_method(pyramid)
    check_label_name(label_name)
    check_chunks(output_chunks, len(source.shape))
    if isinstance(write_to, Sink) and not isinstance(write_to, str | os.PathLike):
        return write_to  # (a pathlib.Path has an ``open`` too)
    if write_to is not None and not isinstance(write_to, str | os.PathLike):
        check_write_to(write_to, overwrite=False)  # raises: names the bad type
    if output_format == "auto":
        # Labels go into an OME-Zarr input only when asked (output_format="ome-zarr"):
        # without write_to they are returned, and the input is never written.
        if write_to is None:
            return None
        output_format = "zarr" if source.ome is None else "ome-zarr"
    return SINKS[output_format](
        write_to,
        source,
        name=label_name,
        chunks=output_chunks,
        compressors=output_compressors,
        pyramid=pyramid,
    )


__all__ = [
    "OUTPUT_FORMATS",
    "SINKS",
    "OmeZarrSink",
    "Output",
    "Sink",
    "SinkFactory",
    "Source",
    "TaskMap",
    "ZarrSink",
    "parse_sink",
]
