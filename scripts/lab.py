#!/usr/bin/env python3
"""The local multi-host lab: the cloud flow on systemd-nspawn hosts, with the same playbooks.

    python scripts/lab.py up [--brokers 1] [--gateways 1] [--agents 3]   # boot hosts, write the inventory
    python scripts/lab.py check-control                                 # this machine cannot reach Kafka
    python scripts/lab.py down                                          # remove hosts, links, NAT, state
    python scripts/lab.py inventory                                     # print the inventory path

`up` boots Debian 12 hosts with the Molecule test-host machinery (molecule/shared/nspawn_hosts.py),
then renders `.cache/lab/hosts.yml` with the very Terraform module that renders the AWS inventory
(terraform/lab -> terraform/modules/inventory), so site.yml and burst.yml see exactly the shape
`terraform apply` produces. Lab-only settings (no Grafana repository here, small heaps, the secrets
directory) go to `.cache/lab/group_vars/all/lab.yml`, next to the inventory, as Ansible expects.
Grafana's admin password takes the cloud walkthrough's path: a Vault file
(`.cache/lab/group_vars/all/vault.yml`, `vault_grafana_admin_password`) encrypted with a vault password
generated once per lab (`.cache/lab/secrets/vault-pass`, 0600); the lab's make targets pass it as
`ANSIBLE_VAULT_PASSWORD_FILE`.

Like an operator's laptop outside the VPC, this machine (the lab's control machine) cannot reach the
brokers' client port: `up` adds an iptables OUTPUT rule per broker that rejects this machine's own
connections to it (the hosts still reach each other over the bridge), `down` removes them, and
`check-control` (run by `make lab-burst`) proves it with a connect attempt from here, refused, and
one from the monitoring host, accepted. `up --kafka-reachable` leaves the port open.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / ".cache" / "lab"
NSPAWN = ROOT / "molecule" / "shared" / "nspawn_hosts.py"
# Terraform or OpenTofu, whichever the machine has (scripts/tf.sh picks; the lab module needs no provider).
TF = ROOT / "scripts" / "tf.sh"
TF_LAB = ROOT / "terraform" / "lab"

LAB_VARS = {
    # Grafana's apt repository is unreachable from these machines: provision its files only.
    "monitoring_grafana_install": False,
    # The lab's generated secrets (agent token, fleet master key) stay in the lab's state directory.
    "iot_secrets_dir": str(LAB / "secrets"),
    # Small hosts on one machine: modest broker heap, two gateway workers.
    "automq_heap_mb": 768,
    "gateway_udp_workers": 2,
    # From the lab's Vault file, as the AWS inventory takes it (terraform/main.tf, role_vars).
    "monitoring_grafana_admin_password": "{{ vault_grafana_admin_password }}",
    # The project wheel and a wheelhouse of its dependencies, built on this machine by `make lab-site`
    # (molecule/site/artifacts.yml): hosts install with --no-index, the roles' air-gapped path.
    "gateway_dist_dir": str(LAB / "artifacts" / "dist"),
    "gateway_wheelhouse": str(LAB / "artifacts" / "wheelhouse"),
    "simulator_dist_dir": str(LAB / "artifacts" / "dist"),
    "simulator_wheelhouse": str(LAB / "artifacts" / "wheelhouse"),
    # burst.yml's control host (the monitoring host): controller, auditor and report dependencies.
    "burst_control_wheelhouse": str(LAB / "artifacts" / "wheelhouse-control"),
    # Lab hosts are new at every `make lab`: trust each host key on first use, in the lab's own file.
    "ansible_ssh_common_args": f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={LAB / 'known_hosts'}",
}


def log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def host_names(brokers: int, gateways: int, agents: int) -> dict[str, list[str]]:
    return {
        "brokers": [f"broker-{i}" for i in range(brokers)],
        "gateways": [f"gateway-{i}" for i in range(gateways)],
        "agents": [f"agent-{i}" for i in range(agents)],
        "monitoring": ["monitoring-0"],
    }


AGENT_STATE_DIR = "/var/lib/iot-simulator"  # roles/simulator: simulator_state_dir


def agent_disks(agents: list[str], size_mb: int) -> dict[str, str]:
    """A small ext4 filesystem per agent host for its state dir: {name: "SRC:DST"} for nspawn --bind.

    On a cloud host the agent's state dir lives on a disk of its own size; in the lab every host's
    root is a directory on this machine's disk, so a full-disk fault (``disk-full``) would fill this
    machine. A loop-mounted image of ``size_mb`` per agent gives the fault a disk it may fill; it is
    bound at the same path at every boot, so the journal survives an ``agent-reboot``.
    """
    disks = LAB / "disks"
    disks.mkdir(exist_ok=True)
    binds = {}
    for name in agents:
        image, mnt = disks / f"{name}.img", disks / name
        mnt.mkdir(exist_ok=True)
        if not os.path.ismount(mnt):
            if not image.exists():
                with open(image, "wb") as f:
                    f.truncate(size_mb << 20)
                subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
            subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
        binds[name] = f"{mnt}:{AGENT_STATE_DIR}"
    return binds


def release_disks() -> int:
    """Unmount the agents' state-dir images (``down``, after the hosts are gone)."""
    count = 0
    for mnt in sorted((LAB / "disks").glob("*")):
        if mnt.is_dir() and os.path.ismount(mnt):
            subprocess.run(["umount", str(mnt)], check=False)
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", str(mnt)], check=True)
            count += 1
    return count


