"""The Debian 12 base image every test host is an overlay copy of, and the apt cache they share.

One job: debootstrap (once per recipe) the base rootfs with PACKAGES, keep it in the cache under the
hash of its recipe, make the SSH key the hosts trust, and collect the .deb files destroyed hosts
downloaded into the shared apt layer later hosts see. Apart from the rest because it is the slow,
network-bound part (minutes, once) and because the recipe hash covers the source of
debootstrap_rootfs and customise_rootfs: editing them here, and only here, rebuilds the image.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shutil
import time
from pathlib import Path

from nspawn_common import HostError, log, run
from nspawn_state import Cache, Host

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
