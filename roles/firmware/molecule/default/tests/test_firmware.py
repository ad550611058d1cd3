"""Verify the firmware role on a lab host with stand-in boards (see ../molecule.yml for what is real).

Runs on the control node (Molecule's testinfra verifier) against the nspawn host.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("lab_hosts")

SECRETS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
VENV = "/opt/iot-firmware/venv"
STATE = "/var/lib/iot-firmware"
BY_ID = "/dev/serial/by-id/"
BOARD1 = ("esp32-mol-01", "usb-Silicon_Labs_CP2102_USB_to_UART_Bridge_Controller_fw01-if00-port0")
BOARD2 = ("esp32-mol-02", "usb-1a86_USB_Single_Serial_fw02-if00")
STRANGER = "usb-FTDI_FT232R_USB_UART_stranger-if00-port0"


def _esptool_log(host) -> list[dict]:
    return [
        json.loads(line) for line in host.file("/var/lib/fake-lab/esptool.log").content_string.splitlines()
    ]


def _show(host, device_id: str) -> dict:
    cmd = host.run(
        f"cd /opt/iot-firmware/src && PYTHONPATH=. {VENV}/bin/python -m firmware.provision show --reveal "
        f"{STATE}/nvs/{device_id}.bin"
    )
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout)["ibp"]


def test_tools_installed_in_the_virtualenv(host):
    cmd = host.run(f"{VENV}/bin/python -c 'import serial, esptool, esp_idf_nvs_partition_gen, platformio'")
    assert cmd.rc == 0, cmd.stderr
    assert host.run(f"{VENV}/bin/pio --version").rc == 0
    assert host.run(f"{VENV}/bin/esptool version").rc == 0


def test_udev_rules_and_serial_group(host):
    rules = host.file("/etc/udev/rules.d/60-iot-firmware-serial.rules")
    assert rules.exists and rules.mode == 0o644
    for vendor, product in (("10c4", "ea60"), ("1a86", "7523"), ("303a", "1001")):
        assert f'ATTRS{{idVendor}}=="{vendor}", ATTRS{{idProduct}}=="{product}"' in rules.content_string
    assert 'GROUP="dialout"' in rules.content_string
    assert "dialout" in host.user("labuser").groups


def test_nvs_images_parse_back_to_each_boards_identity(host):
    for device_id, port in ((BOARD1[0], 5000), (BOARD2[0], 5001), ("esp32-mol-03", 5000)):
        image = host.file(f"{STATE}/nvs/{device_id}.bin")
        assert image.exists and image.mode == 0o600 and image.user == "root"
        ibp = _show(host, device_id)
        key = (SECRETS / f"{device_id}.key").read_text().strip().lower()
        assert ibp["device_id"] == device_id
        assert ibp["hmac_key"] == key
        assert ibp["gw_host"] == "10.213.99.1" and ibp["gw_port"] == port
        assert ibp["wifi_ssid"] == "molecule-lab"
        assert ibp["wifi_pass"] == (SECRETS / "wifi").read_text().strip()
    assert host.file(f"{STATE}/boards.yml").mode == 0o600


def test_connected_boards_flashed_once_in_parallel_with_their_own_images(host):
    log = _esptool_log(host)
    assert sorted(r["port"] for r in log) == sorted(BY_ID + s for _, s in (BOARD1, BOARD2))
    for device_id, serial in (BOARD1, BOARD2):
        (rec,) = [r for r in log if r["port"] == BY_ID + serial]
        assert rec["images"]["0x9000"]["path"] == f"{STATE}/nvs/{device_id}.bin"
        assert set(rec["images"]) == {"0x1000", "0x8000", "0xe000", "0x9000", "0x10000"}
        assert rec["argv"][:2] == ["--chip", "esp32"]
    a, b = log
    assert a["start"] < b["end"] and b["start"] < a["end"], "one esptool per port, in parallel"
    assert not any(STRANGER in r["port"] for r in log)
    pio = host.file("/var/lib/fake-lab/pio.log").content_string.splitlines()
    assert len(pio) == 1, "the firmware is built once"


def test_flashed_boards_answer_with_their_device_id(host):
    for device_id, serial in (BOARD1, BOARD2):
        cmd = host.run(
            f"{VENV}/bin/python /opt/iot-firmware/read_banner.py --port {BY_ID}{serial} --timeout 5"
        )
        assert cmd.rc == 0, cmd.stdout
        banner = json.loads(cmd.stdout)
        assert banner["device"] == device_id
        assert banner["version"] == "1.0.0"
        assert host.file(f"{STATE}/flashed/{serial}.sha256").exists
    # The unknown board was never flashed: no banner.
    cmd = host.run(f"{VENV}/bin/python /opt/iot-firmware/read_banner.py --port {BY_ID}{STRANGER} --timeout 2")
    assert cmd.rc == 1


def test_check_mode_lists_what_would_be_flashed_and_flashes_nothing(host):
    host.run(f"rm -f {STATE}/flashed/{BOARD2[1]}.sha256")
    before = len(_esptool_log(host))
    scenario = Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])
    done = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, "--check", str(scenario / "converge.yml")],
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json"),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    tasks = json.loads(done.stdout)["plays"][0]["tasks"]
    (plan,) = [t for t in tasks if "List what is" in t["task"]["name"]]
    msg = next(iter(plan["hosts"].values()))["msg"]
    assert f"check mode: would flash: {BOARD2[0]} <- {BY_ID}{BOARD2[1]}" in msg
    assert f"up to date: {BOARD1[0]}" in msg
    assert len(_esptool_log(host)) == before
    assert not host.file(f"{STATE}/flashed/{BOARD2[1]}.sha256").exists
