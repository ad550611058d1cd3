"""The agent's on-disk state (``--state-dir``): the run, a journal of device state changes, snapshots.

A host that reboots mid-flush must not lose the readings its devices buffered, so with a state dir
every reading is on disk before it is first sent. Files in the directory:

    run.json                 the run: the /scenario load body, t0, offsets, start skew, state (JSON)
    results.json             the finished run's results (GET /results after a restart)
    snapshot.bin             the last compaction: every device's state + counters, markers, samples
    journal.NNNNNNNN.bin     the changes since: replayed in order over the snapshot (NNNNNNNN >= the
                             snapshot's ``journal_from``; older ones are deleted once it is renamed)

Journal records are ``<u32 length><u32 crc32><body>``; a body is one of

    b"G" <i64 ts_ms> <u32 n> <u32 device index> * n   n readings generated with device timestamp ts
    b"A" (<i64 device index> <i64 base_seq>) * k      acks: each device's buffer now starts at base_seq
    b"O" <u8 online>                                  the network went down (0) or came back (1)

A reading's sequence is implied (the device's next_seq), and overflow drops follow from replaying
generation and acks in order with the same buffer code (``Device.add``), so the journal holds 4 bytes
per reading. Readings are fsync'd once per tick before any of them is sent (``commit``); acks ride
along unsynced until the next commit that syncs (a lost ack only causes a retransmission, which the
gateway answers as a replay). A torn last record (power cut mid-write) fails its length or CRC check
and the replay stops there.

``snapshot`` compacts: it closes the current journal (later changes go to a new one), copies every
device's state on the event loop and, in a worker thread, packs it (``<8s magic><u32 meta length><u32 devices><u64 buffered><u64 drop ranges>``, the meta JSON,
then arrays: first_seq, next_seq, base_seq, outage_first, outage_end, dropped (i64 each), buffer
lengths (u32), buffered timestamps (i64), drop range counts (u32), drop ranges (i64 pairs), and a
trailing CRC32), and writes it atomically in a worker thread (temp file, fsync, rename, fsync the
directory). 100,000 devices x 60 buffered readings make a 54 MB snapshot (copied in ~0.1 s on the
loop, durable ~0.5 s later, restored in ~0.5 s on the 2-core test machine). Integers are stored in
the host's byte order (little-endian on every platform the agent runs on).
"""

from __future__ import annotations

import errno
import json
import os
import struct
import time
import zlib
from array import array
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

MAGIC = b"IBPSNAP1"
_SNAP_HEAD = struct.Struct("<8sIIQQ")
_REC_HEAD = struct.Struct("<II")
_GEN_HEAD = struct.Struct("<cqI")
_CRC = struct.Struct("<I")
RUN, RESULTS, SNAPSHOT = "run.json", "results.json", "snapshot.bin"


class PersistError(RuntimeError):
    """The state dir holds something that cannot be read back (not a torn journal tail: corruption)."""


class StateDirFull(RuntimeError):
    """The state dir's filesystem is full (ENOSPC, or EDQUOT over a quota): new readings cannot be journaled.

    Readings must be on disk before they are sent, so the run cannot go on: the agent fails it (the
    controller stops every agent and shows this message) instead of sending readings a reboot would lose.
    What was journaled before stays in the directory, which is not cleaned up after this error.
    """


_FULL = (errno.ENOSPC, errno.EDQUOT)


class DeviceState(Protocol):
    """What the store reads and writes of a device (simulator.devices.fleet.Device)."""

    first_seq: int
    next_seq: int
    base_seq: int
    outage_first: int
    outage_end: int
    dropped: int
    buf: deque[int]
    drops: list[list[int]]

    def add(self, ts: int, capacity: int, drop_oldest: bool) -> int: ...
    def ack_to(self, base_seq: int) -> int: ...
    def went_offline(self) -> None: ...
    def went_online(self) -> None: ...


