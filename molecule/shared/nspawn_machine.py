"""One test host's life as a process: its overlay root, boot under systemd-nspawn, wait, stop.

One job: prepare a host's overlayfs root and identity (hostname, /etc/hosts, networkd address, SSH
keys), boot it with systemd-nspawn under a small supervisor that boots it again after a reboot, wait
until sshd answers and systemd is running, and stop it: clean poweroff, SIGKILL after a timeout and
to every process left in its PID namespace, unmount. Apart from the rest because it is the part
that deals with live processes and mounts, where a crashed run must still be cleaned up fully.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from nspawn_common import HostError, log, run
from nspawn_network import host_nameservers, remove_veth
from nspawn_state import Cache, Host, Scenario

BOOT_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")


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
    """The children of ``pid``; none once it has exited. A short-lived process seen one level up can be
    gone by the time its task directory is read (CI, 2026-12-07: FileNotFoundError '/proc/2653/task')."""
    out: list[int] = []
    with contextlib.suppress(OSError):
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
    remove_veth(host)
