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

Needs root, systemd-container, debootstrap, iptables, iproute2 and openssh-client on the machine.
Standard library only: it runs with whatever python3 starts Molecule.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import inspect
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SUITE = "bookworm"
# Everything a role may assume on a fresh host. Changing this list rebuilds the rootfs.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "ca-certificates",
    "chrony",
    "iproute2",
    "iputils-ping",
    "procps",
    "curl",
    "gnupg",
    "less",
)
SUBNET_PREFIX = "10.213"
FIRST_HOST_OCTET = 10
BOOT_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


class HostError(RuntimeError):
    """A test host could not be built, booted or removed; the message says what to fix."""


def log(msg: str) -> None:
    print(f"[nspawn-hosts] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise HostError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc


# ---------------------------------------------------------------- paths and state


@dataclasses.dataclass(frozen=True)
class Cache:
    root: Path

    @classmethod
    def from_env(cls) -> Cache:
        explicit = os.environ.get("IBP_TESTHOSTS_CACHE")
        if explicit:
            return cls(Path(explicit).resolve())
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return cls(Path(xdg) / "iot-burst-pilot" / "testhosts")

    @property
    def rootfs_dir(self) -> Path:
        return self.root / "rootfs"

    @property
    def apt_layer(self) -> Path:
        return self.root / "apt-layer"

    @property
    def apt_archives(self) -> Path:
        return self.apt_layer / "var" / "cache" / "apt" / "archives"

    @property
    def scenarios(self) -> Path:
        return self.root / "scenarios"

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @contextlib.contextmanager
    def lock(self, name: str = "lock"):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / name, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


@dataclasses.dataclass
class Host:
    name: str
    machine: str
    address: str
    directory: str
    pid: int = 0
    pidns: str = ""
    # host paths bound into the container at every boot, "SRC:DST" (systemd-nspawn --bind)
    binds: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Scenario:
    key: str
    ident: str
    index: int
    hosts: list[Host] = dataclasses.field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"ibpbr{self.index}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{self.index}.0/24")

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.1"

    @property
    def nat_comment(self) -> str:
        return f"ibp-testhosts-{self.ident}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Scenario:
        hosts = [Host(**h) for h in data.pop("hosts", [])]
        return cls(hosts=hosts, **data)


def ident_of(key: str) -> str:
    return hashlib.sha256(str(Path(key).resolve()).encode()).hexdigest()[:12]


def state_path(cache: Cache, ident: str) -> Path:
    return cache.scenarios / ident / "state.json"


def save(cache: Cache, sc: Scenario) -> None:
    path = state_path(cache, sc.ident)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sc.to_json(), indent=2))
    tmp.replace(path)


def load(cache: Cache, ident: str) -> Scenario | None:
    path = state_path(cache, ident)
    if not path.exists():
        return None
    return Scenario.from_json(json.loads(path.read_text()))


def all_scenarios(cache: Cache) -> list[Scenario]:
    if not cache.scenarios.exists():
        return []
    found = []
    for sub in sorted(cache.scenarios.iterdir()):
        sc = load(cache, sub.name)
        if sc is not None:
            found.append(sc)
    return found


# ---------------------------------------------------------------- base rootfs


def host_mirror() -> tuple[str, str]:
    """The Debian and Debian-security mirror URIs this machine's apt is configured with."""
    main, security = "", ""
    texts = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        texts.append(("deb822", path.read_text()))
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            texts.append(("list", path.read_text()))
    for kind, text in texts:
        if kind == "deb822":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
                if not uris or "deb" not in fields.get("Types", "").split():
                    continue
                if f"{SUITE}-security" in suites and not security:
                    security = uris[0]
                elif SUITE in suites and not main:
                    main = uris[0]
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) >= 3 and parts[0] == "deb" and not parts[1].startswith("["):
                    if parts[2] == f"{SUITE}-security" and not security:
                        security = parts[1]
                    elif parts[2] == SUITE and not main:
                        main = parts[1]
    if not main:
        raise HostError(
            f"no Debian '{SUITE}' mirror found in /etc/apt/sources.list(.d); configure apt on this machine first"
        )
    return main.rstrip("/"), (security or "").rstrip("/")


def recipe_hash() -> str:
    """Hash of everything that decides the rootfs content: suite, packages and the build steps."""
    h = hashlib.sha256()
    h.update(SUITE.encode())
    h.update("\n".join(PACKAGES).encode())
    h.update(inspect.getsource(debootstrap_rootfs).encode())
    h.update(inspect.getsource(customise_rootfs).encode())
    return h.hexdigest()[:16]


def customise_rootfs(target: Path, mirror: str, security: str) -> None:
    """Post-debootstrap steps shared by every host (per-host identity is added at create time)."""
    lines = [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]
    if security:
        lines.append(f"deb {security} {SUITE}-security main")
    (target / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    # No per-host identity in the shared image: machine-id and SSH host keys are made per host.
    (target / "etc/machine-id").write_text("")
    for key in (target / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (target / "etc/hostname").write_text("localhost\n")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LANG="C.UTF-8")
    run(["chroot", str(target), "systemctl", "enable", "systemd-networkd.service"], env=env)
    # The rootfs has no apt lists: roles run apt with update_cache, as on a fresh cloud image.
    run(["chroot", str(target), "apt-get", "clean"], env=env)
    shutil.rmtree(target / "var/lib/apt/lists", ignore_errors=True)
    (target / "var/lib/apt/lists/partial").mkdir(parents=True)


def debootstrap_rootfs(target: Path, mirror: str) -> None:
    """The base system: Debian minbase plus PACKAGES."""
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target), mirror])