def journal_name(gen: int) -> str:
    return f"journal.{gen:08d}.bin"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(path: Path, parts: Sequence[bytes | bytearray | memoryview | array]) -> None:
    """Write ``parts`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for part in parts:
            _write_all(fd, memoryview(part).cast("B"))
        os.fsync(fd)
    except OSError:
        tmp.unlink(missing_ok=True)  # a half-written temp file only takes space (the old file stands)
        raise
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Store:
    """One state directory: the run record, the journal being written, snapshots, restore."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._gen = max(self._journal_gens(), default=0) + 1  # never append to a file a crash left
        self._pending = bytearray()
        self._acks = array("q")
        self._unsynced_readings = False
        self._pending_readings = 0  # generated, not yet fsync'd
        self._full: str | None = None  # set once the disk was full: the journal takes nothing more
        self.durable_readings = 0  # generated and fsync'd in this process (for the disk-full message)
        self._pool: ThreadPoolExecutor | None = None
        self._job: Future | None = None

    # ------------------------------------------------------------------ run record (JSON)

    def read_json(self, name: str) -> Any:
        path = self.dir / name
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def write_json(self, name: str, obj: Any) -> None:
        write_atomic(self.dir / name, [json.dumps(obj).encode()])

    def reset(self) -> None:
        """Forget everything: a new run starts (POST /scenario)."""
        self.drop_fleet_state()
        for name in (RUN, RESULTS, RUN + ".tmp", RESULTS + ".tmp"):
            (self.dir / name).unlink(missing_ok=True)
        _fsync_dir(self.dir)

    def drop_fleet_state(self) -> None:
        """Delete snapshot and journals (the run finished; its results are kept)."""
        try:
            self._wait_writer()
        except StateDirFull:
            pass  # the snapshot that failed is being deleted with the rest
        self._close_journal()
        self._pending.clear()
        del self._acks[:]
        self._unsynced_readings = False
        self._pending_readings = self.durable_readings = 0
        self._full = None
        for gen in self._journal_gens():
            (self.dir / journal_name(gen)).unlink(missing_ok=True)
        for name in (SNAPSHOT, SNAPSHOT + ".tmp"):
            (self.dir / name).unlink(missing_ok=True)

    def close(self) -> None:
        try:
            self._wait_writer()
        except StateDirFull as exc:
            self._full = self._full or str(exc)
        if self._full is None:  # after a full disk the journal ends where it was torn
            self.commit(sync=True)
        self._close_journal()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ------------------------------------------------------------------ journal

    def generated(self, ts: int, idx: array) -> None:
        """Readings with device timestamp ``ts`` were generated by the devices ``idx`` (array 'I')."""
        self._flush_acks()
        body = _GEN_HEAD.pack(b"G", ts, len(idx)) + idx.tobytes()
        self._pending += _REC_HEAD.pack(len(body), zlib.crc32(body)) + body
        self._unsynced_readings = True
        self._pending_readings += len(idx)

    def acked(self, idx: int, base_seq: int) -> None:
        """Device ``idx`` deleted its readings below ``base_seq``."""
        self._acks.append(idx)
        self._acks.append(base_seq)

    def switched(self, online: bool) -> None:
        self._flush_acks()
        self._record(b"O" + bytes([1 if online else 0]))

    def commit(self, sync: bool | None = None) -> None:
        """Write what is pending; fsync when readings are among it (or ``sync``)."""
        self._flush_acks()
        if self._full is not None:
            raise StateDirFull(self._full)  # nothing more after a torn record: replay stops there
        try:
            if self._pending:
                if self._fd is None:
                    self._open_journal()
                assert self._fd is not None
                _write_all(self._fd, self._pending)
                self._pending.clear()
            if self._fd is not None and (sync or (sync is None and self._unsynced_readings)):
                os.fdatasync(self._fd)
                self._unsynced_readings = False
                self.durable_readings += self._pending_readings
                self._pending_readings = 0
        except OSError as exc:
            if exc.errno not in _FULL:
                raise
            # A record may be torn at the journal's end: replay stops before it (length/CRC check).
            self._full = (
                f"state dir {self.dir} is full ({exc.strerror}): {self._pending_readings:,} new readings "
                f"could not be journaled, so none of them is sent and the run stops; the "
                f"{self.durable_readings:,} readings journaled before are kept in {self.dir} "
                "(the agent does not clean it up after this error; free space before the next run)"
            )
            raise StateDirFull(self._full) from exc

    def _record(self, body: bytes) -> None:
        self._pending += _REC_HEAD.pack(len(body), zlib.crc32(body)) + body

    def _flush_acks(self) -> None:
        if self._acks:
            self._record(b"A" + self._acks.tobytes())
            del self._acks[:]

    def _open_journal(self) -> None:
        path = self.dir / journal_name(self._gen)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.dir)  # the new file's name is durable before anything in it counts

    def _close_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _journal_gens(self) -> list[int]:
        gens = []
        for p in self.dir.glob("journal.*.bin"):
            try:
                gens.append(int(p.name.split(".")[1]))
            except ValueError:
                continue
        return sorted(gens)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, devices: Sequence[DeviceState], meta: dict[str, Any], wait: bool = False) -> None:
        """Compact: encode every device now, write it in the background; ``wait`` for it to be durable."""
        self.commit(sync=True)
        self._close_journal()
        self._gen += 1  # changes from now on go to a new journal, replayed over this snapshot
        meta = {**meta, "journal_from": self._gen, "written": time.time()}
        state = capture_state(devices, meta)
        self._wait_writer()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        self._job = self._pool.submit(self._write_snapshot, state, self._gen)
        if wait:
            self._wait_writer()

    def _write_snapshot(self, state: tuple, journal_from: int) -> None:
        write_atomic(self.dir / SNAPSHOT, pack_snapshot(state))
        for gen in self._journal_gens():
            if gen < journal_from:
                (self.dir / journal_name(gen)).unlink(missing_ok=True)

    def _wait_writer(self) -> None:
        if self._job is not None:
            job, self._job = self._job, None
            try:
                job.result()
            except OSError as exc:
                if exc.errno not in _FULL:
                    raise
                # The old snapshot and every journal since are still there (journals go only after the
                # new snapshot is renamed into place), so nothing journaled is lost.
                raise StateDirFull(
                    f"state dir {self.dir} is full ({exc.strerror}) while writing a snapshot: the run stops; "
                    f"the previous snapshot and the journals since are kept in {self.dir}"
                ) from exc

    def has_snapshot(self) -> bool:
        return (self.dir / SNAPSHOT).exists()

    def restore(
        self, devices: Sequence[DeviceState], capacity: int, drop_oldest: bool
    ) -> dict[str, Any] | None:
        """Load the snapshot into ``devices`` and replay the journals after it; None without a snapshot.

        The returned meta is the snapshot's, with ``online`` as of the last journal record and
        ``last_alive`` (unix s, the newest snapshot or reading time on disk), ``replayed_records``,
        ``torn_tail`` (a damaged last record was ignored) added.
        """
        self._wait_writer()
        self._close_journal()
        path = self.dir / SNAPSHOT
        if not path.exists():
            return None
        meta = decode_snapshot(path.read_bytes(), devices)
        online = bool(meta["online"])
        last_alive = float(meta["written"])
        replayed = 0
        torn = False
        gens = [g for g in self._journal_gens() if g >= meta["journal_from"]]
        for gen in gens:
            data = (self.dir / journal_name(gen)).read_bytes()
            for body in _records(data):
                if body is None:
                    torn = True
                    break
                replayed += 1
                kind = body[:1]
                if kind == b"G":
                    _, ts, n = _GEN_HEAD.unpack_from(body)
                    idx = array("I")
                    idx.frombytes(body[_GEN_HEAD.size : _GEN_HEAD.size + 4 * n])
                    for i in idx:
                        devices[i].add(ts, capacity, drop_oldest)
                    last_alive = max(last_alive, ts / 1000)
                elif kind == b"A":
                    pairs = array("q")
                    pairs.frombytes(body[1:])
                    for k in range(0, len(pairs), 2):
                        devices[pairs[k]].ack_to(pairs[k + 1])
                elif kind == b"O":
                    online = body[1] == 1
                    for d in devices:
                        if online:
                            d.went_online()
                        else:
                            d.went_offline()
                else:
                    raise PersistError(f"{journal_name(gen)}: unknown record type {kind!r}")
            if torn:
                break  # nothing after a damaged record can be applied
        self._gen = max([self._gen, meta["journal_from"], *gens]) + 1
        return {
            **meta,
            "online": online,
            "last_alive": last_alive,
            "replayed_records": replayed,
            "torn_tail": torn,
        }