def boot(names: dict[str, list[str]], binds: dict[str, str] | None = None) -> dict:
    cmd = [sys.executable, str(NSPAWN), "create", "--key", str(LAB / "hosts")]
    for group in names.values():
        for name in group:
            cmd += ["--host", name]
    for name, mapping in (binds or {}).items():
        cmd += ["--bind", f"{name}={mapping}"]
    log(f"booting {sum(len(g) for g in names.values())} nspawn hosts")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


def render_inventory(names: dict[str, list[str]], created: dict) -> Path:
    addresses = {i["instance"]: i["address"] for i in created["instances"]}
    key_file = created["instances"][0]["identity_file"]
    tfvars = {
        group: [{"name": n, "private_ip": addresses[n]} for n in hosts] for group, hosts in names.items()
    }
    tfvars["ssh_private_key_file"] = key_file
    (LAB / "lab.tfvars.json").write_text(json.dumps(tfvars, indent=1))
    env = dict(os.environ, TF_DATA_DIR=str(LAB / "tf"), TF_IN_AUTOMATION="1", TF_CLI_CONFIG_FILE="/dev/null")
    tofu = [str(TF), f"-chdir={TF_LAB}"]
    state = f"-state={LAB / 'terraform.tfstate'}"
    subprocess.run([*tofu, "init", "-input=false"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*tofu, "apply", "-input=false", "-auto-approve", state, f"-var-file={LAB / 'lab.tfvars.json'}"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    yaml_text = subprocess.run(
        [*tofu, "output", state, "-raw", "yaml"], check=True, env=env, stdout=subprocess.PIPE, text=True
    ).stdout
    inventory = LAB / "hosts.yml"
    inventory.write_text(yaml_text)
    group_vars = LAB / "group_vars" / "all"
    group_vars.mkdir(parents=True, exist_ok=True)
    earlier = LAB / "group_vars" / "all.yml"  # the layout before the Vault file: keep its cluster id
    lab_vars = dict(
        LAB_VARS, automq_cluster_id=_cluster_id(earlier if earlier.exists() else group_vars / "lab.yml")
    )
    earlier.unlink(missing_ok=True)
    (group_vars / "lab.yml").write_text(
        "# Lab-only settings (scripts/lab.py); the inventory next to this file is Terraform's shape.\n"
        + json.dumps(lab_vars, indent=2)
        + "\n"
    )
    (LAB / "secrets").mkdir(mode=0o700, exist_ok=True)
    _vault(group_vars / "vault.yml")
    return inventory


VAULT_PASS = LAB / "secrets" / "vault-pass"


def _vault(vault_file: Path) -> None:
    """Grafana's password in an Ansible Vault file, as docs/terraform.md tells a cloud user to make it.

    Both the vault password and the Grafana password are random and made once per lab; a lab that is up
    again keeps them (the running Grafana's password does not change under it).
    """
    if vault_file.exists() and VAULT_PASS.exists():
        return
    old = os.umask(0o077)
    try:
        VAULT_PASS.write_text(secrets.token_urlsafe(32) + "\n")
        vault_file.write_text(f"vault_grafana_admin_password: {secrets.token_urlsafe(18)}\n")
    finally:
        os.umask(old)
    subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-vault")),
            "encrypt",
            "--vault-password-file",
            str(VAULT_PASS),
            str(vault_file),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _cluster_id(existing: Path) -> str:
    """The lab's KRaft cluster id: kept across `up` runs of one lab, new for a new lab."""
    if existing.exists():
        found = (yaml.safe_load(existing.read_text()) or {}).get("automq_cluster_id")
        if found:
            return found
    while True:  # like Kafka's Uuid.randomUuid: an id starting with '-' reads as an option to kafka-storage
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


# The iptables rules that keep this machine off the brokers' client port, found again by their comment.
CONTROL_COMMENT = "ibp-lab-control-no-kafka"


def kafka_endpoints(inventory: Path) -> list[tuple[str, int]]:
    """The brokers' client endpoints (host, port), from the inventory's kafka_bootstrap_servers."""
    bootstrap = yaml.safe_load(inventory.read_text())["all"]["vars"]["kafka_bootstrap_servers"]
    out = []
    for entry in str(bootstrap).split(","):
        host, port = entry.strip().rsplit(":", 1)
        out.append((host, int(port)))
    return out


def control_rule(host: str, port: int) -> list[str]:
    """Reject this machine's own TCP connections to a broker's client port (OUTPUT: packets that this
    machine originates; the lab hosts' traffic between each other never passes it)."""
    return [
        "OUTPUT",
        "-d",
        f"{host}/32",
        "-p",
        "tcp",
        "--dport",
        str(port),
        "-m",
        "comment",
        "--comment",
        CONTROL_COMMENT,
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]


def block_kafka(inventory: Path) -> None:
    for host, port in kafka_endpoints(inventory):
        rule = control_rule(host, port)
        if subprocess.run(["iptables", "-C", *rule], capture_output=True).returncode != 0:
            subprocess.run(["iptables", "-I", *rule], check=True)
        log(f"this machine can no longer connect to {host}:{port} (iptables OUTPUT REJECT); the hosts can")


def unblock_kafka() -> int:
    """Remove every rule with the lab's comment (also when the lab's state directory is gone)."""
    listing = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True)
    removed = 0
    for line in listing.stdout.splitlines():
        if CONTROL_COMMENT in line and line.startswith("-A "):
            args = line.split()[1:]
            if subprocess.run(["iptables", "-D", *args], capture_output=True).returncode == 0:
                removed += 1
    return removed


def connect_error(host: str, port: int, timeout_s: float = 3.0) -> str | None:
    """None when a TCP connection opens; otherwise why it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"timed out after {timeout_s:.0f} s"
    except OSError as e:
        return f"{errno.errorcode.get(e.errno, e.errno)} ({e.strerror})"


def check_control(_: argparse.Namespace) -> int:
    """Prove the control path: from here the brokers' client port refuses; from the monitoring host
    (where burst.yml runs the controller and the audit) it accepts, so the broker is up and listening."""
    inventory = LAB / "hosts.yml"
    if not inventory.exists():
        raise SystemExit("error: no lab: run `make lab-hosts` first")
    rules = [
        line
        for line in subprocess.run(
            ["iptables", "-S", "OUTPUT"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if CONTROL_COMMENT in line
    ]
    if not rules:
        log("the brokers' client port is reachable from this machine (lab up with --kafka-reachable)")
        return 0
    failed = False
    ansible = Path(sys.executable).with_name("ansible")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible" / "ansible.cfg"))
    if VAULT_PASS.exists():
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(VAULT_PASS)
    for host, port in kafka_endpoints(inventory):
        error = connect_error(host, port)
        if error is None:
            log(f"FAIL: this machine connected to {host}:{port}; the control path is not tested")
            failed = True
        else:
            log(f"this machine -> {host}:{port}: {error}")
        inside = subprocess.run(
            [
                str(ansible),
                "-i",
                str(inventory),
                "monitoring",
                "-o",
                "-m",
                "ansible.builtin.wait_for",
                "-a",
                f"host={host} port={port} timeout=10",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if inside.returncode != 0:
            log(f"FAIL: the monitoring host cannot reach {host}:{port}: {inside.stdout.strip()[-300:]}")
            failed = True
        else:
            log(f"monitoring host -> {host}:{port}: connected")
    for line in subprocess.run(
        ["iptables", "-L", "OUTPUT", "-v", "-n"], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        if CONTROL_COMMENT in line:
            log(f"rule: {' '.join(line.split())}")
    return 1 if failed else 0


def up(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise SystemExit("error: the lab boots systemd-nspawn hosts and needs root")
    LAB.mkdir(parents=True, exist_ok=True)
    names = host_names(args.brokers, args.gateways, args.agents)
    created = boot(names, agent_disks(names["agents"], args.agent_disk_mb))
    inventory = render_inventory(names, created)
    unblock_kafka()  # a re-run of `up`: the brokers' addresses may have changed
    if not args.kafka_reachable:
        block_kafka(inventory)
    log(f"hosts up in {created['boot_seconds']} s on {created['network']}; inventory: {inventory}")
    print(inventory)
    return 0


def down(_: argparse.Namespace) -> int:
    if (LAB / "hosts").exists() or LAB.exists():
        subprocess.run(
            [sys.executable, str(NSPAWN), "destroy", "--key", str(LAB / "hosts")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    unblocked = unblock_kafka()
    release_disks()
    shutil.rmtree(LAB, ignore_errors=True)
    log(
        "lab removed (hosts, links, addresses, NAT rules, inventory and lab secrets"
        + (f", {unblocked} Kafka rule(s) of the control machine)" if unblocked else ")")
    )
    return 0


def inventory(_: argparse.Namespace) -> int:
    path = LAB / "hosts.yml"
    if not path.exists():
        print("no lab: run `make lab` (or scripts/lab.py up)", file=sys.stderr)
        return 1
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="boot the lab hosts and write the inventory")
    p_up.add_argument("--brokers", type=int, default=1, choices=(1, 3))
    p_up.add_argument("--gateways", type=int, default=1)
    p_up.add_argument("--agents", type=int, default=3)
    p_up.add_argument(
        "--agent-disk-mb",
        type=int,
        default=256,
        help="size of each agent's state-dir filesystem (a loop-mounted ext4 image; see agent_disks)",
    )
    p_up.add_argument(
        "--kafka-reachable",
        action="store_true",
        help="leave the brokers' client port open to this machine (default: closed, as outside the VPC)",
    )
    sub.add_parser(
        "check-control", help="show that this machine cannot reach Kafka and the monitoring host can"
    )
    sub.add_parser("down", help="remove everything the lab created")
    sub.add_parser("inventory", help="print the lab inventory's path")
    args = parser.parse_args(argv)
    commands = {"up": up, "check-control": check_control, "down": down, "inventory": inventory}
    return commands[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
