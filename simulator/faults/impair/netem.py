"""The ``netem`` method: the kernel's netem qdisc does the impairing (normal on Debian/Ubuntu cloud kernels).

On the interface ``ip route get DEST`` names, the root qdisc becomes ``prio bands 4`` (the default
priomap keeps ordinary traffic in bands 1-3), band 4 gets ``netem limit L loss P% delay D J reorder R%``,
and a ``u32`` filter sends only packets to DEST (and the protocol/port; the port match assumes a 20-byte
IP header) to band 4. Jitter is uniform (no distribution table), as with nfqueue. ``tc qdisc add``
refuses to replace a root qdisc somebody configured, so existing tc setups are never clobbered; the end
deletes the root qdisc, which restores the kernel default. Counters at the end are netem's ``tc -s``
packets and drops.

netem_support() is the ``auto`` probe: a netem qdisc on a throwaway veth pair, else the kernel config.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from simulator.faults.impair.common import ImpairError, Params, StopFlag, _run, route_dev


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
