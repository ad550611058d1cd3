"""``python -m simulator.faults.impair`` on a real link: two network namespaces joined by a veth pair.

A UDP sender in namespace A sends sequence-numbered, timestamped datagrams (CLOCK_MONOTONIC, shared by
both namespaces) at 1 ms spacing to a receiver in namespace B, which records the order and one-way
delay. The impair tool runs in namespace A against B's address, as a subprocess, exactly as a user runs
it. Needs root and iptables. The netem tests adapt to the kernel: without sch_netem, ``--method netem``
must fail naming the fix, and the one test that needs netem itself is skipped saying so.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.faults.impair import netem_support

ROOT = Path(__file__).resolve().parent.parent.parent
PORT = 5000
RUN_S = "4.5"  # covers the 2,000 datagrams at 1 ms spacing with margin for a loaded host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)")

SENDER = """
import socket, struct, sys, time
dest, port, count, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 32, 16 << 20)  # SO_SNDBUFFORCE: held packets count against it
t0 = time.monotonic()
for i in range(count):
    wait = t0 + i * gap - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    s.sendto(struct.pack("!Iq", i, time.monotonic_ns()) + bytes(52), (dest, port))
"""

RECEIVER = """
import json, socket, struct, sys, time
addr, port, count, quiet, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
s.bind((addr, port))
s.settimeout(quiet)
print("ready", flush=True)
got, end = [], time.monotonic() + limit
while len(got) < count and time.monotonic() < end:
    try:
        data = s.recv(128)
    except socket.timeout:
        if got:
            break
        continue
    seq, sent = struct.unpack_from("!Iq", data)
    got.append((seq, time.monotonic_ns() - sent))