def build_rootfs(cache: Cache) -> tuple[Path, float]:
    """Return the cached base rootfs, debootstrapping it first if its recipe changed."""
    digest = recipe_hash()
    final = cache.rootfs_dir / digest
    with cache.lock("rootfs.lock"):
        if (final / "etc/os-release").exists():
            return final, 0.0
        for tool in ("debootstrap", "systemd-nspawn", "ssh-keygen", "iptables", "ip"):
            if shutil.which(tool) is None:
                raise HostError(
                    f"'{tool}' not found: install systemd-container debootstrap iptables iproute2 openssh-client"
                )
        mirror, security = host_mirror()
        started = time.monotonic()
        tmp = cache.rootfs_dir / f"{digest}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"debootstrap {SUITE} into {tmp} (recipe {digest}; a few minutes, once)")
        debootstrap_rootfs(tmp, mirror)
        customise_rootfs(tmp, mirror, security)
        tmp.rename(final)
        elapsed = time.monotonic() - started
        (final.parent / f"{digest}.build-seconds").write_text(f"{elapsed:.1f}\n")
        mounts = Path("/proc/self/mountinfo").read_text()
        for old in cache.rootfs_dir.iterdir():
            if old.is_dir() and old.name != digest and str(old) not in mounts:
                log(f"removing outdated rootfs {old.name}")
                shutil.rmtree(old, ignore_errors=True)
                old.with_suffix(".build-seconds").unlink(missing_ok=True)
        return final, elapsed


def ensure_ssh_key(cache: Cache) -> Path:
    key = cache.ssh_key
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ibp-testhosts", "-f", str(key)])
    return key


# ---------------------------------------------------------------- network


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


# ---------------------------------------------------------------- hosts


