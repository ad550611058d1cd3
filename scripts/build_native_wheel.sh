#!/usr/bin/env bash
# Build the compiled hot path (gateway/native: Rust + PyO3, module ibp_native) as a wheel for the
# deployed hosts: `make dist` and the Molecule artifacts call it. The wheel is built for the venv's
# Python (cp311 here, as on Debian 12 hosts) and this machine's glibc; the roles check the Python tag.
# Usage: scripts/build_native_wheel.sh OUTDIR   (prints the wheel's path; exit 2 without cargo)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
out="${1:?usage: $0 OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# shellcheck source=scripts/find_cargo.sh
. "$ROOT/scripts/find_cargo.sh"
if [ -z "$CARGO" ]; then
  echo "build_native_wheel: cargo not found (PATH, ~/.cargo/bin): no ibp_native wheel; deploy with" \
    "gateway_native: false / simulator_native: false, or install Rust and run make dist again" >&2
  exit 2
fi
rm -f "$out"/ibp_native-*.whl
cd "$ROOT/gateway/native"
PATH="$(dirname "$CARGO"):$PATH" CARGO_TARGET_DIR="$ROOT/.cache/native-target" \
  "$VENV/bin/maturin" build --release --locked --quiet --interpreter "$VENV/bin/python" --out "$out" >&2
ls "$out"/ibp_native-*.whl
