"""The high-water-mark store on its own: merge rules, torn lines, compaction, files of vanished workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.hwmstore import HwmStore, parse_lines


def store(tmp_path: Path, index: int = 0, workers: int = 1, compact_bytes: int = 1 << 20) -> HwmStore:
    return HwmStore(tmp_path, index, workers, fsync_interval_s=0.0, compact_bytes=compact_bytes)


def test_highest_mark_wins_and_bad_lines_are_skipped() -> None:
    marks: dict[bytes, int] = {b"sim-a": 5}
    text = b"9 sim-a\n3 sim-a\n7 sim b\nnot-a-number sim-c\n99999999999 sim-d\n\n12 sim-e"
    skipped = parse_lines(text, marks)
    # "7 sim b": ids may hold spaces; the torn last line (no newline) and the malformed ones are skipped
    assert marks == {b"sim-a": 9, b"sim b": 7}
    assert skipped == 3


def test_marks_survive_a_new_store_on_the_same_dir(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.load() == {}
    s.append([b"10 sim-a\n", b"20 sim-b\n"])
    s.append([b"15 sim-a\n"])
    # no close(): a killed process leaves only what it wrote, which is enough
    assert store(tmp_path).load() == {b"sim-a": 15, b"sim-b": 20}


def test_every_workers_files_are_read(tmp_path: Path) -> None:
    """After a restart SO_REUSEPORT may hash a device to another worker: each loads all marks."""
    w0, w1 = store(tmp_path, 0, 2), store(tmp_path, 1, 2)
    w0.load(), w1.load()
    w0.append([b"10 sim-a\n"])
    w1.append([b"30 sim-a\n", b"5 sim-b\n"])
    assert store(tmp_path, 0, 2).load() == {b"sim-a": 30, b"sim-b": 5}


def test_compaction_folds_the_log_into_a_snapshot(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = store(tmp_path, compact_bytes=4096)
        marks = s.load()
        for i in range(400):
            line = b"%d sim-%d\n" % (i, i % 50)
            marks[b"sim-%d" % (i % 50)] = i
            s.append([line])
        assert s.log_bytes >= 4096
        compaction = s.start_compaction(marks)
        assert (tmp_path / "w0.log.old").exists() and s.log_bytes == 0  # rotated at once, on the loop
        await compaction
        assert not (tmp_path / "w0.log.old").exists()  # dropped only once the snapshot is durable
        s.append([b"1000 sim-0\n"])  # after the rotation: goes to the new log
        await s.close(marks | {b"sim-0": 1000})

    asyncio.run(scenario())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w0.log", "w0.snap"]
    assert (tmp_path / "w0.log").stat().st_size == 0  # close() folded it in
    marks = store(tmp_path).load()
    assert len(marks) == 50
    assert marks[b"sim-0"] == 1000 and marks[b"sim-49"] == 399


def test_files_of_workers_that_no_longer_exist_are_folded_in_by_worker_0(tmp_path: Path) -> None:
    for index in range(3):
        s = store(tmp_path, index, 3)
        s.load()
        s.append([b"%d sim-%d\n" % (100 + index, index)])

    async def restart_with_two_workers() -> None:
        s = store(tmp_path, 0, 2)
        marks = s.load()
        await s.close(marks)

    asyncio.run(restart_with_two_workers())
    assert not list(tmp_path.glob("w2*"))
    assert store(tmp_path, 1, 2).load() == {b"sim-0": 100, b"sim-1": 101, b"sim-2": 102}
