"""The gateway's configuration: typed dataclasses, loaded from YAML or TOML, overridden by environment.

Precedence (lowest first): defaults, the config file, the original pilot's variables (``KAFKA_BOOTSTRAP``,
``KAFKA_TOPIC``, ``UDP_PORT``, ``NUM_WORKERS``, ``COMPRESSION``), then ``GATEWAY_<SECTION>_<KEY>``.
Every problem raises :class:`ConfigError` naming the key (``kafka.acks``) so the operator knows what to fix.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A wrong configuration key or value; the message starts with the dotted key name."""


@dataclass
class UdpConfig:
    host: str = "0.0.0.0"
    port: int = 5000
    workers: int = 0  # 0 = one per core
    rcvbuf_bytes: int = 8 * 1024 * 1024
    max_datagram_bytes: int = 4096


@dataclass
class HttpConfig:
    host: str = "0.0.0.0"
    port: int = 8080


@dataclass
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    topic: str = "iot_telemetry"
    acks: str = "all"
    compression: str = "lz4"
    batch_size: int = 262144
    linger_ms: int = 20
    producers_per_worker: int = 2
    max_request_size: int = 4 * 1024 * 1024
    request_timeout_ms: int = 30000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


@dataclass
class DevicesConfig:
    registry: str | None = "/etc/iot-gateway/devices.yml"
    legacy_binary: bool = True
    legacy_json: bool = True


@dataclass
class LimitsConfig:
    max_inflight_readings: int = 200000  # whole gateway; each worker gets its share
    busy_retry_after_ms: int = 200
    auth_fail_per_s: float = 1.0
    regression_window: int = 65536
    active_device_window_s: float = 60.0


@dataclass
class StateConfig:
    """Where the per-device high-water marks survive a restart (docs/gateway.md "Replay protection").

    ``dir`` null keeps them in memory only (the demo's default); the deployed role sets a systemd
    StateDirectory. A replay after a restart is then answered ``ACK hwm`` instead of produced again.
    """

    dir: str | None = None
    fsync_interval_s: float = 1.0  # bounds what a host crash (not a process crash) can forget
    compact_bytes: int = 16 * 1024 * 1024  # a worker's log beyond this is folded into its snapshot


@dataclass
class LogConfig:
    level: str = "INFO"


