"""The kernel_tuning module's logic against this machine's real /proc/sys (read-only checks only)."""

import os
from pathlib import Path

import pytest

from tests.testhosts._load import load

mod = load("roles/kernel_tuning/library/kernel_tuning_sysctl.py", "kernel_tuning_sysctl")


def test_udp_mem_bytes_become_pages():
    assert mod.bytes_to_pages([268435456, 536870912, 1073741824], 4096) == [65536, 131072, 262144]
    assert mod.bytes_to_pages([268435456, 536870912, 1073741824], 65536) == [4096, 8192, 16384]
    assert mod.bytes_to_pages([1, 2, 3], 4096) == [1, 1, 1]  # never 0 pages


@pytest.mark.parametrize("bad", [[3, 2, 1], [0, 1, 2], [1, 2], [-1, 2, 3]])
def test_udp_mem_bytes_rejects_bad_triples(bad):
    with pytest.raises(ValueError, match="ascending"):
        mod.bytes_to_pages(bad, 4096)


def test_vector_values_compare_on_single_spaces():
    assert mod.normalise([4096, 131072, 16777216]) == "4096 131072 16777216"
    assert mod.normalise("4096\t131072\t16777216\n") == "4096 131072 16777216"


def test_missing_key_is_skipped_with_reason():
    res = mod.apply_one("net.core.no_such_key_ibp", "1", check_mode=False)
    assert res["status"] == "skipped" and "not present" in res["reason"]


def test_current_value_is_unchanged_without_writing():
    current = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    res = mod.apply_one("net.core.somaxconn", current, check_mode=False)
    assert res == {"wanted": current, "before": current, "after": current, "status": "unchanged"}


def test_read_only_key_is_skipped_not_failed():
    path = "/proc/sys/vm/swappiness"
    if os.access(path, os.W_OK):
        pytest.skip("vm.swappiness is writable here (not a container): nothing read-only to check")
    current = Path(path).read_text().strip()
    res = mod.apply_one("vm.swappiness", str(int(current) + 1), check_mode=False)
    assert res["status"] == "skipped" and "read-only" in res["reason"]
    assert Path(path).read_text().strip() == current
