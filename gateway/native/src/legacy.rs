//! The original pilot's legacy binary datagram turned into its Kafka key and record value in one call.
//!
//! Layout (docs/protocol.md "Legacy formats"): magic `AA 55`, the device id in 16 bytes padded with NULs,
//! the sequence number (u32, big-endian), then the payload (a JSON object) up to the end. Legacy devices
//! get no answer, so the gateway's whole job per datagram is: check, build one record. On the pure-Python
//! path that took four passes over the bytes (parse, `json.loads`, the strict object check, `json.dumps` of
//! the id) and a `%` format; here it is one. Same decisions, same `ProtocolError` reasons and the same
//! bytes as `gateway/fastpath.py`'s `legacy_binary_record` (tests/gateway/test_legacy_codec.py).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{be_u32, is_object, raise, Refused};

const MAGIC: &[u8; 2] = b"\xaa\x55";
const ID_LEN: usize = 16;
const HEADER: usize = 2 + ID_LEN + 4;

/// The id as `json.dumps` writes it (ensure_ascii): ASCII as is but `"` and `\`, every other character
/// as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs above U+FFFF). Control characters never get here.
fn json_string(id: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in id.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if c.is_ascii() => out.push(c as u8),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

/// `(id, seq, payload)` of a legacy binary datagram, checked in the reference's order.
fn parse(d: &[u8]) -> Result<(&str, u32, &[u8]), Refused> {
    if d.len() < 2 || &d[..2] != MAGIC {
        return Err(Refused("bad_magic", String::new()));
    }
    if d.len() < HEADER {
        return Err(Refused("truncated", "legacy binary header".into()));
    }
    let padded = &d[2..2 + ID_LEN];
    let raw = &padded[..padded.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
    let id = std::str::from_utf8(raw).map_err(|_| Refused("bad_device_id", "not UTF-8".into()))?;
    if id.is_empty() || raw.iter().any(|&b| b < 0x20 || b == 0x7F) {
        return Err(Refused("bad_device_id", String::new()));
    }
    let payload = &d[HEADER..];
    if !is_object(payload) {
        return Err(Refused("malformed_json", String::new()));
    }
    Ok((id, be_u32(&d[2 + ID_LEN..HEADER]), payload))
}

/// ``(key, value)``: the Kafka key (the raw device id) and the record value, byte-identical to
/// gateway/fastpath.py's ``VALUE % (json.dumps(id), seq, 0, now_ms, b"legacy-bin", payload)``;
/// raises ProtocolError like the reference.
#[pyfunction]
pub(crate) fn legacy_binary_record<'py>(
    py: Python<'py>,
    datagram: &[u8],
    now_ms: i64,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (id, seq, payload) = parse(datagram).map_err(|r| raise(py, r))?;
    let mut value = Vec::with_capacity(payload.len() + id.len() + 112);
    let mut seq_text = itoa::Buffer::new();
    let mut now_text = itoa::Buffer::new();
    value.extend_from_slice(b"{\"device_id\":");
    json_string(id, &mut value);
    value.extend_from_slice(b",\"seq\":");
    value.extend_from_slice(seq_text.format(seq).as_bytes());
    value.extend_from_slice(b",\"device_ts_ms\":0,\"gateway_ts_ms\":");
    value.extend_from_slice(now_text.format(now_ms).as_bytes());
    value.extend_from_slice(b",\"proto\":\"legacy-bin\",\"payload\":");
    value.extend_from_slice(payload);
    value.push(b'}');
    Ok((PyBytes::new(py, id.as_bytes()), PyBytes::new(py, &value)))
}
