#!/usr/bin/env bash
# Lint every kind of source the project holds. Fails on the first linter that reports a problem.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin

echo "== ruff"
"$BIN/ruff" check .
"$BIN/ruff" format --check . >/dev/null || { "$BIN/ruff" format --diff .; exit 1; }

echo "== mypy (strict: ibp, gateway, yamlconf; settings in pyproject.toml)"
"$BIN/mypy"

echo "== yamllint"
"$BIN/yamllint" --strict .

echo "== shellcheck"
mapfile -t shells < <(git ls-files -co --exclude-standard | grep -E '\.sh$|^\.ci/run$|^ansible/files/ibp-fault$' || true)
[ ${#shells[@]} -eq 0 ] || shellcheck -x "${shells[@]}"

if [ -d roles ] && [ -n "$(ls -A roles 2>/dev/null)" ]; then
  echo "== ansible-lint (production profile)"
  ANSIBLE_CONFIG=ansible/ansible.cfg "$BIN/ansible-lint" --profile production --offline
fi
echo "lint: ok"
