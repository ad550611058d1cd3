"""One short real soak: broker + gateway + three outage cycles, then SIGTERM; the report is still written.

Kept to about 1.5 minutes (CI's ``make test`` budget): 50 devices, 25 s cycles with a 6 s outage. The
soak is given a long duration and stopped by SIGTERM after its third cycle, so the same run proves the
cycles, the per-cycle audits, the fd check, the interrupt path and that the stack it started is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_real_soak_three_cycles_then_sigterm(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "simulator", "soak", "--duration-s", "600", "--cycle-s", "25"]
    cmd += ["--outage-s", "6", "--devices", "50", "--sample-s", "1", "--reports", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 150
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("soak: cycle 3 "):
                proc.send_signal(signal.SIGTERM)
                break
            assert time.monotonic() < deadline, "".join(lines)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    assert "interrupted" in out and "soak: report " in out, out
    (report,) = tmp_path.glob("soak-*")
    doc = json.loads((report / "soak.json").read_text())
    assert doc["interrupted"] is True
    assert len(doc["cycles"]) == 3, out
    for c in doc["cycles"]:
        assert c["missing"] == 0 and c["delivered"] > 0 and c["buffered_expected"] == 50 * 6, c
        assert Path(c["bundle"], "audit.json").exists()
    v = doc["verdict"]
    assert v["verdict"] == "PASS", out
    for role in ("gateway", "simulator", "broker"):
        assert v["fds"][role]["judged"], v["fds"][role]  # three boundaries: judged
        assert not v["memory"][role]["judged"]  # a minute and a half: figures only
        assert v["memory"][role]["start_mb"] > 0
    assert (report / "soak.png").stat().st_size > 0 and (report / "summary.txt").exists()
    assert any(line.startswith("soak: ") and " s cycle " in line for line in lines)
    # the stack the soak started is stopped
    last = doc["samples"][-1]
    assert not any(_alive(p) for p in last["gateway"]["pids"] + last["broker"]["pids"])
