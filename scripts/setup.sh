#!/usr/bin/env bash
# Create .venv (if missing) and install patchworks into it.
#   bash scripts/setup.sh core   patchworks and its core dependencies (what the demo needs)
#   bash scripts/setup.sh test   (the default) plus the test extras and, through
#                                scripts/setup-plugins.sh, the plugin packages (CPU builds)
# An install is skipped when .venv already holds it: .venv/.patchworks-setup records a hash
# of pyproject.toml and the set-up scripts, and the mode it installed ("test" holds "core").
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"
case "$mode" in
    core | test) ;;
    *) echo "setup.sh: unknown mode '$mode' (use core or test)" >&2; exit 2 ;;
esac
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.patchworks-setup
plugins="${PATCHWORKS_PLUGINS:-1}"
hash="$(.venv/bin/python - <<'PY'
import hashlib
digest = hashlib.sha256()
for name in ("pyproject.toml", "scripts/setup.sh", "scripts/setup-plugins.sh"):
    with open(name, "rb") as file:
        digest.update(file.read())
print(digest.hexdigest()[:16])
PY
)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$mode" = "core" ]; then
    case "$have" in
        "$hash core" | "$hash test plugins="*) exit 0 ;;
    esac
elif [ "$have" = "$hash test plugins=$plugins" ] || [ "$have" = "$hash test plugins=1" ]; then
    exit 0
fi
rm -f "$stamp"
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if [ "$mode" = "core" ]; then
    echo "setup: installing patchworks into .venv (core dependencies only)" >&2
    "${pip[@]}" -e .
    echo "$hash core" >"$stamp"
else
    echo "setup: installing patchworks with its test extras into .venv" >&2
    "${pip[@]}" -e ".[test]"
    bash scripts/setup-plugins.sh
    echo "$hash test plugins=$plugins" >"$stamp"
fi
