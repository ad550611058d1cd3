"""Regenerate tests/vectors/ibp1.json from the reference codec (ibp/protocol.py).

Run only when the protocol changes on purpose: ``python tests/vectors/generate.py``. The committed
file is the contract; the Python tests and the firmware's C++ tests both check their encoders and
decoders against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ibp import protocol as p

KEY = bytes(range(32))
KEY2 = bytes.fromhex("c0ffee" * 10 + "c0ff")  # 32 bytes, like every device key
MASTER = bytes.fromhex("5eed" * 16)


def data(name, device_id, key, first_seq, readings):
    dgram = p.encode_data(device_id, key, first_seq, [(ts, pl.encode()) for ts, pl in readings])
    return {
        "name": name,
        "kind": "data",
        "key_hex": key.hex(),
        "device_id": device_id,
        "first_seq": first_seq,
        "readings": [{"timestamp_ms": ts, "payload": pl} for ts, pl in readings],
        "datagram_hex": dgram.hex(),
    }


def reject(name, datagram, reason, key=KEY, device_id=None):
    out = {
        "name": name,
        "kind": "reject",
        "datagram_hex": datagram.hex(),
        "reason": reason,
        "key_hex": key.hex(),
    }
    if device_id:
        out["device_id"] = device_id
    return out


def main() -> None:
    vectors = [
        data("data-single", "esp32-0001", KEY, 1, [(1764355200000, '{"t":21.5}')]),
        data(
            "data-batch-3",
            "esp32-0001",
            KEY,
            41,
            [
                (1764355200000, '{"t":21.5,"h":40}'),
                (1764355201000, '{"t":21.6,"h":40}'),
                (1764355202000, '{"t":21.4,"h":41}'),
            ],
        ),
        data("data-zero-ts-empty-object", "sim-000042", KEY2, 0, [(0, "{}")]),
        data("data-utf8-id", "capteur-\u00e9t\u00e9-01", KEY2, 7, [(1764355200500, '{"lux":300}')]),
        data("data-seq-top", "esp32-0002", KEY, 0xFFFFFFFE, [(1, '{"a":1}'), (2, '{"a":2}')]),
        data(
            "data-max-count",
            "esp32-0003",
            KEY,
            1000,
            [(1764355200000 + i, "{}") for i in range(255)],
        ),
        {
            "name": "derive-fleet-key",
            "kind": "derive_key",
            "master_key_hex": MASTER.hex(),
            "device_id": "sim-000001",
            "key_hex": p.derive_device_key(MASTER, "sim-000001").hex(),
        },
        {
            "name": "ack",
            "kind": "ack",
            "key_hex": KEY.hex(),
            "device_id": "esp32-0001",
            "ack_seq": 43,
            "datagram_hex": p.encode_ack("esp32-0001", KEY, 43).hex(),
        },
        {
            "name": "busy",
            "kind": "busy",
            "key_hex": KEY.hex(),
            "device_id": "esp32-0001",
            "retry_after_ms": 250,
            "datagram_hex": p.encode_busy("esp32-0001", KEY, 250).hex(),
        },
        {"name": "auth-fail", "kind": "auth_fail", "datagram_hex": p.AUTH_FAIL_DATAGRAM.hex()},
    ]
    good = p.encode_data("esp32-0001", KEY, 1, [(1764355200000, b'{"t":21.5}')])
    bad_tag = good[:-1] + bytes([good[-1] ^ 1])
    vectors += [
        reject("reject-bad-tag", bad_tag, "auth_failed", device_id="esp32-0001"),
        reject(
            "reject-wrong-key",
            p.encode_data("esp32-0001", KEY2, 1, [(1, b"{}")]),
            "auth_failed",
            device_id="esp32-0001",
        ),
        reject("reject-truncated", good[:20], "truncated"),
        reject("reject-trailing-byte", good[:-32] + b"\x00" + good[-32:], "truncated"),
        reject("reject-bad-version", good[:2] + b"\x02" + good[3:], "bad_version"),
        reject("reject-bad-type", good[:3] + b"\x81" + good[4:], "bad_type"),
        reject("reject-bad-magic", b"XX" + good[2:], "bad_magic"),
        reject("reject-count-zero", good[:4] + b"\x0aesp32-0001\x00\x00\x00\x01\x00" + bytes(32), "invalid"),
        reject("reject-id-not-utf8", good[:4] + b"\x02\xff\xfe" + good[15:], "bad_device_id"),
        reject(
            "reject-malformed-json",
            p.encode_data("esp32-0001", KEY, 1, [(1, b'{"t":')]),
            "malformed_json",
            device_id="esp32-0001",
        ),
        {
            "name": "legacy-binary",
            "kind": "legacy",
            "datagram_hex": p.encode_legacy_binary("ESP32_001", 7, {"temperature": 22.5}).hex(),
            "device_id": "ESP32_001",
            "seq": 7,
            "timestamp_ms": 0,
            "payload": '{"temperature": 22.5}',
            "proto": "legacy-bin",
        },
        {
            "name": "legacy-json",
            "kind": "legacy",
            "datagram_hex": p.encode_legacy_json(
                "device_0001", 12, 1764355200.25, {"temperature": 22.5}
            ).hex(),
            "device_id": "device_0001",
            "seq": 12,
            "timestamp_ms": 1764355200250,
            "payload": '{"temperature":22.5}',
            "proto": "legacy-json",
        },
    ]
    doc = {
        "protocol": "IBP/1",
        "spec": "docs/protocol.md",
        "note": "Generated by tests/vectors/generate.py from ibp/protocol.py. Every encoder must reproduce datagram_hex byte for byte.",
        "vectors": vectors,
    }
    out = Path(__file__).with_name("ibp1.json")
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
