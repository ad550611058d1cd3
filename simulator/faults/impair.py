"""``python -m simulator.faults.impair``: impair the link from this host to one destination, for a while.

    python -m simulator.faults.impair --dest 10.0.0.5 [--dport 5000] [--proto udp] --loss 5 --delay-ms 50 \\
        --jitter-ms 20 --reorder 25 --duration 20 [--method auto|netem|nfqueue] [--queue-num 7] [--log F.jsonl]

Packets this host *sends* to ``--dest`` (and ``--dport``/``--proto`` when given; ``--dport`` alone means
UDP) are dropped with probability ``--loss`` %, held for ``--delay-ms`` ± ``--jitter-ms`` (uniform), and,
when there is a delay, ``--reorder`` % of them are sent at once, ahead of the held ones (netem's
``reorder``). Jitter larger than the packet spacing reorders too, as with netem. After ``--duration``
seconds, or on SIGTERM/SIGINT, everything installed is removed (also on error) and the exit code is 0.
IPv4 only. Needs root (CAP_NET_ADMIN).

Two methods do the same thing:

``netem`` (kernel qdisc; normal on Debian/Ubuntu cloud kernels): on the interface ``ip route get DEST``
names, the root qdisc becomes ``prio bands 4`` (the default priomap keeps ordinary traffic in bands 1-3),
band 4 gets ``netem limit L loss P% delay D J reorder R%``, and a ``u32`` filter sends only packets to
DEST (and the protocol/port; the port match assumes a 20-byte IP header) to band 4. Jitter is uniform
(no distribution table), as with nfqueue. ``tc qdisc add`` refuses to replace a root qdisc somebody
configured, so existing tc setups are never clobbered; the end deletes the root qdisc, which restores
the kernel default. Counters at the end are netem's ``tc -s`` packets and drops.

``nfqueue`` (userspace; for kernels without sch_netem, such as our lab machines): the tool binds a
netfilter queue by speaking nfnetlink_queue over an AF_NETLINK socket (copy mode META: only the packet
id is needed), inserts ``iptables -I OUTPUT -d DEST [-p udp --dport N] -j NFQUEUE --queue-num Q
--queue-bypass`` (bypass: if the tool is gone, packets flow), and decides per packet: drop -> NF_DROP at
once; reorder share -> NF_ACCEPT at once; otherwise the packet id goes on a heap of (release time, id)
and gets its NF_ACCEPT when due. The kernel accepts verdicts in any id order, which is what reorders
the packets. The receive buffer is 64 MiB and the queue holds ``--queue-maxlen`` packets, so a burst
does not overflow; overflows (ENOBUFS, queue full) are counted, from /proc/net/netfilter/nfnetlink_queue,
not fatal. At the end the rule is deleted first, the packets still held are released on schedule, then
the queue is unbound. If the tool is killed with SIGKILL the rule stays but traffic flows (bypass);
remove it with ``iptables -S OUTPUT | grep simulator.faults.impair``. Held packets still count against the
sender's socket send buffer (as with netem), so a sender with a small SO_SNDBUF sees EAGAIN sooner.

Measured (2-vCPU lab VM, sender, tool and receiver on the same two cores, veth between namespaces):
``--delay-ms 50`` adds 50.03 ms at the median (p99 50.4 ms; the link's own is 0.02 ms); ``--delay-ms 30 --jitter-ms 20 --reorder 25``
sends 24.5 % at once and ~75 % of 2,000 packets arrive out of order, none lost; 90,000 packets/s with
20 ms delay went through with no loss, no overflow and p99 delay +28 ms, using ~65 % of one core
(~7 µs of CPU per packet). The tool renices itself to -10: when the host is overloaded (load ~6 on the
two cores) nothing is lost, but above ~30,000 packets/s the delay grows (p99 up to +300 ms).

``auto`` (default) probes netem by adding a netem qdisc to a throwaway veth pair (falling back to the
kernel config), uses netem when it works and nfqueue otherwise, and logs which and why.

``--log F.jsonl`` appends ``{"event":"start","method":..,"reason":..,"params":{..},"ts":..}`` once the
impairment is in place and ``{"event":"end","ts":..,"packets":N,"dropped":N,"delayed":N,"reordered":N,
"overflow":N,...}`` after it is removed (netem: delayed/reordered/overflow are null). A one-line summary
goes to stdout. Errors are one line on stderr naming the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import heapq
import ipaddress
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# nfnetlink / nfnetlink_queue (linux/netfilter/nfnetlink.h, nfnetlink_queue.h)
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
SO_RCVBUFFORCE = 33
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | 0
NFQNL_MSG_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | 1
NFQNL_MSG_CONFIG = (NFNL_SUBSYS_QUEUE << 8) | 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NF_DROP = 0
NF_ACCEPT = 1
NLA_TYPE_MASK = 0x3FFF

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, portid
NFGENMSG = struct.Struct("!BBH")  # family, version, res_id (queue number, big endian)
NLATTR = struct.Struct("=HH")  # len, type
RCVBUF = 64 * 1024 * 1024
COMMENT = "simulator.faults.impair"


class ImpairError(Exception):
    """A problem the user can fix; the message says how."""


@dataclass
class Params:
    dest: str
    dport: int | None
    proto: str | None  # "udp", "tcp" or None (all)
    loss: float
    delay_ms: float
    jitter_ms: float
    reorder: float
    duration: float
    queue_num: int
    queue_maxlen: int


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise ImpairError quoting its stderr."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=15)
    except FileNotFoundError as exc:
        raise ImpairError(f"{args[0]} not found ({what}): apt-get install iproute2 iptables") from exc
    if out.returncode != 0:
        raise ImpairError(f"{what} failed: {' '.join(args)}: {(out.stderr or out.stdout).strip()}")
    return out


def route_dev(dest: str) -> str:
    """The interface the route to dest uses; ImpairError when there is none."""
    try:
        out = subprocess.run(["ip", "-j", "route", "get", dest], capture_output=True, text=True, timeout=5)
    except FileNotFoundError as exc:
        raise ImpairError("ip not found: apt-get install iproute2") from exc
    if out.returncode != 0:
        raise ImpairError(
            f"destination {dest} is unroutable from this host ({out.stderr.strip()}); check --dest or add a route"
        )
    routes = json.loads(out.stdout or "[]")
    if not routes or "dev" not in routes[0] or routes[0].get("type") in ("unreachable", "blackhole"):
        raise ImpairError(f"destination {dest} is unroutable from this host; check --dest or add a route")
    return routes[0]["dev"]


def _kernel_config() -> str:
    try:
        return gzip.decompress(Path("/proc/config.gz").read_bytes()).decode(errors="replace")
    except OSError:
        pass
    try:
        return Path(f"/boot/config-{os.uname().release}").read_text(errors="replace")
    except OSError:
        return ""


def netem_support() -> tuple[bool, str]:
    """(usable, why): add a netem qdisc to a throwaway veth pair; fall back to the kernel config."""
    probe = f"impnetem{os.getpid() % 10_000_000}"
    made = subprocess.run(
        ["ip", "link", "add", probe, "type", "veth", "peer", "name", probe + "p"],
        capture_output=True,
        text=True,
    )
    if made.returncode == 0:
        try:
            tc = subprocess.run(
                ["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay", "1ms"],
                capture_output=True,
                text=True,
            )
        finally:
            subprocess.run(["ip", "link", "del", probe], capture_output=True)
        if tc.returncode == 0:
            return True, "sch_netem works (probe qdisc on a veth pair)"
        return False, f"probe qdisc on a veth pair: tc: {tc.stderr.strip()}"
    config = _kernel_config()
    if "CONFIG_NET_SCH_NETEM=y" in config or Path("/sys/module/sch_netem").exists():
        return True, "sch_netem is built in (CONFIG_NET_SCH_NETEM=y)"
    if "CONFIG_NET_SCH_NETEM=m" in config:
        mod = subprocess.run(["modprobe", "sch_netem"], capture_output=True, text=True)
        if mod.returncode == 0:
            return True, "loaded module sch_netem"
        return False, f"modprobe sch_netem: {mod.stderr.strip()}"
    if "CONFIG_NET_SCH_NETEM is not set" in config:
        return False, "CONFIG_NET_SCH_NETEM is not set"
    return False, f"no sch_netem in the kernel config, no probe link ({made.stderr.strip()})"


class Netem:
    """prio root qdisc + netem on band 4 + u32 filter for the destination, on the route's interface."""

    def __init__(self, p: Params) -> None:
        self.p = p
        self.dev = route_dev(p.dest)
        self.installed = False

    def netem_args(self) -> list[str]:
        p = self.p
        args = ["netem", "limit", str(p.queue_maxlen)]
        if p.loss:
            args += ["loss", f"{p.loss}%"]
        if p.delay_ms or p.jitter_ms:
            args += ["delay", f"{p.delay_ms}ms"]
            if p.jitter_ms:
                args += [f"{p.jitter_ms}ms"]  # no distribution table: uniform, like nfqueue
            if p.reorder:
                args += ["reorder", f"{p.reorder}%"]
        return args

    def install(self) -> None:
        p, dev = self.p, self.dev
        add = subprocess.run(
            ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "prio", "bands", "4"],
            capture_output=True,
            text=True,
        )
        if add.returncode != 0:
            raise ImpairError(
                f"cannot add a prio root qdisc on {dev} ({add.stderr.strip()}): a configured root qdisc is "
                f"never replaced (see `tc qdisc show dev {dev}`), and the kernel needs sch_prio; "
                "or use --method nfqueue"
            )
        self.installed = True
        _run(
            ["tc", "qdisc", "add", "dev", dev, "parent", "1:4", "handle", "40:", *self.netem_args()], "netem"
        )
        match = ["match", "ip", "dst", f"{p.dest}/32"]
        if p.proto:
            match += ["match", "ip", "protocol", str(socket.getprotobyname(p.proto)), "0xff"]
        if p.dport:
            match += ["match", "ip", "dport", str(p.dport), "0xffff"]
        tc_filter = ["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32"]
        _run([*tc_filter, *match, "flowid", "1:4"], "u32 filter")

    def counters(self) -> dict[str, Any]:
        out = subprocess.run(
            ["tc", "-s", "-j", "qdisc", "show", "dev", self.dev], capture_output=True, text=True
        )
        try:
            for q in json.loads(out.stdout):
                if q.get("kind") == "netem":
                    return {"packets": q.get("packets"), "dropped": q.get("drops")}
        except ValueError:
            pass
        return {"packets": None, "dropped": None}

    def remove(self) -> None:
        if self.installed:
            subprocess.run(["tc", "qdisc", "del", "dev", self.dev, "root"], capture_output=True)
            self.installed = False

    def run(self, stop: StopFlag) -> dict[str, Any]:
        deadline = time.monotonic() + self.p.duration
        while not stop.set and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        counts = self.counters()
        return {**counts, "delayed": None, "reordered": None, "overflow": None}


