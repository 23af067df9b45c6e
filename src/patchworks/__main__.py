"""``python -m patchworks`` and the ``patchworks`` command (see :mod:`patchworks._cli.main`)."""

from patchworks._cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
