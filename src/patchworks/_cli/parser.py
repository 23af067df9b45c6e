"""What the ``patchworks`` command line accepts: its argparse parser and the parsing of
option values that argparse leaves as text.

:func:`build_parser` declares the sub-commands and their options; :func:`parse_ints`,
:func:`load_fn` and :func:`image_kwargs` turn ``--tile-shape``/``--overlap``, ``--fn``
and the image options into the values the library takes. Bad input raises
:class:`UsageError` (exit code 2). The sub-commands themselves are in
:mod:`patchworks._cli.commands`, the entry point in :mod:`patchworks._cli.main`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any, TypeAlias, TypedDict

from patchworks.errors import PatchworksError
from patchworks.io import OUTPUT_FORMATS
from patchworks.stitch import STITCHERS

OK, FAILED, USAGE = 0, 1, 2

#: What :func:`parse_ints` returns: integers (a single one for ``--overlap``), "auto" or None.
Ints: TypeAlias = int | tuple[int, ...] | str | None


class UsageError(PatchworksError, ValueError):
    """Bad command-line input (exit code 2)."""


class ImageKwargs(TypedDict):
    """The image options (``--level``, ``--channel``, ``--channel-axis``) as keywords."""

    level: int | str | None
    channel: int | None
    channel_axis: int | None


def parse_ints(text: str, name: str) -> Ints:
    """The integers of option ``name`` (``1,512,512`` or ``1x512x512``), or auto / none.

    Examples
    --------
    >>> parse_ints("1x512x512", "--tile-shape"), parse_ints("8", "--overlap")
    ((1, 512, 512), 8)
    """
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(
            f"{name} must be integers separated by commas (or 'auto'); got {text!r}."
        ) from None
    return values[0] if len(values) == 1 and name == "--overlap" else values


def load_fn(spec: str) -> Callable[..., Any]:
    """Import ``module:callable`` or ``path/to/file.py:callable``.

    Examples
    --------
    >>> load_fn("numpy:asarray").__name__
    'asarray'
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"--fn must look like 'module:callable' or 'file.py:callable'; got {spec!r}."
        )
    try:
        if module_name.endswith(".py"):
            if not os.path.exists(module_name):
                raise UsageError(f"--fn file does not exist: {module_name!r}.")
            name = os.path.splitext(os.path.basename(module_name))[0]
            folder = os.path.dirname(os.path.abspath(module_name))
            if folder not in sys.path:  # its sibling modules import as they do beside it
                sys.path.insert(0, folder)
            spec_obj = importlib.util.spec_from_file_location(name, module_name)
            assert spec_obj is not None and spec_obj.loader is not None
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[name] = module  # so process-based workers can unpickle fn
            spec_obj.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"--fn {spec!r}: could not import {module_name!r} ({type(exc).__name__}: {exc})."
        ) from exc
    fn: object = getattr(module, attr, None)
    if not callable(fn):
        raise UsageError(f"--fn {spec!r}: {module_name!r} has no callable named {attr!r}.")
    return fn


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``patchworks`` command and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="patchworks",
        description="Run a segmentation function over a large image tile by tile and merge "
        "the labels into one image with globally unique IDs.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument(
        "--scheduler-address",
        metavar="ADDR",
        help="dask scheduler to run on (e.g. tcp://10.0.0.5:8786)",
    )
    progress = common.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress (the default): bars on a terminal; in a log, a start line and a "
        "line per stage every 10 s (PATCHWORKS_PROGRESS_INTERVAL)",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="show no progress"
    )

    image_opts = argparse.ArgumentParser(add_help=False)
    image_opts.add_argument("--level", help="OME-Zarr / OME-TIFF resolution level")
    image_opts.add_argument("--channel", type=int, help="use only this channel of the image")
    image_opts.add_argument(
        "--channel-axis", type=int, help="axis holding channels (run: fn gets them all)"
    )
    image_opts.add_argument("--tile-shape", help="e.g. 1,512,512 or auto (default: chunks)")

    run = sub.add_parser("run", parents=[common, image_opts], help="segment an image")
    run.add_argument("image", help="zarr / OME-Zarr path or URL, or TIFF file")
    run.add_argument("--fn", help="your segmentation: module:callable or file.py:callable")
    run.add_argument(
        "--method",
        choices=("otsu", "cellpose", "stardist"),
        help="a ready-made segmentation instead of --fn: otsu (one threshold for the whole "
        "image, from a sample), cellpose or stardist (with --model)",
    )
    run.add_argument("--model", metavar="NAME_OR_PATH", help="for --method cellpose/stardist")
    run.add_argument("--threshold", type=float, help="for --method otsu: use this threshold")
    run.add_argument("--diameter", type=float, help="for --method cellpose: object diameter")
    run.add_argument("--gpu", action="store_true", help="for --method cellpose/stardist")
    run.add_argument(
        "--overlap",
        help="halo in voxels: 8, 2,8,8 or auto (default: auto for --stitch iou, else 0)",
    )
    run.add_argument("--out", help="output path (default for OME-Zarr: labels inside it)")
    run.add_argument(
        "--stitch",
        choices=list(STITCHERS),
        help="join labels that touch or whose halos agree (default: iou for a model "
        "plugin's fn, else touch)",
    )
    run.add_argument("--iou-threshold", type=float, default=0.5, help="for --stitch iou")
    run.add_argument(
        "--connectivity", type=int, help="1..ndim (default: what fn's labels show, else ndim)"
    )
    run.add_argument("--sequential-labels", action="store_true", help="IDs exactly 1..N")
    run.add_argument(
        "--time-as-space",
        action="store_true",
        help="join objects across a time axis (default: each time point on its own)",
    )
    run.add_argument(
        "--skip-empty",
        action="store_true",
        help="do not run fn on tiles with nothing above --empty-threshold",
    )
    run.add_argument("--empty-threshold", type=float)
    run.add_argument(
        "--label-name", default="patchworks", help="name of labels/<name> inside an OME-Zarr image"
    )
    run.add_argument("--output-format", choices=list(OUTPUT_FORMATS), default="auto")
    run.add_argument("--resume", action="store_true", help="finish an interrupted run")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--dry-run", action="store_true", help="show the plan, run nothing")
    add_object_args(run)

    merge = sub.add_parser("merge", parents=[common], help="merge per-tile labels")
    merge.add_argument("labeled", help="zarr store of per-tile labels (tiles = chunks)")
    merge.add_argument("--component", help="array inside the zarr group")
    merge.add_argument("--out", required=True)
    merge.add_argument("--tile-shape")
    merge.add_argument("--connectivity", type=int)
    merge.add_argument("--sequential-labels", action="store_true")
    merge.add_argument("--overwrite", action="store_true")
    merge.add_argument("--image", help="the image the labels segment (for --objects)")
    add_object_args(merge)
    add_objects_command(sub, common)

    empty = sub.add_parser(
        "estimate-empty",
        parents=[common, image_opts],
        help="share of background-only tiles, from a sample",
    )
    empty.add_argument("image")
    empty.add_argument("--threshold", type=float)
    empty.add_argument("--sample-size", type=int, default=32)
    empty.add_argument("--json", action="store_true")

    info = sub.add_parser(
        "info",
        parents=[common, image_opts],
        help="shape, chunks, levels, channels, tiles and memory",
    )
    info.add_argument("image")
    info.add_argument("--overlap", default="0")
    info.add_argument("--json", action="store_true")

    preview = sub.add_parser(
        "preview",
        parents=[common, image_opts],
        help="PNG of a plane or max projection with labels and seams",
    )
    preview.add_argument("image")
    preview.add_argument(
        "--labels",
        help="label array or OME-Zarr label image (default: "
        "labels/patchworks inside an OME-Zarr image)",
    )
    preview.add_argument("--out", default="preview.png")
    preview.add_argument("--plane", type=int, help="plane index along the first axis")
    preview.add_argument("--max-projection", action="store_true")
    preview.add_argument("--size", type=int, default=1024, help="longest side in pixels")
    return parser


