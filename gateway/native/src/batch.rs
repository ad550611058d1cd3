//! A Kafka record batch (message format v2) filled from Rust and handed to aiokafka's `send_batch()`.
//!
//! aiokafka's own `BatchBuilder` costs one Python call per record (its wrapper, then its Cython
//! builder) and compresses lz4 at level 9 whatever the config says. `RecordBatch` takes a whole
//! datagram's `Records` in one call, writes the values in place, and compresses once per batch with
//! the codec function the gateway chose (gateway/batch.py), so the level is the user's. It has the
//! methods aiokafka's producer calls on a builder (`_build`, `size`, `record_count`, `close`,
//! `closed`, `_set_producer_state`) and builds the same bytes as aiokafka's builder for the same
//! records and codec (tests/gateway/test_batch.py holds them equal).
//!
//! Layout (Kafka's DefaultRecordBatch): a 61-byte header, then the records, compressed as a whole
//! when a codec is set (even when that does not make them smaller, as aiokafka does). Each record is
//! `length, attributes, timestamp delta, offset delta, key, value, header count` with zig-zag varints.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PySequence, PyTuple};

use crate::records::Records;

const HEADER_LEN: usize = 61;
const LENGTH_AT: usize = 8; // batchLength: the bytes after it
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21; // the CRC covers from here to the end

fn varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        n += 1;
        v >>= 7;
    }
    n
}

/// One partition's batch being filled; see the module docs.
#[pyclass(module = "ibp_native")]
pub(crate) struct RecordBatch {
    buf: Vec<u8>,
    max_bytes: usize,
    count: i32,
    first_ts: i64,
    max_ts: i64,
    codec: i16,
    compress: Option<Py<PyAny>>,
    closed: bool,
    built: Option<Py<PyBytes>>,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record: Vec<u8>,
    value: Vec<u8>,
}

impl RecordBatch {
    /// Append one record unless the batch is closed, or full and not empty (as aiokafka: the first
    /// record always goes in, however large). The value is in `self.value`.
    fn push(&mut self, key: Option<&[u8]>, ts: i64) -> bool {
        if self.closed {
            return false;
        }
        let first = self.count == 0;
        let delta = if first { 0 } else { ts - self.first_ts };
        let r = &mut self.record;
        r.clear();
        r.push(0); // attributes
        varint(r, delta);
        varint(r, self.count as i64);
        match key {
            Some(k) => {
                varint(r, k.len() as i64);
                r.extend_from_slice(k);
            }
            None => varint(r, -1),
        }
        varint(r, self.value.len() as i64);
        r.extend_from_slice(&self.value);
        r.push(0); // no headers
        let len = r.len() as i64;
        // full at max_bytes itself: the rule of aiokafka's compiled builder (its pure-Python one allows it)
        if !first && self.buf.len() + varint_len(len) + r.len() >= self.max_bytes {
            self.closed = true; // as aiokafka's BatchBuilder: full once, closed for good
            return false;
        }
        if first {
            self.first_ts = ts;
            self.max_ts = ts;
        } else if ts > self.max_ts {
            self.max_ts = ts;
        }
        varint(&mut self.buf, len);
        self.buf.extend_from_slice(&self.record);
        self.count += 1;
        true
    }

