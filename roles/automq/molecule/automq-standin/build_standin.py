#!/usr/bin/env python3
"""Build a STAND-IN for an AutoMQ release tarball from the project's Apache Kafka jars.

AutoMQ's release tarball (automq-<version>_kafka-<kafka version>.tgz) cannot be downloaded on the
machines that run our tests, so the automq role's Molecule scenario installs this stand-in instead.
It has the release's layout (one top folder holding bin/, config/, libs/) and a bin/kafka-server-start.sh
with the interface the role uses: `kafka-server-start.sh server.properties`, the environment variables
KAFKA_HEAP_OPTS, KAFKA_OPTS, KAFKA_LOG4J_OPTS and LOG_DIR, and formatting the storage by itself when
server.properties sets cluster.id (as AutoMQ does). What runs is Apache Kafka: it ignores every
AutoMQ property (elasticstream.*, s3.*) and keeps its data on local disk.

Usage: build_standin.py --libs DIR --out DIR [--version 1.7.0-standin] [--kafka-version 3.9.1]
Prints {"file": ..., "sha256": ..., "built": true|false} as JSON. Deterministic: same jars, same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

START_SCRIPT = """#!/bin/sh
# STAND-IN for AutoMQ's bin/kafka-server-start.sh (built by roles/automq/molecule/automq-standin):
# Apache Kafka jars behind the release's start interface. Not AutoMQ: no S3 storage, no telemetry.
set -eu
if [ $# -lt 1 ]; then
  echo "USAGE: $0 server.properties" >&2
  exit 1
fi
base=$(cd "$(dirname "$0")/.." && pwd)
config=$1
prop() { sed -n "s/^$1=//p" "$config" | tail -n 1; }
cluster_id=$(prop cluster.id)
log_dir=$(prop log.dirs | cut -d, -f1)
# AutoMQ formats its storage when cluster.id is set; the stand-in does so with Kafka's StorageTool.
if [ -n "$cluster_id" ] && [ ! -f "$log_dir/meta.properties" ]; then
  java -Xmx256m -Dlog4j.configuration="file:$base/config/tools-log4j.properties" -cp "$base/libs/*" \\
    kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$config"
fi
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$base/config/log4j.properties}
# shellcheck disable=SC2086  # the option variables hold several words on purpose
exec java ${KAFKA_HEAP_OPTS:-} ${KAFKA_OPTS:-} $log4j -Dkafka.logs.dir="${LOG_DIR:-$base/logs}" \\
  -cp "$base/libs/*" kafka.Kafka "$@"
"""

LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%p %m (%c)%n
"""

TOOLS_LOG4J = """log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=%p %m (%c)%n
"""

NOTICE = """This is NOT an AutoMQ release. It is a stand-in with the same layout, built from Apache Kafka
{kafka} jars by the automq role's Molecule scenario, so the role's install and start path can run
where AutoMQ's tarball cannot be downloaded. It proves: unpacking, checksum, layout checks, the
systemd unit starting bin/kafka-server-start.sh with the role's environment, formatting by cluster.id.
It does not prove: S3 storage (elasticstream, s3.* are ignored), the telemetry exporter port, or
anything else specific to AutoMQ.
"""


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build(libs: Path, out: Path, version: str, kafka_version: str) -> dict:
    jars = sorted(libs.glob("*.jar"))
    if not jars:
        raise SystemExit(f"no jars in {libs}: run `python -m broker assemble` first")
    top = f"automq-{version}_kafka-{kafka_version}"
    target = out / f"{top}.tgz"
    built = False
    if not target.exists():
        out.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    _add(tar, f"{top}/STANDIN.txt", NOTICE.format(kafka=kafka_version).encode(), 0o644)
                    _add(tar, f"{top}/bin/kafka-server-start.sh", START_SCRIPT.encode(), 0o755)
                    _add(tar, f"{top}/config/log4j.properties", LOG4J.encode(), 0o644)
                    _add(tar, f"{top}/config/tools-log4j.properties", TOOLS_LOG4J.encode(), 0o644)
                    for jar in jars:
                        _add(tar, f"{top}/libs/{jar.name}", jar.read_bytes(), 0o644)
        partial.rename(target)
        built = True
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return {"file": str(target), "sha256": digest, "built": built}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--libs", type=Path, required=True, help="folder of Kafka jars (python -m broker assemble)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the tarball")
    parser.add_argument("--version", default="1.7.0-standin")
    parser.add_argument("--kafka-version", default="3.9.1")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.libs, args.out, args.version, args.kafka_version)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
