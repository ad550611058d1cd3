"""Where the test hosts' files live and what is recorded about each scenario run.

One job: the cache layout (base rootfs, shared apt layer, SSH key, per-scenario directories, locks)
and the per-scenario state file `<cache>/scenarios/<id>/state.json` with its hosts, subnet index,
pids and PID namespaces. Kept apart from the code that acts on hosts because every other module
reads it, and because the state is written before each side effect: a destroy must always find
what a crashed run left behind, whatever part of create failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
from pathlib import Path

SUBNET_PREFIX = "10.213"


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
