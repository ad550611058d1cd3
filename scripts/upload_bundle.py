#!/usr/bin/env python3
"""Upload a results bundle (reports/<run-id>/) to S3: ``s3://BUCKET/PREFIX/<run-id>/...``.

    python scripts/upload_bundle.py --bundle reports/<run-id> --bucket <ops bucket> [--prefix bursts]
                                    [--endpoint http://...]   # S3-compatible stores, or moto in tests

Credentials come from boto3's usual chain (instance profile, environment, ~/.aws). Prints one line
per object and exits non-zero, naming the bucket and the error, when an upload fails.
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError


def upload(bundle: Path, bucket: str, prefix: str, endpoint: str | None) -> list[str]:
    if not bundle.is_dir():
        raise SystemExit(f"error: bundle {bundle} is not a directory")
    s3 = boto3.client("s3", endpoint_url=endpoint or None)
    keys = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and not p.name.startswith(".")):
        key = "/".join(
            part for part in (prefix.strip("/"), bundle.name, path.relative_to(bundle).as_posix()) if part
        )
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": ctype})
        print(f"uploaded s3://{bucket}/{key}")
        keys.append(key)
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="bursts")
    parser.add_argument("--endpoint", default="", help="S3 endpoint URL (empty: AWS)")
    args = parser.parse_args(argv)
    try:
        upload(args.bundle, args.bucket, args.prefix, args.endpoint)
    except (Boto3Error, BotoCoreError, ClientError) as exc:
        print(f"error: uploading {args.bundle} to bucket {args.bucket!r} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
