"""The agent's state dir fills up mid-run: a clear error, the run failed at once, nothing journaled lost.

A real filesystem (a size-limited tmpfs mounted for the test) and a real agent process: the run starts
with room to spare, then the deployed fault injector (``ansible/files/ibp-fault disk-full``, as the
lab's fault matrix runs it) takes the rest of the space for a few seconds. The agent must stop within seconds (not at the drained phase's ``max_s``) with an error that
names the directory and the cause, and the directory must still restore every reading it had journaled.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from simulator.devices import persist
from simulator.devices.fleet import Device
from simulator.orchestration import web

SCENARIO = """\
name: disk-full
devices: {count: 2000, buffer_capacity: 100000}
reading: {rate_hz: 2.0}
phases:
  - {name: normal, kind: normal, duration_s: 2}
  - {name: outage, kind: outage, duration_s: 60}
  - {name: recovery, kind: recovery, until: drained, max_s: 300}
final_drain_s: 60
"""


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 4 MiB tmpfs for the agent's state dir (the injector refuses a filesystem with more room)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


ROOT = Path(__file__).resolve().parents[2]
INJECTOR = ROOT / "ansible" / "files" / "ibp-fault"


def _inject(state: Path, log_dir: Path, duration_s: int) -> subprocess.Popen:
    """The lab's and the cloud's fault injector, now: fill the state dir's filesystem for a while."""
    argv = ["bash", str(INJECTOR), "run", "disk-full", str(int(time.time())), "disk-full", str(state)]
    return subprocess.Popen([*argv, str(duration_s), "64"], env=dict(os.environ, IBP_FAULT_DIR=str(log_dir)))


def test_a_full_state_dir_fails_the_run_loudly_and_keeps_what_was_journaled(
    agent_factory, small_fs, tmp_path: Path
) -> None:
    state = small_fs / "agent-state"
    (agent,) = agent_factory.start(1, secrets.token_bytes(32), state_dir=state)
    token = agent_factory.token
    load = {
        "scenario": SCENARIO,
        "run_id": "full",
        "agent_index": 0,
        "agent_count": 1,
        "gateway": "127.0.0.1:9",
    }

    async def call(method: str, path: str, body: dict | None = None):
        return await web.request(agent.address, method, path, token, body, wait_s=10)

    async def go() -> tuple[dict, float]:
        await call("POST", "/scenario", load)
        await call("POST", "/arm", {"t0": round(time.time() + 0.5, 3)})
        deadline = time.monotonic() + 20
        while (await call("GET", "/status"))["phase"] != "outage":
            assert time.monotonic() < deadline, "the run never reached its outage"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        injector = _inject(state, tmp_path / "faults", 6)
        filled = time.monotonic()
        while (status := await call("GET", "/status"))["state"] == "running":
            assert time.monotonic() - filled < 15, f"the agent did not notice the full disk: {status}"
            await asyncio.sleep(0.2)
        noticed = time.monotonic() - filled
        assert await asyncio.to_thread(injector.wait, 30) == 0, "the injector failed"
        return status, noticed

    status, noticed_s = asyncio.run(go())
    events = [json.loads(line)["event"] for line in (tmp_path / "faults" / "run" / "disk-full.jsonl").open()]
    assert events == ["scheduled", "start", "full", "end"], events
    assert status["state"] == "error", status
    error = status["error"]
    assert f"state dir {state} is full (No space left on device)" in error, error
    assert "none of them is sent" in error and f"kept in {state}" in error, error
    m = re.search(r"the ([\d,]+) readings journaled before", error)
    assert m, error
    journaled = int(m.group(1).replace(",", ""))
    pending = int(re.search(r"([\d,]+) new readings", error).group(1).replace(",", ""))
    assert journaled > 2000 * 2, f"the run journaled its normal phase and some outage first: {error}"
    assert noticed_s < 5, f"the run failed {noticed_s:.1f} s after the disk filled, not at once"

    # Space back (the injector removed its filler), the agent gone: the directory restores every
    # reading it had journaled (none lost, none half-written counted).
    assert not (state / ".ibp-fault-filler").exists()
    agent_factory.kill(agent)
    devices = [Device(i, f"sim-{i:06d}", b"", 0, 0) for i in range(2000)]
    meta = persist.Store(state).restore(devices, 100000, True)
    assert meta is not None
    restored = sum(d.next_seq - d.first_seq for d in devices)
    assert journaled <= restored <= journaled + pending, (journaled, pending, restored)
    assert sum(len(d.buf) for d in devices) == restored, "nothing was acked (no gateway): all buffered"
