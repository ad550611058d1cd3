"""What a worker does with each datagram: dispatch, authenticate, deduplicate, produce, answer.

Synchronous on purpose: ``datagram_received`` runs to completion without awaiting; Kafka completions come
back through :meth:`DatagramHandler._job_done`, and the ACKs of one Kafka batch leave together in
:meth:`DatagramHandler.settle`, after the marks they name are written to the state dir (one write per batch).
All decisions follow docs/protocol.md "Gateway rules".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from gateway import hotpath
from gateway.devices import Addr, DeviceState
from gateway.hwmstore import HwmStore
from gateway.kafka_out import Job, KafkaOut
from gateway.logs import log_event
from gateway.metrics import WorkerMetrics
from gateway.registry import KeyRegistry
from ibp import protocol
from ibp.protocol import ProtocolError

SendFn = Callable[[bytes, Addr], None]
"""How the handler answers a device: the worker's ``transport.sendto`` (tests pass a list's append)."""


@dataclass(slots=True, eq=False)
class _Pending:
    device: DeviceState
    ranges: list[tuple[int, int]]


class DatagramHandler:
    def __init__(
        self,
        *,
        registry: KeyRegistry,
        kafka: KafkaOut,
        metrics: WorkerMetrics,
        send: SendFn,
        max_datagram_bytes: int,
        max_inflight: int,
        busy_retry_after_ms: int,
        auth_fail_per_s: float,
        regression_window: int,
        legacy_binary: bool,
        legacy_json: bool,
        store: HwmStore | None = None,
        marks: dict[bytes, int] | None = None,
    ) -> None:
        self.registry = registry
        self.registry_gen = 0  # bumped by reload_registry; a device of an older generation is re-checked
        self.kafka = kafka
        self.m = metrics
        self.send = send
        self.max_datagram_bytes = max_datagram_bytes
        self.max_inflight = max_inflight
        self.busy_retry_after_ms = busy_retry_after_ms
        self.auth_fail_interval = 1.0 / auth_fail_per_s if auth_fail_per_s > 0 else None
        self.regression_window = regression_window
        self.legacy_binary = legacy_binary
        self.legacy_json = legacy_json
        self.devices: dict[bytes, DeviceState] = {}  # by raw device id
        # every device's committed hwm, also of devices forgotten (registry removal) or served by another
        # worker before a restart: a device (re)appearing starts from it, not from "accept anything"
        self.hwms: dict[bytes, int] = marks if marks is not None else {}
        self.store = store
        self._acks_due: list[tuple[DeviceState, float]] = []
        self._lines_due: list[bytes] = []
        self.inflight = 0
        self.accepting = True
        self._auth_fail_next: dict[object, float] = {}

    # ------------------------------------------------------------ entry point

    def handle(self, data: bytes, addr: Addr) -> None:
        if not self.accepting:
            return
        if len(data) > self.max_datagram_bytes:
            self._invalid("oversized")
            return
        head = data[:2]
        try:
            if head == protocol.MAGIC:
                self._handle_ibp(data, addr)
            elif head == protocol.LEGACY_MAGIC:
                if not self.legacy_binary:
                    self._invalid("legacy_disabled")
                    return
                self._handle_legacy(data)
            elif data.lstrip()[:1] == b"{":
                if not self.legacy_json:
                    self._invalid("legacy_disabled")
                    return
                self._handle_legacy(data)
            else:
                self._invalid("bad_magic")
        except ProtocolError as exc:
            self._invalid(exc.reason)
        except Exception as exc:  # a bug must not kill the worker: count it, log it, go on
            self._invalid("invalid")
            log_event("handler_error", logging.ERROR, error=type(exc).__name__, detail=str(exc)[:200])

    def _invalid(self, reason: str) -> None:
        self.m.invalid[reason].inc()
        self.m.datagrams["invalid"].inc()

    # ------------------------------------------------------------ IBP/1

    def _handle_ibp(self, data: bytes, addr: Addr) -> None:
        received_at = time.monotonic()
        raw_id, first, readings, tag_at = hotpath.parse_data_raw(data)
        device = self.devices.get(raw_id)
        if device is None or device.registry_gen != self.registry_gen:
            device = self._authenticate(raw_id, device, data, tag_at)
            if device is None:
                self._auth_failed(addr)
                return
        elif not hotpath.verify(device.key, data, tag_at):
            self._auth_failed(addr)
            return
        m = self.m
        device.addr = addr
        device.last_seen = received_at
        n = len(readings)
        last = first + n - 1
        m.received.inc(n)
        m.batch_readings.observe(n)
        hwm = device.hwm
        if hwm is not None and last + self.regression_window < hwm:
            self._invalid("seq_regression")
            return
        ranges = device.new_ranges(first, last)
        if not ranges:  # a retransmission: nothing new to produce
            m.duplicates.inc(n)
            m.datagrams["duplicate"].inc()
            if hwm is not None and last <= hwm:
                self._ack(device, received_at)
            return  # otherwise the readings are in flight: their ACK follows the commit
        if not hotpath.payloads_ok(readings):
            raise ProtocolError("malformed_json")
        fresh = sum(hi - lo + 1 for lo, hi in ranges)
        if fresh < n:
            m.duplicates.inc(n - fresh)
        if self.inflight + fresh > self.max_inflight:
            m.datagrams["busy"].inc()
            m.busy_sent.inc()
            self.send(hotpath.encode_busy(raw_id, device.key, self.busy_retry_after_ms), addr)
            return
        if hwm is not None and ranges[0][0] > hwm + 1 and not device.inflight:
            m.gaps.inc()
        m.datagrams["ok"].inc()
        now_ms = int(time.time() * 1000)
        records = hotpath.build_records(
            readings, device.id_json, first, now_ms, None if fresh == n else ranges
        )
        device.start(ranges)
        self._submit(raw_id, records, received_at, _Pending(device, ranges))

    def _authenticate(
        self, raw_id: bytes, device: DeviceState | None, data: bytes, tag_at: int
    ) -> DeviceState | None:
        """Look the device up in the (possibly reloaded) registry and verify the datagram's tag.

        A device the registry no longer knows is forgotten (its readings already in flight still get
        their ACK: the pending job holds the old state and key); a changed key replaces the old one.
        A new device starts from the hwm it had before a restart or a removal, if any.
        """
        device_id = device.device_id if device is not None else hotpath.check_device_id(raw_id)
        key = self.registry.key_for(device_id)
        if key is None:
            if device is not None:
                del self.devices[raw_id]
            return None
        if not hotpath.verify(key, data, tag_at):
            return None
        if device is None:
            device = DeviceState(
                device_id, raw_id, key, id_json=json.dumps(device_id).encode(), hwm=self.hwms.get(raw_id)
            )
            self.devices[raw_id] = device
        device.key = key
        device.registry_gen = self.registry_gen
        return device

    def reload_registry(self, registry: KeyRegistry) -> None:
        """Use ``registry`` from the next datagram on; known devices are re-checked lazily (no stall)."""
        self.registry = registry
        self.registry_gen += 1

    def _auth_failed(self, addr: Addr) -> None:
        m = self.m
        m.datagrams["auth_failed"].inc()
        if self.auth_fail_interval is None:
            m.auth_fail_suppressed.inc()
            return
        now = time.monotonic()
        source = addr[0]
        if self._auth_fail_next.get(source, 0.0) > now:
            m.auth_fail_suppressed.inc()
            return
        if len(self._auth_fail_next) > 100_000:
            self._auth_fail_next.clear()
        self._auth_fail_next[source] = now + self.auth_fail_interval
        m.auth_fail_sent.inc()
        self.send(protocol.AUTH_FAIL_DATAGRAM, addr)

    def _ack(self, device: DeviceState, received_at: float) -> None:
        if device.addr is None or device.hwm is None:
            return
        self.send(hotpath.encode_ack(device.raw_id, device.key, device.hwm), device.addr)
        self.m.acks_sent.inc()
        self.m.ack_latency.observe((time.monotonic() - received_at) * 1000.0)

    # ------------------------------------------------------------ legacy

    def _handle_legacy(self, data: bytes) -> None:
        received_at = time.monotonic()
        now_ms = int(time.time() * 1000)
        if data[:2] == protocol.LEGACY_MAGIC:
            key, value = hotpath.legacy_binary_record(data, now_ms)
        else:
            key, value = hotpath.legacy_record(data, now_ms)
        m = self.m
        m.received.inc()
        if self.inflight + 1 > self.max_inflight:
            m.datagrams["busy"].inc()  # legacy devices get no answer; counted, not produced
            return
        m.datagrams["legacy"].inc()
        self._submit(key, [(value, now_ms)], received_at, None)

    # ------------------------------------------------------------ Kafka

    def _submit(
        self, key: bytes, records: Sequence[tuple[bytes, int]], received_at: float, pending: _Pending | None
    ) -> None:
        n = len(records)
        self.inflight += n
        self.m.inflight.inc(n)
        job = Job(n, received_at, self._job_done, pending)
        self.kafka.submit(job, key, records)

    def _job_done(self, job: Job, ok: bool) -> None:
        self.inflight -= job.count
        m = self.m
        m.inflight.dec(job.count)
        pending = cast("_Pending | None", job.context)  # set by _submit: a _Pending or None
        if ok:
            m.produced.inc(job.count)
            if pending is not None:
                device = pending.device
                before = device.hwm
                device.commit(pending.ranges)
                hwm = device.hwm
                if hwm is not None and hwm != before:
                    self.hwms[device.raw_id] = hwm
                    if self.store is not None:
                        self._lines_due.append(b"%d %b\n" % (hwm, device.raw_id))
                self._acks_due.append((device, job.received_at))
        else:
            m.produce_errors.inc(job.count)
            if pending is not None:
                pending.device.release(pending.ranges)

    def settle(self) -> None:
        """After a Kafka batch's jobs are done: persist the marks that advanced, then send their ACKs.

        The write comes first so that a gateway killed right after an ACK left still knows the mark after
        its restart. A failed write still acks (the readings are in Kafka); it only loses the replay
        protection of those marks, counted and logged.
        """
        if self._lines_due and self.store is not None:  # lines are only queued when there is a store
            lines, self._lines_due = self._lines_due, []
            try:
                self.store.append(lines)
            except OSError as exc:
                failures = self.m.state_write_errors
                failures.inc()
                if failures.value == 1 or failures.value % 1000 == 0:  # not one line per batch
                    log_event(
                        "state_write_failed",
                        logging.ERROR,
                        dir=str(self.store.dir),
                        error=str(exc),
                        failures=failures.value,
                    )
        if self._acks_due:
            acks, self._acks_due = self._acks_due, []
            for device, received_at in acks:
                self._ack(device, received_at)

    # ------------------------------------------------------------ housekeeping

    def active_devices(self, window_s: float) -> int:
        cutoff = time.monotonic() - window_s
        return sum(1 for d in self.devices.values() if d.last_seen >= cutoff)
