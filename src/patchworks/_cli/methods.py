"""``patchworks run --method NAME``: a ready-made ``fn`` instead of a Python file.

* ``otsu``: connected components above Otsu's threshold of the whole image, computed once
  from a bounded sample (``--threshold T`` gives the threshold instead);
* ``cellpose --model NAME_OR_PATH``: :func:`patchworks.plugins.cellpose.cellpose_fn`;
* ``stardist --model NAME_OR_PATH``: :func:`patchworks.plugins.stardist.stardist_fn`.

The models are normalised with the image-wide percentiles of the image being run
(``image=``), read at the same ``--level`` and ``--channel``. Instance models default to
``--stitch iou`` with ``--overlap auto``; a threshold defaults to ``--stitch touch``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from patchworks._cli.parser import UsageError, image_kwargs, load_fn

#: The ``--method`` names, and whether each segments instances (IoU stitching).
METHODS = {"otsu": False, "cellpose": True, "stardist": True}


def run_defaults(args: argparse.Namespace) -> None:
    """Fill ``--stitch`` and ``--overlap`` left out for an instance ``--method``; with
    ``--fn`` they stay unset, and :func:`~patchworks.tile_process` takes them from ``fn``
    (``fn.stitch``, else touch; overlap auto for iou, else 0)."""
    if args.method and METHODS[args.method]:
        if args.stitch is None:
            args.stitch = "iou"
        if args.overlap is None:
            args.overlap = "auto"


def check_choice(args: argparse.Namespace) -> None:
    """One of ``--fn`` and ``--method``, and the options each method takes."""
    if (args.fn is None) == (args.method is None):
        raise UsageError(
            "give --fn MODULE:CALLABLE (your own function) or --method "
            f"{{{','.join(METHODS)}}} (a ready-made one); got "
            + ("both." if args.fn else "neither.")
        )
    needs_model = args.method in ("cellpose", "stardist")
    if needs_model and not args.model:
        raise UsageError(
            f"--method {args.method} needs --model NAME_OR_PATH (a pretrained name such as "
            + (
                "cpsam (Cellpose 4) or cyto3 (Cellpose 3)"
                if args.method == "cellpose"
                else "2D_versatile_fluo"
            )
            + ", or the path of a trained model)."
        )
    if args.model and not needs_model:
        raise UsageError(f"--model is for --method cellpose or stardist; got --model {args.model}.")
    if args.threshold is not None and args.method != "otsu":
        raise UsageError("--threshold is for --method otsu (it replaces Otsu's threshold).")
    if args.diameter is not None and args.method != "cellpose":
        raise UsageError("--diameter is for --method cellpose.")
    if args.gpu and not needs_model:
        raise UsageError("--gpu is for --method cellpose or stardist.")
    if args.method == "otsu" and args.channel_axis is not None:
        raise UsageError(
            "--method otsu thresholds one channel: pass --channel K instead of --channel-axis."
        )


def build_fn(args: argparse.Namespace) -> Callable[..., Any]:
    """The ``fn`` that ``--fn`` or ``--method`` names, built for the image of the run."""
    check_choice(args)
    if args.fn is not None:
        return load_fn(args.fn)
    image = image_kwargs(args)
    if args.method == "otsu":
        from patchworks.plugins.threshold import ThresholdLabels, otsu_fn

        if args.threshold is not None:
            return ThresholdLabels(threshold=args.threshold)
        return otsu_fn(args.image, level=image["level"], channel=image["channel"])
    if args.method == "cellpose":
        from patchworks.plugins.cellpose import cellpose_fn

        return cellpose_fn(
            args.model, image=args.image, gpu=args.gpu, diameter=args.diameter, **image
        )
    from patchworks.plugins.stardist import stardist_fn

    return stardist_fn(args.model, image=args.image, gpu=args.gpu, **image)


def describe_fn(args: argparse.Namespace, fn: Callable[..., Any]) -> str:
    """What ``fn`` is, for ``--dry-run`` and the final line."""
    if args.fn is not None:
        return str(args.fn)
    if args.method == "otsu":
        threshold = getattr(fn, "threshold", None)
        how = "given" if args.threshold is not None else "Otsu, from a sample"
        return f"threshold {threshold:g} ({how}), connected components"
    return f"{args.method} model {args.model}"
