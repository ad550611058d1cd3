"""The root module for real: the hashicorp/aws provider (from the local mirror) against a moto server.

One test walks the whole life of a deployment, as `make tf-plan tf-apply tf-destroy` would, on a
throw-away copy of terraform/ plus the test-only provider override (tests/terraform/moto/):

1. `init` with the committed lock file (read-only) and `validate` of the root and every AWS module;
2. `plan` with terraform.tfvars.example exactly as shipped;
3. `apply` (public hosts): the instances, buckets and S3 endpoint exist in moto; the inventory
   rendered from the apply's real outputs is read back with `ansible-inventory` and carries what
   site.yml needs; a second plan has nothing to change (the cluster id is stable);
4. `apply` with assign_public_ip = false: a NAT gateway, private brokers/gateways/agents reached
   through the monitoring host;
5. `make tf-destroy` refuses while the versioned ops bucket holds data and destroys nothing;
   `make tf-destroy EMPTY_BUCKETS=yes` empties it and destroys; moto is left with no resources.

A second test proves the gate can fail: a misspelt attribute in a module fails `validate`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.fixtures.moto import MOTO_CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "scripts" / "tf.sh"
OVERRIDE = Path(__file__).resolve().parent / "moto" / "moto_override.tf"
REGION = "eu-west-1"
AWS_MODULES = ["network", "security", "storage", "iam", "fleet"]
CLUSTER_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{20}A$")


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


def _copy_root(dest: Path, endpoint: str) -> Path:
    root = dest / "terraform"
    shutil.copytree(
        ROOT / "terraform", root, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfvars")
    )
    (root / "moto_override.tf").write_text(OVERRIDE.read_text().replace("MOTO_ENDPOINT", endpoint))
    return root


def _env(endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        **MOTO_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,  # boto3 in scripts/tf_buckets.py and in this test
        "AWS_EC2_METADATA_DISABLED": "true",
        "TF_IN_AUTOMATION": "1",
    }


def _aws(endpoint: str, service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _tfvars(tmp: Path, endpoint: str, **extra: object) -> Path:
    """Test values on top of the example: an AMI moto knows and a freshly generated SSH key."""
    key = tmp / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ami = _aws(endpoint, "ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    values = {"ami_id": ami, "ssh_public_key": (tmp / "id_ed25519.pub").read_text().strip(), **extra}
    path = tmp / f"test-{len(extra)}.tfvars.json"
    path.write_text(json.dumps(values))
    return path


def _inventory(root: Path, env: dict[str, str], dest: Path) -> dict:
    dest.write_text(_ok(_run([str(TF), "output", "-raw", "ansible_inventory_yaml"], root, env)))
    listed = _ok(
        _run([str(ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", str(dest), "--list"], ROOT, env)
    )
    return json.loads(listed)


def _hosts_output(root: Path, env: dict[str, str]) -> dict:
    return json.loads(_ok(_run([str(TF), "output", "-json", "hosts"], root, env)))


def _live_instances(ec2) -> list[dict]:
    pages = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def _assert_replan_changes_nothing(root: Path, env: dict[str, str], var_files: list[str]) -> None:
    """A second plan creates, replaces and destroys nothing, and leaves the cluster id alone.

    Two moto gaps show up as in-place updates against moto (not against AWS) and are allowed:
    moto drops the description of a security-group rule that names another group as its source,
    and reports no security groups for an instance launched into a subnet with a public address.
    Every other difference fails the test.
    """
    _ok(_run([str(TF), "plan", "-input=false", "-no-color", "-out=replan", *var_files], root, env))
    shown = json.loads(_ok(_run([str(TF), "show", "-json", "replan"], root, env)))
    for change in shown.get("resource_changes", []):
        actions = change["change"]["actions"]
        if actions == ["no-op"]:
            continue
        before, after = change["change"]["before"], change["change"]["after"]
        changed = sorted(k for k in after if before.get(k) != after.get(k))
        moto_drift = actions == ["update"] and (
            (change["type"] == "aws_vpc_security_group_ingress_rule" and changed == ["description"])
            or (
                change["type"] == "aws_instance"
                and changed == ["vpc_security_group_ids"]
                and before["vpc_security_group_ids"] == []
            )
        )
        assert moto_drift, f"re-plan wants {actions} on {change['address']} ({changed})"


@pytest.mark.timeout(1800)
def test_plan_apply_inventory_destroy_against_moto(tmp_path: Path, moto_endpoint: str) -> None:
    env = _env(moto_endpoint)
    root = _copy_root(tmp_path, moto_endpoint)
    ec2, s3 = _aws(moto_endpoint, "ec2"), _aws(moto_endpoint, "s3")

    # 1. init from the mirror with the committed lock file; validate root and modules.
    _ok(_run([str(TF), "init", "-input=false", "-no-color", "-lockfile=readonly"], root, env))
    _ok(_run([str(TF), "validate", "-no-color"], root, env))
    for module in AWS_MODULES:
        mdir = root / "modules" / module
        _ok(_run([str(TF), "init", "-input=false", "-backend=false", "-no-color"], mdir, env))
        _ok(_run([str(TF), "validate", "-no-color"], mdir, env))

    # 2. plan with the shipped example (it plans; the apply below needs an AMI and a key moto knows).
    plan = _run(
        [
            str(TF),
            "plan",
            "-input=false",
            "-no-color",
            "-detailed-exitcode",
            "-var-file=terraform.tfvars.example",
        ],
        root,
        env,
    )
    assert plan.returncode == 2, (
        f"plan of the example should propose changes:\n{plan.stdout[-3000:]}\n{plan.stderr[-3000:]}"
    )
    assert "Plan: " in plan.stdout

    # 3. apply, public hosts.
    example = "-var-file=terraform.tfvars.example"
    public = f"-var-file={_tfvars(tmp_path, moto_endpoint)}"
    _ok(_run([str(TF), "apply", "-input=false", "-no-color", "-auto-approve", example, public], root, env))
    instances = _live_instances(ec2)
    assert len(instances) == 10, (
        f"3 brokers + 2 gateways + 4 agents + 1 monitoring, moto has {len(instances)}"
    )
    assert all(i["MetadataOptions"]["HttpTokens"] == "required" for i in instances)
    assert all(i["Monitoring"]["State"] == "disabled" for i in instances), "detailed monitoring must be off"
    endpoints = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    assert [e["ServiceName"] for e in endpoints] == [f"com.amazonaws.{REGION}.s3"]

    hosts = _hosts_output(root, env)
    listed = _inventory(root, env, tmp_path / "hosts.yml")
    for group, members in hosts.items():
        assert sorted(listed[group]["hosts"]) == sorted(h["name"] for h in members), group
        for h in members:
            hv = listed["_meta"]["hostvars"][h["name"]]
            assert hv["ansible_host"] == h["public_ip"] and hv["private_ip"] == h["private_ip"], h
    all_vars = listed["_meta"]["hostvars"]["broker-0"]
    cluster_id = all_vars["automq_cluster_id"]
    assert CLUSTER_ID.match(cluster_id), cluster_id
    assert all_vars["automq_flavor"] == "automq"
    assert all_vars["automq_archive_url"].endswith("/automq-1.7.0_kafka-3.9.1.tgz")
    assert all_vars["automq_release_kafka_version"] == "3.9.1"
    assert all_vars["monitoring_grafana_admin_password"] == "{{ vault_grafana_admin_password }}"
    assert all_vars["common_chrony_servers"] == ["169.254.169.123"]
    assert all_vars["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=accept-new"
    assert "automq_controller_quorum_voters" not in all_vars
    assert all_vars["kafka_bootstrap_servers"] == ",".join(
        f"{b['private_ip']}:9092" for b in hosts["brokers"]
    )

    _assert_replan_changes_nothing(root, env, [example, public])

    # 4. private hosts behind the bastion.
    private = f"-var-file={_tfvars(tmp_path, moto_endpoint, assign_public_ip=False)}"
    _ok(_run([str(TF), "apply", "-input=false", "-no-color", "-auto-approve", example, private], root, env))
    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"]
    assert len(nats) == 1, nats
    hosts = _hosts_output(root, env)
    listed = _inventory(root, env, tmp_path / "hosts-private.yml")
    bastion = hosts["monitoring"][0]["public_ip"]
    assert bastion, "the monitoring host keeps a public address as the bastion"
    for group in ("brokers", "gateways", "agents"):
        for h in hosts[group]:
            hv = listed["_meta"]["hostvars"][h["name"]]
            assert h["public_ip"] == "" and hv["ansible_host"] == h["private_ip"], h
            assert f"-W %h:%p admin@{bastion}" in hv["ansible_ssh_common_args"], hv["ansible_ssh_common_args"]
    assert listed["_meta"]["hostvars"]["broker-0"]["automq_cluster_id"] == cluster_id, (
        "re-apply kept the cluster id"
    )

    # 5. destroy: refused while the versioned ops bucket holds data, then emptied on request.
    ops = json.loads(_ok(_run([str(TF), "output", "-json", "ops_bucket"], root, env)))
    # moto enforces the buckets' TLS-only policy, and this moto server speaks plain HTTP: lift the
    # policy (destroy copes with its absence) so the test can write and the cleanup can list.
    data = json.loads(_ok(_run([str(TF), "output", "-json", "data_bucket"], root, env)))
    for bucket in (ops, data):
        s3.delete_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=ops, Key="bursts/run-1/audit.json", Body=b'{"delivered": 1}')
    s3.put_object(Bucket=ops, Key="bursts/run-1/audit.json", Body=b'{"delivered": 2}')
    s3.delete_object(Bucket=ops, Key="bursts/run-1/audit.json")
    inventory = tmp_path / "aws-hosts.yml"
    inventory.write_text("# rendered\n")
    make = ["make", "--no-print-directory", "-C", str(ROOT), f"TF_DIR={root}", f"TF_INVENTORY={inventory}"]
    destroy_args = f"TF_ARGS=-auto-approve -no-color {example} {private}"
    refused = _run([*make, "tf-destroy", destroy_args], ROOT, env)
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert f"{ops}: 1 keys, 2 object versions, 1 delete markers" in refused.stdout, refused.stdout[-3000:]
    assert "EMPTY_BUCKETS=yes" in refused.stderr, refused.stderr[-3000:]
    assert len(_live_instances(ec2)) == 10 and inventory.exists(), "a refused destroy must destroy nothing"

    _ok(_run([*make, "tf-destroy", destroy_args, "EMPTY_BUCKETS=yes"], ROOT, env, timeout=900))
    assert not inventory.exists(), "the rendered inventory goes with the deployment"
    assert _live_instances(ec2) == []
    assert s3.list_buckets()["Buckets"] == []
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    assert [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] != "deleted"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"].lower() != "deleted"] == []
    iam = _aws(moto_endpoint, "iam")
    assert [
        r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("iot-burst-pilot")
    ] == []
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]] == []


def test_a_broken_attribute_fails_validate(tmp_path: Path) -> None:
    """The gate can fail: a misspelt argument in the fleet module is refused by the real provider schema."""
    env = {**os.environ, "TF_IN_AUTOMATION": "1"}
    root = tmp_path / "terraform"
    shutil.copytree(
        ROOT / "terraform", root, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfvars")
    )
    fleet = root / "modules" / "fleet" / "main.tf"
    fleet.write_text(fleet.read_text().replace("http_tokens ", "http_token  ", 1))
    _ok(
        _run(
            [str(TF), "init", "-input=false", "-backend=false", "-no-color", "-lockfile=readonly"], root, env
        )
    )
    proc = _run([str(TF), "validate", "-no-color"], root, env)
    assert proc.returncode != 0
    assert 'An argument named "http_token" is not expected here' in proc.stderr, proc.stderr
