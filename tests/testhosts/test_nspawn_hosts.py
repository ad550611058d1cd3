"""nspawn_hosts.py and its modules: recipe hashing, state, mirror discovery, a real boot/kill/destroy cycle."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.testhosts._load import load

nh = load("molecule/shared/nspawn_hosts.py", "nspawn_hosts")
SCRIPT = Path(nh.__file__)


def test_cli_runs_by_path_from_any_directory(tmp_path):
    """Callers run the file by path (Makefile, playbooks, scripts): it finds its modules from anywhere."""
    for cmd in ([], ["create"]):
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), *cmd, "--help"], cwd=tmp_path, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    assert "--bind HOST=SRC:DST" in proc.stdout


def test_recipe_hash_changes_with_the_package_list(monkeypatch):
    before = nh.recipe_hash()
    assert nh.recipe_hash() == before
    monkeypatch.setattr(nh.nspawn_rootfs, "PACKAGES", (*nh.PACKAGES, "htop"))
    assert nh.recipe_hash() != before


def test_scenario_state_round_trips(tmp_path):
    cache = nh.Cache(tmp_path)
    sc = nh.Scenario(key="/k", ident=nh.ident_of("/k"), index=7)
    sc.hosts.append(nh.Host(name="b1", machine="ibp7-b1", address="10.213.7.10", directory="/d", pid=5))
    nh.save(cache, sc)
    back = nh.load(cache, sc.ident)
    assert back == sc
    assert back.bridge == "ibpbr7" and str(back.network) == "10.213.7.0/24" and back.gateway == "10.213.7.1"
    assert all(sc.nat_comment in rule for _, rule in nh.nat_rules(sc))


def test_mirror_comes_from_this_machines_apt_sources():
    main, _security = nh.host_mirror()
    assert main.startswith(("http://", "https://"))


def test_bad_host_names_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("IBP_TESTHOSTS_CACHE", str(tmp_path))
    with pytest.raises(nh.HostError, match="lower-case"):
        nh.create(nh.Cache.from_env(), str(tmp_path), ["Bad_Name"])


def _can_boot() -> str:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("systemd-nspawn", "debootstrap", "iptables", "ssh"):
        if shutil.which(tool) is None:
            return f"needs {tool} (make setup)"
    return ""


@pytest.mark.skipif(bool(_can_boot()), reason=_can_boot() or "ok")
def test_boot_then_destroy_after_nspawn_was_killed_leaves_nothing(tmp_path):
    cache = nh.Cache.from_env()  # the shared cache: reuses the built rootfs
    key = str(tmp_path / "run")
    out = nh.create(cache, key, ["pt-a"])
    inst = out["instances"][0]
    ssh = nh.ssh_base(Path(inst["identity_file"]), inst["address"])
    assert subprocess.run([*ssh, "hostname"], capture_output=True, text=True).stdout.strip() == "pt-a"
    sc = nh.load(cache, nh.ident_of(key))
    host = sc.hosts[0]
    assert nh.pids_in_namespace(host.pidns)
    os.kill(host.pid, signal.SIGKILL)  # a crashed run: nspawn gone, the container's processes stay
    time.sleep(0.5)
    nh.destroy(cache, key, everything=False)
    assert nh.pids_in_namespace(host.pidns) == []
    assert not nh.link_exists(sc.bridge)
    assert not nh.is_mounted(Path(host.directory) / "root")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert sc.nat_comment not in rules
    assert nh.load(cache, sc.ident) is None
    assert not (nh.PROPAGATE_DIR / host.machine).exists()
    assert json.dumps(nh.listing(cache)).count(sc.ident) == 0


def test_subnets_are_handed_out_round_robin(tmp_path):
    """A released subnet is not reused at once (stale SSH master connections would pick it up)."""
    cache = nh.Cache(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "last-index").write_text("200\n")
    first = nh.allocate_index(cache)
    second = nh.allocate_index(cache)
    assert 200 < first < second
    (tmp_path / "last-index").write_text("254\n")
    assert nh.allocate_index(cache) < 200
