#!/usr/bin/env bash
# Set up (if needed) and run patchworks on the built-in example image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m patchworks.demo "$@"
