"""The measurement step of a run and where its table goes.

:func:`measure_objects` runs after the join (stages 3-4): the stitch mode measures its
final objects (:func:`~patchworks._engine.measure.measure_joined`), the size filters
give the label map the relabel stage applies, and the kept objects' statistics become the
table. :func:`write_objects` writes it inside the label output before the output is
published (so a published output always has its table) or to ``objects_to``.
"""

from __future__ import annotations

import os
from typing import Any

from patchworks._engine.measure import measure_joined
from patchworks._engine.objects import TileStats, columns
from patchworks._engine.objects_spec import ObjectsSpec
from patchworks.errors import IncompleteOutputError
from patchworks.io._table import TABLE_NAME, table_in, write_table


def measure_objects(
    spec: ObjectsSpec | None, joined: Any, executor: Any, *, sequential: bool, mode: str
) -> tuple[Any, TileStats | None]:
    """The join to write (size filters applied) and the kept objects' statistics."""
    if spec is None:
        return joined, None
    return measure_joined(
        joined,
        executor,
        spec.measure,
        min_size=spec.min_size,
        max_size=spec.max_size,
        sequential=sequential,
        mode=mode,
    )


def write_objects(
    spec: ObjectsSpec | None, stats: TileStats | None, folder: str | None
) -> dict[str, Any]:
    """Write the table to ``spec.to``, else inside the label output ``folder``; return
    what the output's metadata records about it."""
    if spec is None or stats is None or not spec.table:
        return {}
    table = columns(stats, spec.properties, scale=spec.scale, channels=spec.measure.channels)
    if spec.to is not None:
        write_table(table, spec.to)
        return {"n_objects": int(stats.n)}
    assert folder is not None
    write_table(table, os.path.join(folder, TABLE_NAME))
    return {"objects": TABLE_NAME, "n_objects": int(stats.n)}


def check_finished_table(spec: ObjectsSpec | None, output: Any) -> None:
    """A resumed call that finds its output finished: the table it asks for is there."""
    if spec is None or not spec.table:
        return
    if spec.to is not None:
        found = os.path.isfile(spec.to)
        where = repr(spec.to)
    else:
        folder = getattr(output, "final_path", None) or getattr(output, "target", "")
        found = table_in(str(folder)) is not None
        where = f"inside {str(folder)!r}"
    if not found:
        raise IncompleteOutputError(
            f"the output is finished but has no per-object table ({where}): it was made "
            "without objects=. Measure it with patchworks.measure_labels(labels, ...) or "
            "rerun with overwrite=True."
        )
