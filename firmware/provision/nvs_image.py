"""Write a board's NVS CSV and build the partition image with esp-idf-nvs-partition-gen."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

from firmware.provision.boards import Board

NAMESPACE = "ibp"
NVS_OFFSET = 0x9000  # firmware/partitions.csv
NVS_SIZE = 0x5000


def nvs_rows(board: Board) -> list[tuple[str, str, str, str]]:
    """(key, type, encoding, value) rows, as the firmware reads them (firmware/src/device_config.cpp)."""
    rows = [
        (NAMESPACE, "namespace", "", ""),
        ("device_id", "data", "string", board.device_id),
        ("hmac_key", "data", "hex2bin", board.hmac_key.hex()),
        ("wifi_ssid", "data", "string", board.wifi_ssid),
        ("wifi_pass", "data", "string", board.wifi_password),
        ("gw_host", "data", "string", board.gateway_host),
        ("gw_port", "data", "u16", str(board.gateway_port)),
        ("interval_ms", "data", "u32", str(board.interval_ms)),
    ]
    if board.ntp_server:
        rows.append(("ntp_server", "data", "string", board.ntp_server))
    return rows


def nvs_csv(board: Board) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("key", "type", "encoding", "value"))
    writer.writerows(nvs_rows(board))
    return buf.getvalue()


def _private_write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def build_image(board: Board, out_dir: Path, python: str = sys.executable) -> tuple[Path, Path]:
    """Writes ``<device_id>.csv`` and ``<device_id>.bin`` (mode 0600: they hold the key) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    csv_path = out_dir / f"{board.device_id}.csv"
    bin_path = out_dir / f"{board.device_id}.bin"
    _private_write(csv_path, nvs_csv(board).encode())
    _private_write(bin_path, b"")  # created 0600 before the generator writes the secret into it
    done = subprocess.run(
        [python, "-m", "esp_idf_nvs_partition_gen", "generate", str(csv_path), str(bin_path), hex(NVS_SIZE)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or bin_path.stat().st_size != NVS_SIZE:
        raise RuntimeError(
            f"esp_idf_nvs_partition_gen failed for {board.device_id} (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    os.chmod(bin_path, 0o600)
    return csv_path, bin_path
