# shellcheck shell=bash
# Sourced by scripts/setup.sh and scripts/build_native_wheel.sh: sets CARGO to the cargo that builds the
# native hot path (gateway/native): the one on PATH, else rustup's default ~/.cargo/bin/cargo (a shell
# that has not read ~/.cargo/env yet); empty when there is none.
CARGO="$(command -v cargo 2>/dev/null || true)"
if [ -z "$CARGO" ] && [ -x "$HOME/.cargo/bin/cargo" ]; then
  CARGO="$HOME/.cargo/bin/cargo"
fi
