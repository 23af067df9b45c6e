"""Where images come from and where labels go.

The contracts are :class:`Source` (a readable image) and :class:`Sink` (a destination
for labels; ``write_to=`` takes a path or a sink). The sinks patchworks ships are
registered in :data:`SINKS` by ``output_format`` name:

>>> sorted(SINKS)
['ome-zarr', 'zarr']

A new output format is one new module with a class implementing :class:`Sink` (and its
:class:`Output`), registered here (docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from patchworks.errors import InvalidParameterError
from patchworks.io._base import Output, Sink, Source, TaskMap
from patchworks.io._ome_sink import OmeZarrSink
from patchworks.io._pyramid import check_method
from patchworks.io._storage import is_url
from patchworks.io._zarr_sink import ZarrSink

logger = logging.getLogger(__name__)

#: The output formats by name: each builds its sink from ``write_to`` and the flat
#: output keywords of :func:`~patchworks.tile_process`.
SINKS: dict[str, type[ZarrSink] | type[OmeZarrSink]] = {
    "zarr": ZarrSink,
    "ome-zarr": OmeZarrSink,
}
#: What ``output_format=`` accepts: a name from :data:`SINKS`, or "auto" (OME-Zarr for an
#: OME-Zarr input, else plain zarr).
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
    if output_format not in OUTPUT_FORMATS:
        raise InvalidParameterError(
            f"`output_format` must be one of {list(OUTPUT_FORMATS)}; got {output_format!r}."
        )
    check_method(pyramid)
    if isinstance(write_to, Sink) and not isinstance(write_to, str | os.PathLike):
        return write_to  # (a pathlib.Path has an ``open`` too)
    ome = source.ome
    if output_format == "zarr" or (output_format == "auto" and ome is None):
        return None if write_to is None else ZarrSink(write_to)
    if write_to is None and ome is not None and is_url(ome.url):
        logger.info("remote OME-Zarr input %s: labels are returned, not written", ome.url)
        return None
    if write_to is not None and not isinstance(write_to, str | os.PathLike):
        return ZarrSink(write_to)  # ZarrSink.open names the bad type
    return OmeZarrSink(
        path=write_to,
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
    "Source",
    "TaskMap",
    "ZarrSink",
    "parse_sink",
]
