#!/usr/bin/env bash
# Run Molecule scenarios on systemd-nspawn test hosts (see docs/test-hosts.md).
#   scripts/nspawn-molecule.sh            every role scenario, then every multi-host scenario in molecule/
#   scripts/nspawn-molecule.sh ROLE       the scenarios of roles/ROLE only
#   scripts/nspawn-molecule.sh site       a scenario under molecule/ (any directory holding molecule.yml)
# Times go to reports/molecule/timings.tsv. Stops at the first failing scenario (after its destroy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR="${ANSIBLE_FORCE_COLOR:-0}"
mkdir -p reports/molecule
TIMINGS=reports/molecule/timings.tsv

if [ "$(id -u)" -ne 0 ]; then
  echo "nspawn-molecule: must run as root (the test hosts are systemd-nspawn containers)" >&2
  exit 2
fi

LOCK_DIR="${IBP_TESTHOSTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/iot-burst-pilot/testhosts}/runs"
mkdir -p "$LOCK_DIR"

run_scenario() {  # $1 = project dir (cwd for molecule), $2 = scenario name, $3 = label
  local start end rc=0
  start=$(date +%s)
  echo "== molecule test: $3 (scenario $2)"
  # Two runs of one scenario share Molecule's ephemeral directory and would destroy each other's hosts.
  (
    flock -n 9 || { echo "nspawn-molecule: $3/$2 is already running (lock $LOCK_DIR/$3-$2.lock)" >&2; exit 3; }
    cd "$1" && molecule test -s "$2"
  ) 9>"$LOCK_DIR/$3-$2.lock" || rc=$?
  end=$(date +%s)
  printf '%s\t%s\t%s\t%ss\t%s\n' "$(date -u +%FT%TZ)" "$3" "$2" "$((end - start))" \
    "$([ $rc -eq 0 ] && echo pass || echo FAIL)" >>"$TIMINGS"
  echo "== $3/$2: $([ $rc -eq 0 ] && echo passed || echo FAILED) in $((end - start))s"
  return $rc
}

role_scenarios() {  # $1 = role name
  local dir
  [ -d "roles/$1/molecule" ] || { echo "nspawn-molecule: roles/$1 has no molecule/ directory" >&2; return 1; }
  for dir in roles/"$1"/molecule/*/; do
    [ -f "$dir/molecule.yml" ] || continue
    run_scenario "roles/$1" "$(basename "$dir")" "$1"
  done
}

target="${1:-}"
python3 molecule/shared/nspawn_hosts.py rootfs >/dev/null  # build the cached rootfs once, up front
if [ -z "$target" ]; then
  for role_dir in roles/*/; do
    role=$(basename "$role_dir")
    [ -d "roles/$role/molecule" ] && role_scenarios "$role"
  done
  for dir in molecule/*/; do
    [ -f "$dir/molecule.yml" ] && run_scenario "$ROOT" "$(basename "$dir")" "molecule"
  done
elif [ -d "roles/$target" ]; then
  role_scenarios "$target"
elif [ -f "molecule/$target/molecule.yml" ]; then
  run_scenario "$ROOT" "$target" "molecule"
else
  echo "nspawn-molecule: '$target' is neither a role under roles/ nor a scenario under molecule/" >&2
  exit 2
fi
echo "nspawn-molecule: all requested scenarios passed (timings in $TIMINGS)"
