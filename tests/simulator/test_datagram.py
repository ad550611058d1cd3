"""Datagrams that fit: whatever flush.batch_size says, every datagram the fleet builds is within
flush.max_datagram_bytes and decodes with the IBP/1 codec; a scenario whose one reading cannot fit is
refused before it runs. No sockets, no broker: the fleet's sender is called directly."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibp import protocol as ibp
from simulator.devices import datagram
from simulator.devices.fleet import Fleet, device_ids
from simulator.orchestration.runner import new_run_id
from simulator.scenario import ScenarioError, parse, readings_per_datagram

KEY = secrets.token_bytes(32)


def _scenario(name: str, count: int, payload: int, batch: int, cap: int) -> str:
    return (
        f'name: "{name}"\ndevices: {{count: {count}}}\nreading: {{payload_bytes: {payload}}}\n'
        f"flush:\n  batch_size: {batch}\n  max_datagram_bytes: {cap}\n"
        "phases: [{name: n, kind: normal, duration_s: 1}]\n"
    )


def _sent(fleet: Fleet, dev_index: int, backlog: int) -> list[bytes]:
    """Buffer ``backlog`` readings on one device and send until it is empty, acking every datagram."""
    out: list[bytes] = []
    fleet._xmit = lambda dev, data: out.append(data)  # type: ignore[method-assign]
    dev = fleet.devices[dev_index]
    ts = int(time.time() * 1000)
    for i in range(backlog):
        dev.add(ts + i, fleet.capacity, True)
    fleet.buffered += backlog
    while dev.buf:
        dev.last_send = -1e9  # no rate-cap wait between the sends of this test
        fleet._send(dev, time.monotonic())
        fleet._on_ack(dev, dev.inflight_last, time.monotonic())
    return out


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=40),
    count=st.integers(1, 1_000_000),
    payload=st.integers(16, 1200),
    batch=st.integers(1, 255),
    cap=st.integers(64, 9000),
    backlog=st.integers(1, 400),
)
def test_every_datagram_fits_the_cap_and_decodes(
    name: str, count: int, payload: int, batch: int, cap: int, backlog: int
) -> None:
    text = _scenario(name, count, payload, batch, cap)
    id_len = len("sim-") + datagram.id_width(count)
    one = datagram.one_reading_bytes(id_len, payload, datagram.run_id_len(name))
    if one > cap:
        with pytest.raises(ScenarioError, match=r"key 'flush\.max_datagram_bytes'"):
            parse(text)
        return
    scn = parse(text)
    full = readings_per_datagram(scn)
    assert 1 <= full <= batch
    scn.devices.count = 1  # build one device (a second could have the id given to it below) ...
    fleet = Fleet(scn, "127.0.0.1", 9, new_run_id(name), KEY)
    dev = fleet.devices[0]
    dev.id = device_ids("sim-", count, count - 1, count)[0]  # ... with an id as long as the big fleet's
    dev.key = ibp.derive_device_key(KEY, dev.id)
    fleet.book = fleet.make_book()  # the book holds the ids and keys the fleet was built with
    assert fleet.full_batch() == full
    sent = _sent(fleet, 0, backlog)
    seq = dev.first_seq
    for data in sent:
        assert len(data) <= cap, f"{len(data)}-byte datagram over the {cap}-byte cap"
        batch_ = ibp.parse_data(data)
        assert batch_.verify(dev.key) and batch_.device_id == dev.id and batch_.first_seq == seq
        for reading in batch_.readings:
            ibp.check_payload(reading.payload)
            assert json.loads(reading.payload)["run"] == fleet.run_id
        seq += len(batch_.readings)
    assert seq == dev.first_seq + backlog, "every reading sent exactly once, in order"
    # as many per datagram as fit (the validator's count is the fleet's), the last one holds the rest
    assert [len(ibp.parse_data(d).readings) for d in sent[:-1]] == [full] * (len(sent) - 1)


@given(run_id_len=st.integers(1, 120), payload=st.integers(16, 1200), idx=st.integers(0, 10**6))
def test_payload_length_is_what_the_validator_assumes(run_id_len: int, payload: int, idx: int) -> None:
    pad = datagram.pad_for(payload, run_id_len)
    for seq in (0, 1, 12345, 2**32 - 1):
        got = datagram.payload("r" * run_id_len, pad, idx, seq)
        assert len(got) == datagram.payload_len(payload, run_id_len)


def test_run_ids_and_device_ids_have_the_lengths_the_validator_assumes() -> None:
    for name in ("x", "herd-10k", "herd-100k-multihost"):
        assert len(new_run_id(name)) == datagram.run_id_len(name)
    for count in (1, 999_999, 1_000_000):
        assert {len(i) for i in device_ids("sim-", count, 0, 1)[-1:]} == {4 + datagram.id_width(count)}


def test_shipped_herd_scenarios_make_datagrams_within_one_mtu() -> None:
    """The issue: herd-10k's 64-reading batches made 4.7+ KB datagrams, over the gateway's 4,096 bytes."""
    from pathlib import Path

    from simulator.scenario import load

    root = Path(__file__).resolve().parent.parent.parent / "scenarios"
    for name in ("herd-10k.yml", "herd-100k-multihost.yml", "thundering-herd.yml"):
        scn, _ = load(root / name)
        fleet = Fleet(scn, "127.0.0.1", 9, new_run_id(scn.name), KEY)
        sent = _sent(fleet, len(fleet.devices) - 1, 300)
        assert max(len(d) for d in sent) <= 1472, name
        assert len(ibp.parse_data(sent[0]).readings) == readings_per_datagram(scn), name
        if name.startswith("herd-"):  # their batch_size says what really goes into a datagram
            assert readings_per_datagram(scn) == scn.flush.batch_size, name


def test_a_scenario_whose_reading_cannot_fit_names_the_key_and_line() -> None:
    text = (
        "devices: {count: 10}\nreading: {payload_bytes: 1200}\nflush:\n  batch_size: 8\n"
        "  max_datagram_bytes: 1000\nphases: [{name: n, kind: normal, duration_s: 1}]\n"
    )
    with pytest.raises(ScenarioError) as err:
        parse(text, "s.yml")
    msg = str(err.value)
    assert msg.startswith("s.yml:5: key 'flush.max_datagram_bytes':"), msg
    assert "1000" in msg and "needs 1" in msg
    with pytest.raises(
        ScenarioError, match=r"s\.yml:3: key 'flush\.max_datagram_bytes': must be in 64\.\.65507"
    ):
        parse("phases: [{name: n, kind: normal, duration_s: 1}]\nflush:\n  max_datagram_bytes: 63\n", "s.yml")


def test_no_ack_limit_must_outlast_one_backoff() -> None:
    with pytest.raises(ScenarioError, match=r"s\.yml:1: key 'transport\.no_ack_fail_s': must be >= "):
        parse(
            "transport: {ack_timeout_ms: 2000, backoff_cap_ms: 10000, no_ack_fail_s: 5}\n"
            "phases: [{name: n, kind: normal, duration_s: 1}]\n",
            "s.yml",
        )
