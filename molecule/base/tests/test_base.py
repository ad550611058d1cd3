"""site.yml's base play on one host per group: each group got its tuning profile, all got common."""

import json

PROFILES = {
    "broker-1": ["broker"],
    "gateway-1": ["gateway"],
    "agent-1": ["agent"],
    "monitoring-1": [],
}


def test_tuning_profile_follows_the_inventory_group(host):
    fact = json.loads(host.file("/etc/ansible/facts.d/kernel_tuning.fact").content_string)
    assert fact["profiles"] == PROFILES[host.backend.get_hostname()]


def test_common_base_is_there(host):
    assert host.package("jq").is_installed
    assert host.service("chrony").is_running


def test_hosts_reach_each_other_by_name(host):
    for peer in PROFILES:
        assert host.run(f"getent hosts {peer}").rc == 0, peer
    assert host.run("timeout 5 bash -c 'echo > /dev/tcp/broker-1/22'").rc == 0
