"""The ``patchworks`` command line (also ``python -m patchworks``).

Sub-commands: ``run`` (tile_process), ``merge`` (merge_tile_labels), ``estimate-empty``,
``info`` and ``preview``. Exit codes: 0 success, 1 the run failed, 2 bad usage or input.
Errors are one line on stderr (the full traceback with ``--debug``). With
``--scheduler-address`` the work goes to an existing dask scheduler (a SLURM cluster
started with dask-jobqueue, a Kubernetes or cloud cluster...).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from patchworks.errors import InvalidLabelsError, PatchworksError

OK, FAILED, USAGE = 0, 1, 2


class UsageError(PatchworksError, ValueError):
    """Bad command-line input (exit code 2)."""


def _ints(text: str, name: str) -> Any:
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(
            f"{name} must be integers separated by commas (or 'auto'); got {text!r}."
        ) from None
    return values[0] if len(values) == 1 and name == "--overlap" else values


def load_fn(spec: str) -> Any:
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
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UsageError(f"--fn {spec!r}: {module_name!r} has no callable named {attr!r}.")
    return fn


def _parser() -> argparse.ArgumentParser:
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
        help="progress bars (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")

    image_opts = argparse.ArgumentParser(add_help=False)
    image_opts.add_argument("--level", help="OME-Zarr / OME-TIFF resolution level")
    image_opts.add_argument("--channel", type=int, help="use only this channel of the image")
    image_opts.add_argument(
        "--channel-axis", type=int, help="axis holding channels (run: fn gets them all)"
    )
    image_opts.add_argument("--tile-shape", help="e.g. 1,512,512 or auto (default: chunks)")

    run = sub.add_parser("run", parents=[common, image_opts], help="segment an image")
    run.add_argument("image", help="zarr / OME-Zarr path or URL, or TIFF file")
    run.add_argument("--fn", required=True, help="module:callable or file.py:callable")
    run.add_argument("--overlap", default="0", help="halo in voxels: 8, 2,8,8 or auto")
    run.add_argument("--out", help="output path (default for OME-Zarr: labels inside it)")
    run.add_argument(
        "--stitch",
        choices=["touch", "iou"],
        default="touch",
        help="join labels that touch (default) or whose halos agree",
    )
    run.add_argument("--iou-threshold", type=float, default=0.5, help="for --stitch iou")
    run.add_argument("--connectivity", type=int, help="1..ndim (default ndim)")
    run.add_argument("--sequential-labels", action="store_true", help="IDs exactly 1..N")
    run.add_argument(
        "--skip-empty",
        action="store_true",
        help="do not run fn on tiles with nothing above --empty-threshold",
    )
    run.add_argument("--empty-threshold", type=float)
    run.add_argument(
        "--label-name", default="patchworks", help="name of labels/<name> inside an OME-Zarr image"
    )
    run.add_argument("--output-format", choices=["auto", "zarr", "ome-zarr"], default="auto")
    run.add_argument("--resume", action="store_true", help="finish an interrupted run")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--dry-run", action="store_true", help="show the plan, run nothing")

    merge = sub.add_parser("merge", parents=[common], help="merge per-tile labels")
    merge.add_argument("labeled", help="zarr store of per-tile labels (tiles = chunks)")
    merge.add_argument("--component", help="array inside the zarr group")
    merge.add_argument("--out", required=True)
    merge.add_argument("--tile-shape")
    merge.add_argument("--connectivity", type=int)
    merge.add_argument("--sequential-labels", action="store_true")
    merge.add_argument("--overwrite", action="store_true")

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


def _version() -> str:
    from patchworks._version import __version__

    return f"patchworks {__version__}"


@contextlib.contextmanager
def _client(address: str | None) -> Iterator[None]:
    if address is None:
        yield
        return
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except Exception as exc:
        raise UsageError(
            f"--scheduler-address {address!r}: could not connect ({type(exc).__name__}: {exc})."
        ) from exc
    with client:
        yield


def _level(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def _image_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"level": _level(args.level), "channel": args.channel, "channel_axis": args.channel_axis}


def _cmd_run(args: argparse.Namespace) -> int:
    from patchworks._api import tile_process

    fn = load_fn(args.fn)
    tile_shape = _ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    overlap = _ints(args.overlap, "--overlap")
    _ship_fn(fn)
    if args.dry_run:
        return _dry_run(args, tile_shape, overlap)
    _check_destination(args)
    start = time.perf_counter()
    tile_process(
        args.image,
        fn,
        tile_shape=tile_shape,
        overlap=overlap,
        write_to=args.out,
        progress=args.progress,
        sequential_labels=args.sequential_labels,
        skip_empty=args.skip_empty,
        empty_threshold=args.empty_threshold,
        stitch=args.stitch,
        iou_threshold=args.iou_threshold,
        connectivity=args.connectivity,
        resume=args.resume,
        overwrite=args.overwrite,
        label_name=args.label_name,
        output_format=args.output_format,
        **_image_kwargs(args),
    )
    where = _written_array(args)
    meta = _run_meta(where)
    print(
        f"wrote {where}: {meta.get('n_labels', '?')} objects in {time.perf_counter() - start:.1f} s"
    )
    return OK


def _ship_fn(fn: Any) -> None:
    """Send fn's module to the cluster's workers when it is the user's own file.

    Workers unpickle ``fn`` by importing its module; a ``seg.py`` next to the user is not
    on their path, so it is uploaded (``Client.upload_file``). Installed packages are not.
    """
    from patchworks._engine.execute import active_client

    client = active_client()
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if client is None or not path or not path.endswith(".py"):
        return
    installed = ("site-packages", "dist-packages", os.path.dirname(os.__file__))
    if not any(part in os.path.abspath(path) for part in installed):
        client.upload_file(path)


def _check_destination(args: argparse.Namespace) -> None:
    """Refuse a run whose labels would go nowhere (no --out, input not OME-Zarr)."""
    if args.out is not None:
        return
    from patchworks.io._source import open_image

    source = open_image(args.image, **_image_kwargs(args))
    if source.ome is None or args.output_format == "zarr":
        raise UsageError(
            f"--out is needed: {args.image!r} is not an OME-Zarr image, so there "
            "is no labels/ group to write into."
        )


def _written_array(args: argparse.Namespace) -> str:
    if args.out is None:
        return os.path.join(args.image, "labels", args.label_name, "0")
    ome = os.path.join(args.out, "0")
    return ome if os.path.isdir(ome) else args.out


def _run_meta(path: str) -> dict[str, Any]:
    import zarr

    try:
        attrs: dict[str, Any] = dict(zarr.open_array(path, mode="r").attrs)
        return dict(attrs.get("patchworks", {}))
    except Exception:  # metadata is informative only
        return {}


def _dry_run(args: argparse.Namespace, tile_shape: Any, overlap: Any) -> int:
    from patchworks._tools.info import describe, format_info

    info = describe(args.image, tile_shape=tile_shape, overlap=overlap, **_image_kwargs(args))
    print(format_info(info))
    if args.out is not None:
        target = args.out
    elif "ome" in info and args.output_format != "zarr":
        target = os.path.join(args.image, "labels", args.label_name)
    else:
        raise UsageError(
            f"--out is needed: {args.image!r} is not an OME-Zarr image, so there "
            "is no labels/ group to write into."
        )
    if os.path.exists(target) and not (args.overwrite or args.resume):
        raise UsageError(f"{target!r} already exists; pass --overwrite to replace it.")
    print(f"output      {target}")
    print(f"fn          {args.fn}, stitch {args.stitch}")
    print("dry run: nothing was computed")
    return OK


def _cmd_merge(args: argparse.Namespace) -> int:
    from patchworks._api import merge_tile_labels

    tile_shape = _ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    merge_tile_labels(
        args.labeled,
        input_component=args.component,
        write_to=args.out,
        progress=args.progress,
        sequential_labels=args.sequential_labels,
        connectivity=args.connectivity,
        tile_shape=tile_shape,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.out}: {_run_meta(args.out).get('n_labels', '?')} objects")
    return OK


def _cmd_estimate_empty(args: argparse.Namespace) -> int:
    from patchworks._tools.empty import estimate_empty_tiles

    if not args.tile_shape:
        raise UsageError("--tile-shape is needed for estimate-empty (e.g. 1,512,512).")
    result = estimate_empty_tiles(
        args.image,
        tile_shape=_ints(args.tile_shape, "--tile-shape"),
        threshold=args.threshold,
        sample_size=args.sample_size,
        progress=args.progress,
        **_image_kwargs(args),
    )
    if args.json:
        print(json.dumps(result, default=_plain))
    else:
        print(
            f"{result['empty_fraction']:.1%} of tiles are empty (threshold "
            f"{result['threshold']:g}); pass --skip-empty --empty-threshold "
            f"{result['threshold']:g} to run to skip them"
        )
    return OK


def _cmd_info(args: argparse.Namespace) -> int:
    from patchworks._tools.info import describe, format_info

    tile_shape = _ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    info = describe(
        args.image,
        tile_shape=tile_shape,
        overlap=_ints(args.overlap, "--overlap"),
        **_image_kwargs(args),
    )
    print(json.dumps(info, default=_plain, indent=1) if args.json else format_info(info))
    return OK


def _cmd_preview(args: argparse.Namespace) -> int:
    from patchworks._tools.preview import preview

    tile_shape = _ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    path = preview(
        args.image,
        labels=args.labels,
        write_to=args.out,
        plane=args.plane,
        projection="max" if args.max_projection else None,
        tile_shape=tile_shape,
        size=args.size,
        **_image_kwargs(args),
    )
    print(f"wrote {path}")
    return OK


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


COMMANDS = {
    "run": _cmd_run,
    "merge": _cmd_merge,
    "estimate-empty": _cmd_estimate_empty,
    "info": _cmd_info,
    "preview": _cmd_preview,
}
#: Errors that mean "fix your input" (exit 2) rather than "the run failed" (exit 1).
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError)


# Library messages name keyword arguments; on the command line, name the flags instead.
FLAGS = {
    "overwrite=True": "--overwrite",
    "resume=True": "--resume",
    "sequential_labels=True": "--sequential-labels",
}


def _as_flags(message: str) -> str:
    """Say ``--overwrite`` where the library's message says ``overwrite=True``.

    Examples
    --------
    >>> _as_flags("pass overwrite=True to replace it")
    'pass --overwrite to replace it'
    """
    for keyword, flag in FLAGS.items():
        message = message.replace(keyword, flag)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``patchworks`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.progress is None:
        args.progress = sys.stderr.isatty()
    try:
        with _client(args.scheduler_address):
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("patchworks: interrupted", file=sys.stderr)
        return FAILED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        usage = (
            isinstance(exc, PatchworksError)
            and isinstance(exc, USAGE_ERRORS)
            and not isinstance(exc, InvalidLabelsError)
        )  # bad labels: the run failed
        message = _as_flags(" ".join(str(exc).split()) or type(exc).__name__)
        print(f"patchworks: error: {message}", file=sys.stderr)
        return USAGE if usage else FAILED
