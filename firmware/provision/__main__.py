"""CLI: python -m firmware.provision {nvs,registry,show} (see firmware/provision/__init__.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware.provision.boards import BoardsError, load_boards
from firmware.provision.nvs_image import NVS_OFFSET, NVS_SIZE, build_image
from firmware.provision.nvs_read import NvsFormatError, read_nvs
from firmware.provision.registry import registry, write_registry


def _show_value(key: str, value: object, reveal: bool) -> object:
    if isinstance(value, bytes):
        return value.hex() if reveal else f"<{len(value)} bytes>"
    if key == "wifi_pass" and not reveal:
        return f"<{len(value)} characters>" if isinstance(value, str) else value
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware.provision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_nvs = sub.add_parser("nvs", help="generate each board's NVS CSV and partition image")
    p_nvs.add_argument("--boards", type=Path, required=True, help="boards file (YAML: firmware_boards, ...)")
    p_nvs.add_argument("--out", type=Path, required=True, help="output directory (files are mode 0600)")
    p_nvs.add_argument("--only", action="append", default=[], help="only this device id (repeatable)")
    p_reg = sub.add_parser("registry", help="generate the gateway's device key registry")
    p_reg.add_argument("--boards", type=Path, required=True)
    p_reg.add_argument("--out", type=Path, required=True)
    p_show = sub.add_parser("show", help="parse an NVS image back and print it as JSON (keys in hex)")
    p_show.add_argument("image", type=Path)
    p_show.add_argument("--reveal", action="store_true", help="print the HMAC key instead of its length")
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            print(
                json.dumps(
                    {
                        ns: {k: _show_value(k, v, args.reveal) for k, v in kv.items()}
                        for ns, kv in read_nvs(args.image.read_bytes()).items()
                    },
                    indent=2,
                )
            )
            return 0
        boards = load_boards(args.boards)
        if args.command == "registry":
            write_registry(args.out, registry(boards))
            print(f"registry: {len(boards)} devices -> {args.out}")
            return 0
        unknown = set(args.only) - {b.device_id for b in boards}
        if unknown:
            raise BoardsError(f"--only names devices not in {args.boards}: {sorted(unknown)}")
        for board in boards:
            if args.only and board.device_id not in args.only:
                continue
            _, image = build_image(board, args.out)
            print(
                f"nvs: {board.device_id} port={board.port_path} image={image} offset=0x{NVS_OFFSET:x} size=0x{NVS_SIZE:x}"
            )
        return 0
    except (BoardsError, NvsFormatError, OSError, RuntimeError) as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
