"""Per-device high-water marks that survive a gateway restart (docs/gateway.md "Replay protection").

Without them a restarted gateway accepts any first datagram of a device, so a captured or retransmitted
datagram whose readings Kafka already holds is produced again. Each worker keeps the marks it commits in
``state.dir``:

- ``w<I>.log``: one line ``<hwm> <device_id>\\n`` per advance, appended with a single ``write()`` per
  completed Kafka batch, *before* that batch's ACKs leave. A process that dies (SIGKILL, crash, OOM)
  loses nothing written: the kernel already holds it. Only a host crash can lose what was not yet
  fsynced, at most ``state.fsync_interval_s`` of it (fsync runs off the event loop).
- ``w<I>.snap``: the worker's whole map, written when the log grew beyond ``state.compact_bytes`` (and
  at a clean stop): the log is first rotated to ``w<I>.log.old``, the map copied, then written to a
  temporary file, fsynced and renamed into place in a thread, and only then is ``w<I>.log.old`` removed.
  A crash at any point leaves files whose union is still right.

At start a worker reads every worker's files (SO_REUSEPORT may hash a device to another worker after a
restart, or the worker count changed) and keeps the highest mark per device: marks only ever rise, so
the maximum is the newest. Lines that are incomplete (no newline: a torn write) or malformed are skipped;
skipping one can only make the gateway produce a reading again, never ack one Kafka does not hold.

Device ids hold no control characters (docs/protocol.md), so a newline ends every line unambiguously.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from gateway.logs import log_event


def parse_lines(text: bytes, into: dict[bytes, int]) -> int:
    """Merge ``<hwm> <id>`` lines into ``into`` (highest wins); return how many lines were skipped."""
    skipped = 0
    lines = text.split(b"\n")
    if lines and lines[-1]:
        skipped += 1  # the last line has no newline: a torn write, never trusted
    for line in lines[:-1]:
        hwm_text, sep, raw_id = line.partition(b" ")
        if not sep or not raw_id or not hwm_text.isdigit() or len(raw_id) > 64 or b"\x00" in raw_id:
            if line:
                skipped += 1
            continue
        hwm = int(hwm_text)
        if hwm > 0xFFFFFFFF:
            skipped += 1
            continue
        if into.get(raw_id, -1) < hwm:
            into[raw_id] = hwm
    return skipped


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_snapshot(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class HwmStore:
    """One worker's persistent high-water marks: ``load()`` once, then ``append()`` per committed batch."""

    def __init__(
        self, directory: str | Path, index: int, workers: int, fsync_interval_s: float, compact_bytes: int
    ) -> None:
        self.dir = Path(directory)
        self.index = index
        self.workers = workers
        self.fsync_interval_s = fsync_interval_s
        self.compact_bytes = compact_bytes
        self.log_path = self.dir / f"w{index}.log"
        self.old_path = self.dir / f"w{index}.log.old"
        self.snap_path = self.dir / f"w{index}.snap"
        self._fd: int | None = None
        self.log_bytes = 0
        self._dirty = False  # appended since the last fdatasync
        self._compacting: asyncio.Task[None] | None = None

    def load(self) -> dict[bytes, int]:
        """Every worker's snapshot and logs merged (highest mark per device); opens this worker's log."""
        self.dir.mkdir(parents=True, exist_ok=True)
        marks: dict[bytes, int] = {}
        files = skipped = 0
        for path in sorted(self.dir.glob("w*")):
            if path.suffix == ".tmp" or not path.is_file():
                continue
            try:
                skipped += parse_lines(path.read_bytes(), marks)
                files += 1
            except OSError as exc:
                log_event("state_unreadable", logging.WARNING, path=str(path), error=exc.strerror)
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.log_bytes = os.fstat(self._fd).st_size
        log_event("state_loaded", dir=str(self.dir), devices=len(marks), files=files, skipped_lines=skipped)
        return marks

    def append(self, lines: list[bytes]) -> None:
        """Append ``lines`` (each ``b"<hwm> <id>\\n"``) with one write(); called before the ACKs leave.

        Raises OSError (disk full, state dir gone); the handler still acks, because the readings are in
        Kafka either way, and counts the failure: only the replay protection of those marks is lost.
        """
        if self._fd is None:
            raise OSError(f"{self.log_path}: not open (load() opens it)")
        data = b"".join(lines)
        _write_all(self._fd, data)
        self.log_bytes += len(data)
        self._dirty = True

    def _sync(self) -> None:
        if self._dirty and self._fd is not None:
            self._dirty = False
            os.fdatasync(self._fd)

    async def maintain(self, marks: dict[bytes, int], stop: asyncio.Event) -> None:
        """Until ``stop``: fdatasync the log every ``fsync_interval_s`` (in a thread, it may take
        milliseconds) and compact it when it outgrew ``compact_bytes``. One task does both, so the log's
        descriptor is never closed by a rotation while a thread syncs it."""
        interval = self.fsync_interval_s or 1.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
            try:
                if self.fsync_interval_s:
                    await asyncio.to_thread(self._sync)
                if self.log_bytes >= self.compact_bytes and self._compacting is None:
                    await self.start_compaction(marks)
            except OSError as exc:
                log_event("state_sync_failed", logging.ERROR, dir=str(self.dir), error=str(exc))

    def start_compaction(self, marks: dict[bytes, int]) -> asyncio.Task[None]:
        """Rotate the log now (on the loop, so no append is lost), write the snapshot in a thread."""
        if self._fd is not None:
            os.close(self._fd)
        os.replace(self.log_path, self.old_path)
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.log_bytes = 0
        copy = dict(marks)
        self._compacting = asyncio.get_running_loop().create_task(self._compact(copy))
        return self._compacting

    async def _compact(self, marks: dict[bytes, int]) -> None:
        try:
            data = b"".join(b"%d %b\n" % (hwm, raw_id) for raw_id, hwm in marks.items())
            await asyncio.to_thread(_write_snapshot, self.snap_path, data)
            self.old_path.unlink(missing_ok=True)
            if self.index == 0:  # files of workers that no longer exist are inside this snapshot now
                for path in self.dir.glob("w*"):
                    stem = path.name.split(".", 1)[0]
                    if stem[1:].isdigit() and int(stem[1:]) >= self.workers:
                        path.unlink(missing_ok=True)
            log_event("state_compacted", devices=len(marks), snapshot_bytes=len(data))
        except OSError as exc:
            log_event("state_compaction_failed", logging.ERROR, dir=str(self.dir), error=str(exc))
        finally:
            self._compacting = None

    async def close(self, marks: dict[bytes, int]) -> None:
        """At a clean stop: wait for a running compaction, then fold the log into a fresh snapshot."""
        if self._compacting is not None:
            await self._compacting
        if self._fd is None:
            return
        if self.log_bytes:
            await self.start_compaction(marks)
        await asyncio.to_thread(self._sync)
        os.close(self._fd)
        self._fd = None
