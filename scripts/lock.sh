#!/usr/bin/env bash
# Resolve requirements.in into requirements.lock in a throw-away virtualenv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${PYTHON:-python3}" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check -r requirements.in
{
  echo "# Pinned versions for the project virtualenv (Python 3.11). Regenerate with: make lock"
  "$tmp/venv/bin/pip" freeze --exclude-editable
} > requirements.lock
echo "requirements.lock updated"
