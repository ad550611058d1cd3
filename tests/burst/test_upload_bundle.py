"""burst.yml's optional upload of a results bundle to the ops bucket, against a real moto S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.fixtures.moto import MOTO_CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
UPLOAD = ROOT / "scripts" / "upload_bundle.py"
CREDS = MOTO_CREDENTIALS


@pytest.fixture
def s3_endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


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
