"""Config loading and validation: defaults, file formats, environment overrides, errors naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load
from harness.gateway import ROOT


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "devices.yml"
    path.write_text("version: 1\nfleets:\n  - prefix: sim-\n    master_key: " + "ab" * 32 + "\n")
    return path


def test_defaults_match_the_contract(registry: Path) -> None:
    cfg = load(None, {"GATEWAY_DEVICES_REGISTRY": str(registry)})
    assert (cfg.udp.host, cfg.udp.port, cfg.udp.workers) == ("0.0.0.0", 5000, 0)
    assert (cfg.udp.rcvbuf_bytes, cfg.udp.max_datagram_bytes) == (8388608, 4096)
    assert (cfg.http.port, cfg.kafka.bootstrap_servers, cfg.kafka.topic) == (
        8080,
        "localhost:9092",
        "iot_telemetry",
    )
    assert (cfg.kafka.acks, cfg.kafka.compression, cfg.kafka.batch_size, cfg.kafka.linger_ms) == (
        "all",
        "lz4",
        262144,
        20,
    )
    assert (cfg.kafka.producers_per_worker, cfg.kafka.security_protocol) == (2, "PLAINTEXT")
    assert cfg.limits.max_inflight_readings == 400000 and cfg.limits.busy_retry_after_ms == 200
    assert cfg.limits.auth_fail_per_s == 1.0 and cfg.limits.regression_window == 65536
    assert cfg.effective_workers() >= 1


def test_yaml_and_toml_files(tmp_path: Path, registry: Path) -> None:
    yml = tmp_path / "g.yml"
    yml.write_text(
        f"udp: {{port: 6000, workers: 3}}\nkafka: {{acks: 1}}\ndevices: {{registry: {registry}}}\n"
    )
    cfg = load(yml, {})
    assert (cfg.udp.port, cfg.udp.workers, cfg.kafka.acks) == (6000, 3, "1")
    toml = tmp_path / "g.toml"
    toml.write_text(f'[kafka]\ntopic = "t1"\ncompression = "ZSTD"\n[devices]\nregistry = "{registry}"\n')
    cfg = load(toml, {})
    assert (cfg.kafka.topic, cfg.kafka.compression) == ("t1", "zstd")


def test_environment_overrides_file_and_pilot_variables(tmp_path: Path, registry: Path) -> None:
    yml = tmp_path / "g.yml"
    yml.write_text(f"udp: {{port: 6000}}\ndevices: {{registry: {registry}}}\n")
    env = {
        "KAFKA_BOOTSTRAP": "k1:9092",
        "KAFKA_TOPIC": "pilot_topic",
        "UDP_PORT": "7000",
        "NUM_WORKERS": "4",
        "COMPRESSION": "gzip",
        "GATEWAY_KAFKA_LINGER_MS": "5",
        "GATEWAY_DEVICES_LEGACY_JSON": "false",
    }
    cfg = load(yml, env)
    assert (cfg.kafka.bootstrap_servers, cfg.kafka.topic, cfg.udp.port) == ("k1:9092", "pilot_topic", 7000)
    assert (cfg.udp.workers, cfg.kafka.compression, cfg.kafka.linger_ms) == (4, "gzip", 5)
    assert cfg.devices.legacy_json is False
    env["GATEWAY_UDP_PORT"] = "7001"  # the GATEWAY_ form wins over the pilot's
    assert load(yml, env).udp.port == 7001


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("udp: {prot: 1}", {}, "udp.prot: unknown key"),
        ("udpp: {port: 1}", {}, "udpp: unknown key"),
        ("udp: {port: 70000}", {}, "udp.port:"),
        ("udp: {port: abc}", {}, "udp.port: must be an integer"),
        ("kafka: {acks: 2}", {}, "kafka.acks:"),
        ("kafka: {compression: brotli}", {}, "kafka.compression:"),
        (
            "kafka: {compression: snappy, compression_level: 3}",
            {},
            "kafka.compression_level: snappy takes no level",
        ),
        (
            "kafka: {compression_level: 17}",
            {},
            "kafka.compression_level: lz4 takes a level from 0 to 16, got 17",
        ),
        ("kafka: {bootstrap_servers: nohostport}", {}, "kafka.bootstrap_servers:"),
        ("kafka: {security_protocol: SASL_SSL}", {}, "kafka.sasl_mechanism:"),
        ("kafka: {producers_per_worker: 0}", {}, "kafka.producers_per_worker:"),
        ("log: {level: LOUD}", {}, "log.level:"),
        ("limits: {busy_retry_after_ms: -1}", {}, "limits.busy_retry_after_ms:"),
        ("devices: {registry: /nonexistent/devices.yml}", {}, "devices.registry:"),
        (
            "",
            {"GATEWAY_KAFKA_BATCHSIZE": "1"},
            "$GATEWAY_KAFKA_BATCHSIZE: kafka.batchsize: unknown key",
        ),
        ("", {"NUM_WORKERS": "many"}, "$NUM_WORKERS: udp.workers: must be an integer"),
        ("state: {fsync_interval_s: -1}", {}, "state.fsync_interval_s:"),
        ("state: {compact_bytes: 10}", {}, "state.compact_bytes:"),
        ("state: {dir: ''}", {}, "state.dir: empty"),
        (
            "",
            {"GATEWAY_STATE_DIR": "/dev/null"},
            "state.dir: /dev/null exists and is not a directory",
        ),
        ("- a list", {}, "must hold a mapping"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, registry: Path, text: str, env: dict, key: str) -> None:
    yml = tmp_path / "g.yml"
    yml.write_text(text + "\n")
    full_env = {"GATEWAY_DEVICES_REGISTRY": str(registry), **env} if "registry" not in text else env
    with pytest.raises(ConfigError) as err:
        load(yml, full_env)
    assert key in str(err.value)


def test_cli_exits_2_with_the_key_on_stderr(tmp_path: Path, registry: Path) -> None:
    yml = tmp_path / "g.yml"
    yml.write_text(f"kafka: {{linger_ms: -5}}\ndevices: {{registry: {registry}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(yml)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert "kafka.linger_ms" in result.stderr
    bad_registry = tmp_path / "bad.yml"
    bad_registry.write_text("version: 1\nfleets:\n  - prefix: sim-\n    master_key: 12ab\n")
    yml.write_text(f"devices: {{registry: {bad_registry}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(yml), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "fleets[0].master_key" in result.stderr
    yml.write_text(f"devices: {{registry: {registry}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(yml), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


def test_state_dir_defaults_to_memory_only_and_is_checked_at_start(tmp_path: Path, registry: Path) -> None:
    """`python -m gateway` keeps hwm in memory unless state.dir is set; an unusable dir stops the start
    with exit 2 naming it (not a worker crash loop), while --check accepts a dir systemd creates later."""
    assert load(None, {"GATEWAY_DEVICES_REGISTRY": str(registry)}).state.dir is None
    env = {"GATEWAY_DEVICES_REGISTRY": str(registry), "GATEWAY_STATE_DIR": str(tmp_path / "later" / "st")}
    assert load(None, env).state.dir == str(tmp_path / "later" / "st")
    blocker = tmp_path / "file"
    blocker.write_text("")
    yml = tmp_path / "g.yml"
    yml.write_text(f"devices: {{registry: {registry}}}\nstate: {{dir: {blocker}/st}}\n")
    check = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(yml), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert check.returncode == 0, check.stderr
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(yml)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert f"gateway: config error: state.dir: cannot create {blocker}/st" in result.stderr


def test_every_problem_names_its_nested_key_and_line(tmp_path: Path, registry: Path) -> None:
    yml = tmp_path / "g.yml"
    yml.write_text(
        f"devices: {{registry: {registry}}}\nkafka:\n  topic: t\n  linger_ms: -5\nlog:\n  level: LOUD\n"
    )
    with pytest.raises(ConfigError) as err:
        load(yml, {"GATEWAY_UDP_PORT": "70000"})
    lines = str(err.value).splitlines()
    assert f"{yml}:4: kafka.linger_ms: must be in 0..10000, got -5" in lines
    assert any(line.startswith(f"{yml}:6: log.level: must be one of DEBUG") for line in lines), lines
    assert any(line.startswith("$GATEWAY_UDP_PORT: udp.port: must be in 0..65535") for line in lines), lines
    assert len(lines) == 3
