"""The command line's per-object options (``--objects`` on ``run`` and ``merge``, parsed
in :mod:`.parser`) and the ``patchworks objects`` command, which measures an existing
label image."""

from __future__ import annotations

import argparse
import os
from typing import Any, cast

from patchworks._cli.parser import OK, parse_ints


def parse_objects_arg(text: str | None) -> Any:
    """``--objects`` as the ``objects=`` keyword: None, True or a list of names."""
    if text is None:
        return None
    if text == "default":
        return True
    return [name.strip() for name in text.split(",") if name.strip()]


def object_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "objects": parse_objects_arg(args.objects),
        "objects_to": args.objects_to,
        "min_size": args.min_size,
        "max_size": args.max_size,
    }


def cmd_objects(args: argparse.Namespace) -> int:
    from patchworks._tools.objects import measure_labels

    labels = args.labels
    component = args.component
    if component is None and os.path.isdir(os.path.join(labels, "0")):
        component = "0"  # an OME-Zarr label image: measure its full resolution
    tile_shape = parse_ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    table = measure_labels(
        labels,
        image=args.image,
        objects=parse_objects_arg(args.objects),
        objects_to=args.out or "inside",
        input_component=component,
        tile_shape=cast("tuple[int, ...] | None", tile_shape),
        overwrite=args.overwrite,
        progress=args.progress,
    )
    where = args.out or os.path.join(labels, "objects.parquet")
    print(f"wrote {where}: {len(table)} objects")
    return OK