def _records(data: bytes):
    """The record bodies of one journal file, then None if it ends in a torn or damaged record."""
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < _REC_HEAD.size:
            yield None
            return
        length, crc = _REC_HEAD.unpack_from(data, pos)
        body = data[pos + _REC_HEAD.size : pos + _REC_HEAD.size + length]
        if len(body) < length or length == 0 or zlib.crc32(body) != crc:
            yield None
            return
        yield body
        pos += _REC_HEAD.size + length


_COLUMNS = ("first_seq", "next_seq", "base_seq", "outage_first", "outage_end", "dropped")


def capture_state(devices: Sequence[DeviceState], meta: dict[str, Any]) -> tuple:
    """A consistent copy of every device's state, taken on the event loop (cheap: no packing)."""
    meta_b = json.dumps(meta).encode()
    cols = [array("q", [getattr(d, c) for d in devices]) for c in _COLUMNS]
    buf_len = array("I", [len(d.buf) for d in devices])
    buf: list[int] = []
    extend = buf.extend
    for d in devices:
        extend(d.buf)
    drop_len = array("I", [len(d.drops) for d in devices])
    drops = [x for d in devices for r in d.drops for x in r]  # copied: the last range still grows
    return meta_b, cols, buf_len, buf, drop_len, drops


def pack_snapshot(state: tuple) -> list:
    """The snapshot file's parts (header, meta JSON, arrays, CRC) from ``capture_state`` (any thread)."""
    meta_b, cols, buf_len, buf, drop_len, drops = state
    head = _SNAP_HEAD.pack(MAGIC, len(meta_b), len(buf_len), len(buf), len(drops) // 2)
    parts: list = [head, meta_b, *cols, buf_len, array("q", buf), drop_len, array("q", drops)]
    crc = 0
    for p in parts:
        crc = zlib.crc32(memoryview(p).cast("B"), crc)
    parts.append(_CRC.pack(crc))
    return parts


def decode_snapshot(data: bytes, devices: Sequence[DeviceState]) -> dict[str, Any]:
    """Put a snapshot's device state into ``devices``; returns its meta."""
    if (
        len(data) < _SNAP_HEAD.size + _CRC.size
        or zlib.crc32(data[: -_CRC.size]) != _CRC.unpack(data[-_CRC.size :])[0]
    ):
        raise PersistError("snapshot.bin: bad CRC or truncated")
    magic, meta_len, n, n_buf, n_drops = _SNAP_HEAD.unpack_from(data)
    if magic != MAGIC:
        raise PersistError(f"snapshot.bin: not a snapshot (magic {magic!r})")
    if n != len(devices):
        raise PersistError(f"snapshot.bin holds {n} devices, the fleet has {len(devices)}")
    pos = _SNAP_HEAD.size
    meta = json.loads(data[pos : pos + meta_len])
    pos += meta_len

    def take(code: str, count: int) -> array:
        nonlocal pos
        arr = array(code)
        size = arr.itemsize * count
        arr.frombytes(data[pos : pos + size])
        pos += size
        return arr

    cols = [take("q", n) for _ in _COLUMNS]
    buf_len = take("I", n)
    buf = take("q", n_buf)
    drop_len = take("I", n)
    drops = take("q", 2 * n_drops)
    b = r = 0
    for i, d in enumerate(devices):
        for c, col in zip(_COLUMNS, cols, strict=True):
            setattr(d, c, col[i])
        k = buf_len[i]
        d.buf = deque(buf[b : b + k])
        b += k
        k = drop_len[i]
        d.drops = [[drops[j], drops[j + 1]] for j in range(r, r + 2 * k, 2)]
        r += 2 * k
    return meta
