"""Command line of the simulator.

python -m simulator --devices 1000 --duration 300 --host 127.0.0.1 --port 5000   (the pilot's CLI)
python -m simulator run --scenario S --host H --port P [--bootstrap B --topic T]   (run [+ audit])
python -m simulator agent --listen 0.0.0.0:7000 --token-file F [--state-dir D]
python -m simulator controller --agents a:7000,b:7000 --token-file F --scenario S --gateway H:P
python -m simulator audit --bundle reports/<run-id> --bootstrap B [--topic T]
python -m simulator compare RUN_A RUN_B
python -m simulator capacity --json
python -m simulator demo --scenario S          (make demo)
python -m simulator soak --duration-s 3600 --cycle-s 180 --outage-s 30   (make soak)
python -m simulator sink --port 0               (acking UDP sink for capacity runs)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from simulator import aio
from simulator.devices.keys import add_key_args, key_from_args

# Development harnesses (harness/, source checkout only): forwarded to `python -m harness`.
HARNESS_COMMANDS = ("soak", "limit", "capacity", "demo", "sink")
COMMANDS = (
    *HARNESS_COMMANDS,
    "run",
    "agent",
    "controller",
    "audit",
    "compare",
    "validate",
)


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    else:
        token = os.environ.get("SIM_AGENT_TOKEN", "")
    if len(token) < 16:
        raise SystemExit(
            "an agent token of at least 16 characters is needed: --token-file FILE or SIM_AGENT_TOKEN"
        )
    return token


def pilot(argv: list[str]) -> int:
    from simulator.devices.console import interactive
    from simulator.devices.fleet import Fleet
    from simulator.orchestration.runner import new_run_id
    from simulator.scenario import pilot as pilot_scenario

    p = argparse.ArgumentParser(
        prog="python -m simulator", description="Interactive device fleet (the pilot's CLI)"
    )
    p.add_argument("--devices", type=int, default=100, help="number of virtual devices")
    p.add_argument("--duration", type=float, default=600, help="maximum runtime in seconds")
    p.add_argument("--host", default="127.0.0.1", help="gateway host")
    p.add_argument("--port", type=int, default=5000, help="gateway UDP port")
    p.add_argument("--protocol", choices=("ibp1", "legacy-bin", "legacy-json"), default="ibp1")
    add_key_args(p)
    args = p.parse_args(argv)
    if args.devices < 1:
        p.error("--devices must be >= 1")
    scn = pilot_scenario(args.devices, args.duration)
    scn.transport.protocol = args.protocol
    from simulator.devices.keys import MasterKeyError

    try:
        key = key_from_args(args)
    except MasterKeyError as exc:
        p.error(str(exc))
    if key is None and args.protocol == "ibp1":
        p.error(
            "IBP/1 needs the fleet master key: --registry (the gateway's devices.yml), --master-key-file or IBP_MASTER_KEY"
        )
    fleet = Fleet(scn, args.host, args.port, new_run_id("interactive"), key)

    async def go() -> None:
        await fleet.open()
        try:
            await interactive(fleet, args.duration)
        finally:
            fleet.close()

    aio.run(go())
    c = fleet.counters
    print(
        f"run {fleet.run_id}: generated {c.generated} acked {c.acked} buffered {fleet.buffered} retransmits {c.retransmits}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HARNESS_COMMANDS:
        return _harness(argv)
    if not argv or argv[0] not in COMMANDS:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
        return pilot(argv)
    from simulator.devices.keys import MasterKeyError
    from simulator.scenario import ScenarioError

    p = argparse.ArgumentParser(prog="python -m simulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    reports_default = Path(os.environ.get("SIM_REPORTS", "reports"))

    r = sub.add_parser("run", help="run a scenario in this process and write reports/<run-id>/")
    r.add_argument("--scenario", required=True)
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--run-id")
    r.add_argument("--bootstrap", help="audit the run against this Kafka after it ends")
    r.add_argument("--topic", default="iot_telemetry")
    r.add_argument("--reports", type=Path, default=reports_default)
    r.add_argument(
        "--gateway-metrics",
        help="the gateway's /metrics URL: its refused datagrams name why a stalled run failed and count as errors",
    )
    r.add_argument("--progress", action="store_true", help="print the run's progress while it runs")
    add_key_args(r)

    a = sub.add_parser("agent", help="serve the HTTP control API")
    a.add_argument("--listen", default="127.0.0.1:7000", help="host:port (port 0 = pick a free one)")
    a.add_argument("--token-file", help="shared token (or SIM_AGENT_TOKEN)")
    a.add_argument(
        "--state-dir",
        default=os.environ.get("SIM_AGENT_STATE_DIR") or None,
        help="keep the run and the devices' buffers on disk here and resume after a restart "
        "(or SIM_AGENT_STATE_DIR; default: RAM only)",
    )
    a.add_argument("--tls-cert", help="serve the control API over TLS with this certificate (PEM)")
    a.add_argument("--tls-key", help="its private key (PEM)")
    a.add_argument("--tls-client-ca", help="require a client certificate signed by this CA (mutual TLS)")
    a.add_argument(
        "--metrics-listen",
        help="host:port for a plain-HTTP, read-only GET /metrics (default: on the API port, plain only)",
    )
    add_key_args(a)

    c = sub.add_parser("controller", help="arm agents for one T0, follow, collect (and audit)")
    c.add_argument("--agents", required=True, help="comma-separated host:port list")
    c.add_argument("--token-file")
    c.add_argument("--ca-file", help="talk TLS to the agents, trusting only this CA (PEM)")
    c.add_argument("--client-cert", help="client certificate to present (agents with mutual TLS)")
    c.add_argument("--client-key", help="its private key")
    c.add_argument("--scenario", required=True)
    c.add_argument(
        "--gateway",
        required=True,
        help="gateway host:port the agents send to (host:port,host:port,... for several)",
    )
    c.add_argument("--run-id")
    c.add_argument("--lead", type=float, default=3.0, help="seconds from arming to T0")
    c.add_argument(
        "--t0", type=float, help="T0 as unix seconds (instead of --lead): faults are scheduled for it"
    )
    c.add_argument(
        "--unreachable-s",
        type=float,
        default=300.0,
        help="how long an agent may not answer mid-run (a reboot)",
    )
    c.add_argument("--bootstrap")
    c.add_argument("--topic", default="iot_telemetry")
    c.add_argument("--reports", type=Path, default=reports_default)

    au = sub.add_parser("audit", help="audit a run's records in Kafka")
    au.add_argument("--bundle", required=True, help="reports/<run-id> directory")
    au.add_argument("--bootstrap", required=True)
    au.add_argument("--topic", default="iot_telemetry")

    cp = sub.add_parser("compare", help="two audited runs side by side")
    cp.add_argument("run_a")
    cp.add_argument("run_b")
    cp.add_argument("--reports", type=Path, default=reports_default)

    v = sub.add_parser("validate", help="validate scenario files")
    v.add_argument("files", nargs="+")

    args = p.parse_args(argv)
    from simulator.orchestration.errors import ControllerError

    try:
        return _dispatch(args)
    except (ScenarioError, MasterKeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ControllerError, OSError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _harness(argv: list[str]) -> int:
    """demo, soak, limit, capacity and sink start a broker or a sink on this machine: they live in
    harness/, which a source checkout has and the deployed wheel does not."""
    try:
        from harness.__main__ import main as harness_main
    except ModuleNotFoundError:
        print(
            f"error: `{argv[0]}` is a development harness: run it from a source checkout "
            "(python -m harness ...), it is not part of the installed package",
            file=sys.stderr,
        )
        return 2
    return harness_main(argv)


def _dispatch(args: argparse.Namespace) -> int:
    from simulator.orchestration.runner import new_run_id
    from simulator.scenario import load

    if args.cmd == "validate":
        for f in args.files:
            scn, _ = load(f)
            print(f"{f}: ok ({scn.name}, {scn.devices.count:,} devices, {len(scn.phases)} phases)")
        return 0
    if args.cmd == "run":
        from simulator.orchestration.session import audit_bundle, run_local

        scn, text = load(args.scenario)
        run_id = args.run_id or new_run_id(scn.name)
        out, res = aio.run(
            run_local(
                scn,
                text,
                args.host,
                args.port,
                key_from_args(args, scn.devices.id_prefix),
                run_id,
                args.reports,
                metrics_url=args.gateway_metrics,
                progress=args.progress,
            )
        )
        print(f"run {run_id}: {res['status']}: {res['counters']}; bundle {out}")
        if res.get("failure"):
            print(f"run {run_id} FAILED: {res['failure']}", file=sys.stderr)
        if args.bootstrap:
            audit = aio.run(audit_bundle(out, args.bootstrap, args.topic, scn))
            print((out / "summary.txt").read_text(), end="")
            return 0 if audit["verdict"] == "PASS" else 1
        return 1 if res["status"] == "failed" else 0
    if args.cmd == "agent":
        from simulator.orchestration.agent import serve
        from simulator.orchestration.tls import server_context

        host, port = args.listen.rsplit(":", 1)
        if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
            raise SystemExit("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
        ctx = server_context(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
        metrics = None
        if args.metrics_listen:
            mhost, mport = args.metrics_listen.rsplit(":", 1)
            metrics = (mhost, int(mport))
        aio.run(serve(_token(args), key_from_args(args), host, int(port), args.state_dir, ctx, metrics))
        return 0
    if args.cmd == "controller":
        from simulator.orchestration import controller
        from simulator.orchestration.session import audit_bundle

        scn, text = load(args.scenario)
        run_id = args.run_id or new_run_id(scn.name)
        agents = [x.strip() for x in args.agents.split(",") if x.strip()]
        tls = None
        if args.ca_file:
            from simulator.orchestration.tls import client_context

            tls = client_context(args.ca_file, args.client_cert, args.client_key)
        elif args.client_cert:
            raise SystemExit("--client-cert needs --ca-file (the CA the agents' certificates are from)")
        out, results = aio.run(
            controller.run(
                agents,
                _token(args),
                scn,
                text,
                args.gateway,
                run_id,
                args.reports,
                args.lead,
                t0=args.t0,
                unreachable_s=args.unreachable_s,
                tls=tls,
            )
        )
        print(f"bundle: {out}")
        failed = [r for r in results if r.get("status") == "failed"]
        if args.bootstrap:
            audit = aio.run(audit_bundle(out, args.bootstrap, args.topic, scn))
            print((out / "summary.txt").read_text(), end="")
            return 0 if audit["verdict"] == "PASS" else 1
        if failed:
            print(f"run {run_id} FAILED on {len(failed)} agent(s); the bundle holds every result: audit it")
            return controller.EXIT_RUN_FAILED
        return 0
    if args.cmd == "audit":
        from simulator.orchestration.session import audit_bundle

        out = Path(args.bundle)
        audit = aio.run(audit_bundle(out, args.bootstrap, args.topic))
        print((out / "summary.txt").read_text(), end="")
        return 0 if audit["verdict"] == "PASS" else 1
    if args.cmd == "compare":
        from simulator.report.compare import main as compare

        return compare(args.run_a, args.run_b, args.reports)
    raise AssertionError(args.cmd)


if __name__ == "__main__":
    sys.exit(main())
