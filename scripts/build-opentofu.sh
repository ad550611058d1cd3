#!/usr/bin/env bash
# Build OpenTofu (MPL-2.0) from its Go module, fetched through the Go module proxy, into the
# git-ignored tools cache .cache/tools/bin/tofu. The binary is also kept in a per-user cache
# outside the repository (keyed by version) so a fresh clone on the same machine skips the build.
#
#   scripts/build-opentofu.sh            build (or reuse) the pinned version; prints the binary path
#   TOFU_VERSION=v1.12.6 scripts/...     override the pinned version
#
# `go install module@version` refuses modules whose go.mod has replace directives, so the module
# is downloaded with `go mod download -json`, copied to a writable directory and built there.
# The build runs under `nice` and `/usr/bin/time -v`; the measurement goes to .cache/tools/logs/.
set -euo pipefail

TOFU_VERSION="${TOFU_VERSION:-v1.12.6}"
MODULE="github.com/opentofu/opentofu"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.cache/tools"
BIN="$TOOLS/bin/tofu"
LOGS="$TOOLS/logs"
USER_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/iot-burst-pilot/opentofu/$TOFU_VERSION"

die() { echo "build-opentofu: $*" >&2; exit 1; }

have_version() {
    # True when the binary at $1 exists and reports the pinned version.
    # `version -json` is stable output; the plain form may start with CLI-config warnings.
    [[ -x "$1" ]] && TF_CLI_CONFIG_FILE=/dev/null "$1" version -json 2>/dev/null |
        grep -qF "\"terraform_version\": \"${TOFU_VERSION#v}\""
}

mkdir -p "$TOOLS/bin" "$LOGS"

if have_version "$BIN"; then
    echo "$BIN"
    exit 0
fi
if have_version "$USER_CACHE/tofu"; then
    install -m 0755 "$USER_CACHE/tofu" "$BIN"
    echo "build-opentofu: reused $USER_CACHE/tofu" >&2
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null || die "Go toolchain not found; install Go >= the version in OpenTofu's go.mod"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

echo "build-opentofu: downloading $MODULE@$TOFU_VERSION through the Go module proxy" >&2
dir="$(go mod download -json "$MODULE@$TOFU_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$dir" && -d "$dir" ]] || die "go mod download gave no source directory for $MODULE@$TOFU_VERSION"

work="$(mktemp -d "${TMPDIR:-/tmp}/build-opentofu.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"

log="$LOGS/opentofu-$TOFU_VERSION.time.txt"
echo "build-opentofu: building (nice, measured in $log); this takes several minutes" >&2
(
    cd "$work/src"
    nice -n 15 /usr/bin/time -v -o "$log" \
        go build -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$work/tofu" ./cmd/tofu
)
have_version "$work/tofu" || die "built binary does not report OpenTofu $TOFU_VERSION: $(TF_CLI_CONFIG_FILE=/dev/null "$work/tofu" version -json 2>&1)"

mkdir -p "$USER_CACHE"
install -m 0755 "$work/tofu" "$USER_CACHE/tofu"
install -m 0755 "$work/tofu" "$BIN"
grep -E 'Elapsed|Maximum resident' "$log" >&2 || true
echo "$BIN"
