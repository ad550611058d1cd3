"""The boards file: which board is which device, with what key, on which network and gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
SERIAL_ID = re.compile(r"^[A-Za-z0-9._:+@-]+$")
MAX_NVS_STRING = 4000


class BoardsError(ValueError):
    """The boards file is wrong; the message names the board and the key to fix."""


@dataclass(frozen=True)
class Board:
    device_id: str
    serial: str  # the name under /dev/serial/by-id/
    hmac_key: bytes
    wifi_ssid: str
    wifi_password: str
    gateway_host: str
    gateway_port: int
    interval_ms: int
    ntp_server: str

    @property
    def port_path(self) -> str:
        return f"/dev/serial/by-id/{self.serial}"


def _text(value: Any, where: str, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise BoardsError(f"{where} is required")
        return ""
    if not isinstance(value, str):
        raise BoardsError(f"{where} must be a string, got {type(value).__name__}")
    if any(c in value for c in "\r\n\x00"):
        raise BoardsError(f"{where} must not contain newlines or NUL")
    if len(value.encode()) > MAX_NVS_STRING:
        raise BoardsError(f"{where} is longer than {MAX_NVS_STRING} bytes")
    return value


def _device_id(value: Any, where: str) -> str:
    text = _text(value, where)
    raw = text.encode()
    if not 1 <= len(raw) <= 64 or any(b < 0x20 or b == 0x7F for b in raw):
        raise BoardsError(f"{where} must be 1..64 UTF-8 bytes without control characters")
    return text


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BoardsError(f"{where} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def parse_boards(data: dict[str, Any]) -> list[Board]:
    """Validate the mapping (``firmware_boards`` plus shared ``firmware_*`` settings) into boards."""
    if not isinstance(data, dict):
        raise BoardsError("the boards file must be a mapping with a firmware_boards list")
    boards = data.get("firmware_boards")
    if not isinstance(boards, list) or not boards:
        raise BoardsError("firmware_boards must be a non-empty list of {device_id, serial, hmac_key}")
    out: list[Board] = []
    seen_ids: set[str] = set()
    seen_serials: set[str] = set()
    for i, entry in enumerate(boards):
        if not isinstance(entry, dict):
            raise BoardsError(f"firmware_boards[{i}] must be a mapping")
        where = f"firmware_boards[{i}]"
        device_id = _device_id(entry.get("device_id"), f"{where}.device_id")
        where = f"firmware_boards[{i}] ({device_id})"
        serial = _text(entry.get("serial"), f"{where}.serial")
        if not SERIAL_ID.match(serial):
            raise BoardsError(f"{where}.serial must be a name under /dev/serial/by-id/, got {serial!r}")
        key_hex = _text(entry.get("hmac_key"), f"{where}.hmac_key")
        if not HEX64.match(key_hex):
            raise BoardsError(
                f"{where}.hmac_key must be 64 hex digits (e.g. `openssl rand -hex 32`, kept in a vault)"
            )

        def pick(name: str, entry: dict = entry) -> Any:
            return entry.get(name, data.get(f"firmware_{name}"))

        board = Board(
            device_id=device_id,
            serial=serial,
            hmac_key=bytes.fromhex(key_hex),
            wifi_ssid=_text(pick("wifi_ssid"), f"{where}.wifi_ssid (or firmware_wifi_ssid)"),
            wifi_password=_text(pick("wifi_password"), f"{where}.wifi_password", required=False),
            gateway_host=_text(pick("gateway_host"), f"{where}.gateway_host (or firmware_gateway_host)"),
            gateway_port=_int(
                pick("gateway_port"), f"{where}.gateway_port (or firmware_gateway_port)", 1, 65535
            ),
            interval_ms=_int(pick("interval_ms") or 10000, f"{where}.interval_ms", 100, 86_400_000),
            ntp_server=_text(pick("ntp_server"), f"{where}.ntp_server", required=False),
        )
        if device_id in seen_ids:
            raise BoardsError(f"{where}: device_id {device_id!r} appears twice")
        if serial in seen_serials:
            raise BoardsError(f"{where}: serial {serial!r} appears twice")
        seen_ids.add(device_id)
        seen_serials.add(serial)
        out.append(board)
    return out


def load_boards(path: Path) -> list[Board]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise BoardsError(f"cannot read boards file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise BoardsError(f"boards file {path} is not valid YAML: {exc}") from None
    return parse_boards(data)
