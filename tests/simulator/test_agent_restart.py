"""An agent host rebooted (or the agent SIGKILLed) mid-flush loses nothing.

Unit tests of the on-disk store (simulator/devices/persist.py) on real files: journal + snapshot restore the
same device state, a torn last record is ignored, compaction keeps state. End to end: a real broker, a
real gateway and an agent process with --state-dir, SIGKILLed during the flush and started again on the
same state dir; the audit finds nothing missing.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.devices import persist
from simulator.devices.fleet import Device
from simulator.orchestration import web
from simulator.orchestration.runner import new_run_id
from simulator.orchestration.session import audit_bundle
from simulator.report import bundle
from simulator.scenario import parse

FIRST = 1_000_000

# ------------------------------------------------------------------ the store, on real files

# one operation on a small fleet: (kind, device, amount)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["gen", "gen", "gen", "ack", "offline", "online", "commit", "snapshot"]),
        st.integers(0, 4),
        st.integers(0, 5),
    ),
    max_size=60,
)


def _devices(n: int = 5) -> list[Device]:
    return [Device(i, f"sim-{i:06d}", b"", FIRST, 0) for i in range(n)]


def _state(devices: list[Device]) -> list[tuple]:
    return [
        (
            d.first_seq,
            d.next_seq,
            d.base_seq,
            d.outage_first,
            d.outage_end,
            d.dropped,
            list(d.buf),
            [list(r) for r in d.drops],
        )
        for d in devices
    ]


class Model:
    """A fleet's state changes the way Fleet makes them, journaled into a real store."""

    def __init__(self, directory: Path, capacity: int, drop_oldest: bool) -> None:
        self.store = persist.Store(directory)
        self.devices = _devices()
        self.capacity, self.drop_oldest = capacity, drop_oldest
        self.online = True
        self.ts = 1_750_000_000_000

    def apply(self, kind: str, i: int, k: int) -> None:
        dev = self.devices[i]
        if kind == "gen":  # k+1 readings of every device in {i, i+1} (one slot of a tick)
            for _ in range(k + 1):
                self.ts += 1000
                idx = array("I", sorted({i, (i + 1) % len(self.devices)}))
                self.store.generated(self.ts, idx)
                for j in idx:
                    self.devices[j].add(self.ts, self.capacity, self.drop_oldest)
        elif kind == "ack":  # the gateway acked up to k readings
            if dev.ack_to(dev.base_seq + k):
                self.store.acked(i, dev.base_seq)
        elif kind in ("offline", "online"):
            online = kind == "online"
            if online != self.online:
                self.online = online
                self.store.switched(online)
                for d in self.devices:
                    d.went_online() if online else d.went_offline()
        elif kind == "commit":
            self.store.commit()
        else:
            self.store.snapshot(self.devices, self.meta(), wait=bool(k % 2))

    def meta(self) -> dict:
        return {"online": self.online, "run": {"markers": [{"event": "run_start"}]}}

    def restored(self) -> tuple[list[Device], dict | None]:
        devices = _devices()
        meta = persist.Store(self.store.dir).restore(devices, self.capacity, self.drop_oldest)
        return devices, meta


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, capacity=st.integers(1, 6), drop_oldest=st.booleans())
def test_journal_and_snapshot_restore_the_same_device_state(ops, capacity: int, drop_oldest: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        m = Model(Path(d), capacity, drop_oldest)
        m.store.snapshot(m.devices, m.meta(), wait=True)  # the run's first snapshot, as run_phases takes it
        for op in ops:
            m.apply(*op)
        m.store.close()  # everything committed and synced
        devices, meta = m.restored()
        assert meta is not None and not meta["torn_tail"]
        assert _state(devices) == _state(m.devices)
        assert meta["online"] == m.online
        assert meta["run"] == {"markers": [{"event": "run_start"}]}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, cut=st.integers(1, 40), flip=st.booleans())
def test_a_torn_last_record_is_ignored(ops, cut: int, flip: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        m = Model(Path(d), 4, True)
        m.store.snapshot(m.devices, m.meta(), wait=True)
        for op in ops:
            m.apply(*op)
        m.store.commit(sync=True)
        before = _state(m.devices)
        m.apply("gen", 1, 0)  # one more record, then the power goes mid-write
        m.store.commit(sync=True)
        m.store.close()
        journal = max(Path(d).glob("journal.*.bin"))
        data = journal.read_bytes()
        record = persist._REC_HEAD.size + persist._GEN_HEAD.size + 4 * 2  # 2 devices generated
        if flip:  # a damaged byte in the last record: its CRC fails
            pos = len(data) - 1 - cut % record
            data = data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]
        else:  # the last record only partly written
            data = data[: len(data) - (cut % (record - 1) + 1)]
        journal.write_bytes(data)
        devices, meta = m.restored()
        assert meta is not None and meta["torn_tail"]
        assert _state(devices) == before


