#!/usr/bin/env bash
# One-step, idempotent setup: system packages (when root on Debian/Ubuntu) and the project virtualenv.
# A second run with nothing changed finishes in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

# Debian package -> a file it provides (cheap presence check without dpkg locks).
declare -A SYSTEM_PACKAGES=(
  [openjdk-17-jre-headless]=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
  [maven]=/usr/bin/mvn
  [systemd-container]=/usr/bin/systemd-nspawn
  [debootstrap]=/usr/sbin/debootstrap
  [iptables]=/usr/sbin/iptables
  [iproute2]=/usr/sbin/ip
  [prometheus]=/usr/bin/promtool
  [prometheus-node-exporter]=/usr/bin/prometheus-node-exporter
  [cmake]=/usr/bin/cmake
  [g++]=/usr/bin/g++
  [googletest]=/usr/src/googletest/CMakeLists.txt
  [libgtest-dev]=/usr/include/gtest/gtest.h
  [nlohmann-json3-dev]=/usr/include/nlohmann/json.hpp
  [libmbedtls-dev]=/usr/include/mbedtls/md.h
  [shellcheck]=/usr/bin/shellcheck
  [faketime]=/usr/bin/faketime
  [rsync]=/usr/bin/rsync
  [openssh-client]=/usr/bin/ssh-keygen
  # make bench's peers and their test (tests/bench): rsyslog imudp -> omkafka, run unprivileged in a temp dir
  [rsyslog]=/usr/sbin/rsyslogd
  [rsyslog-kafka]=/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so
)

log() { printf '[setup] %s\n' "$*"; }

check_python() {
  if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "[setup] error: Python 3.11 or newer is required as '$PYTHON' (set PYTHON=/path/to/python3.11)." >&2
    exit 1
  fi
}

system_packages() {
  local missing=()
  local pkg
  for pkg in "${!SYSTEM_PACKAGES[@]}"; do
    [ -e "${SYSTEM_PACKAGES[$pkg]}" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "system packages: all present"
    return 0
  fi
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The prometheus and rsyslog packages start services on install; keep the host clean: tests start their own.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    local svc
    for svc in prometheus prometheus-node-exporter ssh rsyslog; do
      if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      fi
    done
  else
    echo "[setup] missing system packages: ${missing[*]}" >&2
    echo "[setup] install them with: sudo apt-get install -y ${missing[*]}" >&2
    echo "[setup] (or run 'make setup' as root on Debian/Ubuntu to install them automatically)" >&2
    exit 1
  fi
}

python_env() {
  local stamp="$VENV/.setup-stamp"
  local want
  want="$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    log "virtualenv $VENV: up to date"
    return 0
  fi
  [ -x "$VENV/bin/python" ] || { log "creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
  log "installing pinned Python packages (requirements.lock)"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/requirements.lock"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
  echo "$want" > "$stamp"
}

# The gateway's native hot path (gateway/native, Rust + PyO3 -> module ibp_native) built into the venv.
# Optional: without cargo the gateway runs its pure-Python codec (gateway/fastpath.py), slower.
# Skipped when the crate's sources and the venv's Python are unchanged since the last build.
native_ext() {
  local crate="$ROOT/gateway/native"
  local stamp="$VENV/.native-stamp"
  # shellcheck source=scripts/find_cargo.sh
  . "$ROOT/scripts/find_cargo.sh"
  if [ -z "$CARGO" ]; then
    "$VENV/bin/pip" uninstall -q -y ibp-native >/dev/null 2>&1 || true
    rm -f "$stamp"
    log "native hot path: cargo not found (PATH, ~/.cargo/bin): the gateway runs on the pure-Python path"
    return 0
  fi
  local want
  want="$(cd "$crate" && cat Cargo.toml Cargo.lock pyproject.toml src/*.rs | sha256sum | cut -d' ' -f1)"
  want="$want $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$VENV/bin/python" -c 'import ibp_native' 2>/dev/null; then
    log "native hot path (ibp_native): up to date"
    return 0
  fi
  log "building the native hot path (gateway/native, cargo release build, under a minute)"
  local started=$SECONDS
  if (cd "$crate" && PATH="$(dirname "$CARGO"):$PATH" VIRTUAL_ENV="$VENV" \
    CARGO_TARGET_DIR="$ROOT/.cache/native-target" "$VENV/bin/maturin" develop --release --locked -q); then
    echo "$want" > "$stamp"
    log "native hot path built in $((SECONDS - started)) s"
  else
    "$VENV/bin/pip" uninstall -q -y ibp-native >/dev/null 2>&1 || true
    rm -f "$stamp"
    log "native hot path: build FAILED (see above): the gateway runs on the pure-Python path"
  fi
}

check_python
system_packages
python_env
native_ext
log "done"
