#!/usr/bin/env python3
"""Stand-in ESP32 boards for the Molecule scenario (no hardware here).

Each board is a pty whose slave is linked as /dev/serial/by-id/<name>. Once the recording esptool has
"flashed" a board (/var/lib/fake-lab/<name>/firmware.bin and nvs.bin), the board prints the firmware's
boot banner built from what was flashed to it: the version inside the firmware image and the device id
parsed from its NVS image. So a port that received another board's image answers with the wrong id.
"""

from __future__ import annotations

import os
import sys
import time
import tty
from pathlib import Path

BY_ID = Path("/dev/serial/by-id")
STATE = Path("/var/lib/fake-lab")
SOURCE = "/opt/iot-firmware/src"  # the role's copy of the firmware project (NVS reader)


def banner(name: str) -> bytes | None:
    fw, nvs = STATE / name / "firmware.bin", STATE / name / "nvs.bin"
    if not (fw.exists() and nvs.exists()):
        return None
    if SOURCE not in sys.path:
        sys.path.insert(0, SOURCE)
    try:
        from firmware.provision.nvs_read import read_nvs

        device = read_nvs(nvs.read_bytes())["ibp"]["device_id"]
    except Exception as exc:
        return f'IBP-FW version=- device=- error="{type(exc).__name__}"\r\n'.encode()
    version = fw.read_text(errors="replace").split("version=", 1)[-1].split()[0]
    return f"IBP-FW version={version} device={device} head=0 next=0 stored=0\r\n".encode()


def main() -> None:
    BY_ID.mkdir(parents=True, exist_ok=True)
    boards = []
    for name in sys.argv[1:]:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        link = BY_ID / name
        if link.is_symlink():
            link.unlink()
        link.symlink_to(os.ttyname(slave))
        boards.append((name, master, slave))
    while True:
        for name, master, _slave in boards:
            try:
                os.read(master, 4096)  # discard what the host sends
            except BlockingIOError:
                pass
            line = banner(name)
            if line:
                try:
                    os.write(master, line)
                except BlockingIOError:
                    pass
        time.sleep(0.5)


if __name__ == "__main__":
    main()
