#!/usr/bin/env python3
"""Recording stand-in for `esptool ... write-flash -z OFFSET FILE ...` (no boards here).

Validates the call like esptool would (chip, an existing port, offsets, files), takes a second per
board like a real flash does, "flashes" the stand-in board behind the port (copies the app and NVS
images where fake_board.py reads them) and appends the call, with start and end times, to
/var/lib/fake-lab/esptool.log.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

STATE = Path("/var/lib/fake-lab")


def main() -> int:
    args = sys.argv[1:]
    start = time.time()
    try:
        chip = args[args.index("--chip") + 1]
        port = args[args.index("--port") + 1]
        pairs = args[args.index("write-flash") + 1 :]
    except (ValueError, IndexError):
        print(f"fake esptool: unsupported call {args}", file=sys.stderr)
        return 2
    if pairs[:1] == ["-z"]:
        pairs = pairs[1:]
    if chip != "esp32" or not os.path.exists(port) or len(pairs) % 2:
        print(f"fake esptool: bad chip/port/arguments {args}", file=sys.stderr)
        return 2
    images = {}
    for offset, path in zip(pairs[::2], pairs[1::2], strict=True):
        int(offset, 16)
        if not os.path.isfile(path):
            print(f"fake esptool: {path} does not exist", file=sys.stderr)
            return 2
        images[offset] = {"path": path, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
    time.sleep(6.0)  # a real flash of ~1.3 MB takes 15-30 s
    board = STATE / os.path.basename(port)
    board.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(images["0x10000"]["path"], board / "firmware.bin")
    shutil.copyfile(images["0x9000"]["path"], board / "nvs.bin")
    with (STATE / "esptool.log").open("a") as f:
        record = {"argv": args, "port": port, "images": images, "start": start, "end": time.time()}
        f.write(json.dumps(record) + "\n")
    print("Hash of data verified.\nHard resetting via RTS pin...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
