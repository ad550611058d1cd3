"""``python -m gateway --config FILE``: validate the config, then run the supervisor and its workers."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from gateway import config as config_mod
from gateway import logs
from gateway.registry import RegistryError, load_registry

EXIT_CONFIG = 2


def _state_dir_problem(path: str) -> str | None:
    """Why the workers could not keep their high-water marks in ``path`` (checked at start, not by
    ``--check``: the deployed StateDirectory exists only once systemd starts the service)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {p}: {exc.strerror}"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable by this user"
    return None


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
    if cfg.state.dir is not None:
        problem = _state_dir_problem(cfg.state.dir)
        if problem:
            print(f"gateway: config error: state.dir: {problem}", file=sys.stderr)
            return EXIT_CONFIG
    logs.setup(cfg.log.level, "supervisor")
    from gateway.supervisor import Supervisor

    try:
        return asyncio.run(Supervisor(cfg).run())
    except RegistryError as exc:  # the file changed between the check above and the supervisor's copy
        print(f"gateway: config error: devices.registry: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"gateway: cannot start: {exc} (is udp.port/http.port already taken?)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