print(json.dumps(got), flush=True)
"""


@dataclass
class Link:
    a: str  # namespace of the sender and the impair tool
    b: str  # namespace of the receiver
    addr_a: str
    addr_b: str
    dev_a: str  # A's end of the veth pair

    def run_in(self, ns: str, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *args], capture_output=True, text=True, **kw)

    def nfqueue_rules(self) -> list[str]:
        rules = self.run_in(self.a, "iptables", "-S", "OUTPUT", check=True).stdout.splitlines()
        return [r for r in rules if "NFQUEUE" in r]


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    tag = str(os.getpid() % 100000)
    a, b = f"ibpimpA{tag}", f"ibpimpB{tag}"
    setup = [
        ["ip", "netns", "add", a],
        ["ip", "netns", "add", b],
        [
            "ip",
            "link",
            "add",
            f"impa{tag}",
            "netns",
            a,
            "type",
            "veth",
            "peer",
            "name",
            f"impb{tag}",
            "netns",
            b,
        ],
        ["ip", "-n", a, "addr", "add", "10.250.77.1/30", "dev", f"impa{tag}"],
        ["ip", "-n", b, "addr", "add", "10.250.77.2/30", "dev", f"impb{tag}"],
        ["ip", "-n", a, "link", "set", f"impa{tag}", "up"],
        ["ip", "-n", b, "link", "set", f"impb{tag}", "up"],
        ["ip", "-n", a, "link", "set", "lo", "up"],
        ["ip", "-n", b, "link", "set", "lo", "up"],
    ]
    try:
        for cmd in setup:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        yield Link(a, b, "10.250.77.1", "10.250.77.2", f"impa{tag}")
    finally:
        for ns in (a, b):  # deleting a namespace deletes its end of the veth pair (and so the pair)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def start_receiver(link: Link, count: int) -> subprocess.Popen:
    """The receiver in namespace B, once it is listening."""
    receive = [link.addr_b, str(PORT), str(count), "0.5", "15"]
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", link.b, sys.executable, "-c", RECEIVER, *receive],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "ready"
    return receiver


def received(receiver: subprocess.Popen) -> list[tuple[int, int]]:
    """(seq, one-way delay ns) in arrival order."""
    try:
        out, _ = receiver.communicate(timeout=20)
    finally:
        receiver.kill()
    return [tuple(x) for x in json.loads(out)]


def traffic(link: Link, count: int = 2000, gap: float = 0.001) -> list[tuple[int, int]]:
    """Send count datagrams A -> B at gap spacing; what B received."""
    receiver = start_receiver(link, count)
    try:
        link.run_in(
            link.a, sys.executable, "-c", SENDER, link.addr_b, str(PORT), str(count), str(gap), check=True
        )
    finally:
        got = received(receiver)
    return got


def start_impair(link: Link, log: Path, *args: str, method: str = "nfqueue") -> subprocess.Popen:
    """Start the tool in namespace A; return once its start event is logged (the impairment is on)."""
    tool = [sys.executable, "-m", "simulator.faults.impair", "--dest", link.addr_b, "--method", method]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", link.a, *tool, "--log", str(log), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if log.exists() and '"start"' in log.read_text():
            return proc
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"impair exited {proc.returncode} before starting: {out}{err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("impair did not start within 10 s")


def finish(proc: subprocess.Popen, log: Path) -> dict:
    """Wait for a clean exit; the end event."""
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, out + err
    assert "impair: done" in out
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "end"]
    return events[1]


def median_ms(got: list[tuple[int, int]]) -> float:
    return statistics.median(d for _, d in got) / 1e6


def out_of_order(got: list[tuple[int, int]]) -> float:
    """Share of packets arriving after a packet sent later than them."""
    late, highest = 0, -1
    for seq, _ in got:
        if seq < highest:
            late += 1
        highest = max(highest, seq)
    return late / len(got)


@pytest.fixture(scope="module")
def baseline_ms(link: Link) -> float:
    got = traffic(link, 1000)
    assert len(got) == 1000
    return median_ms(got)


def assert_unimpaired(link: Link, baseline: float) -> None:
    assert link.nfqueue_rules() == []
    got = traffic(link, 500)
    assert len(got) == 500
    assert out_of_order(got) == 0
    assert median_ms(got) < baseline + 5


def test_loss_20_drops_a_fifth_then_leaves_the_link_alone(
    link: Link, baseline_ms: float, tmp_path: Path
) -> None:
    proc = start_impair(link, tmp_path / "log.jsonl", "--loss", "20", "--duration", RUN_S)
    assert len(link.nfqueue_rules()) == 1
    got = traffic(link)
    end = finish(proc, tmp_path / "log.jsonl")
    assert 0.72 <= len(got) / 2000 <= 0.88, len(got)
    assert end["packets"] == 2000 and end["overflow"] == 0, end
    assert len(got) == 2000 - end["dropped"], end
    assert end["stopped_by"] == "duration"
    assert_unimpaired(link, baseline_ms)


def test_delay_50_adds_50_ms(link: Link, baseline_ms: float, tmp_path: Path) -> None:
    proc = start_impair(
        link, tmp_path / "log.jsonl", "--delay-ms", "50", "--dport", str(PORT), "--duration", RUN_S
    )
    got = traffic(link)
    end = finish(proc, tmp_path / "log.jsonl")
    added = median_ms(got) - baseline_ms
    assert 47 <= added <= 58, (added, baseline_ms)
    assert len(got) == 2000 and out_of_order(got) == 0
    assert end["delayed"] == 2000 and end["dropped"] == 0
    assert link.nfqueue_rules() == []


def test_jitter_and_reorder_reorder_without_loss(link: Link, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    proc = start_impair(
        link, log, "--delay-ms", "30", "--jitter-ms", "20", "--reorder", "25", "--duration", RUN_S
    )
    got = traffic(link)
    end = finish(proc, log)
    assert len(got) == 2000, end
    assert out_of_order(got) > 0.05, out_of_order(got)
    assert 0.19 <= end["reordered"] / 2000 <= 0.31, end
    delays = sorted(d / 1e6 for _, d in got)
    assert delays[100] < 5  # the reorder share (25 %) goes at once
    assert 10 <= delays[700] <= 30 <= delays[1900] <= 55  # the rest: 30 ms ± 20 ms, uniform
    assert link.nfqueue_rules() == []


def test_sigterm_mid_run_exits_0_and_removes_the_rule(link: Link, baseline_ms: float, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    proc = start_impair(link, log, "--delay-ms", "20", "--duration", "60")
    receiver = start_receiver(link, 800)
    sender = subprocess.Popen(  # SIGTERM lands while packets are held: they must still go out
        ["ip", "netns", "exec", link.a, sys.executable, "-c", SENDER, link.addr_b, str(PORT), "800", "0.001"]
    )
    time.sleep(0.4)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    end = finish(proc, log)
    assert time.monotonic() - t0 < 3
    assert sender.wait(timeout=10) == 0
    assert len(received(receiver)) == 800  # nothing held was dropped by the unbind
    assert end["stopped_by"] == "SIGTERM" and end["dropped"] == 0 and end["delayed"] > 0, end
    assert link.nfqueue_rules() == []
    assert_unimpaired(link, baseline_ms)


def test_auto_says_which_method_and_why(link: Link, tmp_path: Path) -> None:
    ok, _ = netem_support()
    proc = start_impair(link, tmp_path / "log.jsonl", "--loss", "1", "--duration", "0.3", method="auto")
    finish(proc, tmp_path / "log.jsonl")
    start = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert start["method"] == ("netem" if ok else "nfqueue")
    if not ok:
        assert start["reason"].startswith("kernel lacks sch_netem")
    assert link.nfqueue_rules() == []


def test_method_netem_works_or_names_the_fix(link: Link, tmp_path: Path) -> None:
    ok, _ = netem_support()
    cmd = [sys.executable, "-m", "simulator.faults.impair", "--dest", link.addr_b, "--method", "netem"]
    res = link.run_in(link.a, *cmd, "--delay-ms", "10", "--duration", "0.3", cwd=ROOT)
    if ok:
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 2
        assert "kernel lacks sch_netem; use --method nfqueue" in res.stderr
    qdiscs = link.run_in(link.a, "tc", "qdisc", "show", "dev", link.dev_a).stdout
    assert "netem" not in qdiscs and "prio" not in qdiscs


def test_netem_delays_traffic_to_the_destination(link: Link, baseline_ms: float, tmp_path: Path) -> None:
    ok, _ = netem_support()
    if not ok:
        pytest.skip("kernel lacks sch_netem (CONFIG_NET_SCH_NETEM)")
    proc = start_impair(link, tmp_path / "log.jsonl", "--delay-ms", "50", "--duration", RUN_S, method="netem")
    got = traffic(link)
    finish(proc, tmp_path / "log.jsonl")
    assert 47 <= median_ms(got) - baseline_ms <= 58
    assert "netem" not in link.run_in(link.a, "tc", "qdisc", "show", "dev", link.dev_a).stdout
    assert_unimpaired(link, baseline_ms)


def test_unroutable_destination_is_named(link: Link) -> None:
    res = link.run_in(
        link.a,
        *[sys.executable, "-m", "simulator.faults.impair", "--dest", "10.250.99.9", "--method", "nfqueue"],
        *["--loss", "5", "--duration", "1"],
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert "destination 10.250.99.9 is unroutable" in res.stderr
    assert link.nfqueue_rules() == []
