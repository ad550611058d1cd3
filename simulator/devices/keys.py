"""Where the fleet master key comes from: a key file, the gateway's registry, or IBP_MASTER_KEY."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import yaml


class MasterKeyError(ValueError):
    """No usable master key; the message says which source to fix."""


def _hex_key(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise MasterKeyError(f"{source}: the master key must be 64 hex digits") from None
    if len(key) != 32:
        raise MasterKeyError(
            f"{source}: the master key must be 64 hex digits (32 bytes), got {len(key)} bytes"
        )
    return key


def from_registry(path: str | Path, prefix: str) -> bytes:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MasterKeyError(f"{path}: cannot read the device registry: {exc}") from None
    for fleet in (data or {}).get("fleets") or []:
        if fleet.get("prefix") == prefix:
            return _hex_key(str(fleet.get("master_key", "")), f"{path}: fleets[prefix={prefix}].master_key")
    raise MasterKeyError(f"{path}: no fleet with prefix {prefix!r} under 'fleets'")


def master_key(key_file: str | None, registry: str | None, prefix: str) -> bytes | None:
    """The fleet master key, or None when none is configured (legacy protocols need none)."""
    if key_file:
        try:
            return _hex_key(Path(key_file).read_text(), key_file)
        except OSError as exc:
            raise MasterKeyError(f"{key_file}: cannot read the master key file: {exc.strerror}") from None
    if registry:
        return from_registry(registry, prefix)
    env = os.environ.get("IBP_MASTER_KEY")
    if env:
        return _hex_key(env, "IBP_MASTER_KEY")
    return None


def add_key_args(p: argparse.ArgumentParser) -> None:
    """The command-line options every command that signs datagrams takes."""
    p.add_argument("--master-key-file", help="file with the fleet master key (64 hex digits)")
    p.add_argument("--registry", help="the gateway's device registry (YAML); the 'sim-' fleet key is used")


def key_from_args(args: argparse.Namespace, prefix: str = "sim-") -> bytes | None:
    """The master key named by :func:`add_key_args`' options (or IBP_MASTER_KEY), None when none is."""
    return master_key(args.master_key_file, args.registry, prefix)
