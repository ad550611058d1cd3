//! The simulated devices' side of IBP/1: their DATA datagrams and the answers they read.
//!
//! A simulator process that holds 200,000 devices at one reading a second builds, sends, receives and
//! verifies 200,000 datagrams a second; in Python each DATA datagram cost about 1.5 µs of payload text
//! per reading plus 2 µs of HMAC and struct packing, and each answer 2 µs of parsing and HMAC. These are
//! the same bytes and decisions as the Python reference (`simulator/devices/datagram.py` `payload`, the
//! fleet's `_batch` byte rule and `ibp.protocol.encode_data` / `parse_response`), held equal by
//! tests/simulator/test_native_device.py.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{
    be_u32, check_id, raise, tag, Refused, MAX_ID_LEN, MAX_SEQ, TAG_LEN, T_ACK, T_AUTH_FAIL,
    T_BUSY, T_DATA,
};

const MAX_COUNT: usize = 255;
const READING_OVERHEAD: usize = 8 + 2;

/// `datagram.payload(run_id, pad, idx, seq)`: the deterministic sensor values of (device, seq).
fn payload(out: &mut Vec<u8>, run_id: &[u8], pad: usize, idx: u64, seq: u64) {
    let mut num = itoa::Buffer::new();
    // temp 18.0..29.9 and humidity 35.0..74.9 in tenths: Python's `18.0 + m / 10` printed with one
    // decimal is exactly these digits (the float error is far below half a tenth)
    let temp = 180 + ((seq as u128 * 7919 + idx as u128 * 104_729) % 120) as u32;
    let hum = 350 + ((seq as u128 * 31 + idx as u128 * 17) % 400) as u32;
    out.extend_from_slice(b"{\"run\":\"");
    out.extend_from_slice(run_id);
    out.extend_from_slice(b"\",\"temp_c\":");
    out.extend_from_slice(num.format(temp / 10).as_bytes());
    out.push(b'.');
    out.push(b'0' + (temp % 10) as u8);
    out.extend_from_slice(b",\"hum_pct\":");
    out.extend_from_slice(num.format(hum / 10).as_bytes());
    out.push(b'.');
    out.push(b'0' + (hum % 10) as u8);
    out.extend_from_slice(b",\"bat_mv\":");
    out.extend_from_slice(num.format(3300 + idx % 900).as_bytes());
    if pad > 0 {
        out.extend_from_slice(b",\"pad\":\"");
        out.resize(out.len() + pad, b'x');
        out.push(b'"');
    }
    out.push(b'}');
}

/// The payload bytes of reading `seq` of device `idx` (the reference's `datagram.payload`).
#[pyfunction]
pub(crate) fn device_payload<'py>(
    py: Python<'py>,
    run_id: &str,
    pad: usize,
    idx: u64,
    seq: u64,
) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(96 + run_id.len() + pad);
    payload(&mut out, run_id.as_bytes(), pad, idx, seq);
    PyBytes::new(py, &out)
}

/// The DATA datagram a device sends: its oldest readings (timestamps from `timestamps`, any iterable,
/// sequences from `first_seq`), at most `batch` of them and at most `max_bytes` bytes (the first always
/// goes), signed with `key`. Returns `(datagram, readings_in_it)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub(crate) fn device_data<'py>(
    py: Python<'py>,
    device_id: &str,
    key: &[u8],
    first_seq: u64,
    timestamps: &Bound<'py, PyAny>,
    batch: usize,
    max_bytes: usize,
    run_id: &str,
    pad: usize,
    idx: u64,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let raw_id = device_id.as_bytes();
    let (mut out, n) = data_body(
        raw_id,
        first_seq,
        timestamps,
        batch,
        max_bytes,
        run_id.as_bytes(),
        pad,
        idx,
    )?;
    let t = tag(key, &out);
    out.extend_from_slice(&t);
    Ok((PyBytes::new(py, &out), n))
}

