"""The gateway's configuration: typed pydantic dataclasses, loaded from YAML or TOML, overridden by environment.

Precedence (lowest first): defaults, the config file, the original pilot's variables (``KAFKA_BOOTSTRAP``,
``KAFKA_TOPIC``, ``UDP_PORT``, ``NUM_WORKERS``, ``COMPRESSION``), then ``GATEWAY_<SECTION>_<KEY>``.
The schema (types, ranges, choices, rules across keys) is declared once, on the classes below; ``load``
validates the merged settings in one pass and raises :class:`ConfigError` with one line per problem,
each naming where the value came from (``gateway.yml:7`` or ``$GATEWAY_KAFKA_ACKS``) and the dotted key
(``kafka.acks``) so the operator knows what to fix. Values are converted leniently (``"5"`` is 5,
``"false"`` is false): environment variables are strings. ``yamlconf`` maps problems to YAML lines, the
same way for the simulator's scenarios.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass

import yamlconf
from yamlconf import Loc, between, fail

# Unknown keys are typos; numbers given where text is expected (acks: 1) become text.
_CONFIG = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
# ``load`` sets this in the validation context: check the host too (files exist), not only the values.
_ON_HOST = "on_host"


class ConfigError(ValueError):
    """A wrong configuration key or value; one line per problem: ``WHERE: section.key: what to fix``."""


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _on_host(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get(_ON_HOST))


Port = Annotated[int, between(0, 65535, "0 = pick a free one")]


@dataclass(config=_CONFIG)
class UdpConfig:
    host: str = "0.0.0.0"
    port: Port = 5000
    workers: Annotated[int, between(0, 256, "0 = one per core")] = 0
    rcvbuf_bytes: Annotated[int, between(4096, None)] = 8 * 1024 * 1024
    max_datagram_bytes: Annotated[int, between(64, 65507)] = 4096


@dataclass(config=_CONFIG)
class HttpConfig:
    host: str = "0.0.0.0"
    port: Port = 8080


def _bootstrap(value: str) -> str:
    if not value.strip():
        fail("empty; give host:port[,host:port...]")
    for server in value.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            fail(f"{server.strip()!r} is not host:port")
    return value


def _topic(value: str) -> str:
    if not value or len(value) > 249 or not all(c.isalnum() or c in "._-" for c in value):
        fail(f"{value!r} is not a valid Kafka topic name")
    return value


Acks = Literal["all", "1", "0", "-1"]
Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ACKS = typing.get_args(Acks)
COMPRESSIONS = typing.get_args(Compression)
COMPRESSION_LEVELS = {"gzip": (1, 9), "lz4": (0, 16), "zstd": (1, 22)}
"""The levels each codec takes (snappy and none take none)."""
SECURITY_PROTOCOLS = typing.get_args(SecurityProtocol)
SASL_MECHANISMS = typing.get_args(SaslMechanism)
LOG_LEVELS = typing.get_args(LogLevel)


@dataclass(config=_CONFIG)
class KafkaConfig:
    bootstrap_servers: Annotated[str, AfterValidator(_bootstrap)] = "localhost:9092"
    topic: Annotated[str, AfterValidator(_topic)] = "iot_telemetry"
    acks: Annotated[Acks, BeforeValidator(_text)] = "all"
    compression: Annotated[Compression, BeforeValidator(_lower)] = "lz4"
    # None: the codec's default as aiokafka applies it (lz4: 9, as Kafka's Java producer); see gateway/batch.py
    compression_level: int | None = None
    batch_size: Annotated[int, between(1024, None)] = 262144
    linger_ms: Annotated[int, between(0, 10000)] = 20
    producers_per_worker: Annotated[int, between(1, 64)] = 2
    # producers beyond producers_per_worker take only full batches, when all the others are busy: a broker
    # that acks slowly (AutoMQ's S3 WAL) gets more requests in flight, a fast one keeps few large ones
    max_producers_per_worker: Annotated[int, between(1, 64)] = 8
    max_request_size: int = 4 * 1024 * 1024
    request_timeout_ms: Annotated[int, between(1000, None)] = 30000
    security_protocol: Annotated[SecurityProtocol, BeforeValidator(_upper)] = "PLAINTEXT"
    sasl_mechanism: Annotated[SaslMechanism | None, BeforeValidator(_upper)] = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if self.compression_level is not None:
            span = COMPRESSION_LEVELS.get(self.compression)
            if span is None:
                fail(
                    f"{self.compression} takes no level: leave kafka.compression_level unset",
                    "compression_level",
                )
            elif not span[0] <= self.compression_level <= span[1]:
                fail(
                    f"{self.compression} takes a level from {span[0]} to {span[1]}, got {self.compression_level}",
                    "compression_level",
                )
        if self.max_request_size < self.batch_size:
            fail(
                f"must be at least kafka.batch_size ({self.batch_size}), got {self.max_request_size}",
                "max_request_size",
            )
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                fail(
                    f"{self.security_protocol} needs one of {', '.join(SASL_MECHANISMS)}, got None",
                    "sasl_mechanism",
                )
            if not self.sasl_username or not self.sasl_password:
                fail(
                    "SASL needs kafka.sasl_username and kafka.sasl_password "
                    "(pass the password as $GATEWAY_KAFKA_SASL_PASSWORD, not in the file)",
                    "sasl_username",
                )
        elif self.sasl_mechanism is not None:
            fail(f"set only with a SASL security_protocol, not {self.security_protocol}", "sasl_mechanism")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            fail("give both kafka.ssl_certfile and kafka.ssl_keyfile, or neither", "ssl_certfile")
        if _on_host(info):
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                path = getattr(self, name)
                if path is not None and not Path(path).is_file():
                    fail(f"{path} is not a readable file", name)
        return self


@dataclass(config=_CONFIG)
class DevicesConfig:
    registry: str | None = "/etc/iot-gateway/devices.yml"
    legacy_binary: bool = True
    legacy_json: bool = True

    @model_validator(mode="after")
    def _registry_exists(self, info: ValidationInfo) -> Self:
        if _on_host(info) and self.registry is not None and not Path(self.registry).is_file():
            fail(
                f"{self.registry} does not exist (generate it with the deploy, or set devices.registry: null "
                "to accept legacy datagrams only)",
                "registry",
            )
        return self


@dataclass(config=_CONFIG)
class LimitsConfig:
    max_inflight_readings: Annotated[int, between(255, None)] = 400000  # whole gateway; each worker its share
    busy_retry_after_ms: Annotated[int, between(0, 65535)] = 200
    auth_fail_per_s: Annotated[float, between(0, None, "0 = never answer")] = 1.0
    regression_window: Annotated[int, between(1, None)] = 65536
    active_device_window_s: Annotated[float, between(1, None)] = 60.0


@dataclass(config=_CONFIG)
class StateConfig:
    """Where the per-device high-water marks survive a restart (docs/gateway.md "Replay protection").

    ``dir`` null keeps them in memory only (the demo's default); the deployed role sets a systemd
    StateDirectory. A replay after a restart is then answered ``ACK hwm`` instead of produced again.
    Whether ``dir`` can be created is checked when the gateway starts, not by ``--check``: the deployed
    StateDirectory exists only once systemd starts the service.
    """

    dir: str | None = None
    # bounds what a host crash (not a process crash) can forget
    fsync_interval_s: Annotated[float, between(0, 3600, "0 = never fsync")] = 1.0
    # a worker's log beyond this is folded into its snapshot
    compact_bytes: Annotated[int, between(4096, None)] = 16 * 1024 * 1024

    @model_validator(mode="after")
    def _dir(self, info: ValidationInfo) -> Self:
        if self.dir is not None and not self.dir.strip():
            fail("empty; give a writable directory, or null to keep hwm in memory only", "dir")
        if (
            _on_host(info)
            and self.dir is not None
            and Path(self.dir).exists()
            and not Path(self.dir).is_dir()
        ):
            fail(f"{self.dir} exists and is not a directory", "dir")
        return self


@dataclass(config=_CONFIG)
class LogConfig:
    level: Annotated[LogLevel, BeforeValidator(_upper)] = "INFO"


@dataclass(config=_CONFIG)
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_ADAPTER = TypeAdapter(GatewayConfig)
PILOT_ENV = {
    "KAFKA_BOOTSTRAP": ("kafka", "bootstrap_servers"),
    "KAFKA_TOPIC": ("kafka", "topic"),
    "UDP_PORT": ("udp", "port"),
    "NUM_WORKERS": ("udp", "workers"),
    "COMPRESSION": ("kafka", "compression"),
}
# An environment variable cannot be null: these values clear an optional key (GATEWAY_DEVICES_REGISTRY=).
_ENV_NULL = ("", "null", "none")


def read_file(path: str | Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse a YAML (.yml/.yaml) or TOML (.toml) file into a mapping of sections and its keys' lines.

    TOML carries no line marks through ``tomllib``: its problems name the file and the key only.
    """
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {p}: {exc.strerror}") from None
    lines: dict[Loc, int] = {}
    try:
        if p.suffix == ".toml":
            data: object = tomllib.loads(text.decode())
        else:
            data, lines = yamlconf.compose(text.decode())
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--config: {p} is not valid {'TOML' if p.suffix == '.toml' else 'YAML'}: {exc}"
        ) from None
    if data is None:
        return {}, lines
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {p} must hold a mapping of sections (udp, http, kafka, ...)")
    return data, lines


