#!/usr/bin/env bash
# Install the segmentation packages behind patchworks.plugins into .venv, for their tests.
# CPU builds only: torch 2.13.0 (a plain "torch" would pull a multi-GB CUDA build), Cellpose 3
# (the shared trained test model is a Cellpose 3 network; Cellpose 4 tests run where it is installed),
# StarDist with tensorflow-cpu. About 2-3 minutes on a fresh machine; PATCHWORKS_PLUGINS=0 skips.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${PATCHWORKS_PLUGINS:-1}" = "0" ]; then
    echo "setup-plugins: skipped (PATCHWORKS_PLUGINS=0); plugin tests will be skipped"
    exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check "cellpose>=3.1,<4" "stardist>=0.9" "tensorflow-cpu>=2.15"
