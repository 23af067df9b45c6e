"""``python -m patchworks`` and the ``patchworks`` command (see :mod:`patchworks._cli`)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
