//! A fleet's devices as the wire sees them: ids, keys, and the fleet's datagram rules, held natively.
//!
//! At one reading a second per device, a simulator process of 200,000 devices reads 200,000 answers a
//! second and sends as many DATA datagrams. One Python call per answer to parse it, a dict lookup for
//! its device and a second call to check its tag cost about 1.5 µs; each DATA datagram's call took nine
//! arguments, and both keyed HMAC-SHA256 anew (two of the four or five SHA-256 blocks of a short
//! message are the key's). `DeviceBook` keeps every device's keyed HMAC state and its id's index:
//! `data(idx, first_seq, timestamps)` is `device_data` with the fleet's constants, and
//! `Receiver.recv_answers` (recv.rs) reads, parses and verifies a whole `recvmmsg` of answers in one
//! call. Same bytes and decisions as the Python reference (`simulator.devices.datagram.judge_answer`,
//! `device_data`), held equal by tests/simulator/test_native_device.py.

use std::collections::HashMap;

use hmac::Mac;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::device::{data_body, fields};
use crate::{check_id, HmacSha256, MAX_ID_LEN, T_AUTH_FAIL};

/// `check`'s answer for a datagram no device can use (malformed, unknown device, wrong tag)
pub(crate) const BAD: (u8, i64, u32) = (0, -1, 0);
pub(crate) const AUTH_FAIL: (u8, i64, u32) = (T_AUTH_FAIL, -1, 0);

#[pyclass(module = "ibp_native", frozen)]
pub(crate) struct DeviceBook {
    ids: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, u32>,
    macs: Vec<HmacSha256>,
    run_id: Vec<u8>,
    pad: usize,
    batch: usize,
    max_bytes: usize,
}

impl DeviceBook {
    /// `(type, device index, value)` of a verified ACK or BUSY; `AUTH_FAIL`; or `BAD`.
    pub(crate) fn judge(&self, d: &[u8]) -> (u8, i64, u32) {
        let Ok((mtype, id, value, at)) = fields(d) else {
            return BAD;
        };
        if mtype == T_AUTH_FAIL {
            return AUTH_FAIL;
        }
        let Some(&i) = self.index.get(id) else {
            return BAD;
        };
        let mut mac = self.macs[i as usize].clone();
        mac.update(&d[..at]);
        if mac.verify_slice(&d[at..]).is_ok() {
            (mtype, i as i64, value)
        } else {
            BAD
        }
    }
}

#[pymethods]
impl DeviceBook {
    /// `DeviceBook(ids, keys, run_id, pad, batch, max_bytes)`: device i is `ids[i]` with `keys[i]`; the
    /// rest are the fleet's payload and datagram rules (`device_data`'s arguments of the same names).
    #[new]
    fn new(
        ids: Vec<String>,
        keys: Vec<Vec<u8>>,
        run_id: &str,
        pad: usize,
        batch: usize,
        max_bytes: usize,
    ) -> PyResult<Self> {
        if ids.len() != keys.len() || ids.len() > u32::MAX as usize {
            return Err(PyValueError::new_err(format!(
                "DeviceBook: {} ids and {} keys: one key per device",
                ids.len(),
                keys.len()
            )));
        }
        let mut index = HashMap::with_capacity(ids.len());
        let mut boxed = Vec::with_capacity(ids.len());
        for (i, id) in ids.into_iter().enumerate() {
            let raw = id.into_bytes().into_boxed_slice();
            if raw.is_empty() || raw.len() > MAX_ID_LEN || check_id(&raw).is_err() {
                return Err(PyValueError::new_err(format!(
                    "DeviceBook: device {i}: an id is 1..{MAX_ID_LEN} UTF-8 bytes without control characters"
                )));
            }
            if index.insert(raw.clone(), i as u32).is_some() {
                return Err(PyValueError::new_err(format!(
                    "DeviceBook: device {i}: id {:?} is there twice",
                    String::from_utf8_lossy(&raw)
                )));
            }
            boxed.push(raw);
        }
        let macs = keys
            .iter()
            .map(|k| HmacSha256::new_from_slice(k).expect("HMAC takes any key length"))
            .collect();
        Ok(Self {
            ids: boxed,
            index,
            macs,
            run_id: run_id.as_bytes().to_vec(),
            pad,
            batch,
            max_bytes,
        })
    }

    fn __len__(&self) -> usize {
        self.ids.len()
    }

    /// What a device makes of `answer`: `(type, device index, value)` for an ACK (value: its sequence)
    /// or a BUSY (retry-after, ms) whose tag is the device's; `(0x83, -1, 0)` for AUTH_FAIL (it carries
    /// no device); `(0, -1, 0)` for anything else (malformed, unknown device, wrong tag).
    fn check(&self, answer: &[u8]) -> (u8, i64, u32) {
        self.judge(answer)
    }

    /// `device_data(ids[idx], keys[idx], first_seq, timestamps, batch, max_bytes, run_id, pad, idx)`.
    fn data<'py>(
        &self,
        py: Python<'py>,
        idx: usize,
        first_seq: u64,
        timestamps: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        let Some(id) = self.ids.get(idx) else {
            return Err(PyValueError::new_err(format!(
                "DeviceBook.data: no device {idx} in a book of {}",
                self.ids.len()
            )));
        };
        let (mut out, n) = data_body(
            id,
            first_seq,
            timestamps,
            self.batch,
            self.max_bytes,
            &self.run_id,
            self.pad,
            idx as u64,
        )?;
        let mut mac = self.macs[idx].clone();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        Ok((PyBytes::new(py, &out), n))
    }
}