    fn header(&mut self, attributes: i16) {
        let total = self.buf.len();
        let last_offset = if self.count > 0 { self.count - 1 } else { 0 };
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&((total - 12) as i32).to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch: the broker's
        b[16] = 2; // magic
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        b[23..27].copy_from_slice(&last_offset.to_be_bytes());
        b[27..35].copy_from_slice(&self.first_ts.to_be_bytes());
        b[35..43].copy_from_slice(&self.max_ts.to_be_bytes());
        b[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        b[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        b[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        b[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[pymethods]
impl RecordBatch {
    /// ``RecordBatch(max_bytes, codec=0, compress=None)``: ``codec`` is the attributes' compression
    /// bits (1 gzip, 2 snappy, 3 lz4, 4 zstd) and ``compress(bytes) -> bytes`` its function.
    #[new]
    #[pyo3(signature = (max_bytes, codec=0, compress=None))]
    fn new(max_bytes: usize, codec: i16, compress: Option<Py<PyAny>>) -> PyResult<Self> {
        if !(0..=4).contains(&codec) || (codec != 0) != compress.is_some() {
            return Err(PyValueError::new_err(
                "codec must be 0 without compress, or 1..4 with a compress function",
            ));
        }
        Ok(RecordBatch {
            buf: vec![0; HEADER_LEN],
            max_bytes,
            count: 0,
            first_ts: 0,
            max_ts: 0,
            codec,
            compress,
            closed: false,
            built: None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: 0,
            record: Vec::with_capacity(256),
            value: Vec::with_capacity(256),
        })
    }

    /// Append one record; False when the batch is full (it is then closed).
    #[pyo3(signature = (key, value, timestamp))]
    fn append(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> bool {
        self.value.clear();
        self.value.extend_from_slice(value);
        self.push(key, timestamp)
    }

    /// Append ``records[start:]`` (a native ``Records`` or any sequence of ``(value, timestamp_ms)``),
    /// all with ``key``, until the batch is full; returns the index of the first record left out
    /// (``len(records)`` when all went in).
    #[pyo3(signature = (key, records, start))]
    fn append_from(
        &mut self,
        py: Python<'_>,
        key: Option<&[u8]>,
        records: &Bound<'_, PyAny>,
        start: usize,
    ) -> PyResult<usize> {
        if let Ok(native) = records.downcast::<Records>() {
            let recs = native.get();
            let readings = recs.readings.bind(py).get();
            let data = readings.data.bind(py).as_bytes();
            let mut k = start;
            while k < recs.picks.len() {
                self.value.clear();
                recs.write_value(data, readings, k, &mut self.value);
                if !self.push(key, recs.now_ms) {
                    break;
                }
                k += 1;
            }
            return Ok(k);
        }
        let seq = records.downcast::<PySequence>()?;
        let n = seq.len()?;
        let mut k = start;
        while k < n {
            let item = seq.get_item(k)?;
            let pair = item.downcast::<PyTuple>()?;
            let value = pair.get_item(0)?;
            let value = value.downcast::<PyBytes>()?;
            let ts: i64 = pair.get_item(1)?.extract()?;
            self.value.clear();
            self.value.extend_from_slice(value.as_bytes());
            if !self.push(key, ts) {
                break;
            }
            k += 1;
        }
        Ok(k)
    }

    /// The batch's bytes (built once: compress, header, CRC-32C); closes it.
    fn _build(&mut self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        if let Some(built) = &self.built {
            return Ok(built.clone_ref(py));
        }
        self.closed = true;
        let mut attributes = 0i16;
        if let Some(compress) = &self.compress {
            let plain = PyBytes::new(py, &self.buf[HEADER_LEN..]);
            let packed = compress.bind(py).call1((plain,))?;
            let packed = packed.downcast::<PyBytes>()?.as_bytes();
            // always, even when it does not shrink: as aiokafka's (compiled) builder
            self.buf.truncate(HEADER_LEN);
            self.buf.extend_from_slice(packed);
            attributes = self.codec;
        }
        self.header(attributes);
        let built = PyBytes::new(py, &self.buf).unbind();
        self.buf = Vec::new();
        self.built = Some(built.clone_ref(py));
        Ok(built)
    }

    /// Bytes so far (uncompressed until built).
    fn size(&self, py: Python<'_>) -> usize {
        match &self.built {
            Some(b) => b.bind(py).as_bytes().len(),
            None => self.buf.len(),
        }
    }

    fn record_count(&self) -> i32 {
        self.count
    }

    fn close(&mut self) {
        self.closed = true;
    }

    fn closed(&self) -> bool {
        self.closed
    }

    /// Called by aiokafka for an idempotent producer (the gateway's are not).
    fn _set_producer_state(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
    }
}
