#!/usr/bin/env python3
"""Run a moto S3 server for the automq-standin scenario on the control machine.

moto (from the project virtualenv) listens on the scenario bridge's host-side address, so the broker
container reaches it as its S3 endpoint, and gets the scenario's buckets.

  moto_ctl.py start --state DIR --bind ADDR --bucket B [--bucket B...]   (idempotent)
  moto_ctl.py stop --state DIR                                           (safe when not running)

Both print JSON; `start` reports {"endpoint": ..., "started": true|false}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_port(addr: str) -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def start(state_dir: Path, bind: str, buckets: list[str]) -> dict:
    state_file = state_dir / "moto.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if _alive(state["pid"]):
            return {"endpoint": state["endpoint"], "started": False}
    state_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port(bind)
    server = Path(sys.executable).with_name("moto_server")
    log = open(state_dir / "moto.log", "ab")
    proc = subprocess.Popen(
        [str(server), "-H", bind, "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    endpoint = f"http://{bind}:{port}"
    state_file.write_text(json.dumps({"pid": proc.pid, "endpoint": endpoint}))
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection((bind, port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"moto_server did not start on {endpoint}; see {state_dir / 'moto.log'}"
                ) from None
            time.sleep(0.3)
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    return {"endpoint": endpoint, "started": True}


def stop(state_dir: Path) -> dict:
    state_file = state_dir / "moto.json"
    if not state_file.exists():
        return {"stopped": False}
    pid = json.loads(state_file.read_text())["pid"]
    if _alive(pid):
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    state_file.unlink()
    return {"stopped": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state", type=Path, required=True, help="folder for moto.json and moto.log")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (repeatable)")
    args = parser.parse_args(argv)
    result = start(args.state, args.bind, args.bucket) if args.action == "start" else stop(args.state)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
