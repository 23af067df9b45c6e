"""Ready-made ``fn`` callables for popular segmentation models.

Each plugin module (:mod:`patchworks.plugins.cellpose`, :mod:`patchworks.plugins.stardist`)
returns a small picklable callable that carries only the *description* of its model; the
model itself is loaded on first use, once per worker process, and shared by every tile
that process handles. The packages are optional extras: ``pip install
"patchworks[cellpose]"`` or ``pip install "patchworks[stardist]"``.
"""
