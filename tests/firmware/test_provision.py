"""Provisioning: one boards file -> per-board NVS images (parsed back) and the gateway's key registry."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from firmware.provision.boards import BoardsError, parse_boards
from firmware.provision.nvs_image import NVS_SIZE, build_image, nvs_csv
from firmware.provision.nvs_read import NvsFormatError, read_nvs
from firmware.provision.registry import registry, write_registry
from gateway.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent.parent


def boards_data() -> dict:
    return {
        "firmware_wifi_ssid": "lab-wifi-é",
        "firmware_wifi_password": 'p,a"ss wörd#1',
        "firmware_gateway_host": "gateway.lab.internal",
        "firmware_gateway_port": 5000,
        "firmware_boards": [
            {
                "device_id": "esp32-lab-01",
                "serial": "usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_0001-if00-port0",
                "hmac_key": secrets.token_hex(32),
            },
            {
                "device_id": "esp32-lab-02",
                "serial": "usb-1a86_USB_Single_Serial_5647014434-if00",
                "hmac_key": secrets.token_hex(32),
                "gateway_port": 5001,
                "interval_ms": 2000,
                "ntp_server": "10.0.0.1",
            },
        ],
    }


def test_nvs_images_parse_back_to_exactly_the_boards_values(tmp_path):
    data = boards_data()
    for board in parse_boards(data):
        csv_path, image = build_image(board, tmp_path / "nvs")
        assert image.stat().st_size == NVS_SIZE
        for path in (csv_path, image):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} holds the key: must be 0600"
        parsed = read_nvs(image.read_bytes())
        expected = {
            "device_id": board.device_id,
            "hmac_key": board.hmac_key,
            "wifi_ssid": "lab-wifi-é",
            "wifi_pass": 'p,a"ss wörd#1',
            "gw_host": "gateway.lab.internal",
            "gw_port": board.gateway_port,
            "interval_ms": board.interval_ms,
        }
        if board.ntp_server:
            expected["ntp_server"] = board.ntp_server
        assert parsed == {"ibp": expected}
    assert [b.gateway_port for b in parse_boards(data)] == [5000, 5001]


def test_reader_detects_a_damaged_image(tmp_path):
    board = parse_boards(boards_data())[0]
    _, image = build_image(board, tmp_path)
    blob = bytearray(image.read_bytes())
    key_at = blob.find(board.hmac_key)
    assert key_at > 0
    blob[key_at] ^= 0x01
    with pytest.raises(NvsFormatError, match="CRC"):
        read_nvs(bytes(blob))


def test_registry_from_the_same_source_is_accepted_by_the_gateway(tmp_path):
    data = boards_data()
    boards = parse_boards(data)
    path = tmp_path / "devices.yml"
    write_registry(path, registry(boards))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_registry(path)
    for b in boards:
        assert loaded.key_for(b.device_id) == b.hmac_key
    assert loaded.key_for("esp32-lab-99") is None


def test_cli_generates_images_and_registry_and_hides_secrets_in_show(tmp_path):
    data = boards_data()
    boards_file = tmp_path / "boards.yml"
    boards_file.write_text(yaml.safe_dump(data, allow_unicode=True))
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "firmware.provision", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )

    done = run("nvs", "--boards", str(boards_file), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "esp32-lab-01" in done.stdout and "/dev/serial/by-id/usb-Silicon_Labs" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "esp32-lab-01.bin", "esp32-lab-01.csv", "esp32-lab-02.bin", "esp32-lab-02.csv",
    ]  # fmt: skip
    done = run("registry", "--boards", str(boards_file), "--out", str(tmp_path / "devices.yml"))
    assert done.returncode == 0, done.stderr
    done = run("show", str(tmp_path / "out" / "esp32-lab-01.bin"))
    assert done.returncode == 0, done.stderr
    key_hex = data["firmware_boards"][0]["hmac_key"]
    assert key_hex not in done.stdout and "<32 bytes>" in done.stdout
    assert data["firmware_wifi_password"] not in done.stdout
    done = run("show", "--reveal", str(tmp_path / "out" / "esp32-lab-01.bin"))
    assert key_hex in done.stdout
    done = run("nvs", "--boards", str(boards_file), "--out", str(tmp_path / "o2"), "--only", "nope")
    assert done.returncode == 2 and "nope" in done.stderr


def test_csv_quotes_awkward_values():
    board = parse_boards(boards_data())[0]
    assert 'wifi_pass,data,string,"p,a""ss wörd#1"' in nvs_csv(board)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["firmware_boards"][0].pop("hmac_key"),
            r"firmware_boards\[0\] \(esp32-lab-01\)\.hmac_key",
        ),
        (lambda d: d["firmware_boards"][0].update(hmac_key="abc"), "64 hex digits"),
        (lambda d: d["firmware_boards"][1].update(serial=d["firmware_boards"][0]["serial"]), "appears twice"),
        (lambda d: d["firmware_boards"][1].update(device_id="esp32-lab-01"), "appears twice"),
        (lambda d: d["firmware_boards"][0].update(serial="../ttyUSB0"), "serial"),
        (lambda d: d.update(firmware_gateway_port=70000), "gateway_port"),
        (lambda d: d.pop("firmware_wifi_ssid"), "wifi_ssid"),
        (lambda d: d.update(firmware_boards=[]), "non-empty list"),
        (lambda d: d["firmware_boards"][0].update(device_id="x" * 65), "1..64"),
    ],
)
def test_bad_boards_name_what_to_fix(mutate, message):
    data = boards_data()
    mutate(data)
    with pytest.raises(BoardsError, match=message):
        parse_boards(data)
