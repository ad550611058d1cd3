"""``python -m gateway --config FILE``: validate the config, then run the supervisor and its workers."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gateway import config as config_mod
from gateway import logs
from gateway.registry import RegistryError, load_registry

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description="UDP (IBP/1 and legacy) -> Kafka gateway. Every key can be overridden by "
        "GATEWAY_<SECTION>_<KEY> environment variables; see docs/gateway.md.",
    )
    parser.add_argument("--config", help="YAML (.yml/.yaml) or TOML (.toml) config file")
    parser.add_argument("--check", action="store_true", help="validate config and key registry, then exit")
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
        registry = load_registry(cfg.devices.registry)
    except config_mod.ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except RegistryError as exc:
        print(f"gateway: config error: devices.registry: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(
            f"gateway: config OK: udp {cfg.udp.host}:{cfg.udp.port}, {cfg.effective_workers()} workers, "
            f"kafka {cfg.kafka.bootstrap_servers} topic {cfg.kafka.topic}, "
            f"{len(registry.devices)} devices + {len(registry.fleets)} fleets in the registry"
        )
        return 0
    logs.setup(cfg.log.level, "supervisor")
    from gateway.supervisor import Supervisor

    try:
        return asyncio.run(Supervisor(cfg).run())
    except OSError as exc:
        print(f"gateway: cannot start: {exc} (is udp.port/http.port already taken?)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
