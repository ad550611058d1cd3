#!/usr/bin/env bash
# The fault matrix: run ansible/burst.yml once per fault scenario on an inventory, then write one
# report of all runs (python -m simulator.report.matrix). See docs/faults.md.
#   scripts/fault-matrix.sh INVENTORY SCENARIO.yml [SCENARIO.yml ...]
# Every run goes on even when one fails; the exit code is the matrix's verdict.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ $# -lt 2 ]; then
  echo "usage: scripts/fault-matrix.sh INVENTORY SCENARIO.yml [SCENARIO.yml ...]" >&2
  exit 2
fi
inventory=$1
shift
# The lab's generated Vault password (scripts/lab.py); elsewhere give ANSIBLE_VAULT_PASSWORD_FILE yourself.
vault_pass="$(dirname "$inventory")/secrets/vault-pass"
if [ -z "${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -f "$vault_pass" ]; then
  export ANSIBLE_VAULT_PASSWORD_FILE="$vault_pass"
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
bundles=()
n=0
for scenario in "$@"; do
  n=$((n + 1))
  name=$(basename "$scenario" .yml)
  run_id="matrix-$stamp-$name"
  echo "== fault matrix $n/$#: $name (run $run_id)"
  start=$(date +%s)
  # A fault the run must not survive (faults.expect_failure, e.g. disk-full): a failed play whose
  # output holds that text is this row's pass; the matrix reads expected-failure.json.
  expect=$(.venv/bin/python -c 'import sys; from simulator.scenario import load
print(load(sys.argv[1])[0].faults.expect_failure)' "$scenario")
  mkdir -p "reports/$run_id"
  if ANSIBLE_CONFIG=ansible/ansible.cfg .venv/bin/ansible-playbook -i "$inventory" ansible/burst.yml \
    -e scenario="$scenario" -e burst_run_id="$run_id" 2>&1 | tee "reports/$run_id/burst.log"; then
    echo "== $name: PASS in $(($(date +%s) - start)) s"
  elif [ -n "$expect" ] && grep -F -m1 -- "$expect" "reports/$run_id/burst.log" >"reports/$run_id/expected.txt"; then
    .venv/bin/python -c 'import json, sys
json.dump({"scenario": sys.argv[1], "expect": sys.argv[2], "line": open(sys.argv[3]).read().strip()},
          open(sys.argv[4], "w"))' "$scenario" "$expect" "reports/$run_id/expected.txt" \
      "reports/$run_id/expected-failure.json"
    echo "== $name: failed as expected (\"$expect\") in $(($(date +%s) - start)) s"
  else
    echo "== $name: FAILED in $(($(date +%s) - start)) s (its row says why)"
  fi
  bundles+=("reports/$run_id")
done
.venv/bin/python -m simulator.report.matrix --out "reports/fault-matrix-$stamp" "${bundles[@]}"
