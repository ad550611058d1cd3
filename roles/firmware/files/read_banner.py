#!/usr/bin/env python3
"""Reset an ESP32 board through its USB-serial bridge and read its boot banner.

Prints {"device": ..., "version": ..., "line": ...} as JSON and exits 0 when a line
``IBP-FW version=<v> device=<id> ...`` arrives within --timeout seconds; exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

import serial

BANNER = re.compile(r"IBP-FW version=(\S+) device=(\S+)(.*)")


def reset(port: serial.Serial) -> None:
    """EN low then high through RTS, with IO0 high (DTR released): a normal boot, not the bootloader."""
    try:
        port.dtr = False
        port.rts = True
        time.sleep(0.1)
        port.rts = False
    except (OSError, serial.SerialException):
        pass  # a bridge without modem lines: wait for the next banner instead


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", required=True)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    try:
        port = serial.Serial(args.port, args.baud, timeout=0.5)
    except serial.SerialException as exc:
        print(json.dumps({"error": f"cannot open {args.port}: {exc}"}))
        return 1
    with port:
        reset(port)
        deadline = time.monotonic() + args.timeout
        pending = b""
        while time.monotonic() < deadline:
            pending += port.read(256)
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                match = BANNER.search(raw.decode("utf-8", "replace"))
                if match:
                    version, device, _rest = match.groups()
                    print(json.dumps({"device": device, "version": version, "line": match.group(0).strip()}))
                    return 0 if device != "-" else 1
    print(json.dumps({"error": f"no IBP-FW boot banner on {args.port} within {args.timeout:.0f}s"}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