def _optional(section: str, key: str) -> bool:
    """Whether ``section.key`` may be null (``str | None``); False for unknown keys."""
    sections = typing.get_type_hints(GatewayConfig)
    kind = sections.get(section)
    if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
        return False
    hint = typing.get_type_hints(kind).get(key)
    return type(None) in typing.get_args(hint)


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, str, str, str]]:
    """(section, key, value, variable) for every override in ``env``, in precedence order."""
    out = [(section, key, env[var], var) for var, (section, key) in PILOT_ENV.items() if var in env]
    for var, value in env.items():
        if not var.startswith("GATEWAY_"):
            continue
        section, _, key = var[len("GATEWAY_") :].lower().partition("_")
        if not key:
            raise ConfigError(f"${var}: expected GATEWAY_<SECTION>_<KEY>, e.g. GATEWAY_UDP_PORT")
        out.append((section, key, value, var))
    return out


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Defaults <- file <- pilot env vars <- GATEWAY_* env vars; validated in one pass, host checks included."""
    env = os.environ if env is None else env
    data, lines = read_file(path) if path else ({}, {})
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    origins: dict[Loc, str] = {}
    for section, key, value, var in _env_overrides(env):
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            continue  # the file's section is not a mapping: validation reports it at its line
        target[key] = None if _optional(section, key) and value.strip().lower() in _ENV_NULL else value
        origins[(section, key)] = f"${var}"
    try:
        return _ADAPTER.validate_python(merged, context={_ON_HOST: True})
    except ValidationError as exc:
        found = yamlconf.problems(exc, GatewayConfig, lines)
        raise ConfigError("\n".join(_line(p, path, lines, origins) for p in found)) from None


def _line(
    problem: yamlconf.Problem, path: str | Path | None, lines: Mapping[Loc, int], origins: Mapping[Loc, str]
) -> str:
    where = origins.get(problem.loc[:2])
    if where is None and path is not None:
        where = f"{path}:{problem.line}" if lines and problem.line else str(path)
    return f"{where}: {problem.path}: {problem.message}" if where else f"{problem.path}: {problem.message}"


def from_dict(data: Mapping[str, Any]) -> GatewayConfig:
    """Rebuild a config from :meth:`GatewayConfig.to_dict` (the supervisor hands it to its workers)."""
    return _ADAPTER.validate_python(data)