def test_compaction_keeps_state_and_deletes_old_journals(tmp_path: Path) -> None:
    m = Model(tmp_path, 10, True)
    m.store.snapshot(m.devices, m.meta(), wait=True)
    for i in range(5):
        m.apply("gen", i, 3)
        m.apply("ack", i, 2)
    m.store.commit()
    assert len(list(tmp_path.glob("journal.*.bin"))) == 1
    m.store.snapshot(m.devices, m.meta(), wait=True)
    assert list(tmp_path.glob("journal.*.bin")) == [], "the snapshot covers the old journal: deleted"
    m.apply("offline", 0, 0)
    m.apply("gen", 2, 1)
    m.store.close()
    devices, meta = m.restored()
    assert meta is not None and meta["replayed_records"] == 3  # offline + 2 ticks
    assert _state(devices) == _state(m.devices)
    assert sum(len(d.buf) for d in devices) == 5 * 2 * 4 - 5 * 2 + 2 * 2
    # a second store on the same directory continues in a new journal, never in one a crash left
    store = persist.Store(tmp_path)
    store.generated(1, array("I", [0]))
    store.commit()
    assert len(list(tmp_path.glob("journal.*.bin"))) == 2
    store.close()


def test_a_snapshot_of_100k_devices_with_60_readings_each_is_feasible(tmp_path: Path) -> None:
    devices = _devices(100_000)
    for i, d in enumerate(devices):
        d.next_seq = FIRST + 60
        d.buf.extend(range(1_750_000_000_000 + i, 1_750_000_000_000 + i + 60))
    store = persist.Store(tmp_path)
    start = time.monotonic()
    store.snapshot(devices, {"online": True, "run": {}}, wait=True)
    took = time.monotonic() - start
    size = (tmp_path / persist.SNAPSHOT).stat().st_size
    assert size < 60_000_000, size
    fresh = _devices(100_000)
    meta = persist.Store(tmp_path).restore(fresh, 100, True)
    assert meta is not None
    assert fresh[99_999].buf == devices[99_999].buf and fresh[0].next_seq == FIRST + 60
    assert took < 20, f"snapshot of 6,000,000 buffered readings took {took:.1f} s"


# ------------------------------------------------------------------ end to end

# 300 devices; the 6 s outage buffers 1,800 readings. The flush is slow on purpose (one reading per
# datagram, 2 datagrams/s per device: the backlog shrinks by 1/s) so the agent dies in the middle of it.
SCENARIO = """\
name: agent-restart
devices: {count: 300}
transport: {sockets: 8, ack_timeout_ms: 500, backoff_base_ms: 100, backoff_cap_ms: 1000}
flush: {batch_size: 1, max_datagrams_per_s: 2, jitter_ms: 200}
phases:
  - {name: normal, kind: normal, duration_s: 2}
  - {name: outage, kind: outage, duration_s: 6}
  - {name: recovery, kind: recovery, until: drained, max_s: 40, after_drained_s: 2}
slos: {min_peak_rate: 1, recovery_within_s: 60}
final_drain_s: 30
"""


async def _status(address: str, token: str) -> dict:
    return await web.request(address, "GET", "/status", token, wait_s=5)


