"""``python -m harness``: the one-machine development harnesses (a source checkout only, not the wheel).

python -m harness demo --scenario S          (make demo)
python -m harness soak --duration-s 3600 --cycle-s 180 --outage-s 30   (make soak)
python -m harness limit --scenario S --vary devices --min A --max B    (make limit)
python -m harness capacity --json            (make simulator-capacity)
python -m harness sink --port 0              (acking UDP sink for capacity runs)

``python -m simulator demo|soak|limit|capacity|sink`` forwards here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from simulator import aio
from simulator.devices.keys import MasterKeyError, add_key_args, key_from_args
from simulator.scenario import ScenarioError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    reports_default = Path(os.environ.get("SIM_REPORTS", "reports"))

    ca = sub.add_parser("capacity", help="largest device count at 1 reading/s and peak flush rate")
    ca.add_argument("--json", action="store_true", help="print one JSON object")
    ca.add_argument("--host")
    ca.add_argument("--port", type=int)
    ca.add_argument("--max-devices", type=int, default=200000)
    add_key_args(ca)

    d = sub.add_parser("demo", help="broker + gateway + scenario + audit on this machine")
    d.add_argument("--scenario", default="scenarios/thundering-herd.yml")
    d.add_argument("--reports", type=Path, default=reports_default)
    d.add_argument("--gateway-workers", type=int, default=2)

    li = sub.add_parser("limit", help="largest size that passes every SLO: grow x2, then bisect")
    li.add_argument("--scenario", default="scenarios/smoke.yml")
    li.add_argument("--vary", choices=("devices", "outage_s", "rate_hz"), default="devices")
    li.add_argument("--min", type=float, default=1000)
    li.add_argument("--max", type=float, default=80000)
    li.add_argument("--budget-s", type=float, default=1800)
    li.add_argument("--max-runs", type=int, default=10)
    li.add_argument("--reports", type=Path, default=reports_default)
    li.add_argument(
        "--inventory",
        type=Path,
        help="run each step as ansible/burst.yml on this inventory's hosts (the lab, the cloud) "
        "instead of a broker and gateway on this machine",
    )

    so = sub.add_parser(
        "soak", help="broker + gateway for an hour, an outage every few minutes; RSS/fd trends"
    )
    so.add_argument("--duration-s", type=float, default=3600)
    so.add_argument("--cycle-s", type=float, default=180, help="one outage every this many seconds")
    so.add_argument("--outage-s", type=float, default=30)
    so.add_argument("--devices", type=int, default=300)
    so.add_argument("--rate-hz", type=float, default=1.0)
    so.add_argument("--sample-s", type=float, default=5.0)
    so.add_argument("--gateway-workers", type=int, default=2)
    so.add_argument("--max-mb-per-hour", type=float, default=20.0, help="leak: robust slope above this ...")
    so.add_argument(
        "--max-growth", type=float, default=0.05, help="... and the last third this much above the middle"
    )
    so.add_argument("--min-window-s", type=float, default=600, help="shorter judged windows are not judged")
    so.add_argument("--reports", type=Path, default=reports_default)

    s = sub.add_parser("sink", help="UDP sink that acks every batch (capacity yardstick)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    add_key_args(s)

    args = p.parse_args(argv)
    try:
        return _dispatch(args)
    except (ScenarioError, MasterKeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "capacity":
        from harness.capacity import measure

        key = key_from_args(args) if args.host else None
        result = aio.run(measure(args.host, args.port, key, args.max_devices))
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return 0
    if args.cmd == "demo":
        from harness.demo import main as demo

        return demo(args.scenario, args.reports, args.gateway_workers)
    if args.cmd == "limit":
        from harness.limit import main as limit

        return limit(
            args.scenario,
            args.vary,
            args.min,
            args.max,
            args.reports,
            args.budget_s,
            args.max_runs,
            args.inventory,
        )
    if args.cmd == "soak":
        from harness.soak import SoakConfig
        from harness.soak import main as soak
        from harness.trend import Limits

        limits = Limits(
            mb_per_hour=args.max_mb_per_hour, rel_growth=args.max_growth, min_window_s=args.min_window_s
        )
        cfg = SoakConfig(
            duration_s=args.duration_s,
            cycle_s=args.cycle_s,
            outage_s=args.outage_s,
            devices=args.devices,
            rate_hz=args.rate_hz,
            sample_s=args.sample_s,
            gateway_workers=args.gateway_workers,
            limits=limits,
        )
        return soak(cfg, args.reports)
    if args.cmd == "sink":
        from harness.sink import serve

        key = key_from_args(args)
        if key is None:
            raise SystemExit(
                "the sink needs the fleet master key: --master-key-file, --registry or IBP_MASTER_KEY"
            )
        aio.run(serve(key, args.host, args.port))
        return 0
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
