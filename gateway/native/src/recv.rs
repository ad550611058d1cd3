//! Many datagrams per system call: `recvmmsg(2)` on the worker's non-blocking UDP socket.
//!
//! The event loop's datagram transport makes one `recvfrom` and one Python callback per datagram, about
//! 2.5 µs on this machine before the gateway sees a byte; at one reading per datagram (the legacy
//! devices) that was a third of the worker's CPU. `Receiver.recv(fd)` takes up to `slots` datagrams in
//! one call into buffers it keeps, and hands them back as `(bytes, address)` pairs, the address a tuple
//! like Python's `socket.recvfrom` gives (`(host, port)`, or `(host, port, flowinfo, scope_id)` for
//! IPv6), cached per source so a device's address is built once. A datagram longer than the slot
//! (`size` bytes) comes back cut to `size` bytes: make `size` one more than the largest datagram you
//! accept, and the length tells the gateway it was too large. With `gro` (the socket has `UDP_GRO`),
//! the kernel may hand a run of one sender's equal-sized datagrams (a segmented message, send.rs) over
//! as one buffer, one trip through its stack instead of one per datagram; the receiver cuts it back
//! into the datagrams by the segment size the kernel reports.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::book::{DeviceBook, AUTH_FAIL, BAD};

const MAX_SLOTS: usize = 1024;
const CACHE_MAX: usize = 65_536; // addresses kept; the cache starts over when full

#[derive(Hash, PartialEq, Eq)]
enum Source {
    V4(u32, u16),
    V6([u8; 16], u16, u32, u32),
}

#[pyclass(module = "ibp_native")]
pub(crate) struct Receiver {
    slots: usize,
    size: usize,
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    addrs: HashMap<Source, Py<PyTuple>>,
    /// UDP_GRO on the socket: a slot may hold several datagrams of `segs[i]` bytes (the last shorter)
    gro: bool,
    control: Vec<u64>,
    segs: Vec<usize>,
}

/// `UDP_GRO` of linux/udp.h: the receive-side twin of `UDP_SEGMENT` (send.rs)
const UDP_GRO: libc::c_int = 104;

/// Bytes of the control buffer of one slot with UDP_GRO: one `int` control message (the segment size)
fn gro_space() -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize }
}

fn source(name: &libc::sockaddr_storage) -> Option<Source> {
    match name.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in when the family is AF_INET
            let a = unsafe { &*(name as *const _ as *const libc::sockaddr_in) };
            Some(Source::V4(
                u32::from_be(a.sin_addr.s_addr),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 when the family is AF_INET6
            let a = unsafe { &*(name as *const _ as *const libc::sockaddr_in6) };
            Some(Source::V6(
                a.sin6_addr.s6_addr,
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            ))
        }
        _ => None,
    }
}

fn address<'py>(py: Python<'py>, s: &Source) -> PyResult<Bound<'py, PyTuple>> {
    match s {
        Source::V4(ip, port) => PyTuple::new(
            py,
            [
                Ipv4Addr::from(*ip)
                    .to_string()
                    .into_pyobject(py)?
                    .into_any(),
                port.into_pyobject(py)?.into_any(),
            ],
        ),
        Source::V6(ip, port, flow, scope) => PyTuple::new(
            py,
            [
                Ipv6Addr::from(*ip)
                    .to_string()
                    .into_pyobject(py)?
                    .into_any(),
                port.into_pyobject(py)?.into_any(),
                flow.into_pyobject(py)?.into_any(),
                scope.into_pyobject(py)?.into_any(),
            ],
        ),
    }
}

#[pymethods]
impl Receiver {
    /// `Receiver(slots, size, gro=False)`; with `gro` the socket has `UDP_GRO` set (by the caller): the
    /// kernel may hand over a run of one sender's datagrams of one size as one buffer, and `size` must
    /// hold the whole run (65,536).
    #[new]
    #[pyo3(signature = (slots, size, gro = false))]
    pub(crate) fn new(slots: usize, size: usize, gro: bool) -> PyResult<Self> {
        if slots == 0 || slots > MAX_SLOTS || size == 0 || size > 65_536 {
            return Err(PyValueError::new_err(format!(
                "Receiver(slots, size): slots 1..{MAX_SLOTS}, size 1..65536 (got {slots}, {size})"
            )));
        }
        Ok(Self {
            slots,
            size,
            bufs: vec![0u8; slots * size],
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value
            names: vec![unsafe { std::mem::zeroed() }; slots],
            lens: vec![0; slots],
            addrs: HashMap::new(),
            gro,
            control: if gro {
                vec![0; gro_space().div_ceil(8) * slots]
            } else {
                Vec::new()
            },
            segs: vec![0; slots],
        })
    }

    #[getter]
    fn slots(&self) -> usize {
        self.slots
    }

