//! Many datagrams per system call: `sendmmsg(2)` on a connected, non-blocking UDP socket.
//!
//! The simulator's devices share a few sockets, each connected to one gateway; a tick sends thousands of
//! datagrams, and one `send` per datagram through the event loop's transport was a quarter of the
//! simulator's CPU. `send_many(fd, datagrams, start)` hands the kernel up to 1,024 of them at once.
//! `send_many_to(fd, datagrams, addrs, start)` does the same on the gateway's socket, each datagram to
//! its own device.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

const MAX_BATCH: usize = 1024; // the kernel's UIO_MAXIOV: sendmmsg takes no more per call

/// Send `datagrams[start:]` on the connected socket `fd`, as many as the kernel takes now; returns how
/// many went (0 when the send buffer is full: EAGAIN). An error on the first datagram (say ECONNREFUSED
/// from an earlier ICMP) raises OSError with the errno: the caller drops that datagram and goes on.
#[pyfunction]
pub(crate) fn send_many(fd: i32, datagrams: &Bound<'_, PyList>, start: usize) -> PyResult<usize> {
    send_all(fd, datagrams, None, start)
}

/// `send_many` and `send_many_to`: chunks of at most `MAX_BATCH`, until all went, the send buffer is
/// full, or an error; with `addrs`, a chunk ends before the first address that is not numeric.
fn send_all(
    fd: i32,
    datagrams: &Bound<'_, PyList>,
    addrs: Option<&Bound<'_, PyList>>,
    start: usize,
) -> PyResult<usize> {
    let total = datagrams.len();
    let mut sent = 0usize;
    let mut at = start;
    while at < total {
        let end = total.min(at + MAX_BATCH);
        let mut names = match addrs.map(|a| names_at(a, at, end)).transpose() {
            Ok(names) => names,
            // a bad address first: raise, unless some went already (the caller comes back for it)
            Err(e) => return if sent > 0 { Ok(sent) } else { Err(e) },
        };
        let count = names.as_ref().map_or(end - at, Vec::len);
        let items = bytes_at(datagrams, at, at + count)?;
        match send_once(fd, &items, names.as_deref_mut()) {
            Err(err) => return after_error(err, sent),
            Ok(n) => {
                sent += n;
                at += n;
                if n < items.len() {
                    break; // the send buffer filled up
                }
            }
        }
    }
    Ok(sent)
}

type Name = (libc::sockaddr_storage, libc::socklen_t);

/// `datagrams[at..end]` as bytes objects (a TypeError names anything else).
fn bytes_at<'py>(
    datagrams: &Bound<'py, PyList>,
    at: usize,
    end: usize,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    (at..end)
        .map(|i| {
            datagrams
                .get_item(i)?
                .downcast_into::<PyBytes>()
                .map_err(Into::into)
        })
        .collect()
}

/// One `sendmmsg(2)` of `items`, datagram i to `names[i]` when given (else to the connected peer);
/// how many the kernel took, or its error.
fn send_once(
    fd: i32,
    items: &[Bound<'_, PyBytes>],
    mut names: Option<&mut [Name]>,
) -> std::io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = items
        .iter()
        .map(|b| {
            let s = b.as_bytes();
            libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            }
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .enumerate()
        .map(|(i, iov)| {
            // SAFETY: msghdr is plain old data; iov and, for an unconnected socket, the name are set below
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            if let Some(names) = names.as_deref_mut() {
                let (name, len) = &mut names[i];
                h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = *len;
            }
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every header points at the bytes of a live Python bytes object held in `items` and, when
    // named, at a destination in `names`, both alive until the call returns
    let n = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// What a failed `sendmmsg` returns to Python: how many went before it when it is a full buffer
/// (EAGAIN), a signal, or not the first datagram; else OSError with the errno.
fn after_error(err: std::io::Error, sent: usize) -> PyResult<usize> {
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(sent),
        _ if sent > 0 => Ok(sent),
        _ => Err(PyOSError::new_err((
            err.raw_os_error().unwrap_or(0),
            err.to_string(),
        ))),
    }
}

/// One answer's destination as the kernel wants it, from the address tuple `Receiver.recv` gave for its
/// datagram: `(host, port)` for IPv4, `(host, port, flowinfo, scope_id)` for IPv6, the host numeric.
fn sockaddr(addr: &Bound<'_, PyTuple>) -> PyResult<Name> {
    let bad = || {
        PyValueError::new_err(format!(
            "send_many_to: {addr} is not a numeric (host, port) or (host, port, flowinfo, scope_id) address"
        ))
    };
    let host: String = addr
        .get_item(0)
        .and_then(|h| h.extract())
        .map_err(|_| bad())?;
    let port: u16 = addr
        .get_item(1)
        .and_then(|p| p.extract())
        .map_err(|_| bad())?;
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr.len() {
        2 => {
            let ip = Ipv4Addr::from_str(&host).map_err(|_| bad())?;
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in
            let a = unsafe { &mut *(&mut name as *mut _ as *mut libc::sockaddr_in) };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = port.to_be();
            a.sin_addr.s_addr = u32::from(ip).to_be();
            Ok((
                name,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ))
        }
        4 => {
            let ip = Ipv6Addr::from_str(host.split('%').next().unwrap_or("")).map_err(|_| bad())?;
            let flow: u32 = addr
                .get_item(2)
                .and_then(|f| f.extract())
                .map_err(|_| bad())?;
            let scope: u32 = addr
                .get_item(3)
                .and_then(|s| s.extract())
                .map_err(|_| bad())?;
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6
            let a = unsafe { &mut *(&mut name as *mut _ as *mut libc::sockaddr_in6) };
            a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            a.sin6_port = port.to_be();
            a.sin6_flowinfo = flow.to_be();
            a.sin6_addr.s6_addr = ip.octets();
            a.sin6_scope_id = scope;
            Ok((
                name,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ))
        }
        _ => Err(bad()),
    }
}

/// Send `datagrams[start:]`, datagram i to `addrs[i]`, on the unbound-peer socket `fd` (the gateway's
/// answers: a settled Kafka batch acks many devices at once, one `sendto` each was an eighth of a
/// worker's CPU). Returns how many went (0 when the send buffer is full: EAGAIN). An error on the first
/// datagram raises OSError with the errno, an address that is not numeric ValueError: the caller drops
/// that datagram (its device retries) and goes on.
#[pyfunction]
pub(crate) fn send_many_to(
    fd: i32,
    datagrams: &Bound<'_, PyList>,
    addrs: &Bound<'_, PyList>,
    start: usize,
) -> PyResult<usize> {
    let total = datagrams.len();
    if addrs.len() != total {
        return Err(PyValueError::new_err(format!(
            "send_many_to: {total} datagrams but {} addresses",
            addrs.len()
        )));
    }
    send_all(fd, datagrams, Some(addrs), start)
}

/// The destinations of `addrs[at..end]`, up to the first that is not a numeric address (whose
/// ValueError is the result when it is the very first: nothing before it to send).
fn names_at(addrs: &Bound<'_, PyList>, at: usize, end: usize) -> PyResult<Vec<Name>> {
    let mut names: Vec<Name> = Vec::with_capacity(end - at);
    for i in at..end {
        let name = addrs
            .get_item(i)?
            .downcast_into::<PyTuple>()
            .map_err(|_| PyValueError::new_err("send_many_to: an address is not a tuple"))
            .and_then(|t| sockaddr(&t));
        match name {
            Ok(n) => names.push(n),
            Err(e) if names.is_empty() => return Err(e),
            Err(_) => break, // send the good ones before it first
        }
    }
    Ok(names)
}
