"""`make broker` / `make broker-stop` (python -m broker): start in the background, list topics with the
Kafka topics tool from the same jars, stop leaving no process and no data behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.kafka import libs_dir

pytestmark = pytest.mark.broker


def _broker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args], capture_output=True, text=True, env=env, timeout=180
    )


def test_start_topics_stop_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # reuse the assembled jars: the cache layout is <cache>/kafka/<pom digest>/libs
    (cache / "kafka" / libs_dir().parent.name).mkdir(parents=True)
    (cache / "kafka" / libs_dir().parent.name / "libs").symlink_to(libs_dir())
    env = dict(os.environ, IOT_CACHE_DIR=str(cache))

    started = _broker(env, "start")
    assert started.returncode == 0, started.stderr
    state = json.loads((cache / "broker" / "state.json").read_text())
    pid = int((Path(state["workdir"]) / "broker.pid").read_text())
    try:
        status = _broker(env, "status", "--bootstrap")
        assert status.returncode == 0 and status.stdout.strip() == f"127.0.0.1:{state['port']}"
        topics = _broker(env, "topics")
        assert topics.returncode == 0, topics.stderr
        assert "iot_telemetry" in topics.stdout.split()
    finally:
        stopped = _broker(env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(f"/proc/{pid}").exists(), "the broker process must be gone after stop"
    assert not (cache / "broker" / "data").exists(), "stop deletes the broker's data"
    assert _broker(env, "status").returncode == 1
