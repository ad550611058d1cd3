//! `ibp_native`: the gateway's per-datagram IBP/1 work in Rust (and the simulated devices', device.rs,
//! book.rs and send.rs, and the capacity sink's, sink.rs).
//!
//! Same decisions, same `ProtocolError` reasons and the same bytes as the pure-Python reference
//! (`gateway/fastpath.py`, itself held equal to `gateway/protocol.py`); tests/gateway/test_fastpath.py
//! holds the three equal on valid and invalid datagrams. `gateway/hotpath.py` picks this module when
//! it imports and `API` matches, else the pure-Python path.

use hmac::{Hmac, Mac};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyTuple};
use sha2::Sha256;

mod batch;
mod book;
mod device;
mod legacy;
mod records;
mod recv;
mod send;
mod sink;

type HmacSha256 = Hmac<Sha256>;

/// Bumped whenever a signature below changes: ibp/native.py refuses a stale build.
const API: u32 = 8;

const HEAD_OK: &[u8; 4] = b"IB\x01\x01";
const VERSION: u8 = 1;
pub(crate) const MAX_ID_LEN: usize = 64;
pub(crate) const TAG_LEN: usize = 32;
pub(crate) const MAX_SEQ: u64 = 0xFFFF_FFFF;
pub(crate) const T_DATA: u8 = 0x01;
pub(crate) const T_ACK: u8 = 0x81;
pub(crate) const T_BUSY: u8 = 0x82;
pub(crate) const T_AUTH_FAIL: u8 = 0x83;
/// CPython refuses integer literals longer than this (sys.get_int_max_str_digits()); the reference
/// then answers "not JSON", so this module does too.
const INT_MAX_STR_DIGITS: usize = 4300;
/// Deeper nesting is refused. The reference's limit is CPython's recursion limit (1000, minus the
/// frames below it); a payload needs more than 1,800 bytes to get near either.
const MAX_DEPTH: usize = 900;

static PROTOCOL_ERROR: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// A refusal: the metrics reason and a detail, raised as ibp.protocol.ProtocolError.
pub(crate) struct Refused(pub(crate) &'static str, pub(crate) String);

pub(crate) fn raise(py: Python<'_>, refused: Refused) -> PyErr {
    let class = PROTOCOL_ERROR.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("ibp.protocol")?
            .getattr("ProtocolError")?
            .unbind())
    });
    match class {
        Ok(class) => match class.bind(py).call1((refused.0, refused.1)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

pub(crate) fn check_id(raw: &[u8]) -> Result<(), Refused> {
    if std::str::from_utf8(raw).is_err() {
        return Err(Refused("bad_device_id", "not UTF-8".into()));
    }
    if raw.iter().any(|&b| b < 0x20 || b == 0x7F) {
        return Err(Refused("bad_device_id", "control character".into()));
    }
    Ok(())
}

/// One reading inside the datagram: device timestamp, payload start and length.
#[derive(Clone, Copy)]
struct Item {
    ts: u64,
    start: usize,
    len: usize,
}

struct Parsed {
    id_end: usize,
    first: u64,
    items: Vec<Item>,
    tag_at: usize,
}

pub(crate) fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The structure of a DATA datagram, checked in the reference's order. The device id is checked
/// only on the way to a refusal (the caller checks it for devices it does not know yet).
fn parse(d: &[u8]) -> Result<Parsed, Refused> {
    let size = d.len();
    if size < 4 || &d[..4] != HEAD_OK {
        if size < 4 {
            return Err(Refused("truncated", "shorter than the header".into()));
        }
        if &d[..2] != b"IB" {
            return Err(Refused("bad_magic", String::new()));
        }
        if d[2] != VERSION {
            return Err(Refused("bad_version", format!("version {}", d[2])));
        }
        return Err(Refused("bad_type", format!("type 0x{:02x}", d[3])));
    }
    if size <= 4 {
        return Err(Refused("truncated", "no device id length".into()));
    }
    let n = d[4] as usize;
    if !(1..=MAX_ID_LEN).contains(&n) {
        return Err(Refused("bad_device_id", format!("id length {n}")));
    }
    let mut off = 5 + n;
    if off > size {
        return Err(Refused("truncated", "device id runs past the end".into()));
    }
    let raw_id = &d[5..off];
    if off + 5 + TAG_LEN > size {
        check_id(raw_id)?;
        return Err(Refused("truncated", "no sequence/count".into()));
    }
    let first = be_u32(&d[off..off + 4]) as u64;
    let count = d[off + 4] as usize;
    off += 5;
    let end = size - TAG_LEN;
    let mut items = Vec::with_capacity(count);
    let mut filled = count > 0 && first + count as u64 - 1 <= MAX_SEQ;
    if filled {
        for _ in 0..count {
            if off + 10 > end {
                filled = false;
                break;
            }
            let ts = u64::from_be_bytes(d[off..off + 8].try_into().unwrap());
            let len = u16::from_be_bytes([d[off + 8], d[off + 9]]) as usize;
            off += 10;
            if off + len > end {
                filled = false;
                break;
            }
            items.push(Item {
                ts,
                start: off,
                len,
            });
            off += len;
        }
        filled = filled && off == end;
    }
    if !filled {
        check_id(raw_id)?;
        if count == 0 {
            return Err(Refused("invalid", "count 0".into()));
        }
        if first + count as u64 - 1 > MAX_SEQ {
            return Err(Refused("invalid", "sequence overflow".into()));
        }
        return Err(Refused(
            "truncated",
            "readings do not fill the datagram up to the tag".into(),
        ));
    }
    Ok(Parsed {
        id_end: 5 + n,
        first,
        items,
        tag_at: end,
    })
}

/// The readings of one parsed datagram: a sequence of ``(timestamp_ms, payload)`` like the
/// reference's list, but the payloads stay inside the datagram until someone asks for them.
#[pyclass(frozen, module = "ibp_native")]
struct Readings {
    data: Py<PyBytes>,
    items: Vec<Item>,
}

#[pymethods]
impl Readings {
    fn __len__(&self) -> usize {
        self.items.len()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        let n = self.items.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if i < 0 || i >= n {
            return Err(PyIndexError::new_err("reading index out of range"));
        }
        let item = self.items[i as usize];
        let data = self.data.bind(py).as_bytes();
        let payload = PyBytes::new(py, &data[item.start..item.start + item.len]);
        PyTuple::new(
            py,
            [item.ts.into_pyobject(py)?.into_any(), payload.into_any()],
        )
    }
}

/// ``(raw_device_id, first_seq, readings, tag_offset)``; raises ProtocolError like the reference.
#[pyfunction]
fn parse_data_raw<'py>(
    py: Python<'py>,
    datagram: &Bound<'py, PyBytes>,
) -> PyResult<(Bound<'py, PyBytes>, u64, Readings, usize)> {
    let d = datagram.as_bytes();
    let parsed = parse(d).map_err(|r| raise(py, r))?;
    let raw_id = PyBytes::new(py, &d[5..parsed.id_end]);
    let readings = Readings {
        data: datagram.clone().unbind(),
        items: parsed.items,
    };
    Ok((raw_id, parsed.first, readings, parsed.tag_at))
}

pub(crate) fn tag(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// True when the datagram's last bytes are HMAC-SHA256(key, datagram[:tag_offset]) (constant time).
#[pyfunction]
fn verify(key: &[u8], datagram: &[u8], tag_offset: usize) -> bool {
    if tag_offset > datagram.len() {
        return false; // the reference compares against an empty tag: never equal
    }
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&datagram[..tag_offset]);
    mac.verify_slice(&datagram[tag_offset..]).is_ok()
}

fn answer<'py>(
    py: Python<'py>,
    raw_id: &[u8],
    key: &[u8],
    mtype: u8,
    value: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    if raw_id.len() > 255 {
        return Err(PyValueError::new_err("device id longer than 255 bytes"));
    }
    let mut out = Vec::with_capacity(5 + raw_id.len() + value.len() + TAG_LEN);
    answer_body(&mut out, raw_id, mtype, value);
    let t = tag(key, &out);
    out.extend_from_slice(&t);
    Ok(PyBytes::new(py, &out))
}

