//! The Kafka record values of one datagram's readings, built only when they are needed.
//!
//! `build_records` used to return a Python list of `(value, now_ms)` tuples: two Python objects and
//! one copy per reading, then one aiokafka `append()` call per reading. `Records` keeps the
//! datagram and the choice of readings instead; `RecordBatch::append_from` (batch.rs) writes each
//! value straight into the Kafka batch, and indexing it still gives the reference's tuples
//! (tests/gateway/test_fastpath.py compares the two).

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::Readings;

/// ``[(value, now_ms)]`` for the readings of one datagram, as a read-only sequence; with ranges, only
/// the sequence numbers inside one of the inclusive ``(lo, hi)`` ranges.
#[pyclass(frozen, module = "ibp_native")]
pub(crate) struct Records {
    pub(crate) readings: Py<Readings>,
    pub(crate) id_json: Vec<u8>,
    pub(crate) first: u64,
    pub(crate) now_ms: i64,
    /// indices into the readings, in order
    pub(crate) picks: Vec<u32>,
}

impl Records {
    /// Append the value of pick `k`, byte-identical to gateway/fastpath.py's `VALUE % (...)`.
    pub(crate) fn write_value(
        &self,
        data: &[u8],
        readings: &Readings,
        k: usize,
        out: &mut Vec<u8>,
    ) {
        let i = self.picks[k] as usize;
        let item = readings.items[i];
        let mut seq = itoa::Buffer::new();
        let mut ts = itoa::Buffer::new();
        let mut now = itoa::Buffer::new();
        out.extend_from_slice(b"{\"device_id\":");
        out.extend_from_slice(&self.id_json);
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(seq.format(self.first + i as u64).as_bytes());
        out.extend_from_slice(b",\"device_ts_ms\":");
        out.extend_from_slice(ts.format(item.ts).as_bytes());
        out.extend_from_slice(b",\"gateway_ts_ms\":");
        out.extend_from_slice(now.format(self.now_ms).as_bytes());
        out.extend_from_slice(b",\"proto\":\"ibp1\",\"payload\":");
        out.extend_from_slice(&data[item.start..item.start + item.len]);
        out.push(b'}');
    }
}

#[pymethods]
impl Records {
    fn __len__(&self) -> usize {
        self.picks.len()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        let n = self.picks.len() as isize;
        let k = if index < 0 { index + n } else { index };
        if k < 0 || k >= n {
            return Err(PyIndexError::new_err("record index out of range"));
        }
        let readings = self.readings.bind(py).get();
        let data = readings.data.bind(py).as_bytes();
        let mut value = Vec::with_capacity(160);
        self.write_value(data, readings, k as usize, &mut value);
        PyTuple::new(
            py,
            [
                PyBytes::new(py, &value).into_any(),
                self.now_ms.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// The Kafka record values of the readings (see `Records`); the same values as the reference's
/// ``build_records`` list, in the same order.
#[pyfunction]
#[pyo3(signature = (readings, id_json, first, now_ms, ranges=None))]
pub(crate) fn build_records(
    readings: &Bound<'_, Readings>,
    id_json: &[u8],
    first: u64,
    now_ms: i64,
    ranges: Option<Vec<(u64, u64)>>,
) -> Records {
    let n = readings.get().items.len() as u32;
    let picks = match &ranges {
        None => (0..n).collect(),
        Some(ranges) => (0..n)
            .filter(|&i| {
                let seq = first + i as u64;
                ranges.iter().any(|&(lo, hi)| lo <= seq && seq <= hi)
            })
            .collect(),
    };
    Records {
        readings: readings.clone().unbind(),
        id_json: id_json.to_vec(),
        first,
        now_ms,
        picks,
    }
}
