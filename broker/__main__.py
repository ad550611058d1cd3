"""Command line for the local broker: ``python -m broker {assemble,start,stop,status,topics}``.

``start`` runs one broker in the background (state in ``.cache/broker/``) and prints its bootstrap
address; other tools (``make demo``, ``make bench``) read it with ``python -m broker status --bootstrap``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from broker.kafka import CACHE, BrokerError, KafkaBroker, assemble, read_pid

STATE_DIR = CACHE / "broker"
STATE_FILE = STATE_DIR / "state.json"
TOPIC = "iot_telemetry"


def _load() -> KafkaBroker | None:
    if not STATE_FILE.exists():
        return None
    state = json.loads(STATE_FILE.read_text())
    return KafkaBroker(
        workdir=Path(state["workdir"]), port=state["port"], controller_port=state["controller_port"]
    )


def _running(broker: KafkaBroker) -> bool:
    pid = read_pid(broker.workdir / "broker.pid")
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cmd_assemble(_: argparse.Namespace) -> int:
    print(assemble(quiet=False))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    broker = _load()
    if broker is not None and _running(broker):
        print(f"broker already running on {broker.bootstrap} (log: {broker.log_path})")
        return 0
    broker = KafkaBroker(workdir=STATE_DIR, port=args.port, partitions=args.partitions)
    print("starting Kafka (KRaft) ...", flush=True)
    broker.start()
    broker.create_topic(TOPIC, args.partitions)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(
        json.dumps(
            {"workdir": str(broker.workdir), "port": broker.port, "controller_port": broker.controller_port}
        )
    )
    # The broker keeps running after we exit.
    broker.process = None
    print(
        f"broker ready on {broker.bootstrap}; topic {TOPIC} ({args.partitions} partitions); log: {broker.log_path}"
    )
    return 0


def cmd_stop(_: argparse.Namespace) -> int:
    broker = _load()
    if broker is None:
        print("no local broker state; nothing to stop")
        return 0
    broker.stop(delete=True)
    STATE_FILE.unlink(missing_ok=True)
    print("broker stopped; data deleted")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    broker = _load()
    if broker is None or not _running(broker):
        print("not running", file=sys.stderr)
        return 1
    print(broker.bootstrap if args.bootstrap else f"running on {broker.bootstrap} (log: {broker.log_path})")
    return 0


def cmd_topics(_: argparse.Namespace) -> int:
    broker = _load()
    if broker is None or not _running(broker):
        print("broker not running: make broker", file=sys.stderr)
        return 1
    result = broker.run_tool(
        "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.bootstrap, "--list"
    )
    sys.stdout.write(result.stdout)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("assemble", help="resolve the Kafka jars from Maven Central into .cache/kafka")
    start = sub.add_parser("start", help="start the broker in the background")
    start.add_argument("--port", type=int, default=0, help="client port (default: a free one)")
    start.add_argument("--partitions", type=int, default=6, help=f"partitions of {TOPIC}")
    sub.add_parser("stop", help="stop the broker and delete its data")
    status = sub.add_parser("status", help="is it running, and where")
    status.add_argument("--bootstrap", action="store_true", help="print only host:port")
    sub.add_parser("topics", help="list topics with the Kafka topics tool")
    args = parser.parse_args(argv)
    handler = {
        "assemble": cmd_assemble,
        "start": cmd_start,
        "stop": cmd_stop,
        "status": cmd_status,
        "topics": cmd_topics,
    }[args.command]
    try:
        return handler(args)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
