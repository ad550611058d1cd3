#!/usr/bin/env python3
"""Recording stand-in for `pio run -d DIR -e ENV` (the ESP32 toolchain cannot be downloaded here).

Checks the project the role copied (platformio.ini, the board layer, the portable core), writes the
images a real build leaves (.pio/build/ENV/*.bin, boot_app0.bin under PLATFORMIO_CORE_DIR) with the
firmware version from platformio.ini inside, and appends the call to /var/lib/fake-lab/pio.log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


def main() -> int:
    args = sys.argv[1:]
    if args[:1] != ["run"] or "-d" not in args or "-e" not in args:
        print(f"fake pio: unsupported call {args}", file=sys.stderr)
        return 2
    project = Path(args[args.index("-d") + 1])
    env = args[args.index("-e") + 1]
    ini = (project / "platformio.ini").read_text()
    if f"[env:{env}]" not in ini:
        print(f"fake pio: no [env:{env}] in {project}/platformio.ini", file=sys.stderr)
        return 1
    for needed in (
        "src/main.cpp",
        "lib/ibpcore/library.json",
        "lib/ibpcore/src/ibp/sender.cpp",
        "partitions.csv",
    ):
        if not (project / needed).exists():
            print(f"fake pio: {needed} missing from {project}", file=sys.stderr)
            return 1
    version = re.search(r"IBP_FIRMWARE_VERSION=[^0-9]*([0-9][0-9A-Za-z.+-]*)", ini).group(1)
    out = project / ".pio" / "build" / env
    out.mkdir(parents=True, exist_ok=True)
    for name in ("bootloader.bin", "partitions.bin"):
        (out / name).write_bytes(f"FAKE {name}\n".encode())
    (out / "firmware.bin").write_text(f"FAKE-IBP-FIRMWARE version={version} built={time.time()}\n")
    core = Path(os.environ["PLATFORMIO_CORE_DIR"])
    boot = core / "packages/framework-arduinoespressif32/tools/partitions/boot_app0.bin"
    boot.parent.mkdir(parents=True, exist_ok=True)
    boot.write_bytes(b"FAKE boot_app0\n")
    log = Path("/var/lib/fake-lab/pio.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(json.dumps({"argv": args, "core": str(core), "version": version, "t": time.time()}) + "\n")
    print(f"fake pio: built {env} version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
