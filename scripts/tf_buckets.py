#!/usr/bin/env python3
"""What the deployment's S3 buckets still hold, and, only when asked in so many words, empty them.

    python scripts/tf_buckets.py check BUCKET...           exit 3 and list what is left when any holds data
    python scripts/tf_buckets.py empty --yes BUCKET...     delete every object version and delete marker

`terraform destroy` cannot delete a bucket that still holds objects (the ops bucket is versioned, so
even deleted objects remain as old versions), and `force_destroy_buckets` is off on purpose: run
results and AutoMQ's data should never vanish as a side effect. `make tf-destroy` calls `check`
first and stops before destroying anything, naming each bucket and its contents; `make tf-destroy
EMPTY_BUCKETS=yes` calls `empty --yes`, which prints every key it deletes, and then destroys.

Credentials and endpoint come from boto3's usual chain (AWS_PROFILE, the environment, ~/.aws;
AWS_ENDPOINT_URL for an S3-compatible store or moto in tests). A bucket that no longer exists counts
as empty.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import boto3
from botocore.exceptions import BotoCoreError, ClientError


@dataclass
class Contents:
    """Every object version and delete marker of one bucket."""

    bucket: str
    exists: bool
    versions: list[tuple[str, str]]  # (key, version id)
    markers: list[tuple[str, str]]

    @property
    def current_keys(self) -> int:
        return len({key for key, _ in self.versions})

    def summary(self) -> str:
        if not self.exists:
            return f"{self.bucket}: gone"
        return (
            f"{self.bucket}: {self.current_keys} keys, {len(self.versions)} object versions, "
            f"{len(self.markers)} delete markers"
        )


def contents(s3, bucket: str) -> Contents:
    versions: list[tuple[str, str]] = []
    markers: list[tuple[str, str]] = []
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            markers += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return Contents(bucket, False, [], [])
        raise
    return Contents(bucket, True, versions, markers)


def empty(s3, found: Contents) -> int:
    """Delete every version and marker, 1,000 per request (the API's limit); returns how many."""
    doomed = found.versions + found.markers
    for start in range(0, len(doomed), 1000):
        chunk = doomed[start : start + 1000]
        for key, version in chunk:
            print(f"deleting s3://{found.bucket}/{key} (version {version})")
        answer = s3.delete_objects(
            Bucket=found.bucket,
            Delete={"Objects": [{"Key": k, "VersionId": v} for k, v in chunk], "Quiet": True},
        )
        if answer.get("Errors"):
            first = answer["Errors"][0]
            raise SystemExit(f"error: s3://{found.bucket}/{first['Key']}: {first['Code']} {first['Message']}")
    return len(doomed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["check", "empty"])
    parser.add_argument("buckets", nargs="+")
    parser.add_argument("--yes", action="store_true", help="required by `empty`: yes, delete every version")
    args = parser.parse_args(argv)
    if args.action == "empty" and not args.yes:
        parser.error("`empty` deletes every object version for good: add --yes to confirm")
    s3 = boto3.client("s3")
    try:
        found = [contents(s3, b) for b in args.buckets]
        if args.action == "check":
            full = [c for c in found if c.versions or c.markers]
            for c in found:
                print(c.summary())
            if full:
                print(
                    "tf-destroy: stopped before destroying anything: "
                    + ", ".join(c.bucket for c in full)
                    + " still hold data. Copy what you want to keep (e.g. `aws s3 sync s3://<ops bucket>/bursts"
                    " reports/`), then run `make tf-destroy EMPTY_BUCKETS=yes` to delete every version and destroy.",
                    file=sys.stderr,
                )
                return 3
            return 0
        total = sum(empty(s3, c) for c in found if c.exists)
        print(f"emptied {len(found)} buckets: {total} versions and delete markers deleted")
        return 0
    except (BotoCoreError, ClientError) as exc:
        print(f"error: S3: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