/// The unsigned DATA datagram of `device_data`: `(bytes up to the tag, readings in it)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn data_body(
    raw_id: &[u8],
    first_seq: u64,
    timestamps: &Bound<'_, PyAny>,
    batch: usize,
    max_bytes: usize,
    run_id: &[u8],
    pad: usize,
    idx: u64,
) -> PyResult<(Vec<u8>, usize)> {
    if raw_id.is_empty() || raw_id.len() > MAX_ID_LEN {
        return Err(PyValueError::new_err(format!(
            "device_id must be 1..{MAX_ID_LEN} UTF-8 bytes, got {}",
            raw_id.len()
        )));
    }
    if check_id(raw_id).is_err() {
        return Err(PyValueError::new_err(
            "device_id must not contain NUL or control characters",
        ));
    }
    let mut out = Vec::with_capacity(max_bytes.min(65_536) + TAG_LEN);
    out.extend_from_slice(b"IB\x01");
    out.push(T_DATA);
    out.push(raw_id.len() as u8);
    out.extend_from_slice(raw_id);
    out.extend_from_slice(&(first_seq as u32).to_be_bytes());
    let count_at = out.len();
    out.push(0);
    let mut size = 4 + 1 + 4 + 1 + TAG_LEN + raw_id.len();
    let mut n = 0usize;
    let mut text = Vec::with_capacity(128 + run_id.len() + pad);
    for ts in timestamps.try_iter()? {
        if n == batch {
            break;
        }
        let ts: u64 = ts?.extract()?;
        text.clear();
        payload(&mut text, run_id, pad, idx, first_seq + n as u64);
        size += READING_OVERHEAD + text.len();
        if n > 0 && size > max_bytes {
            break;
        }
        if text.len() > 0xFFFF {
            return Err(PyValueError::new_err("payload longer than 65535 bytes"));
        }
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&(text.len() as u16).to_be_bytes());
        out.extend_from_slice(&text);
        n += 1;
    }
    if n == 0 || n > MAX_COUNT {
        return Err(PyValueError::new_err(format!(
            "a batch holds 1..{MAX_COUNT} readings, got {n}"
        )));
    }
    if first_seq + n as u64 - 1 > MAX_SEQ {
        return Err(PyValueError::new_err("sequence out of u32 range"));
    }
    out[count_at] = n as u8;
    Ok((out, n))
}

/// An answer's fields, unverified: `(type, device_id, value, tag_offset)` with `value` the ACK's
/// sequence or BUSY's retry-after (ms); AUTH_FAIL is `(0x83, "", 0, 4)`. Malformed answers raise
/// ProtocolError with the reason of `ibp.protocol.parse_response` (its reference here is
/// `ibp.protocol.answer_fields`). `verify(key, answer, tag_offset)` checks the tag.
#[pyfunction]
pub(crate) fn parse_answer<'py>(
    py: Python<'py>,
    answer: &'py [u8],
) -> PyResult<(u8, &'py str, u32, usize)> {
    match fields(answer) {
        // the id passed check_id: UTF-8
        Ok((mtype, id, value, at)) => Ok((mtype, std::str::from_utf8(id).unwrap_or(""), value, at)),
        Err(refused) => Err(raise(py, refused)),
    }
}

pub(crate) fn fields(d: &[u8]) -> Result<(u8, &[u8], u32, usize), Refused> {
    if d.len() < 4 {
        return Err(Refused("truncated", "shorter than the header".into()));
    }
    if &d[..2] != b"IB" {
        return Err(Refused("bad_magic", String::new()));
    }
    if d[2] != 1 {
        return Err(Refused("bad_version", format!("version {}", d[2])));
    }
    let mtype = d[3];
    if mtype == T_AUTH_FAIL {
        if d.len() != 4 {
            return Err(Refused("truncated", "AUTH_FAIL carries nothing".into()));
        }
        return Ok((mtype, &d[..0], 0, 4));
    }
    if mtype != T_ACK && mtype != T_BUSY {
        return Err(Refused("bad_type", format!("type 0x{mtype:02x}")));
    }
    if d.len() <= 4 {
        return Err(Refused("truncated", "no device id length".into()));
    }
    let n = d[4] as usize;
    if !(1..=MAX_ID_LEN).contains(&n) {
        return Err(Refused("bad_device_id", format!("id length {n}")));
    }
    let end = 5 + n;
    if end > d.len() {
        return Err(Refused("truncated", "device id runs past the end".into()));
    }
    let id = &d[5..end];
    check_id(id)?;
    let size = if mtype == T_ACK { 4 } else { 2 };
    if end + size + TAG_LEN != d.len() {
        return Err(Refused("truncated", "wrong length".into()));
    }
    let value = if mtype == T_ACK {
        be_u32(&d[end..])
    } else {
        u16::from_be_bytes([d[end], d[end + 1]]) as u32
    };
    Ok((mtype, id, value, end + size))
}
