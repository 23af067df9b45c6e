"""Helpers for OME-Zarr tests: images written by ome-zarr-py, NGFF JSON-schema validation.

The NGFF schemas come from the installed ``ngff-zarr`` package (test extra), which ships
the official schema files; they are loaded from disk, never fetched.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import zarr


def write_ome_image(path, image, *, axes, version="0.5", chunks=None, scale_factors=(2,)):
    """Write ``image`` as an OME-Zarr image with ome-zarr-py (the independent writer)."""
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    options = {"chunks": chunks} if chunks else None
    write_image(
        np.asarray(image),
        root,
        axes=axes,
        fmt=fmt,
        scale_factors=scale_factors,
        storage_options=options,
    )
    return root


def _schema_dir(version: str) -> Path:
    spec = importlib.util.find_spec("ngff_zarr")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "spec" / version / "schemas"


def validate(attrs: dict, version: str, *names: str) -> None:
    """Validate group attributes against the named NGFF schemas of ``version``."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    folder = _schema_dir(version)
    schemas = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.schema")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012))
        for s in schemas.values()
        if "$id" in s
    )
    for name in names:
        Draft202012Validator(schemas[name], registry=registry).validate(attrs)
