#!/usr/bin/env bash
# Install checkov into its own virtualenv under the tools cache, from the committed pinned list
# terraform/checkov-requirements.lock (checkov pins packaging/pytest-incompatible versions, so it
# cannot live in the project venv). Reinstalls only when the lock file changes. Prints the binary.
#
# Refresh the lock: build a throw-away venv, `pip install checkov==X`, `pip freeze` into the lock.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/terraform/checkov-requirements.lock"
VENV="$ROOT/.cache/tools/checkov-venv"
STAMP="$VENV/.lock.sha256"
PYTHON="${PYTHON:-python3}"

[[ -f "$LOCK" ]] || { echo "install-checkov: missing $LOCK" >&2; exit 1; }
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"

if [[ -x "$VENV/bin/checkov" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "$VENV/bin/checkov"
    exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$LOCK" >&2
"$VENV/bin/pip" check >&2
echo "$want" > "$STAMP"
echo "$VENV/bin/checkov"