def add_object_args(parser: argparse.ArgumentParser) -> None:
    """``--objects [NAMES]``, ``--objects-to``, ``--min-size``, ``--max-size``."""
    parser.add_argument(
        "--objects",
        nargs="?",
        const="default",
        help="measure every object: a table inside the output (objects.parquet); "
        "optionally property names, e.g. label,area,centroid",
    )
    parser.add_argument("--objects-to", help="write the table here (.parquet or .csv)")
    parser.add_argument("--min-size", type=int, help="remove objects with fewer voxels")
    parser.add_argument("--max-size", type=int, help="remove objects with more voxels")


def add_objects_command(sub: Any, common: argparse.ArgumentParser) -> None:
    objects = sub.add_parser(
        "objects", parents=[common], help="measure every object of an existing label image"
    )
    objects.add_argument("labels", help="label array (zarr) or OME-Zarr label image")
    objects.add_argument("--image", help="the image the labels segment, for intensities")
    objects.add_argument("--component", help="array inside the zarr group")
    objects.add_argument(
        "--objects", default="default", help="property names, e.g. label,area,centroid"
    )
    objects.add_argument(
        "--out", help="table path (.parquet or .csv; default: objects.parquet inside LABELS)"
    )
    objects.add_argument("--tile-shape")
    objects.add_argument("--overwrite", action="store_true", help="replace an existing table")


def _version() -> str:
    from patchworks._version import __version__

    return f"patchworks {__version__}"


def _level(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def image_kwargs(args: argparse.Namespace) -> ImageKwargs:
    """The image options of a parsed command line, as keyword arguments of the library."""
    return {"level": _level(args.level), "channel": args.channel, "channel_axis": args.channel_axis}
