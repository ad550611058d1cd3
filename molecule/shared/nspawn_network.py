"""The private network of one scenario run: bridge, subnet, NAT to the package mirrors, DNS, veths.

One job: give each scenario its own bridge `ibpbr<n>` and subnet 10.213.<n>.0/24 (round robin over
the free indexes), the iptables MASQUERADE/FORWARD rules tagged with the scenario's id, the
nameservers the hosts use through that NAT, and remove all of it (and a host's leftover veth) again.
Apart from the host lifecycle because it is per scenario, not per host, and because its rules and
links live in this machine's network namespace, shared with every other run.
"""

from __future__ import annotations

from pathlib import Path

from nspawn_common import HostError, run
from nspawn_state import SUBNET_PREFIX, Cache, Host, Scenario, all_scenarios


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def allocate_index(cache: Cache) -> int:
    """Next free subnet index after the one handed out last (round robin over 1..254).

    Reusing an address soon after another scenario released it breaks SSH: a ControlPersist master
    connection of the earlier run (keyed by address, port and user) is picked up by the new run.
    """
    used = {sc.index for sc in all_scenarios(cache)}
    addrs = run(["ip", "-4", "-o", "addr", "show"]).stdout
    counter = cache.root / "last-index"
    try:
        last = int(counter.read_text())
    except (OSError, ValueError):
        last = 0
    for step in range(1, 255):
        n = (last + step - 1) % 254 + 1
        if n in used or link_exists(f"ibpbr{n}") or f" {SUBNET_PREFIX}.{n}." in addrs:
            continue
        counter.write_text(f"{n}\n")
        return n
    raise HostError(f"no free {SUBNET_PREFIX}.N.0/24 subnet: run `nspawn_hosts.py destroy --all`")


def nat_rules(sc: Scenario) -> list[tuple[str, list[str]]]:
    net = str(sc.network)
    tag = ["-m", "comment", "--comment", sc.nat_comment]
    return [
        ("nat", ["POSTROUTING", "-s", net, "!", "-o", sc.bridge, "-j", "MASQUERADE", *tag]),
        ("filter", ["FORWARD", "-i", sc.bridge, "-j", "ACCEPT", *tag]),
        ("filter", ["FORWARD", "-o", sc.bridge, "-j", "ACCEPT", *tag]),
    ]


def network_up(sc: Scenario) -> None:
    if not link_exists(sc.bridge):
        run(["ip", "link", "add", sc.bridge, "type", "bridge"])
    run(["ip", "addr", "replace", f"{sc.gateway}/24", "dev", sc.bridge])
    run(["ip", "link", "set", sc.bridge, "up"])
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    for table, rule in nat_rules(sc):
        if run(["iptables", "-t", table, "-C", *rule], check=False).returncode != 0:
            run(["iptables", "-t", table, "-I" if table == "filter" else "-A", *rule])


def network_down(sc: Scenario) -> None:
    for table, rule in nat_rules(sc):
        for _ in range(10):
            if run(["iptables", "-t", table, "-D", *rule], check=False).returncode != 0:
                break
    if link_exists(sc.bridge):
        run(["ip", "link", "del", sc.bridge], check=False)


def host_nameservers() -> list[str]:
    servers = []
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
            servers.append(parts[1])
    if not servers:
        raise HostError("/etc/resolv.conf names no non-loopback nameserver the hosts could use through NAT")
    return servers


def remove_veth(host: Host) -> None:
    """The host side of the container's veth pair, if systemd-nspawn left it behind."""
    veth = f"vb-{host.machine}"[:15]
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
