"""What the harnesses read about processes from /proc, and the sampling thread they share.

The soak samples RSS and open fds of the gateway's process group; the limit search samples the group's
CPU share. Both need the group's pids and a thread that ticks until the block it guards ends.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType


def group_pids(pgid: int) -> list[int]:
    """Every live pid of process group ``pgid`` (the gateway's supervisor and its workers)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    pids.append(int(d))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(pids)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_and_fds(pid: int) -> tuple[float, int] | None:
    """(RSS MB, open fds) of one process, None once it is gone."""
    try:
        rss_kb = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None


class Ticker:
    """A daemon thread calling :meth:`tick` every ``every`` s while its ``with`` block runs.

    Threads, not the event loop: the runs being sampled own the loop, and a sample must not wait for them.
    """

    def __init__(self, every: float, name: str) -> None:
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)

    def tick(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
