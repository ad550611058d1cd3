"""The command line of ``python -m simulator.faults.impair``: flags, root check, choosing the method
(``auto``: netem when the kernel has it, else nfqueue), the start/end JSON-lines log, the one-line
summary on stdout, errors on stderr with exit code 2. The package docstring describes the flags.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulator.faults.impair.common import ImpairError, Params, StopFlag, route_dev
from simulator.faults.impair.netem import Netem, netem_support
from simulator.faults.impair.nfqueue import NfQueue


def _resolve(dest: str) -> str:
    try:
        addr = ipaddress.ip_address(dest)
    except ValueError:
        try:
            addr = ipaddress.ip_address(socket.gethostbyname(dest))
        except OSError as exc:
            raise ImpairError(f"cannot resolve --dest {dest} ({exc}); give an IPv4 address") from exc
    if addr.version != 4:
        raise ImpairError(f"--dest {dest} is IPv6; only IPv4 destinations are supported")
    return str(addr)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m simulator.faults.impair",
        description="Impair (loss, delay, jitter, reorder) the packets this host sends to one destination.",
    )
    ap.add_argument("--dest", required=True, help="IPv4 address (or name) of the destination")
    ap.add_argument("--dport", type=int, help="only packets to this destination port (implies --proto udp)")
    ap.add_argument("--proto", choices=("udp", "tcp", "all"), help="only this protocol (default: all)")
    ap.add_argument("--loss", type=float, default=0.0, help="percent of packets dropped at random")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="delay added to each packet")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="uniform ± variation of the delay")
    ap.add_argument("--reorder", type=float, default=0.0, help="percent of packets sent at once, ahead")
    ap.add_argument("--duration", type=float, required=True, help="seconds; SIGTERM/SIGINT end it earlier")
    ap.add_argument("--method", choices=("auto", "netem", "nfqueue"), default="auto")
    ap.add_argument("--queue-num", type=int, default=7, help="NFQUEUE number (nfqueue)")
    ap.add_argument(
        "--queue-maxlen",
        type=int,
        default=200_000,
        help="packets the kernel may hold (NFQA_CFG_QUEUE_MAXLEN; netem limit)",
    )
    ap.add_argument("--seed", type=int, help="random seed (nfqueue decisions), for repeatable runs")
    ap.add_argument("--log", type=Path, help="append start/end events to this JSON-lines file")
    args = ap.parse_args(argv)
    for name in ("loss", "reorder"):
        if not 0 <= getattr(args, name) <= 100:
            ap.error(f"--{name} is a percentage: 0..100")
    if args.delay_ms < 0 or args.jitter_ms < 0 or args.duration <= 0:
        ap.error("--delay-ms and --jitter-ms must be >= 0, --duration > 0")
    if args.dport is not None and not 0 < args.dport < 65536:
        ap.error("--dport must be 1..65535")
    if args.dport is not None and args.proto in (None, "all"):
        if args.proto == "all":
            ap.error("--dport needs --proto udp or tcp")
        args.proto = "udp"
    if args.proto == "all":
        args.proto = None
    if not 0 <= args.queue_num < 65536:
        ap.error("--queue-num must be 0..65535")
    return args


def _log(path: Path | None, event: dict[str, Any]) -> None:
    if path is not None:
        with path.open("a") as fh:
            fh.write(json.dumps(event) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = StopFlag()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    impl: Netem | NfQueue | None = None
    try:
        if os.geteuid() != 0:
            raise ImpairError(
                "must run as root (needs CAP_NET_ADMIN for tc/iptables): sudo python -m simulator.faults.impair ..."
            )
        p = Params(
            dest=_resolve(args.dest),
            dport=args.dport,
            proto=args.proto,
            loss=args.loss,
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            reorder=args.reorder,
            duration=args.duration,
            queue_num=args.queue_num,
            queue_maxlen=args.queue_maxlen,
        )
        method = args.method
        if method == "nfqueue":
            reason = "requested"
        else:
            ok, why = netem_support()
            if method == "netem" and not ok:
                raise ImpairError(f"kernel lacks sch_netem; use --method nfqueue ({why})")
            reason = "requested" if method == "netem" else (why if ok else f"kernel lacks sch_netem: {why}")
            method = "netem" if ok else "nfqueue"
        route_dev(p.dest)
        if method == "netem":
            impl = Netem(p)
            impl.install()
        else:
            impl = NfQueue(p, random.Random(args.seed))
            try:  # a starved queue reader delays every packet: stay ahead of the CPU-heavy agents
                os.setpriority(os.PRIO_PROCESS, 0, -10)
            except OSError:
                pass
            impl.open()
            impl.add_rule()
        started = time.monotonic()
        cpu0 = time.process_time()
        params = asdict(p)
        if method == "netem":
            params["dev"] = impl.dev  # type: ignore[union-attr]
        _log(
            args.log,
            {"event": "start", "method": method, "reason": reason, "params": params, "ts": time.time()},
        )
        print(f"impair: {method} ({reason}) on {p.dest} for {p.duration:g} s", flush=True)
        counts = impl.run(stop)
        if isinstance(impl, Netem):
            impl.remove()
        else:
            impl.close()
        end = {
            "event": "end",
            "ts": time.time(),
            "method": method,
            **counts,
            "seconds": round(time.monotonic() - started, 3),
            "cpu_s": round(time.process_time() - cpu0, 3),
            "stopped_by": stop.signal or "duration",
        }
        _log(args.log, end)
        summary = " ".join(
            f"{k}={end[k]}" for k in ("packets", "dropped", "delayed", "reordered", "overflow")
        )
        print(f"impair: done {method} {p.dest} {end['seconds']} s {summary} cpu={end['cpu_s']}s", flush=True)
        return 0
    except ImpairError as exc:
        print(f"impair: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if isinstance(impl, NfQueue):
            impl.abandon()
            impl.close()
        elif isinstance(impl, Netem):
            impl.remove()