@pytest.mark.broker
def test_agent_killed_mid_flush_resumes_from_disk_and_loses_nothing(
    kafka_broker, fresh_topic, gateway_factory, agent_factory, tmp_path: Path
) -> None:
    master = secrets.token_bytes(32)
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, master_key=master)
    (agent,) = agent_factory.start(1, master, state_dir=tmp_path / "agent-state")
    token = agent_factory.token
    scn = parse(SCENARIO)
    run_id = new_run_id("agent-restart")

    async def go() -> tuple[dict, dict]:
        load = {
            "scenario": SCENARIO,
            "run_id": run_id,
            "agent_index": 0,
            "agent_count": 1,
            "gateway": f"127.0.0.1:{gw.udp_port}",
        }
        await web.request(agent.address, "POST", "/scenario", token, load)
        await web.request(agent.address, "POST", "/arm", token, {"t0": round(time.time() + 1.0, 3)})
        deadline = time.monotonic() + 30
        while (await _status(agent.address, token)).get("phase") != "recovery":
            assert time.monotonic() < deadline, "the run never reached its recovery phase"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # a second and a half into the flush
        before = await _status(agent.address, token)
        agent_factory.kill(agent)
        again = await asyncio.to_thread(agent_factory.restart, agent)
        assert again.address == agent.address
        deadline = time.monotonic() + 90
        while (status := await _status(again.address, token))["state"] not in ("done", "aborted", "error"):
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.5)
        assert status["state"] == "done", status
        return before, await web.request(again.address, "GET", "/results", token)

    before, res = asyncio.run(go())
    assert before["state"] == "running" and before["buffered"] > 300, (
        f"the agent must die mid-flush: {before}"
    )
    (restart,) = [m for m in res["markers"] if m["event"] == "agent_restart"]
    assert restart["restored_buffered"] > 0 and 0 <= restart["down_s"] < 30, restart
    assert res["counters"]["agent_restarts"] == 1 and res["buffered_at_end"] == 0
    events = [m["event"] for m in res["markers"]]
    for e in ("run_start", "outage_start", "flush_start", "agent_restart", "drained", "run_end"):
        assert e in events, events

    out = tmp_path / run_id
    bundle.write_inputs(out, SCENARIO, {"run_id": run_id}, [res])
    audit = asyncio.run(audit_bundle(out, kafka_broker.bootstrap, fresh_topic, scn))
    assert audit["missing"] == 0, audit["missing_examples"]
    assert audit["delivered"] == audit["expected"] == res["counters"]["generated"]
    assert audit["buffered_delivered"] == audit["buffered_expected"] == 300 * 6
    assert audit["unexpected"] == 0 and audit["agent_restarts"][0]["event"] == "agent_restart"


def test_agent_state_dir_rearms_resumes_after_sigterm_and_keeps_results(
    agent_factory, tmp_path: Path
) -> None:
    """No gateway needed (nothing answers: readings stay buffered): the agent's life cycle on disk."""
    state = tmp_path / "agent-state"
    (agent,) = agent_factory.start(1, secrets.token_bytes(32), state_dir=state)
    token = agent_factory.token
    text = "devices: {count: 20}\nphases: [{name: n, kind: normal, duration_s: 3}]\nfinal_drain_s: 0\n"
    load = {"scenario": text, "run_id": "r1", "agent_index": 0, "agent_count": 1, "gateway": "127.0.0.1:9"}

    async def call(a, method: str, path: str, body: dict | None = None):
        return await web.request(a.address, method, path, token, body, wait_s=10)

    async def go() -> None:
        nonlocal agent
        await call(agent, "POST", "/scenario", load)
        t0 = round(time.time() + 120, 3)
        await call(agent, "POST", "/arm", {"t0": t0})
        agent_factory.kill(agent)
        agent = await asyncio.to_thread(agent_factory.restart, agent)
        status = await call(agent, "GET", "/status")
        assert status["state"] == "armed" and status["t0"] == t0, "armed, T0 ahead: armed again"
        await call(agent, "POST", "/abort")
        # a new load starts afresh; this run is stopped by SIGTERM mid-phase: suspended, not aborted
        await call(agent, "POST", "/scenario", {**load, "run_id": "r2"})
        await call(agent, "POST", "/arm", {"t0": round(time.time() + 0.5, 3)})
        await asyncio.sleep(1.5)
        agent.process.terminate()
        await asyncio.to_thread(agent.process.wait, 20)
        agent = await asyncio.to_thread(agent_factory.restart, agent)
        status = await call(agent, "GET", "/status")
        assert status["state"] == "running" and status["run_id"] == "r2", status
        for _ in range(100):
            if (await call(agent, "GET", "/status"))["state"] == "done":
                break
            await asyncio.sleep(0.2)
        res = await call(agent, "GET", "/results")
        assert res["run_id"] == "r2" and res["counters"]["agent_restarts"] == 1
        assert res["buffered_at_end"] == res["counters"]["generated"] > 0, "nothing answered"
        # a finished run survives a restart: its results are served again
        agent_factory.kill(agent)
        agent = await asyncio.to_thread(agent_factory.restart, agent)
        assert (await call(agent, "GET", "/status"))["state"] == "done"
        assert (await call(agent, "GET", "/results")) == res
        await call(agent, "POST", "/scenario", {**load, "run_id": "r3"})
        assert sorted(p.name for p in state.iterdir()) == ["run.json"]

    asyncio.run(go())
