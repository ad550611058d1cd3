"""``make demo``: the whole burst on one machine, then everything it started is stopped.

Local Kafka broker (own data dir under .cache/demo/) -> gateway (harness.gateway, fresh random fleet
key) -> simulator run of the scenario -> audit -> summary and HTML report path. Ctrl-C or SIGTERM stop
the run; the gateway and broker are stopped and their temporary data deleted in every case.
The run shows its progress (a plain line every few seconds when stdout is not a terminal) and reads the
gateway's /metrics: its refused datagrams name the cause of a stalled run and count as the run's errors.
"""

from __future__ import annotations

from pathlib import Path

from harness.stack import Stack
from simulator.orchestration.runner import new_run_id
from simulator.scenario import load, readings_per_datagram


def main(scenario_path: str, reports: Path, gateway_workers: int = 2) -> int:
    scn, text = load(scenario_path)
    print(
        f"demo: scenario {scenario_path} ({scn.devices.count:,} devices, {len(scn.phases)} phases)",
        flush=True,
    )
    try:
        with Stack("demo", gateway_workers) as stack:
            run_id = new_run_id(scn.name)
            print(f"demo: run {run_id}: phases {[(p.name, p.kind) for p in scn.phases]}", flush=True)
            print(
                f"demo: up to {readings_per_datagram(scn)} readings per datagram "
                f"(flush.batch_size {scn.flush.batch_size}, flush.max_datagram_bytes {scn.flush.max_datagram_bytes:,})",
                flush=True,
            )

            def ran(_bundle: Path, results: dict) -> None:
                c = results["counters"]
                print(
                    f"demo: run {results['status']}: generated {c['generated']:,}, acked {c['acked']:,}, "
                    f"datagrams {c['datagrams']:,} (largest {c['max_datagram_bytes']:,} bytes), "
                    f"retransmits {c['retransmits']:,}, timeouts {c['timeouts']:,}, BUSY {c['busy']:,}, "
                    f"kernel drops at the gateway "
                    f"{int(stack.gateway.metric('iot_udp_receive_buffer_errors_total')):,}",
                    flush=True,
                )
                if results.get("failure"):
                    print(f"demo: run FAILED: {results['failure']}", flush=True)
                print("demo: auditing the topic ...", flush=True)

            run = stack.audited_run(scn, text, run_id, reports, progress=True, between=ran)
            print((run.bundle / "summary.txt").read_text(), end="")
            print(f"demo: HTML report: {(run.bundle / 'report.html').resolve()}")
            return 0 if run.audit["verdict"] == "PASS" else 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it started is stopped", flush=True)
        return 130
