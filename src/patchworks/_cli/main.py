"""The ``patchworks`` command line (also ``python -m patchworks``): its entry point.

Sub-commands: ``run`` (tile_process), ``merge`` (merge_tile_labels), ``estimate-empty``,
``info`` and ``preview``. Exit codes: 0 success, 1 the run failed, 2 bad usage or input.
Errors are one line on stderr (the full traceback with ``--debug``). With
``--scheduler-address`` the work goes to an existing dask scheduler (a SLURM cluster
started with dask-jobqueue, a Kubernetes or cloud cluster...).

:func:`main` parses the command line (:mod:`patchworks._cli.parser`), connects to the
scheduler, runs the sub-command (:mod:`patchworks._cli.commands`) and turns its errors
into the message and the exit code.
"""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
from collections.abc import Iterator, Sequence

from patchworks._cli.commands import COMMANDS
from patchworks._cli.parser import FAILED, USAGE, UsageError, build_parser
from patchworks.errors import InvalidLabelsError, OutputNotWritableError, PatchworksError

__all__ = ["main"]


@contextlib.contextmanager
def _client(address: str | None) -> Iterator[None]:
    """Within the block, dask work goes to the scheduler at ``address`` (if not None)."""
    if address is None:
        yield
        return
    from distributed import Client

    try:
        client = Client(address, timeout="10s")  # type: ignore[no-untyped-call,unused-ignore]
    except Exception as exc:
        raise UsageError(
            f"--scheduler-address {address!r}: could not connect ({type(exc).__name__}: {exc})."
        ) from exc
    with client:
        yield


#: Errors that mean "fix your input" (exit 2) rather than "the run failed" (exit 1).
USAGE_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    ImportError,
    OutputNotWritableError,
)


# Library messages name keyword arguments; on the command line, name the flags instead.
#: Keyword of the library → option of ``patchworks run`` (and the other commands).
FLAGS = {
    "channel": "--channel",
    "channel_axis": "--channel-axis",
    "level": "--level",
    "tile_shape": "--tile-shape",
    "overlap": "--overlap",
    "label_name": "--label-name",
    "output_format": "--output-format",
    "write_to": "--out",
    "stitch": "--stitch",
    "iou_threshold": "--iou-threshold",
    "connectivity": "--connectivity",
    "empty_threshold": "--empty-threshold",
    "skip_empty": "--skip-empty",
    "overwrite": "--overwrite",
    "resume": "--resume",
    "sequential_labels": "--sequential-labels",
    "time_as_space": "--time-as-space",
}
_NAMES = "|".join(sorted(map(re.escape, FLAGS), key=len, reverse=True))
#: ``name=True`` (a switch), ``name=None`` (not given), ``name=VALUE``, `` `name` ``, and
#: the bare names with an underscore (never an ordinary word).
_KEYWORD = re.compile(rf"\b({_NAMES})=(True|None|k\b|K\b)?")
_QUOTED = re.compile(rf"`({_NAMES})`")
_BARE = re.compile(rf"(?<![-\w`])({'|'.join(n for n in FLAGS if '_' in n)})\b(?![=`(])")


def _keyword(match: re.Match[str]) -> str:
    flag, value = FLAGS[match.group(1)], match.group(2)
    if value == "True":
        return flag
    if value == "None":
        return f"no {flag}"
    if value in ("k", "K"):
        return f"{flag} K"
    return f"{flag} "


def _as_flags(message: str) -> str:
    """Say ``--overwrite`` where the library's message says ``overwrite=True``, and so on
    for every keyword that is an option of the command line.

    Examples
    --------
    >>> _as_flags("pass overwrite=True to replace it")
    'pass --overwrite to replace it'
    >>> _as_flags("pass channel=k to segment one, or channel_axis=1 ...; got channel=None.")
    'pass --channel K to segment one, or --channel-axis 1 ...; got no --channel.'
    >>> _as_flags("`label_name` 'x' exists; choose another label_name.")
    "--label-name 'x' exists; choose another --label-name."
    """
    message = _KEYWORD.sub(_keyword, message)
    message = _QUOTED.sub(lambda m: FLAGS[m.group(1)], message)
    return _BARE.sub(lambda m: FLAGS[m.group(1)], message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``patchworks`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.progress is None:
        args.progress = True  # bars on a terminal, plain lines in a log (batch jobs)
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
