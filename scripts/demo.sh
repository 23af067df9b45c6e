#!/usr/bin/env bash
# Set up .venv with the core dependencies (skipped when nothing changed) and run patchworks
# on the built-in example image. Needs no plugin packages (no PyTorch, no TensorFlow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh core
exec .venv/bin/python -m patchworks.demo "$@"