    /// Up to ``slots`` waiting datagrams (with UDP_GRO, ``slots`` buffers, each datagram of a coalesced
    /// run on its own) as a list of ``(data, address)``; empty when none is waiting (EAGAIN, EINTR).
    /// Other errors raise OSError with the errno.
    fn recv<'py>(&mut self, py: Python<'py>, fd: i32) -> PyResult<Bound<'py, PyList>> {
        let n = self.fill(fd)?;
        let out = PyList::empty(py);
        if self.addrs.len() >= CACHE_MAX {
            self.addrs.clear();
        }
        for i in 0..n {
            let addr = match source(&self.names[i]) {
                Some(s) => match self.addrs.get(&s) {
                    Some(a) => a.bind(py).clone(),
                    None => {
                        let a = address(py, &s)?;
                        self.addrs.insert(s, a.clone().unbind());
                        a
                    }
                },
                None => PyTuple::empty(py),
            };
            for d in self.segments(i) {
                let data = PyBytes::new(py, d);
                out.append(PyTuple::new(
                    py,
                    [data.into_any(), addr.clone().into_any()],
                )?)?;
            }
        }
        Ok(out)
    }

    /// The answers of the fleet `book` waiting on `fd` (up to ``slots`` buffers), read, parsed and
    /// verified in one call: `(answers, received, auth_fail, bad)`, `received` the datagrams read (a
    /// UDP_GRO buffer counts each of its datagrams), `answers` the `(type, device index,
    /// value)` of each verified ACK or BUSY in arrival order (`DeviceBook.check`), the others counted.
    /// Errors as `recv`.
    fn recv_answers<'py>(
        &mut self,
        py: Python<'py>,
        fd: i32,
        book: &Bound<'py, DeviceBook>,
    ) -> PyResult<(Bound<'py, PyList>, usize, usize, usize)> {
        let n = self.fill(fd)?;
        let book = book.get();
        let out = PyList::empty(py);
        let (mut auth_fail, mut bad) = (0usize, 0usize);
        let mut received = 0usize;
        for i in 0..n {
            for d in self.segments(i) {
                received += 1;
                match book.judge(d) {
                    BAD => bad += 1,
                    AUTH_FAIL => auth_fail += 1,
                    answer => out.append(answer)?,
                }
            }
        }
        Ok((out, received, auth_fail, bad))
    }
}

impl Receiver {
    /// Datagram `i` of the last `fill` (cut to the slot size).
    pub(crate) fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.size..i * self.size + self.lens[i]]
    }

    /// The datagrams of slot `i` of the last `fill`: one, or with UDP_GRO the run the kernel coalesced
    /// (an empty datagram comes back as one empty slice).
    pub(crate) fn segments(&self, i: usize) -> Segments<'_> {
        let d = self.datagram(i);
        let seg = if self.segs[i] == 0 {
            d.len()
        } else {
            self.segs[i]
        };
        Segments {
            rest: d,
            seg,
            first: true,
        }
    }

    /// True when slots `a` and `b` of the last `fill` came from the same address.
    pub(crate) fn same_source(&self, a: usize, b: usize) -> bool {
        source(&self.names[a]) == source(&self.names[b])
    }

    /// The source of datagram `i` of the last `fill`, as `sendmmsg` takes it back: (name, length).
    pub(crate) fn name(&self, i: usize) -> (&libc::sockaddr_storage, libc::socklen_t) {
        let name = &self.names[i];
        let len = match name.ss_family as libc::c_int {
            libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
            _ => std::mem::size_of::<libc::sockaddr_in>(),
        };
        (name, len as libc::socklen_t)
    }

    /// One `recvmmsg` into the slots: how many came (0 on EAGAIN or EINTR); `lens[i]` is datagram i's
    /// length, cut to the slot size.
    pub(crate) fn fill(&mut self, fd: i32) -> PyResult<usize> {
        let size = self.size;
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .chunks_mut(size)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: size,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(self.names.iter_mut())
            .map(|(iov, name)| {
                // SAFETY: msghdr is plain old data; the fields that matter are set below
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        if self.gro {
            let space = gro_space();
            let words = space.div_ceil(8);
            for (i, h) in msgs.iter_mut().enumerate() {
                h.msg_hdr.msg_control = self.control[i * words..].as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = space;
            }
        }
        // SAFETY: every header points at a live buffer and name of this receiver, for `slots` entries
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                self.slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(PyOSError::new_err((
                    err.raw_os_error().unwrap_or(0),
                    err.to_string(),
                ))),
            };
        }
        for (i, m) in msgs.iter().take(n as usize).enumerate() {
            self.lens[i] = (m.msg_len as usize).min(size);
            self.segs[i] = if self.gro { gro_size(&m.msg_hdr) } else { 0 };
        }
        Ok(n as usize)
    }
}

/// The segment size of a UDP_GRO buffer from its control message (0: a single datagram).
fn gro_size(h: &libc::msghdr) -> usize {
    // SAFETY: the kernel filled `msg_control` up to `msg_controllen` with well-formed control messages
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return size.max(0) as usize;
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    0
}

/// The datagrams of one slot (`Receiver::segments`).
pub(crate) struct Segments<'a> {
    rest: &'a [u8],
    seg: usize,
    first: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let first = std::mem::replace(&mut self.first, false);
        if self.rest.is_empty() {
            return first.then_some(self.rest);
        }
        let (one, rest) = self.rest.split_at(self.seg.min(self.rest.len()));
        self.rest = rest;
        Some(one)
    }
}
