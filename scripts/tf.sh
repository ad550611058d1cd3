#!/usr/bin/env bash
# Run Terraform or OpenTofu, whichever this machine has, with the AWS provider from a local
# filesystem mirror when one exists. Every make target and test calls this one wrapper, so the
# choice of binary and of provider source is made in one place.
#
#   scripts/tf.sh -chdir=terraform init      any terraform/tofu command line
#   scripts/tf.sh --which                    print the binary, the CLI config and the mirror used
#
# Binary, first found: $TF_BIN; `terraform` on PATH; `tofu` on PATH; OpenTofu built from its Go
# module by scripts/build-opentofu.sh (cached; minutes the first time).
#
# Provider source. A user's own TF_CLI_CONFIG_FILE (an existing file) always wins. Otherwise, when a provider mirror is
# found (a folder laid out as <root>/<registry host>/hashicorp/aws/<version>/<os_arch>/
# terraform-provider-aws_v<version>_x5: $TF_PROVIDER_MIRROR, else a few usual places, else a search
# of the local disk by that file name), the wrapper links the binary into the project's own mirror
# .cache/tools/providers under BOTH registry hosts (Terraform asks for registry.terraform.io,
# OpenTofu for registry.opentofu.org) and points the CLI at it: init, validate, plan and apply then
# work offline. With no mirror the CLI uses its registry as usual; TF_PROVIDER_MIRROR=none forces that.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.cache/tools"
MIRROR="$TOOLS/providers"
CLI_CONFIG="$TOOLS/tf-offline.tfrc"
FOUND_CACHE="$TOOLS/provider-mirror.path"
PROVIDER_GLOB='terraform-provider-aws_v*_x5'

die() { echo "tf.sh: $*" >&2; exit 1; }

pick_binary() {
    if [[ -n "${TF_BIN:-}" ]]; then
        command -v "$TF_BIN" >/dev/null || die "TF_BIN=$TF_BIN is not an executable"
        command -v "$TF_BIN"
    elif command -v terraform >/dev/null; then
        command -v terraform
    elif command -v tofu >/dev/null; then
        command -v tofu
    else
        # Builds OpenTofu once (minutes), then reuses it; progress goes to stderr.
        "$ROOT/scripts/build-opentofu.sh" | tail -n 1
    fi
}

# The provider binary of a mirror root: the newest version found under either registry host.
provider_in() {
    local root="$1"
    [[ -d "$root" ]] || return 1
    find "$root" -maxdepth 6 -path '*/hashicorp/aws/*' -name "$PROVIDER_GLOB" \( -type f -o -type l \) 2>/dev/null |
        sort -V | tail -n 1 | grep .
}

find_provider() {
    [[ "${TF_PROVIDER_MIRROR:-}" == none ]] && return 1
    if [[ -n "${TF_PROVIDER_MIRROR:-}" ]]; then
        provider_in "$TF_PROVIDER_MIRROR" || die "TF_PROVIDER_MIRROR=$TF_PROVIDER_MIRROR holds no hashicorp/aws/<version>/<os_arch>/$PROVIDER_GLOB"
        return 0
    fi
    if [[ -f "$FOUND_CACHE" ]] && [[ -e "$(cat "$FOUND_CACHE")" ]]; then
        cat "$FOUND_CACHE"
        return 0
    fi
    local root found=""
    for root in /opt/tf-plugins /usr/local/share/terraform/plugins /usr/share/terraform/plugins \
        "$HOME/.terraform.d/plugins" "$HOME/.local/share/terraform/plugins"; do
        found="$(provider_in "$root")" && break
    done
    if [[ -z "$found" ]]; then
        # Last resort: the local disk by file name (seconds; the answer is cached).
        found="$(find / -xdev \( -path /proc -o -path /sys -o -path "$ROOT" -o -path /tmp \) -prune -o \
            -path '*/hashicorp/aws/*' -name "$PROVIDER_GLOB" -print 2>/dev/null | sort -V | tail -n 1)"
    fi
    [[ -n "$found" ]] || return 1
    mkdir -p "$TOOLS"
    echo "$found" > "$FOUND_CACHE"
    echo "$found"
}

# Link the provider into .cache/tools/providers under both registry hosts and write the CLI config.
prepare_mirror() {
    local provider="$1" version os_arch host
    version="$(basename "$provider" | sed -E 's/^terraform-provider-aws_v(.*)_x5$/\1/')"
    os_arch="$(basename "$(dirname "$provider")")"
    for host in registry.terraform.io registry.opentofu.org; do
        mkdir -p "$MIRROR/$host/hashicorp/aws/$version/$os_arch"
        ln -sfn "$(readlink -f "$provider")" "$MIRROR/$host/hashicorp/aws/$version/$os_arch/$(basename "$provider")"
    done
    cat > "$CLI_CONFIG.tmp" <<EOF
# Written by scripts/tf.sh: providers only from the project's mirror (links to $provider).
disable_checkpoint = true
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/hashicorp/*", "registry.opentofu.org/hashicorp/*"]
  }
}
EOF
    mv "$CLI_CONFIG.tmp" "$CLI_CONFIG"
}

BIN="$(pick_binary)"
[[ -x "$BIN" ]] || die "no Terraform or OpenTofu binary (tried TF_BIN, terraform, tofu, scripts/build-opentofu.sh)"

MIRROR_NOTE="registry (no local provider mirror found; set TF_PROVIDER_MIRROR=<root> if you have one)"
# A TF_CLI_CONFIG_FILE naming no file (some images export one that was never written) is no config.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then
    unset TF_CLI_CONFIG_FILE
fi
if [[ -z "${TF_CLI_CONFIG_FILE:-}" ]]; then
    if provider="$(find_provider)"; then
        prepare_mirror "$provider"
        export TF_CLI_CONFIG_FILE="$CLI_CONFIG"
        MIRROR_NOTE="$MIRROR (-> $provider)"
    fi
else
    MIRROR_NOTE="as configured by TF_CLI_CONFIG_FILE=$TF_CLI_CONFIG_FILE"
fi
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION="${TF_IN_AUTOMATION:-1}"

if [[ "${1:-}" == --which ]]; then
    echo "binary:    $BIN ($("$BIN" version -json 2>/dev/null | sed -n 's/.*"terraform_version": "\(.*\)".*/\1/p'))"
    echo "config:    ${TF_CLI_CONFIG_FILE:-none}"
    echo "providers: $MIRROR_NOTE"
    exit 0
fi
exec "$BIN" "$@"