def _attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = NLATTR.pack(NLATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


class NfQueue:
    """nfnetlink_queue over a raw AF_NETLINK socket, fed by one iptables NFQUEUE rule."""

    def __init__(self, p: Params, rng: random.Random) -> None:
        self.p = p
        self.rng = rng
        self.sock: socket.socket | None = None
        self.rule: list[str] | None = None
        self.seq = 0
        self.pending: list[tuple[float, int]] = []  # heap of (release time, packet id)
        self.packets = self.dropped = self.delayed = self.reordered = self.enobufs = 0
        if shutil.which("iptables") is None:
            raise ImpairError("iptables not found: apt-get install iptables (or use --method netem)")
        # the verdict message is constant up to the (verdict, id) pair at its end
        self.verdict_prefix = (
            NLMSGHDR.pack(32, NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, 0)
            + NFGENMSG.pack(socket.AF_UNSPEC, 0, p.queue_num)
            + NLATTR.pack(12, NFQA_VERDICT_HDR)
        )

    # -- netlink -----------------------------------------------------------------------------------
    def _config(self, *attrs: bytes) -> None:
        """Send one NFQNL_MSG_CONFIG and wait for its ack; ImpairError on a kernel error."""
        assert self.sock is not None
        self.seq += 1
        body = NFGENMSG.pack(socket.AF_UNSPEC, 0, self.p.queue_num) + b"".join(attrs)
        self.sock.send(
            NLMSGHDR.pack(NLMSGHDR.size + len(body), NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
            + body
        )
        end = time.monotonic() + 2
        while time.monotonic() < end:
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            data = self.sock.recv(65536)
            off = 0
            while off + NLMSGHDR.size <= len(data):
                length, kind, _, seq, _ = NLMSGHDR.unpack_from(data, off)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (code,) = struct.unpack_from("=i", data, off + 16)
                    if code == 0:
                        return
                    if -code in (errno.EBUSY, errno.EPERM):  # EPERM: another socket owns the queue
                        raise ImpairError(
                            f"NFQUEUE {self.p.queue_num} is bound by another program; pick another --queue-num"
                        )
                    raise ImpairError(f"nfnetlink_queue config failed: {os.strerror(-code)}")
                if kind == NFQNL_MSG_PACKET:  # a packet queued while unbinding: let it go
                    pid = self._packet_id(data, off, length)
                    if pid is not None:
                        self.sock.send(self.verdict_prefix + struct.pack("!II", NF_ACCEPT, pid))
                off += max(NLMSGHDR.size, (length + 3) & ~3)
        raise ImpairError("nfnetlink_queue did not answer the config message")

    @staticmethod
    def _packet_id(data: bytes | bytearray, off: int, length: int) -> int | None:
        """The packet id from NFQA_PACKET_HDR (usually the first attribute)."""
        a = off + NLMSGHDR.size + NFGENMSG.size
        end = off + length
        while a + 4 <= end:
            alen, akind = NLATTR.unpack_from(data, a)
            if alen < 4:
                return None
            if akind & NLA_TYPE_MASK == NFQA_PACKET_HDR:
                return struct.unpack_from("!I", data, a + 4)[0]
            a += (alen + 3) & ~3
        return None

    def open(self) -> None:
        """Socket with a large receive buffer, queue bound, META copy mode, long queue."""
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        except OSError as exc:
            raise ImpairError(
                f"cannot open a netfilter netlink socket ({exc}); needs CONFIG_NETFILTER"
            ) from exc
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((0, 0))
        self.sock.setblocking(False)
        try:
            self._config(_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)))
        except ImpairError as exc:
            if "not supported" in str(exc).lower() or "no such file" in str(exc).lower():
                raise ImpairError(
                    f"{exc}: kernel lacks nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE)"
                ) from exc
            raise
        self.bound = True
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self._config(_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", self.p.queue_maxlen)))

    def close(self) -> None:
        if self.sock is None:
            return
        if getattr(self, "bound", False):
            try:
                self._config(
                    _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, socket.AF_INET))
                )
            except (ImpairError, OSError):
                pass  # closing the socket unbinds too
            self.bound = False
        self.sock.close()
        self.sock = None

    # -- iptables --------------------------------------------------------------------------------
    def add_rule(self) -> None:
        p = self.p
        spec = ["OUTPUT", "-d", f"{p.dest}/32"]
        if p.proto:
            spec += ["-p", p.proto]
        if p.dport:
            spec += ["--dport", str(p.dport)]
        spec += ["-m", "comment", "--comment", f"{COMMENT} pid {os.getpid()}"]
        spec += ["-j", "NFQUEUE", "--queue-num", str(p.queue_num), "--queue-bypass"]
        _run(["iptables", "-w", "-I", *spec], "iptables NFQUEUE rule")
        self.rule = spec

    def del_rule(self) -> None:
        if self.rule is not None:
            subprocess.run(["iptables", "-w", "-D", *self.rule], capture_output=True)
            self.rule = None

    def queue_stats(self) -> dict[str, int] | None:
        """This queue's line of /proc/net/netfilter/nfnetlink_queue (per network namespace)."""
        try:
            lines = Path("/proc/net/netfilter/nfnetlink_queue").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            f = line.split()
            if len(f) >= 7 and f[0] == str(self.p.queue_num):
                return {"total": int(f[2]), "queue_dropped": int(f[5]), "user_dropped": int(f[6])}
        return None

    # -- the loop ----------------------------------------------------------------------------------
    def decide(self, pid: int, now: float, out: list[bytes]) -> None:
        """Drop, accept at once (reorder share), or hold until now + delay ± jitter."""
        p, rng = self.p, self.rng
        self.packets += 1
        if p.loss and rng.random() * 100 < p.loss:
            self.dropped += 1
            out.append(self.verdict_prefix + struct.pack("!II", NF_DROP, pid))
            return
        if not (p.delay_ms or p.jitter_ms):
            out.append(self.verdict_prefix + struct.pack("!II", NF_ACCEPT, pid))
            return
        if p.reorder and rng.random() * 100 < p.reorder:
            self.reordered += 1
            out.append(self.verdict_prefix + struct.pack("!II", NF_ACCEPT, pid))
            return
        delay = p.delay_ms + rng.uniform(-p.jitter_ms, p.jitter_ms) if p.jitter_ms else p.delay_ms
        self.delayed += 1
        heapq.heappush(self.pending, (now + max(0.0, delay) / 1000, pid))

    def _send(self, out: list[bytes]) -> None:
        """Verdicts, many netlink messages per datagram."""
        assert self.sock is not None
        for i in range(0, len(out), 1024):
            self.sock.send(b"".join(out[i : i + 1024]))
        out.clear()

    def run(self, stop: StopFlag) -> dict[str, Any]:
        assert self.sock is not None
        sock, buf, out, pending = self.sock, bytearray(65536), [], self.pending
        deadline = time.monotonic() + self.p.duration
        drain_until = 0.0
        stopping = False
        while True:
            now = time.monotonic()
            if not stopping and (stop.set or now >= deadline):
                stopping = True  # no new packets; release the held ones on schedule, then leave
                self.del_rule()
                drain_until = now + (self.p.delay_ms + self.p.jitter_ms) / 1000 + 2.0
            if stopping:
                if now >= drain_until:
                    while pending:  # overdue: let everything go
                        out.append(
                            self.verdict_prefix + struct.pack("!II", NF_ACCEPT, heapq.heappop(pending)[1])
                        )
                    self._send(out)
                    break
                if not pending:
                    stats = self.queue_stats()
                    if stats is None or stats["total"] == 0:
                        break
            timeout = 0.05
            if pending:
                timeout = min(timeout, max(0.0, pending[0][0] - now))
            if not stopping:
                timeout = min(timeout, max(0.0, deadline - now))
            ready, _, _ = select.select([sock], [], [], timeout)
            if ready:
                now = time.monotonic()
                for _ in range(512):
                    try:
                        n = sock.recv_into(buf)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno == errno.ENOBUFS:  # the kernel dropped messages: count, go on
                            self.enobufs += 1
                            continue
                        raise
                    off = 0
                    while off + NLMSGHDR.size <= n:
                        length, kind = NLMSGHDR.unpack_from(buf, off)[:2]
                        if kind == NFQNL_MSG_PACKET:
                            pid = self._packet_id(buf, off, length)
                            if pid is not None:
                                self.decide(pid, now, out)
                        off += max(NLMSGHDR.size, (length + 3) & ~3)
                    if len(out) >= 256:
                        self._send(out)
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                out.append(self.verdict_prefix + struct.pack("!II", NF_ACCEPT, heapq.heappop(pending)[1]))
            if out:
                self._send(out)
        stats = self.queue_stats()
        overflow = stats["queue_dropped"] + stats["user_dropped"] if stats else self.enobufs
        return {
            "packets": self.packets,
            "dropped": self.dropped,
            "delayed": self.delayed,
            "reordered": self.reordered,
            "overflow": overflow,
            "enobufs": self.enobufs,
        }

    def abandon(self) -> None:
        """On error: accept what is held (unbinding would drop it), delete the rule."""
        self.del_rule()
        if self.sock is not None and self.pending:
            try:
                self._send(
                    [self.verdict_prefix + struct.pack("!II", NF_ACCEPT, pid) for _, pid in self.pending]
                )
            except OSError:
                pass
            self.pending.clear()


class StopFlag:
    """Set by SIGTERM/SIGINT/SIGHUP; the loops poll it at least every 50 ms."""

    def __init__(self) -> None:
        self.set = False
        self.signal: str | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.set = True
        self.signal = signal.Signals(signum).name


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


if __name__ == "__main__":
    sys.exit(main())
