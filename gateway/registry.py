"""The device key registry (docs/protocol.md "Device keys"): explicit keys plus fleets with a master key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ibp.protocol import derive_device_key


class RegistryError(ValueError):
    """The registry file is unreadable or malformed; the message names the entry."""


def _hex_key(where: str, value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise RegistryError(f"{where}: expected 64 hex digits (a 32-byte key)")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise RegistryError(f"{where}: expected 64 hex digits (a 32-byte key)") from None


@dataclass
class KeyRegistry:
    devices: dict[str, bytes] = field(default_factory=dict)
    fleets: list[tuple[str, bytes]] = field(default_factory=list)  # longest prefix first
    max_cached: int = 500_000
    _cache: dict[str, bytes | None] = field(default_factory=dict, repr=False)

    def key_for(self, device_id: str) -> bytes | None:
        """The device's HMAC key, or None for an unknown device (cached: derivation costs an HMAC)."""
        key = self._cache.get(device_id, b"")
        if key != b"":
            return key
        key = self.devices.get(device_id)
        if key is None:
            for prefix, master in self.fleets:
                if device_id.startswith(prefix):
                    key = derive_device_key(master, device_id)
                    break
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        self._cache[device_id] = key
        return key


def load_registry(path: str | Path | None) -> KeyRegistry:
    if path is None:
        return KeyRegistry()
    return parse_registry(read_registry_text(path), path)


def read_registry_text(path: str | Path) -> str:
    """The registry file's text; RegistryError naming the file when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text()
    except OSError as exc:
        raise RegistryError(f"{p}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RegistryError(f"{p}: not UTF-8 text") from None


def parse_registry(text: str, path: str | Path) -> KeyRegistry:
    """Validate and build a registry from ``text``; errors name ``path`` (the file the operator edits).

    Separate from reading so that the supervisor can validate exactly the bytes it hands to its workers
    on a reload (docs/gateway.md "Reloading the key registry").
    """
    p = Path(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise RegistryError(f"{p}: expected a mapping with 'version: 1', 'devices' and/or 'fleets'")
    unknown = set(data) - {"version", "devices", "fleets"}
    if unknown:
        raise RegistryError(
            f"{p}: unknown top-level keys {sorted(unknown)} (known: version, devices, fleets)"
        )
    devices: dict[str, bytes] = {}
    raw_devices = data.get("devices") or {}
    if not isinstance(raw_devices, dict):
        raise RegistryError(f"{p}: devices must map device ids to keys")
    for device_id, key in raw_devices.items():
        if not isinstance(device_id, str) or not 1 <= len(device_id.encode()) <= 64:
            raise RegistryError(f"{p}: devices: {device_id!r} is not a 1..64-byte device id")
        devices[device_id] = _hex_key(f"{p}: devices.{device_id}", key)
    fleets: list[tuple[str, bytes]] = []
    raw_fleets = data.get("fleets") or []
    if not isinstance(raw_fleets, list):
        raise RegistryError(f"{p}: fleets must be a list of {{prefix, master_key}}")
    for i, fleet in enumerate(raw_fleets):
        if not isinstance(fleet, dict) or not isinstance(fleet.get("prefix"), str) or not fleet["prefix"]:
            raise RegistryError(f"{p}: fleets[{i}]: needs a non-empty 'prefix' and a 'master_key'")
        fleets.append((fleet["prefix"], _hex_key(f"{p}: fleets[{i}].master_key", fleet.get("master_key"))))
    fleets.sort(key=lambda f: len(f[0]), reverse=True)
    return KeyRegistry(devices=devices, fleets=fleets)
