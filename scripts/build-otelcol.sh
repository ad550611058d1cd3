#!/usr/bin/env bash
# Build the bench's OpenTelemetry Collector peer (bench/peers/otelcol: udplog receiver, batch
# processor, kafka exporter) from its Go modules, fetched through the Go module proxy, into the
# git-ignored tools cache .cache/tools/bin/otelcol-peer. Like scripts/build-opentofu.sh, the binary is
# also kept in a per-user cache outside the repository, keyed by a digest of main.go, go.mod and
# go.sum, so a fresh clone on the same machine skips the build.
#
#   scripts/build-otelcol.sh     build (or reuse) the binary; prints its path on stdout
#
# Only `make bench` calls it (never `make test`): the module graph is large and the first build
# takes minutes on two cores. The build runs under `nice` and `/usr/bin/time -v`; the measurement
# goes to .cache/tools/logs/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/bench/peers/otelcol"
TOOLS="$ROOT/.cache/tools"
BIN="$TOOLS/bin/otelcol-peer"
LOGS="$TOOLS/logs"

die() { echo "build-otelcol: $*" >&2; exit 1; }

digest="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-16)"
USER_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/iot-burst-pilot/otelcol-peer/$digest"
STAMP="$BIN.digest"

mkdir -p "$TOOLS/bin" "$LOGS"

if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$digest" ]]; then
    echo "$BIN"
    exit 0
fi
if [[ -x "$USER_CACHE/otelcol-peer" ]]; then
    install -m 0755 "$USER_CACHE/otelcol-peer" "$BIN"
    echo "$digest" > "$STAMP"
    echo "build-otelcol: reused $USER_CACHE/otelcol-peer" >&2
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || die "Go toolchain not found; install Go >= the version in bench/peers/otelcol/go.mod"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

work="$(mktemp -d "${TMPDIR:-/tmp}/build-otelcol.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$LOGS/otelcol-peer-$digest.time.txt"
echo "build-otelcol: building bench/peers/otelcol (nice, measured in $log); the first build takes minutes" >&2
(
    cd "$SRC"
    nice -n 15 /usr/bin/time -v -o "$log" go build -trimpath -ldflags "-s -w" -o "$work/otelcol-peer" .
)
"$work/otelcol-peer" --version >/dev/null 2>&1 || die "the built binary does not run: $("$work/otelcol-peer" --version 2>&1 | tail -3)"

mkdir -p "$USER_CACHE"
install -m 0755 "$work/otelcol-peer" "$USER_CACHE/otelcol-peer"
install -m 0755 "$work/otelcol-peer" "$BIN"
echo "$digest" > "$STAMP"
grep -E 'Elapsed|Maximum resident' "$log" >&2 || true
echo "$BIN"
