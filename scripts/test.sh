#!/usr/bin/env bash
# Set up .venv with the test extras and the plugin packages (skipped when nothing changed;
# PATCHWORKS_PLUGINS=0 leaves the plugins out) and run the test suite (slow tests excluded;
# add -m slow for them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q "$@"
