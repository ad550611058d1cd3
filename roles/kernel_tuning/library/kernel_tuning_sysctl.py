#!/usr/bin/python
"""Apply kernel parameters live, skipping (not failing on) those this host cannot take."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kernel_tuning_sysctl
short_description: Apply sysctl values live and report which ones the host cannot take
description:
  - Writes each value to C(/proc/sys) when it differs from the current one.
  - A key whose file is missing (for example a global key inside a network namespace) or sits on a
    read-only C(/proc/sys) (a container) is reported as skipped with the reason, never as a failure.
  - Persisting the values (C(/etc/sysctl.d)) is the role's job, not this module's.
options:
  settings:
    description: Mapping of sysctl name (dotted, e.g. C(net.core.rmem_max)) to the wanted value.
    type: dict
    required: true
  udp_mem_bytes:
    description:
      - C(net.ipv4.udp_mem) as three byte counts (min, pressure, max). The kernel counts this key in
        memory pages, so the module divides by the page size of the host and adds the key in pages.
    type: list
    elements: int
  previous:
    description:
      - The C(settings) of the fact this module returned on an earlier run. Their C(before) values are
        kept, so the fact records what the host had before the role first touched it.
    type: dict
    default: {}
author: IoT Burst Resilience Pilot
"""

RETURN = r"""
settings:
  description: Per key, C(before), C(after), C(wanted) and C(status) (applied, unchanged or skipped) with C(reason).
  type: dict
  returned: always
skipped:
  description: Keys this host cannot take, mapped to the reason.
  type: dict
  returned: always
wanted:
  description: All wanted settings as applied, C(net.ipv4.udp_mem) in pages.
  type: dict
  returned: always
page_size:
  description: Memory page size of the host in bytes.
  type: int
  returned: always
udp_mem_pages:
  description: C(udp_mem_bytes) converted to pages (empty list when not given).
  type: list
  returned: always
fact:
  description:
    - Per key C(wanted), C(before) (first seen), C(live) and C(status) (applied or skipped, with
      C(reason)). Stable across runs when nothing changes, so writing it is idempotent.
  type: dict
  returned: always
"""

import errno  # noqa: E402 - Ansible modules put DOCUMENTATION first
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def normalise(value) -> str:
    """Kernel output separates vector values with tabs; compare on single spaces."""
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value)
    return " ".join(str(value).split())


def proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read_value(path: str) -> str:
    with open(path) as fh:
        return normalise(fh.read())


def apply_one(key: str, wanted: str, check_mode: bool) -> dict:
    path = proc_path(key)
    if not os.path.exists(path):
        return {
            "wanted": wanted,
            "before": None,
            "after": None,
            "status": "skipped",
            "reason": "not present on this kernel or in this network namespace",
        }
    before = read_value(path)
    if before == wanted:
        return {"wanted": wanted, "before": before, "after": before, "status": "unchanged"}
    if not os.access(path, os.W_OK):
        return {
            "wanted": wanted,
            "before": before,
            "after": before,
            "status": "skipped",
            "reason": "read-only on this host (container or missing privilege)",
        }
    if check_mode:
        return {"wanted": wanted, "before": before, "after": wanted, "status": "applied"}
    try:
        with open(path, "w") as fh:
            fh.write(wanted)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EPERM, errno.EACCES):
            return {
                "wanted": wanted,
                "before": before,
                "after": before,
                "status": "skipped",
                "reason": f"kernel refused the write: {exc.strerror}",
            }
        raise
    after = read_value(path)
    if after != wanted:
        return {
            "wanted": wanted,
            "before": before,
            "after": after,
            "status": "skipped",
            "reason": f"kernel kept '{after}' (value clamped or out of range)",
        }
    return {"wanted": wanted, "before": before, "after": after, "status": "applied"}


def bytes_to_pages(values: list[int], page_size: int) -> list[int]:
    """net.ipv4.udp_mem is counted in pages: convert (min, pressure, max) bytes, rounding down."""
    if len(values) != 3 or any(v <= 0 for v in values) or not values[0] <= values[1] <= values[2]:
        raise ValueError(f"udp_mem_bytes {values}: give three positive byte counts in ascending order")
    return [max(1, v // page_size) for v in values]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "settings": {"type": "dict", "required": True},
            "previous": {"type": "dict", "default": {}},
            "udp_mem_bytes": {"type": "list", "elements": "int"},
        },
        supports_check_mode=True,
    )
    previous = module.params["previous"] or {}
    results, skipped, fact, changed = {}, {}, {}, False
    page_size = os.sysconf("SC_PAGE_SIZE")
    wanted = dict(module.params["settings"])
    udp_pages: list[int] = []
    if module.params["udp_mem_bytes"]:
        if "net.ipv4.udp_mem" in wanted:
            module.fail_json(msg="give net.ipv4.udp_mem only as udp_mem_bytes (it is converted to pages)")
        try:
            udp_pages = bytes_to_pages(module.params["udp_mem_bytes"], page_size)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        wanted["net.ipv4.udp_mem"] = udp_pages
    for key, value in sorted(wanted.items()):
        if not key or "/" in key or ".." in key:
            module.fail_json(msg=f"invalid sysctl name '{key}': use dotted names like net.core.rmem_max")
        try:
            res = apply_one(key, normalise(value), module.check_mode)
        except OSError as exc:
            module.fail_json(msg=f"cannot set {key} ({proc_path(key)}): {exc}")
        results[key] = res
        if res["status"] == "skipped":
            skipped[key] = res["reason"]
        changed = changed or res["status"] == "applied"
        earlier = previous.get(key) if isinstance(previous.get(key), dict) else {}
        entry = {
            "wanted": res["wanted"],
            "before": earlier.get("before", res["before"]),
            "live": res["after"],
            "status": "skipped" if res["status"] == "skipped" else "applied",
        }
        if res["status"] == "skipped":
            entry["reason"] = res["reason"]
        fact[key] = entry
    module.exit_json(
        changed=changed,
        settings=results,
        skipped=skipped,
        fact=fact,
        wanted={k: normalise(v) for k, v in sorted(wanted.items())},
        page_size=page_size,
        udp_mem_pages=udp_pages,
    )


if __name__ == "__main__":
    main()
