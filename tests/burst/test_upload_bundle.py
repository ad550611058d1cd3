"""burst.yml's optional upload of a results bundle to the ops bucket, against a real moto S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from broker.kafka import free_port

ROOT = Path(__file__).resolve().parents[2]
UPLOAD = ROOT / "scripts" / "upload_bundle.py"
CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()}")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "reports" / "smoke-20260101T000000Z"
    (bundle / "agents").mkdir(parents=True)
    (bundle / "audit.json").write_text('{"delivered": 3, "missing": 0, "duplicates": 0}\n')
    (bundle / "agents" / "agent-0.json").write_text("{}\n")
    (bundle / "report.html").write_text("<html></html>\n")
    (bundle / ".token").write_text("secret")  # never uploaded
    return bundle


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **CREDS)
    return subprocess.run(
        [sys.executable, str(UPLOAD), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_bundle_lands_under_prefix_and_run_id(tmp_path: Path, s3_endpoint: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        **{k.lower(): v for k, v in CREDS.items() if "KEY" in k},
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="pilot-ops")
    bundle = _bundle(tmp_path)
    result = _run(
        "--bundle", str(bundle), "--bucket", "pilot-ops", "--prefix", "bursts", "--endpoint", s3_endpoint
    )
    assert result.returncode == 0, result.stderr
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="pilot-ops")["Contents"])
    run = bundle.name
    assert keys == [
        f"bursts/{run}/agents/agent-0.json",
        f"bursts/{run}/audit.json",
        f"bursts/{run}/report.html",
    ]
    body = s3.get_object(Bucket="pilot-ops", Key=f"bursts/{run}/audit.json")
    assert body["ContentType"] == "application/json"
    assert b'"missing": 0' in body["Body"].read()


def test_missing_bucket_is_named_in_the_error(tmp_path: Path, s3_endpoint: str) -> None:
    result = _run("--bundle", str(_bundle(tmp_path)), "--bucket", "no-such-bucket", "--endpoint", s3_endpoint)
    assert result.returncode == 1
    assert "error: uploading" in result.stderr and "'no-such-bucket'" in result.stderr
    assert "Traceback" not in result.stderr
