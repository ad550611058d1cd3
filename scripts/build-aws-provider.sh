#!/usr/bin/env bash
# Try to build the AWS provider (MPL-2.0) from its Go module, fetched through the Go module proxy,
# and install it into the filesystem mirror .cache/tools/providers that tofu-offline.tfrc points to.
# The binary is kept in the per-user cache too, keyed by version, so later runs skip the build.
#
#   scripts/build-aws-provider.sh                       try the pinned version
#   AWS_PROVIDER_VERSION=v1.60.0 scripts/...            override it
#
# Known limit (docs/terraform.md): the module path github.com/hashicorp/terraform-provider-aws has no
# /vN suffix, so the proxy serves only its v1 tags (newest v1.60.0, Feb 2019, Terraform 0.11 plugin
# protocol 4); the v5/v6 releases the configuration needs are refused ("403 Forbidden: This module
# version is not available"). v1.60.0 builds (about 10 min wall / 2.1 GB peak here) but speaks
# plugin protocol 4, which OpenTofu (5 and 6) cannot load. This script records time and memory in
# .cache/tools/logs/ and checks the protocol before it installs anything into the mirror.
set -euo pipefail

VERSION="${AWS_PROVIDER_VERSION:-v1.60.0}"
MODULE="github.com/hashicorp/terraform-provider-aws"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.cache/tools"
LOGS="$TOOLS/logs"
MIRROR_DIR="$TOOLS/providers/registry.opentofu.org/hashicorp/aws/${VERSION#v}/linux_amd64"
BIN_NAME="terraform-provider-aws_${VERSION}"
USER_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/iot-burst-pilot/terraform-provider-aws/$VERSION"

die() { echo "build-aws-provider: $*" >&2; exit 1; }
mkdir -p "$LOGS"

# The plugin protocol a provider binary speaks: started with go-plugin's magic cookie it prints
# "core|protocol|network|address|transport" and serves until killed. OpenTofu speaks 5 and 6.
plugin_protocol() {
    TF_PLUGIN_MAGIC_COOKIE=d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2 \
        timeout 5 "$1" 2>/dev/null | head -n1 | cut -d'|' -f2 || true
}

install_into_mirror() {
    local bin="$1" proto
    proto="$(plugin_protocol "$bin")"
    case "$proto" in
        5 | 6) ;;
        *)
            rm -rf "$(dirname "$MIRROR_DIR")"
            die "$bin speaks plugin protocol '${proto:-?}'; OpenTofu needs 5 or 6 (provider releases >= 2.0). Not installed into the mirror."
            ;;
    esac
    mkdir -p "$MIRROR_DIR"
    install -m 0755 "$bin" "$MIRROR_DIR/$BIN_NAME"
    echo "$MIRROR_DIR/$BIN_NAME"
}

if [[ -x "$MIRROR_DIR/$BIN_NAME" ]]; then
    install_into_mirror "$MIRROR_DIR/$BIN_NAME"
    exit 0
fi
if [[ -x "$USER_CACHE/$BIN_NAME" ]]; then
    echo "build-aws-provider: reusing $USER_CACHE/$BIN_NAME" >&2
    install_into_mirror "$USER_CACHE/$BIN_NAME"
    exit 0
fi

command -v go >/dev/null || die "Go toolchain not found"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

echo "build-aws-provider: downloading $MODULE@$VERSION through the Go module proxy" >&2
json="$(go mod download -json "$MODULE@$VERSION")" || die "go mod download $MODULE@$VERSION failed (see above)"
dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")"
[[ -n "$dir" && -d "$dir" ]] || die "go mod download gave no source directory: $json"

work="$(mktemp -d "${TMPDIR:-/tmp}/build-aws-provider.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"

log="$LOGS/terraform-provider-aws-$VERSION.time.txt"
out="$LOGS/terraform-provider-aws-$VERSION.build.txt"
echo "build-aws-provider: building (nice; measured in $log, output in $out)" >&2
status=0
(
    cd "$work/src"
    nice -n 15 /usr/bin/time -v -o "$log" go build -trimpath -ldflags "-s -w" -o "$work/$BIN_NAME" .
) >"$out" 2>&1 || status=$?
grep -E 'Elapsed|Maximum resident|Exit status' "$log" >&2 || true
if [[ $status -ne 0 ]]; then
    tail -n 30 "$out" >&2
    die "go build failed (exit $status); full output in $out"
fi

# Cache the build even when it turns out unusable, so a re-run reports that in seconds.
mkdir -p "$USER_CACHE"
install -m 0755 "$work/$BIN_NAME" "$USER_CACHE/$BIN_NAME"
install_into_mirror "$USER_CACHE/$BIN_NAME"