/// An answer up to its tag, appended to `out`: header, id (at most 255 bytes), value.
pub(crate) fn answer_body(out: &mut Vec<u8>, raw_id: &[u8], mtype: u8, value: &[u8]) {
    out.extend_from_slice(b"IB");
    out.push(VERSION);
    out.push(mtype);
    out.push(raw_id.len() as u8);
    out.extend_from_slice(raw_id);
    out.extend_from_slice(value);
}

/// ACK for an already valid raw id, byte-identical to ibp.protocol.encode_ack.
#[pyfunction]
fn encode_ack<'py>(
    py: Python<'py>,
    raw_id: &[u8],
    key: &[u8],
    ack_seq: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    answer(py, raw_id, key, T_ACK, &ack_seq.to_be_bytes())
}

/// BUSY for an already valid raw id, byte-identical to ibp.protocol.encode_busy.
#[pyfunction]
fn encode_busy<'py>(
    py: Python<'py>,
    raw_id: &[u8],
    key: &[u8],
    retry_after_ms: u16,
) -> PyResult<Bound<'py, PyBytes>> {
    answer(py, raw_id, key, T_BUSY, &retry_after_ms.to_be_bytes())
}

// ---------------------------------------------------------------- JSON: is it an object?
//
// A validator, not a parser: it walks the bytes once and builds nothing. It accepts exactly what the
// reference (CPython's json scanner with NaN/Infinity refused) accepts: strict UTF-8 first, JSON
// whitespace = space, tab, LF, CR; control characters refused inside strings; any \uXXXX accepted
// (lone surrogates too, as CPython does).

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(p: &[u8], mut i: usize) -> usize {
    while i < p.len() && is_ws(p[i]) {
        i += 1;
    }
    i
}

fn string(p: &[u8], mut i: usize) -> Option<usize> {
    i += 1; // the opening quote
    loop {
        let c = *p.get(i)?;
        match c {
            b'"' => return Some(i + 1),
            b'\\' => match *p.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = p.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            0x00..=0x1F => return None,
            _ => i += 1,
        }
    }
}

