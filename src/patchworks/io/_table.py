"""Per-object tables on disk: Parquet by default, CSV when the path ends in ``.csv``.

Convention: a label output holds its table as ``objects.parquet`` inside the label
array's (plain zarr) or label image's (OME-Zarr) folder, beside the zarr metadata; zarr
ignores files it does not know. ``objects_to=PATH`` writes it elsewhere instead.
:func:`read_objects` finds it from either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from numpy.typing import NDArray

from patchworks.errors import (
    ImageNotFoundError,
    InvalidParameterError,
    MissingDependencyError,
    OutputExistsError,
)

#: The table's file name inside a label output.
TABLE_NAME = "objects.parquet"


def is_csv(path: str) -> bool:
    return path.lower().endswith(".csv")


def check_table_path(path: Any, *, overwrite: bool) -> str | None:
    """Validate ``objects_to`` before any work starts; return it as a path (or None)."""
    if path is None:
        return None
    if not isinstance(path, str | os.PathLike) or not os.fspath(path).strip():
        raise InvalidParameterError(
            f"`objects_to` must be a file path (.parquet, or .csv for CSV) or None; got {path!r}."
        )
    found: str = str(os.fspath(path))
    if "://" in found:
        raise InvalidParameterError(f"`objects_to` must be a local file path; got {found!r}.")
    if os.path.exists(found) and not overwrite:
        raise OutputExistsError(
            f"`objects_to` {found!r} already exists; pass overwrite=True to replace it or "
            "choose another path."
        )
    parent = os.path.dirname(os.path.abspath(found))
    if not os.path.isdir(parent):
        raise InvalidParameterError(
            f"`objects_to` must be in an existing folder; {parent!r} does not exist."
        )
    return found


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            'per-object tables need pandas and pyarrow: pip install "patchworks"'
        ) from exc
    return pd


def write_table(columns: Mapping[str, NDArray[Any]], path: str) -> None:
    """Write ``columns`` to ``path`` (Parquet, or CSV for ``.csv``), atomically."""
    pd = _pandas()
    frame = pd.DataFrame(dict(columns))
    folder = os.path.dirname(os.path.abspath(path))
    fd, partial = tempfile.mkstemp(prefix=".objects.", suffix=".partial", dir=folder)
    os.close(fd)
    try:
        if is_csv(path):
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def carry_table(source: str, folder: str) -> None:
    """Move a label array's table (see :data:`TABLE_NAME`) into ``folder``, e.g. from
    an OME-Zarr label image's level 0 to the label image itself."""
    found = table_in(source)
    if found is not None:
        os.replace(found, os.path.join(folder, os.path.basename(found)))


def table_in(folder: str) -> str | None:
    """The table inside a label output folder, if it has one."""
    for name in (TABLE_NAME, "objects.csv"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def find_table(path: str) -> str:
    """The table file of ``path``: a table file, a label output, or an OME-Zarr image
    with one label image that has a table."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise ImageNotFoundError(f"`path` does not exist: {path!r}.")
    found = table_in(path)
    if found is not None:
        return found
    labels = os.path.join(path, "labels")
    if os.path.isdir(labels):
        inside = [t for n in sorted(os.listdir(labels)) if (t := table_in(os.path.join(labels, n)))]
        if len(inside) == 1:
            return inside[0]
        if inside:
            names = [os.path.basename(os.path.dirname(t)) for t in inside]
            raise InvalidParameterError(
                f"`path` {path!r} holds several label images with tables ({names}); pass "
                "the label image's path, e.g. 'image.zarr/labels/NAME'."
            )
    raise InvalidParameterError(
        f"`path` {path!r} holds no per-object table ({TABLE_NAME}); label outputs have one "
        "when written with objects=True."
    )


def read_objects(path: str | os.PathLike[str]) -> Any:
    """The per-object table of a label output (or a table file) as a pandas DataFrame.

    Parameters
    ----------
    path : str or os.PathLike
        A label output written with ``objects=`` (a zarr array, an OME-Zarr label image,
        or an OME-Zarr image with one label image), or a ``.parquet`` / ``.csv`` file.

    Returns
    -------
    pandas.DataFrame
        One row per object; columns named as ``skimage.measure.regionprops_table``
        names them (``label``, ``area``, ``bbox-0``, ``centroid-0``, ...).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from patchworks import tile_process
    >>> image = np.zeros((8, 8), "uint8"); image[1:7, 3:5] = 9
    >>> out = os.path.join(tempfile.mkdtemp(), "labels.zarr")
    >>> _ = tile_process(image, lambda t: (t > 0).astype("int32"), tile_shape=(4, 4),
    ...                  write_to=out, objects=True)
    >>> read_objects(out)[["label", "area", "intensity_mean"]].to_dict("records")
    [{'label': 1, 'area': 12.0, 'intensity_mean': 9.0}]
    """
    pd = _pandas()
    found = find_table(os.fspath(path))
    if is_csv(found):
        return pd.read_csv(found)
    return pd.read_parquet(found)
