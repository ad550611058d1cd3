#!/usr/bin/env python3
"""Debian 12 test hosts as systemd-nspawn containers, for Molecule's delegated driver.

Subcommands (all print JSON on stdout, progress on stderr):

  rootfs                      build (or reuse) the cached base rootfs; prints its path and build time
  create --key DIR --host N   boot hosts N... on a private bridge; prints the Molecule instance config
  destroy --key DIR           stop the hosts of that key, remove mounts, links, addresses and NAT rules
  destroy --all               the same for every scenario this cache knows about
  list                        the scenarios and hosts that are up

A "key" is any directory path naming one scenario run (Molecule's ephemeral directory). Each key gets
its own bridge `ibpbr<n>` and subnet 10.213.<n>.0/24 (gateway .1, hosts from .10), so scenarios of
several engineers or CI jobs can run side by side. Hosts are overlayfs copies of one debootstrapped
base rootfs, cached outside the repository in $IBP_TESTHOSTS_CACHE (default
${XDG_CACHE_HOME:-~/.cache}/iot-burst-pilot/testhosts) and keyed by the hash of its recipe, so
changing the package list or the build steps rebuilds it. Downloaded .deb files are collected from
every destroyed host into a shared apt layer that later hosts see in /var/cache/apt/archives.

This file is the command line and the create/destroy/list steps that put the pieces together, in
the order that keeps a crashed run removable (state saved before each side effect). The pieces live
next to it, one job each: nspawn_state.py (cache layout, per-scenario state), nspawn_rootfs.py (the
debootstrapped base image, shared apt layer, SSH key), nspawn_network.py (bridge, subnet, NAT, DNS),
nspawn_machine.py (one host's overlay root, boot, wait, stop) and nspawn_common.py (errors, logging,
running commands). Callers run this file by path (Molecule's create/destroy playbooks, the Makefile,
scripts/nspawn-molecule.sh, scripts/lab.py) or load it by path (tests/testhosts); both work because
it puts its own directory on sys.path before importing the pieces.

Needs root, systemd-container, debootstrap, iptables, iproute2 and openssh-client on the machine.
Standard library only: it runs with whatever python3 starts Molecule.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # loaded by path (tests) rather than run as a script
    sys.path.insert(0, _HERE)

import nspawn_machine  # noqa: E402
import nspawn_network  # noqa: E402
import nspawn_rootfs  # noqa: E402
import nspawn_state  # noqa: E402
from nspawn_common import HostError, log, run  # noqa: E402
from nspawn_machine import (  # noqa: E402
    BOOT_TIMEOUT_S,
    PROPAGATE_DIR,
    STOP_TIMEOUT_S,
    container_pidns,
    is_mounted,
    pid_alive,
    pids_in_namespace,
    prepare_host,
    ssh_base,
    start_host,
    stop_host,
    wait_booted,
)
from nspawn_network import (  # noqa: E402
    allocate_index,
    host_nameservers,
    link_exists,
    nat_rules,
    network_down,
    network_up,
)
from nspawn_rootfs import (  # noqa: E402
    PACKAGES,
    SUITE,
    build_rootfs,
    ensure_ssh_key,
    harvest_debs,
    host_mirror,
    recipe_hash,
)
from nspawn_state import (  # noqa: E402
    SUBNET_PREFIX,
    Cache,
    Host,
    Scenario,
    all_scenarios,
    ident_of,
    load,
    save,
    state_path,
)

# The names the module offered before it was split, so code that loads it keeps working; the
# modules themselves are here too (nspawn_rootfs.PACKAGES is the one recipe_hash reads).
__all__ = [
    "BOOT_TIMEOUT_S",
    "FIRST_HOST_OCTET",
    "NAME_RE",
    "PACKAGES",
    "PROPAGATE_DIR",
    "STOP_TIMEOUT_S",
    "SUBNET_PREFIX",
    "SUITE",
    "Cache",
    "Host",
    "HostError",
    "Scenario",
    "all_scenarios",
    "allocate_index",
    "build_rootfs",
    "container_pidns",
    "create",
    "destroy",
    "destroy_scenario",
    "ensure_ssh_key",
    "harvest_debs",
    "host_mirror",
    "host_nameservers",
    "ident_of",
    "is_mounted",
    "link_exists",
    "listing",
    "load",
    "log",
    "main",
    "nat_rules",
    "network_down",
    "network_up",
    "nspawn_machine",
    "nspawn_network",
    "nspawn_rootfs",
    "nspawn_state",
    "pid_alive",
    "pids_in_namespace",
    "prepare_host",
    "recipe_hash",
    "run",
    "save",
    "ssh_base",
    "start_host",
    "state_path",
    "stop_host",
    "wait_booted",
]

FIRST_HOST_OCTET = 10
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


def create(cache: Cache, key: str, names: list[str], binds: dict[str, list[str]] | None = None) -> dict:
    for name in names:
        if not NAME_RE.match(name):
            raise HostError(f"host name '{name}': use lower-case letters, digits and '-' (max 31 chars)")
    if len(set(names)) != len(names):
        raise HostError(f"duplicate host names in {names}")
    rootfs, build_s = build_rootfs(cache)
    sshkey = ensure_ssh_key(cache)
    pubkey = Path(f"{sshkey}.pub").read_text()
    ident = ident_of(key)
    started = time.monotonic()
    with cache.lock():
        sc = load(cache, ident)
        if sc is None:
            sc = Scenario(key=str(Path(key).resolve()), ident=ident, index=allocate_index(cache))
            save(cache, sc)
        known = {h.name for h in sc.hosts}
        for i, name in enumerate(names):
            if name in known:
                continue
            octet = FIRST_HOST_OCTET + len(sc.hosts)
            if octet > 250 or i > 240:
                raise HostError("too many hosts in one scenario (max 240)")
            sc.hosts.append(
                Host(
                    name=name,
                    machine=f"ibp{sc.index}-{name}"[:32],
                    address=f"{SUBNET_PREFIX}.{sc.index}.{octet}",
                    directory=str(cache.scenarios / ident / "hosts" / name),
                )
            )
        save(cache, sc)  # recorded before any side effect, so destroy finds it after a failure
        network_up(sc)
    for host in sc.hosts:
        if host.name in names:
            if binds and host.name in binds:
                host.binds = binds[host.name]
            prepare_host(cache, sc, host, rootfs, pubkey)
            if not pid_alive(host.pid):
                host.pid = start_host(sc, host)
                save(cache, sc)
                host.pidns = container_pidns(host.pid, time.monotonic() + 10)
                save(cache, sc)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    for host in sc.hosts:
        if host.name in names:
            wait_booted(sshkey, host, deadline)
    boot_s = time.monotonic() - started
    log(f"{len(names)} host(s) up on {sc.bridge} {sc.network} in {boot_s:.1f}s")
    return {
        "rootfs": str(rootfs),
        "rootfs_build_seconds": round(build_s, 1),
        "boot_seconds": round(boot_s, 1),
        "bridge": sc.bridge,
        "network": str(sc.network),
        "instances": [
            {
                "instance": h.name,
                "address": h.address,
                "user": "root",
                "port": 22,
                "identity_file": str(sshkey),
                "machine": h.machine,
            }
            for h in sc.hosts
            if h.name in names
        ],
    }


def destroy_scenario(cache: Cache, sc: Scenario) -> dict:
    harvested = 0
    for host in sc.hosts:
        stop_host(host)
        harvested += harvest_debs(cache, host)
    network_down(sc)
    shutil.rmtree(cache.scenarios / sc.ident, ignore_errors=True)
    log(f"destroyed {len(sc.hosts)} host(s) of {sc.ident} ({sc.bridge}); kept {harvested} new .deb file(s)")
    return {"ident": sc.ident, "hosts": [h.name for h in sc.hosts], "debs_kept": harvested}


def destroy(cache: Cache, key: str | None, everything: bool) -> dict:
    with cache.lock():
        if everything:
            return {"destroyed": [destroy_scenario(cache, sc) for sc in all_scenarios(cache)]}
        assert key is not None
        sc = load(cache, ident_of(key))
        return {"destroyed": [destroy_scenario(cache, sc)] if sc else []}


def listing(cache: Cache) -> dict:
    return {
        "scenarios": [
            {
                "ident": sc.ident,
                "key": sc.key,
                "bridge": sc.bridge,
                "network": str(sc.network),
                "hosts": [{"name": h.name, "address": h.address, "up": pid_alive(h.pid)} for h in sc.hosts],
            }
            for sc in all_scenarios(cache)
        ]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("rootfs", help="build or reuse the cached base rootfs")
    p_create = sub.add_parser("create", help="boot hosts for one scenario")
    p_create.add_argument("--key", required=True, help="directory naming the scenario run")
    p_create.add_argument("--host", action="append", required=True, help="host name; repeat for more")
    p_create.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="HOST=SRC:DST",
        help="bind host path SRC at DST in HOST (at every boot); repeat for more",
    )
    p_destroy = sub.add_parser("destroy", help="remove the hosts of one scenario (or --all)")
    p_destroy.add_argument("--key", help="directory naming the scenario run")
    p_destroy.add_argument("--all", action="store_true", help="every scenario in the cache")
    sub.add_parser("list", help="scenarios and hosts in the cache")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "nspawn_hosts.py must run as root (it mounts, boots containers and edits iptables)",
            file=sys.stderr,
        )
        return 2
    cache = Cache.from_env()
    try:
        if args.cmd == "rootfs":
            path, secs = build_rootfs(cache)
            out: dict = {"rootfs": str(path), "recipe": recipe_hash(), "build_seconds": round(secs, 1)}
        elif args.cmd == "create":
            binds: dict[str, list[str]] = {}
            for spec in args.bind:
                name, sep, mapping = spec.partition("=")
                if not sep or ":" not in mapping or name not in args.host:
                    parser.error(f"--bind {spec!r}: want HOST=SRC:DST with HOST one of the --host names")
                binds.setdefault(name, []).append(mapping)
            out = create(cache, args.key, args.host, binds)
        elif args.cmd == "destroy":
            if not args.all and not args.key:
                parser.error("destroy needs --key DIR or --all")
            out = destroy(cache, args.key, args.all)
        else:
            out = listing(cache)
    except HostError as exc:
        print(f"nspawn_hosts.py {args.cmd}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
