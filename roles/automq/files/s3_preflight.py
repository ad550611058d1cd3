#!/usr/bin/env python3
"""Prove that this host can put, get, list and delete objects in AutoMQ's S3 buckets.

Run by the automq role before the broker starts, on the broker host, with the broker's endpoint,
region and credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment for static
keys, else boto3's default chain: the instance profile). For each bucket it writes a small object,
reads it back and compares it, finds it in a listing, deletes it and checks that it is gone.

Exit 0 with one JSON line per bucket on success; exit 1 with a line naming the bucket, the step and
the error on the first failure; exit 2 on bad arguments or without boto3.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import uuid


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", action="append", required=True, help="bucket to check (repeatable)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--endpoint", default="", help="endpoint URL; empty: AWS S3 of the region")
    parser.add_argument("--path-style", action="store_true", help="path-style addressing (MinIO, moto)")
    parser.add_argument("--key-prefix", default="automq-preflight", help="prefix of the probe object's key")
    parser.add_argument("--timeout", type=float, default=10.0, help="connect/read timeout per request (s)")
    return parser.parse_args(argv)


def make_client(args: argparse.Namespace):
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=args.region,
        connect_timeout=args.timeout,
        read_timeout=args.timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path" if args.path_style else "auto"},
    )
    return boto3.client("s3", endpoint_url=args.endpoint or None, config=config)


class ProbeError(Exception):
    def __init__(self, bucket: str, step: str, detail: str) -> None:
        super().__init__(f"bucket {bucket!r}: {step} failed: {detail}")
        self.bucket = bucket
        self.step = step


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def probe_bucket(client, bucket: str, prefix: str) -> dict:
    """Put, get, list, delete one object; raise ProbeError naming the step that failed."""
    key = f"{prefix.rstrip('/')}/{socket.gethostname()}-{uuid.uuid4().hex}"
    body = f"automq preflight {time.time():.3f} {uuid.uuid4().hex}".encode()
    started = time.monotonic()

    def step(name: str, call):
        try:
            return call()
        except Exception as exc:  # botocore raises many types; name them all the same way
            raise ProbeError(bucket, name, _describe(exc)) from exc

    step("put", lambda: client.put_object(Bucket=bucket, Key=key, Body=body))
    got = step("get", lambda: client.get_object(Bucket=bucket, Key=key)["Body"].read())
    if got != body:
        raise ProbeError(
            bucket, "get", f"read back {len(got)} bytes that differ from the {len(body)} written"
        )
    listed = step("list", lambda: client.list_objects_v2(Bucket=bucket, Prefix=key))
    keys = [item["Key"] for item in listed.get("Contents", [])]
    if key not in keys:
        raise ProbeError(bucket, "list", f"object {key} missing from the listing of prefix {key}")
    step("delete", lambda: client.delete_object(Bucket=bucket, Key=key))
    after = step("list after delete", lambda: client.list_objects_v2(Bucket=bucket, Prefix=key))
    if after.get("KeyCount", 0):
        raise ProbeError(bucket, "delete", f"object {key} still listed after delete")
    return {"bucket": bucket, "ok": True, "key": key, "seconds": round(time.monotonic() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        client = make_client(args)
    except ImportError:
        print("boto3 is not installed on this host (Debian: apt-get install python3-boto3)", file=sys.stderr)
        return 2
    creds = "static keys" if os.environ.get("AWS_ACCESS_KEY_ID") else "default chain (instance profile)"
    for bucket in dict.fromkeys(args.bucket):
        try:
            result = probe_bucket(client, bucket, args.key_prefix)
        except ProbeError as exc:
            print(f"{exc} (endpoint={args.endpoint or 'AWS'}, region={args.region}, credentials={creds})")
            return 1
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
