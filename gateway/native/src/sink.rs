//! The capacity yardstick's answering side: ACK every DATA datagram at once, many per system call.
//!
//! `make simulator-capacity` measures how many devices one simulator process holds against a local
//! sink that acks at once (harness/sink.py). On two cores the sink gets one: in Python it spent about
//! 7 µs of CPU per datagram (a callback, slicing, a dict lookup and an ACK per datagram), so near
//! 140,000 datagrams a second it took its whole core and the simulator's count stopped there whatever
//! the simulator's own cost. `AckResponder.serve(fd)` reads up to `slots` datagrams with one
//! `recvmmsg`, builds each one's ACK (the device key derived once per device and kept keyed, as
//! `ibp.protocol.derive_device_key`), and answers them all with `sendmmsg`, each to its sender. Like
//! the Python sink it verifies nothing: the point is to answer fast, not to judge. Both ways the
//! kernel's work per datagram is cut too: the socket has UDP_GRO, so a run of one device socket's
//! segmented datagrams arrives as one buffer, and the ACKs of a run go back as one segmented message.

use std::collections::HashMap;

use hmac::Mac;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::recv::Receiver;
use crate::send::{segment_runs, send_run_msgs, Name};
use crate::{answer_body, be_u32, HmacSha256, MAX_ID_LEN, TAG_LEN, T_ACK, T_DATA};

const KEY_LABEL: &[u8] = b"ibp1-device-key:";
/// devices whose keyed HMAC is kept; the cache starts over when it is full
const KEYS_MAX: usize = 2_000_000;
/// how long one `serve` waits, at most, for room in a full send buffer before it drops the rest
const SEND_WAIT_MS: libc::c_int = 50;

#[pyclass(module = "ibp_native")]
pub(crate) struct AckResponder {
    master: Vec<u8>,
    rx: Receiver,
    keys: HashMap<Box<[u8]>, HmacSha256>,
    out: Vec<u8>,
    /// (start in `out`, length, slot of the datagram answered) of each ACK of this round
    acks: Vec<(usize, usize, usize)>,
    datagrams: u64,
    readings: u64,
    dropped: u64,
}

/// `(device id, last sequence, readings)` of a DATA datagram's header, or None.
fn data_head(d: &[u8]) -> Option<(&[u8], u32, u32)> {
    if d.len() < 10 || &d[..3] != b"IB\x01" || d[3] != T_DATA {
        return None;
    }
    let n = d[4] as usize;
    if n == 0 || n > MAX_ID_LEN || d.len() < 5 + n + 5 {
        return None;
    }
    let first = be_u32(&d[5 + n..]);
    let count = d[5 + n + 4] as u32;
    if count == 0 {
        return None;
    }
    Some((&d[5..5 + n], first.wrapping_add(count - 1), count))
}

#[pymethods]
impl AckResponder {
    /// `AckResponder(master_key, slots, size)`: reads `slots` datagrams per call, each up to `size` bytes.
    #[new]
    fn new(master_key: &[u8], slots: usize, size: usize) -> PyResult<Self> {
        if master_key.is_empty() {
            return Err(PyValueError::new_err(
                "AckResponder: the fleet master key is empty",
            ));
        }
        Ok(Self {
            master: master_key.to_vec(),
            rx: Receiver::new(slots, size, true)?,
            keys: HashMap::new(),
            out: Vec::with_capacity(slots * (5 + MAX_ID_LEN + 4 + TAG_LEN)),
            acks: Vec::with_capacity(slots),
            datagrams: 0,
            readings: 0,
            dropped: 0,
        })
    }

    /// One `recvmmsg` on `fd` and the ACKs of what came; returns how many datagrams came (0: none
    /// waiting). Errors of the receive raise OSError; an ACK the kernel refuses is counted in `dropped`.
    fn serve(&mut self, fd: i32) -> PyResult<usize> {
        let n = self.rx.fill(fd)?;
        self.out.clear();
        self.acks.clear();
        for (i, d) in (0..n).flat_map(|i| self.rx.segments(i).map(move |d| (i, d))) {
            let Some((raw_id, last, count)) = data_head(d) else {
                continue;
            };
            if !self.keys.contains_key(raw_id) {
                if self.keys.len() >= KEYS_MAX {
                    self.keys.clear();
                }
                let mut derive =
                    HmacSha256::new_from_slice(&self.master).expect("HMAC takes any key length");
                derive.update(KEY_LABEL);
                derive.update(raw_id);
                let key = derive.finalize().into_bytes();
                let mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
                self.keys.insert(raw_id.into(), mac);
            }
            let mut mac = self.keys[raw_id].clone();
            let start = self.out.len();
            answer_body(&mut self.out, raw_id, T_ACK, &last.to_be_bytes());
            mac.update(&self.out[start..]);
            self.out.extend_from_slice(&mac.finalize().into_bytes());
            self.acks.push((start, self.out.len() - start, i));
            self.datagrams += 1;
            self.readings += count as u64;
        }
        self.answer(fd);
        Ok(n)
    }

    #[getter]
    fn datagrams(&self) -> u64 {
        self.datagrams
    }

    #[getter]
    fn readings(&self) -> u64 {
        self.readings
    }

    /// ACKs the kernel refused or had no room for (the device times out and sends again)
    #[getter]
    fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl AckResponder {
    /// Send this round's ACKs, each to the source of its datagram, a run of equal ACKs to one sender as
    /// one segmented message (send.rs); a full send buffer is waited for (`SEND_WAIT_MS` at most), an
    /// ACK the kernel refuses is skipped and counted.
    fn answer(&mut self, fd: i32) {
        let mut iovs: Vec<libc::iovec> = self
            .acks
            .iter()
            .map(|&(start, len, _)| libc::iovec {
                iov_base: self.out[start..].as_ptr() as *mut libc::c_void,
                iov_len: len,
            })
            .collect();
        // runs: consecutive ACKs to one sender, cut where send.rs's segmenting rule cuts them
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut names: Vec<Name> = Vec::new();
        let mut g = 0;
        while g < self.acks.len() {
            let slot = self.acks[g].2;
            let mut end = g + 1;
            while end < self.acks.len() && self.rx.same_source(slot, self.acks[end].2) {
                end += 1;
            }
            let lens: Vec<usize> = self.acks[g..end].iter().map(|a| a.1).collect();
            let (name, len) = self.rx.name(slot);
            for run in segment_runs(&lens) {
                runs.push(run);
                names.push((*name, len));
            }
            g = end;
        }
        let (mut done, mut first) = (0usize, 0usize); // runs sent, and their datagrams
        while done < runs.len() {
            // SAFETY: the iovecs point into `self.out`, untouched until this returns
            let went = unsafe {
                send_run_msgs(
                    fd,
                    &mut iovs[first..],
                    &runs[done..],
                    Some(&mut names[done..]),
                )
            };
            match went {
                Ok(k) => {
                    first += runs[done..done + k].iter().map(|r| r.0).sum::<usize>();
                    done += k;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd
                    if unsafe { libc::poll(&mut p, 1, SEND_WAIT_MS) } <= 0 {
                        self.dropped += (self.acks.len() - first) as u64;
                        return;
                    }
                }
                Err(_) => {
                    // that run's ACKs (its sender is gone, or the route cannot segment): the next
                    self.dropped += runs[done].0 as u64;
                    first += runs[done].0;
                    done += 1;
                }
            }
        }
    }
}