@dataclass
class GatewayConfig:
    udp: UdpConfig = field(default_factory=UdpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def effective_workers(self) -> int:
        return self.udp.workers or (os.cpu_count() or 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PILOT_ENV = {
    "KAFKA_BOOTSTRAP": ("kafka", "bootstrap_servers"),
    "KAFKA_TOPIC": ("kafka", "topic"),
    "UDP_PORT": ("udp", "port"),
    "NUM_WORKERS": ("udp", "workers"),
    "COMPRESSION": ("kafka", "compression"),
}
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
ACKS = ("all", "1", "0", "-1")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(GatewayConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(GatewayConfig)}


def _coerce(name: str, kind: object, value: object, from_env: bool) -> object:
    """Convert ``value`` to the field's type; raise ConfigError naming ``name``."""
    optional = False
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        optional, kind = True, args[0]
    if value is None or (from_env and optional and value in ("", "null", "none")):
        if optional:
            return None
        raise ConfigError(f"{name}: a value is required")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # e.g. acks: 1
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    raise ConfigError(f"{name}: unsupported type")  # pragma: no cover - a programming error


def _apply(cfg: GatewayConfig, section: str, key: str, value: object, from_env: bool, origin: str) -> None:
    sections = _sections()
    if section not in sections:
        raise ConfigError(f"{section}: unknown section{origin} (known: {', '.join(sections)})")
    sub = getattr(cfg, section)
    hints = typing.get_type_hints(type(sub))
    if key not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(sub))
        raise ConfigError(f"{section}.{key}: unknown key{origin} (known in {section}: {known})")
    setattr(sub, key, _coerce(f"{section}.{key}", hints[key], value, from_env))


def read_file(path: str | Path) -> dict:
    """Parse a YAML (.yml/.yaml) or TOML (.toml) file into a mapping of sections."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {p}: {exc.strerror}") from None
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text.decode())
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--config: {p} is not valid {'TOML' if p.suffix == '.toml' else 'YAML'}: {exc}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {p} must hold a mapping of sections (udp, http, kafka, ...)")
    return data


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Defaults <- file <- pilot env vars <- GATEWAY_* env vars; then validate."""
    env = os.environ if env is None else env
    cfg = GatewayConfig()
    data = read_file(path) if path else {}
    for section, values in data.items():
        if not isinstance(values, dict):
            if section in _sections():
                raise ConfigError(f"{section}: must be a mapping of keys, got {values!r}")
            raise ConfigError(f"{section}: unknown section (known: {', '.join(_sections())})")
        for key, value in values.items():
            _apply(cfg, str(section), str(key), value, False, "")
    for var, (section, key) in PILOT_ENV.items():
        if var in env:
            _apply(cfg, section, key, env[var], True, f" (from ${var})")
    for var, value in env.items():
        if not var.startswith("GATEWAY_"):
            continue
        rest = var[len("GATEWAY_") :].lower()
        section, _, key = rest.partition("_")
        if not key:
            raise ConfigError(f"{var}: expected GATEWAY_<SECTION>_<KEY>, e.g. GATEWAY_UDP_PORT")
        _apply(cfg, section, key, value, True, f" (from ${var})")
    validate(cfg)
    return cfg


def from_dict(data: Mapping) -> GatewayConfig:
    """Rebuild a validated config from :meth:`GatewayConfig.to_dict` (the supervisor hands it to workers)."""
    cfg = GatewayConfig()
    for section, values in data.items():
        for key, value in values.items():
            _apply(cfg, section, key, value, False, "")
    return cfg


def _port(name: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}: port must be 0..65535 (0 = pick a free one), got {value}")


def _positive(name: str, value: float, minimum: float = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")


def validate(cfg: GatewayConfig) -> None:
    _port("udp.port", cfg.udp.port)
    _port("http.port", cfg.http.port)
    if cfg.udp.workers < 0 or cfg.udp.workers > 256:
        raise ConfigError(f"udp.workers: must be 0 (one per core) .. 256, got {cfg.udp.workers}")
    _positive("udp.rcvbuf_bytes", cfg.udp.rcvbuf_bytes, 4096)
    if not 64 <= cfg.udp.max_datagram_bytes <= 65507:
        raise ConfigError(f"udp.max_datagram_bytes: must be 64..65507, got {cfg.udp.max_datagram_bytes}")
    k = cfg.kafka
    if not k.bootstrap_servers.strip():
        raise ConfigError("kafka.bootstrap_servers: empty; give host:port[,host:port...]")
    for server in k.bootstrap_servers.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"kafka.bootstrap_servers: {server.strip()!r} is not host:port")
    if not k.topic or len(k.topic) > 249 or not all(c.isalnum() or c in "._-" for c in k.topic):
        raise ConfigError(f"kafka.topic: {k.topic!r} is not a valid Kafka topic name")
    if k.acks not in ACKS:
        raise ConfigError(f"kafka.acks: must be one of {', '.join(ACKS)}, got {k.acks!r}")
    k.compression = k.compression.lower()
    if k.compression not in COMPRESSIONS:
        raise ConfigError(
            f"kafka.compression: must be one of {', '.join(COMPRESSIONS)}, got {k.compression!r}"
        )
    _positive("kafka.batch_size", k.batch_size, 1024)
    if not 0 <= k.linger_ms <= 10000:
        raise ConfigError(f"kafka.linger_ms: must be 0..10000, got {k.linger_ms}")
    if not 1 <= k.producers_per_worker <= 64:
        raise ConfigError(f"kafka.producers_per_worker: must be 1..64, got {k.producers_per_worker}")
    if k.max_request_size < k.batch_size:
        raise ConfigError(
            f"kafka.max_request_size: must be at least kafka.batch_size ({k.batch_size}), got {k.max_request_size}"
        )
    _positive("kafka.request_timeout_ms", k.request_timeout_ms, 1000)
    k.security_protocol = k.security_protocol.upper()
    if k.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"kafka.security_protocol: must be one of {', '.join(SECURITY_PROTOCOLS)}, got {k.security_protocol!r}"
        )
    if k.security_protocol.startswith("SASL"):
        if k.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"kafka.sasl_mechanism: {k.security_protocol} needs one of {', '.join(SASL_MECHANISMS)}, "
                f"got {k.sasl_mechanism!r}"
            )
        if not k.sasl_username or not k.sasl_password:
            raise ConfigError(
                "kafka.sasl_username: SASL needs kafka.sasl_username and kafka.sasl_password "
                "(pass the password as $GATEWAY_KAFKA_SASL_PASSWORD, not in the file)"
            )
    elif k.sasl_mechanism is not None:
        raise ConfigError(
            f"kafka.sasl_mechanism: set only with a SASL security_protocol, not {k.security_protocol}"
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(k, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"kafka.{name}: {path} is not a readable file")
    if (k.ssl_certfile is None) != (k.ssl_keyfile is None):
        raise ConfigError(
            "kafka.ssl_certfile: give both kafka.ssl_certfile and kafka.ssl_keyfile, or neither"
        )
    if cfg.devices.registry is not None and not Path(cfg.devices.registry).is_file():
        raise ConfigError(
            f"devices.registry: {cfg.devices.registry} does not exist (generate it with the deploy, "
            "or set devices.registry: null to accept legacy datagrams only)"
        )
    lim = cfg.limits
    _positive("limits.max_inflight_readings", lim.max_inflight_readings, 255)
    if not 0 <= lim.busy_retry_after_ms <= 65535:
        raise ConfigError(f"limits.busy_retry_after_ms: must be 0..65535, got {lim.busy_retry_after_ms}")
    if lim.auth_fail_per_s < 0:
        raise ConfigError(
            f"limits.auth_fail_per_s: must be >= 0 (0 = never answer), got {lim.auth_fail_per_s}"
        )
    _positive("limits.regression_window", lim.regression_window, 1)
    _positive("limits.active_device_window_s", lim.active_device_window_s, 1)
    st = cfg.state
    if st.dir is not None and not st.dir.strip():
        raise ConfigError("state.dir: empty; give a writable directory, or null to keep hwm in memory only")
    if st.dir is not None and Path(st.dir).exists() and not Path(st.dir).is_dir():
        raise ConfigError(f"state.dir: {st.dir} exists and is not a directory")
    if not 0 <= st.fsync_interval_s <= 3600:
        raise ConfigError(
            f"state.fsync_interval_s: must be 0..3600 (0 = never fsync), got {st.fsync_interval_s}"
        )
    _positive("state.compact_bytes", st.compact_bytes, 4096)
    cfg.log.level = cfg.log.level.upper()
    if cfg.log.level not in LOG_LEVELS:
        raise ConfigError(f"log.level: must be one of {', '.join(LOG_LEVELS)}, got {cfg.log.level!r}")
