"""The sub-commands of the ``patchworks`` command line, one ``_cmd_*`` function each.

Each takes the parsed arguments (:func:`patchworks._cli.parser.build_parser`), calls the
library (``run``: tile_process, ``merge``: merge_tile_labels, ``estimate-empty``, ``info``,
``preview``), prints what it did and returns the exit code; :data:`COMMANDS` maps the
sub-command names to them for :func:`patchworks._cli.main.main`. The library is imported
inside each command, so ``patchworks --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from patchworks._cli.methods import build_fn, describe_fn, run_defaults
from patchworks._cli.objects import cmd_objects, object_kwargs
from patchworks._cli.parser import OK, Ints, UsageError, image_kwargs, parse_ints
from patchworks.io._storage import is_url
from patchworks.io._zarr_sink import check_writable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from patchworks._typing import OverlapLike, TileShapeLike


def _cmd_run(args: argparse.Namespace) -> int:
    from patchworks._api import tile_process

    run_defaults(args)
    fn = build_fn(args)
    tile_shape = parse_ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    overlap = None if args.overlap is None else parse_ints(args.overlap, "--overlap")
    _ship_fn(fn)
    if args.dry_run:
        return _dry_run(args, fn, tile_shape, overlap, describe_fn(args, fn))
    _check_destination(args)
    start = time.perf_counter()
    tile_process(
        args.image,
        fn,
        tile_shape=cast("TileShapeLike", tile_shape),  # parse_ints's values are checked there
        overlap=cast("OverlapLike", overlap),
        write_to=args.out,
        progress=args.progress,
        sequential_labels=args.sequential_labels,
        time_as_space=args.time_as_space,
        skip_empty=args.skip_empty,
        empty_threshold=args.empty_threshold,
        stitch=args.stitch,
        iou_threshold=args.iou_threshold,
        connectivity=args.connectivity,
        resume=args.resume,
        overwrite=args.overwrite,
        label_name=args.label_name,
        # no --out: into the OME-Zarr input, which _check_destination made sure it is
        output_format="ome-zarr" if args.out is None else args.output_format,
        **image_kwargs(args),
        **object_kwargs(args),
    )
    where = _written_array(args)
    meta = _run_meta(where)
    method = f" ({describe_fn(args, fn)})" if args.method else ""
    print(
        f"wrote {where}: {meta.get('n_labels', '?')} objects in "
        f"{time.perf_counter() - start:.1f} s{method}"
    )
    return OK


def _ship_fn(fn: Callable[..., Any]) -> None:
    """Send fn's module, and the modules it imported from its folder, to the cluster.

    Workers unpickle ``fn`` by importing its module; a ``seg.py`` next to the user (and a
    ``helper.py`` it imports) is not on their path, so each is uploaded
    (``Client.upload_file``, to the scheduler and every worker), siblings first: a module
    is imported where it lands. Installed packages are not.
    """
    from patchworks._engine.execute import active_client

    client = active_client()
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if client is None or not path or not path.endswith(".py"):
        return
    installed = ("site-packages", "dist-packages", os.path.dirname(os.__file__))
    if any(part in os.path.abspath(path) for part in installed):
        return
    folder = os.path.dirname(os.path.abspath(path))
    siblings = {
        os.path.abspath(f)
        for m in list(sys.modules.values())
        if (f := getattr(m, "__file__", None)) and os.path.dirname(os.path.abspath(f)) == folder
    }
    siblings.discard(os.path.abspath(path))
    for sibling in sorted(s for s in siblings if s.endswith(".py")):
        client.upload_file(sibling)
    client.upload_file(path)


def _check_destination(args: argparse.Namespace) -> None:
    """Refuse a run whose labels would go nowhere (see :func:`_destination`)."""
    if args.out is not None:
        return
    from patchworks.io._source import open_image

    _destination(args, is_ome=open_image(args.image, **image_kwargs(args)).ome is not None)


def _destination(args: argparse.Namespace, *, is_ome: bool) -> str:
    """Where ``run`` writes: ``--out``, else ``labels/<--label-name>`` inside a local
    OME-Zarr input; anything else would compute labels and write them nowhere."""
    if args.out is not None:
        return str(args.out)
    if not is_ome or args.output_format == "zarr":
        raise UsageError(
            f"--out is needed: {args.image!r} is not an OME-Zarr image, so there "
            "is no labels/ group to write into."
        )
    if is_url(args.image):
        raise UsageError(
            f"--out is needed: {args.image!r} is a remote image, and labels are never "
            "written back into one."
        )
    return os.path.join(args.image, "labels", args.label_name)


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


def _dry_run(
    args: argparse.Namespace, fn: Any, tile_shape: Ints, overlap: Ints, described: str
) -> int:
    from patchworks._options import fn_stitch
    from patchworks._tools.info import describe, format_info

    stitch = args.stitch or fn_stitch(fn)
    if overlap is None:
        overlap = "auto" if stitch == "iou" else 0
    info = describe(
        args.image,
        tile_shape=cast("TileShapeLike", tile_shape),
        overlap=cast("OverlapLike", overlap),
        time_as_space=args.time_as_space,
        **image_kwargs(args),
    )
    print(format_info(info))
    if info["halo"] != "auto":  # as the run checks it, before anything is written
        from patchworks.stitch import parse_stitcher

        halo = tuple(int(h) for h in info["halo"])
        parse_stitcher(stitch, iou_threshold=args.iou_threshold).check_halo(
            halo, overlap, tuple(info["tile_shape"]), tuple(info["shape"])
        )
    target = _destination(args, is_ome="ome" in info)
    if os.path.exists(target) and not (args.overwrite or args.resume):
        raise UsageError(f"{target!r} already exists; pass --overwrite to replace it.")
    check_writable(target)  # exit code 2 with the fix, as the run itself would
    print(f"output      {target}")
    print(f"fn          {described}, stitch {stitch}")
    print("dry run: nothing was computed")
    return OK


def _cmd_merge(args: argparse.Namespace) -> int:
    from patchworks._api import merge_tile_labels

    tile_shape = parse_ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    merge_tile_labels(
        args.labeled,
        input_component=args.component,
        write_to=args.out,
        progress=args.progress,
        sequential_labels=args.sequential_labels,
        connectivity=args.connectivity,
        tile_shape=cast("tuple[int, ...] | None", tile_shape),
        overwrite=args.overwrite,
        image=args.image,
        **object_kwargs(args),
    )
    print(f"wrote {args.out}: {_run_meta(args.out).get('n_labels', '?')} objects")
    return OK


def _cmd_estimate_empty(args: argparse.Namespace) -> int:
    from patchworks._tools.empty import estimate_empty_tiles

    if not args.tile_shape:
        raise UsageError("--tile-shape is needed for estimate-empty (e.g. 1,512,512).")
    result = estimate_empty_tiles(
        args.image,
        tile_shape=cast("TileShapeLike", parse_ints(args.tile_shape, "--tile-shape")),
        threshold=args.threshold,
        sample_size=args.sample_size,
        progress=args.progress,
        **image_kwargs(args),
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

    tile_shape = parse_ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    info = describe(
        args.image,
        tile_shape=cast("TileShapeLike", tile_shape),
        overlap=cast("OverlapLike", parse_ints(args.overlap, "--overlap")),
        **image_kwargs(args),
    )
    print(json.dumps(info, default=_plain, indent=1) if args.json else format_info(info))
    return OK


def _cmd_preview(args: argparse.Namespace) -> int:
    from patchworks._tools.preview import preview

    tile_shape = parse_ints(args.tile_shape, "--tile-shape") if args.tile_shape else None
    path = preview(
        args.image,
        labels=args.labels,
        write_to=args.out,
        plane=args.plane,
        projection="max" if args.max_projection else None,
        tile_shape=cast("Sequence[int] | None", tile_shape),
        size=args.size,
        **image_kwargs(args),
    )
    print(f"wrote {path}")
    return OK


def _plain(value: object) -> object:
    """A value :func:`json.dumps` cannot write (a numpy scalar, a path...) as one it can."""
    return value.item() if hasattr(value, "item") else str(value)


#: The function of each sub-command.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "merge": _cmd_merge,
    "estimate-empty": _cmd_estimate_empty,
    "info": _cmd_info,
    "preview": _cmd_preview,
    "objects": cmd_objects,
}