fn digits(p: &[u8], mut i: usize) -> usize {
    while i < p.len() && p[i].is_ascii_digit() {
        i += 1;
    }
    i
}

fn number(p: &[u8], mut i: usize) -> Option<usize> {
    if p[i] == b'-' {
        i += 1;
    }
    let int_start = i;
    match *p.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(p, i + 1),
        _ => return None, // includes -Infinity: a constant the reference refuses
    }
    let int_digits = i - int_start;
    let mut is_float = false;
    if i + 1 < p.len() && p[i] == b'.' && p[i + 1].is_ascii_digit() {
        is_float = true;
        i = digits(p, i + 2);
    }
    if i + 1 < p.len() && (p[i] == b'e' || p[i] == b'E') {
        let mut j = i + 1;
        if j + 1 < p.len() && (p[j] == b'+' || p[j] == b'-') {
            j += 1;
        }
        let k = digits(p, j);
        if k > j {
            is_float = true;
            i = k;
        } // else: not an exponent; the 'e' is left for the caller to refuse
    }
    if !is_float && int_digits > INT_MAX_STR_DIGITS {
        return None;
    }
    Some(i)
}

fn literal(p: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    if p.get(i..i + word.len())? == word {
        Some(i + word.len())
    } else {
        None
    }
}

fn value(p: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *p.get(i)? {
        b'{' => object(p, i, depth + 1),
        b'[' => array(p, i, depth + 1),
        b'"' => string(p, i),
        b'n' => literal(p, i, b"null"),
        b't' => literal(p, i, b"true"),
        b'f' => literal(p, i, b"false"),
        b'-' | b'0'..=b'9' => number(p, i),
        _ => None, // NaN, Infinity and everything else
    }
}

fn object(p: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut i = skip_ws(p, i + 1);
    if *p.get(i)? == b'}' {
        return Some(i + 1);
    }
    loop {
        if *p.get(i)? != b'"' {
            return None;
        }
        i = skip_ws(p, string(p, i)?);
        if *p.get(i)? != b':' {
            return None;
        }
        i = skip_ws(p, value(p, skip_ws(p, i + 1), depth)?);
        match *p.get(i)? {
            b'}' => return Some(i + 1),
            b',' => i = skip_ws(p, i + 1),
            _ => return None,
        }
    }
}

fn array(p: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut i = skip_ws(p, i + 1);
    if *p.get(i)? == b']' {
        return Some(i + 1);
    }
    loop {
        i = skip_ws(p, value(p, i, depth)?);
        match *p.get(i)? {
            b']' => return Some(i + 1),
            b',' => i = skip_ws(p, i + 1),
            _ => return None,
        }
    }
}

pub(crate) fn is_object(p: &[u8]) -> bool {
    if std::str::from_utf8(p).is_err() {
        return false;
    }
    let i = skip_ws(p, 0);
    if p.get(i) != Some(&b'{') {
        return false;
    }
    match object(p, i, 1) {
        Some(end) => skip_ws(p, end) == p.len(),
        None => false,
    }
}

/// True when ``payload`` is a UTF-8 JSON object (strict: no NaN/Infinity), as the reference decides.
#[pyfunction]
fn payload_is_object(payload: &[u8]) -> bool {
    is_object(payload)
}

/// True when every reading's payload is a JSON object.
#[pyfunction]
fn payloads_ok(py: Python<'_>, readings: &Bound<'_, Readings>) -> bool {
    let r = readings.get();
    let data = r.data.bind(py).as_bytes();
    r.items
        .iter()
        .all(|it| is_object(&data[it.start..it.start + it.len]))
}

#[pymodule]
fn ibp_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("API", API)?;
    m.add_class::<Readings>()?;
    m.add_function(wrap_pyfunction!(parse_data_raw, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(encode_ack, m)?)?;
    m.add_function(wrap_pyfunction!(encode_busy, m)?)?;
    m.add_function(wrap_pyfunction!(payload_is_object, m)?)?;
    m.add_function(wrap_pyfunction!(payloads_ok, m)?)?;
    m.add_class::<records::Records>()?;
    m.add_class::<batch::RecordBatch>()?;
    m.add_function(wrap_pyfunction!(records::build_records, m)?)?;
    m.add_function(wrap_pyfunction!(legacy::legacy_binary_record, m)?)?;
    m.add_class::<recv::Receiver>()?;
    m.add_function(wrap_pyfunction!(send::send_many, m)?)?;
    m.add_function(wrap_pyfunction!(send::send_many_to, m)?)?;
    m.add_function(wrap_pyfunction!(send::send_segments, m)?)?;
    m.add_function(wrap_pyfunction!(device::device_payload, m)?)?;
    m.add_function(wrap_pyfunction!(device::device_data, m)?)?;
    m.add_function(wrap_pyfunction!(device::parse_answer, m)?)?;
    m.add_class::<book::DeviceBook>()?;
    m.add_class::<sink::AckResponder>()?;
    Ok(())
}