def host_nameservers() -> list[str]:
    servers = []
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
            servers.append(parts[1])
    if not servers:
        raise HostError("/etc/resolv.conf names no non-loopback nameserver the hosts could use through NAT")
    return servers


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def prepare_host(cache: Cache, sc: Scenario, host: Host, rootfs: Path, pubkey: str) -> None:
    base = Path(host.directory)
    upper, work, root = base / "upper", base / "work", base / "root"
    for d in (upper, work, root):
        d.mkdir(parents=True, exist_ok=True)
    cache.apt_archives.mkdir(parents=True, exist_ok=True)
    if not is_mounted(root):
        opts = f"lowerdir={cache.apt_layer}:{rootfs},upperdir={upper},workdir={work}"
        run(["mount", "-t", "overlay", "overlay", "-o", opts, str(root)])
    (root / "etc/hostname").write_text(f"{host.name}\n")
    # No apt lists yet: make sure apt's cache_valid_time sees them as stale, not as fresh.
    os.utime(root / "var/lib/apt/lists", (0, 0))
    hosts = ["127.0.0.1 localhost", f"127.0.1.1 {host.name}", "::1 localhost ip6-localhost ip6-loopback"]
    hosts += [f"{h.address} {h.name}" for h in sc.hosts if h.name != host.name]
    (root / "etc/hosts").write_text("\n".join(hosts) + "\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text("".join(f"nameserver {ns}\n" for ns in host_nameservers()))
    netdir = root / "etc/systemd/network"
    netdir.mkdir(parents=True, exist_ok=True)
    (netdir / "10-ibp-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={host.address}/24\nGateway={sc.gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    # In these containers systemd cannot kill a unit's cgroup (cgroup.kill: EIO), so at shutdown it waits
    # the full stop timeout for the user manager an SSH login left (90 s, then 30 s more after SIGKILL):
    # a reboot would take two minutes. A short stop timeout for user managers makes it take seconds.
    dropin = root / "etc/systemd/system/user@.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "10-ibp-test-host.conf").write_text("[Service]\nTimeoutStopSec=3s\n")
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    if not list((root / "etc/ssh").glob("ssh_host_*_key")):
        run(["ssh-keygen", "-A", "-f", str(root)])


def remove_propagate_dir(host: Host) -> None:
    """systemd-nspawn keeps /run/systemd/nspawn/propagate/<machine>; on a /run that is not tmpfs it
    neither removes it at exit nor accepts it at the next start of a machine of the same name."""
    shutil.rmtree(PROPAGATE_DIR / host.machine, ignore_errors=True)


def start_host(sc: Scenario, host: Host) -> int:
    remove_propagate_dir(host)
    base = Path(host.directory)
    logfile = open(base / "console.log", "ab")
    cmd = [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--machine={host.machine}",
        f"--hostname={host.name}",
        f"--directory={base / 'root'}",
        f"--network-bridge={sc.bridge}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=pipe",
        *(f"--bind={b}" for b in host.binds),
    ]
    # A reboot inside the container ends systemd-nspawn with status 133; this small supervisor boots it
    # again (as systemd-nspawn@.service does), so "reboot an agent host mid-flush" works on test hosts.
    # SIGTERM to the supervisor is passed on to systemd-nspawn (a clean poweroff of the container).
    supervisor = (
        'trap \'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0\' TERM INT\n'
        "while :; do\n"
        '  rm -rf "$0"\n'
        '  "$@" & child=$!\n'
        '  wait "$child"; rc=$?\n'
        '  [ "$rc" -eq 133 ] || exit "$rc"\n'
        '  echo "[nspawn-hosts] container rebooted; booting it again" >&2\n'
        "done"
    )
    proc = subprocess.Popen(
        ["/bin/sh", "-c", supervisor, str(PROPAGATE_DIR / host.machine), *cmd],
        stdin=subprocess.DEVNULL,
        stdout=logfile,
        stderr=logfile,
        start_new_session=True,
    )
    logfile.close()
    return proc.pid


def ssh_base(key: Path, address: str) -> list[str]:
    return [
        "ssh",
        "-i",
        str(key),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        f"root@{address}",
    ]


def wait_booted(key: Path, host: Host, deadline: float) -> None:
    """Wait until sshd answers and systemd finished booting (running or degraded)."""
    while time.monotonic() < deadline:
        if not pid_alive(host.pid):
            log_tail = (Path(host.directory) / "console.log").read_text(errors="replace")[-2000:]
            raise HostError(f"host {host.name}: systemd-nspawn exited during boot:\n{log_tail}")
        try:
            with socket.create_connection((host.address, 22), timeout=1):
                pass
        except OSError:
            time.sleep(0.2)
            continue
        remaining = max(1, int(deadline - time.monotonic()))
        proc = run(
            [*ssh_base(key, host.address), f"timeout {remaining} systemctl is-system-running --wait"],
            check=False,
        )
        state = proc.stdout.strip()
        if state in ("running", "degraded"):
            return
        if proc.returncode == 255:  # ssh itself failed: sshd not ready yet
            time.sleep(0.3)
            continue
        raise HostError(
            f"host {host.name}: systemd state '{state}' after boot; see {host.directory}/console.log"
        )
    raise HostError(
        f"host {host.name} did not boot within {BOOT_TIMEOUT_S:.0f}s; see {host.directory}/console.log"
    )


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in children.read_text().split()]
    return out


def container_pidns(supervisor_pid: int, deadline: float) -> str:
    """The PID namespace of the container (supervisor -> systemd-nspawn -> the container's init), to
    find strays at destroy. It changes when the container reboots."""
    own = os.readlink("/proc/self/ns/pid")
    while time.monotonic() < deadline and pid_alive(supervisor_pid):
        level = [supervisor_pid]
        for _ in range(3):
            level = [c for pid in level for c in _children(pid)]
            for child in level:
                with contextlib.suppress(OSError):
                    ns = os.readlink(f"/proc/{child}/ns/pid")
                    if ns != own:
                        return ns
        time.sleep(0.05)
    return ""


def pids_in_namespace(pidns: str) -> list[int]:
    found = []
    if not pidns:
        return found
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns/pid") == pidns and pid_alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def stop_host(host: Host) -> None:
    base = Path(host.directory)
    if pid_alive(host.pid):
        host.pidns = (
            container_pidns(host.pid, time.monotonic() + 1) or host.pidns
        )  # after a reboot: the new one
        with contextlib.suppress(ProcessLookupError):
            os.kill(host.pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(host.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(host.pid):
            log(f"host {host.name}: no clean poweroff within {STOP_TIMEOUT_S:.0f}s, killing")
            for pid in [*_children(host.pid), host.pid]:  # systemd-nspawn, then its supervisor
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (strays := pids_in_namespace(host.pidns)) and time.monotonic() < deadline:
        for pid in strays:  # left behind if systemd-nspawn itself was killed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    if strays:
        log(f"host {host.name}: processes {strays} of the container survived SIGKILL")
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(host.pid, os.WNOHANG)
    root = base / "root"
    for _ in range(20):
        if not is_mounted(root):
            break
        if run(["umount", str(root)], check=False).returncode != 0:
            time.sleep(0.25)
    if is_mounted(root):
        run(["umount", "-l", str(root)], check=False)
    remove_propagate_dir(host)
    veth = f"vb-{host.machine}"[:15]
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)


def harvest_debs(cache: Cache, host: Host) -> int:
    """Keep .deb files the host downloaded so later hosts find them in their apt cache."""
    upper_archives = Path(host.directory) / "upper/var/cache/apt/archives"
    count = 0
    if not upper_archives.is_dir():
        return 0
    cache.apt_archives.mkdir(parents=True, exist_ok=True)
    for deb in upper_archives.glob("*.deb"):
        dest = cache.apt_archives / deb.name
        if dest.exists() or not deb.is_file():
            continue
        tmp = dest.with_suffix(".part")
        shutil.copyfile(deb, tmp)
        tmp.replace(dest)
        count += 1
    return count


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
