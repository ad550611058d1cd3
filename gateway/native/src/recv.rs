//! Many datagrams per system call: `recvmmsg(2)` on the worker's non-blocking UDP socket.
//!
//! The event loop's datagram transport makes one `recvfrom` and one Python callback per datagram, about
//! 2.5 µs on this machine before the gateway sees a byte; at one reading per datagram (the legacy
//! devices) that was a third of the worker's CPU. `Receiver.recv(fd)` takes up to `slots` datagrams in
//! one call into buffers it keeps, and hands them back as `(bytes, address)` pairs, the address a tuple
//! like Python's `socket.recvfrom` gives (`(host, port)`, or `(host, port, flowinfo, scope_id)` for
//! IPv6), cached per source so a device's address is built once. A datagram longer than the slot
//! (`size` bytes) comes back cut to `size` bytes: make `size` one more than the largest datagram you
//! accept, and the length tells the gateway it was too large.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

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
    addrs: HashMap<Source, Py<PyTuple>>,
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
    #[new]
    fn new(slots: usize, size: usize) -> PyResult<Self> {
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
            addrs: HashMap::new(),
        })
    }

    #[getter]
    fn slots(&self) -> usize {
        self.slots
    }

    /// Up to ``slots`` waiting datagrams as a list of ``(data, address)``; empty when none is waiting
    /// (EAGAIN, EINTR). Other errors raise OSError with the errno.
    fn recv<'py>(&mut self, py: Python<'py>, fd: i32) -> PyResult<Bound<'py, PyList>> {
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
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(PyList::empty(py)),
                _ => Err(PyOSError::new_err((
                    err.raw_os_error().unwrap_or(0),
                    err.to_string(),
                ))),
            };
        }
        let out = PyList::empty(py);
        if self.addrs.len() >= CACHE_MAX {
            self.addrs.clear();
        }
        for (i, m) in msgs.iter().take(n as usize).enumerate() {
            let len = (m.msg_len as usize).min(size);
            let data = PyBytes::new(py, &self.bufs[i * size..i * size + len]);
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
            out.append(PyTuple::new(py, [data.into_any(), addr.into_any()])?)?;
        }
        Ok(out)
    }
}
