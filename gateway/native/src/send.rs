//! Many datagrams per system call: `sendmmsg(2)` on a connected, non-blocking UDP socket.
//!
//! The simulator's devices share a few sockets, each connected to one gateway; a tick sends thousands of
//! datagrams, and one `send` per datagram through the event loop's transport was a quarter of the
//! simulator's CPU. `send_many(fd, datagrams, start)` hands the kernel up to 1,024 of them at once.
//! `send_many_to(fd, datagrams, addrs, start)` does the same on the gateway's socket, each datagram to
//! its own device. `send_segments(fd, datagrams, start)` is `send_many` with UDP segmentation offload:
//! a run of equal-sized datagrams to the one peer goes as one message that the kernel cuts into
//! datagrams (`UDP_SEGMENT`, Linux 4.18), where each datagram was its own trip through the stack.

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
    send_all(fd, datagrams, Dest::Peer, start)
}

/// Where the datagrams of one `send_all` go.
enum Dest<'a, 'py> {
    /// to the connected peer, one message each (`send_many`)
    Peer,
    /// datagram i to address i (`send_many_to`)
    Each(&'a Bound<'py, PyList>),
    /// to the connected peer, runs of one size as segmented messages (`send_segments`)
    Segmented,
}

/// `send_many`, `send_many_to` and `send_segments`: chunks of at most `MAX_BATCH`, until all went, the
/// send buffer is full, or an error; with addresses, a chunk ends before the first that is not numeric.
fn send_all(
    fd: i32,
    datagrams: &Bound<'_, PyList>,
    dest: Dest<'_, '_>,
    start: usize,
) -> PyResult<usize> {
    let total = datagrams.len();
    let mut sent = 0usize;
    let mut at = start;
    while at < total {
        let end = total.min(at + MAX_BATCH);
        let mut names = match &dest {
            Dest::Each(addrs) => match names_at(addrs, at, end) {
                Ok(names) => Some(names),
                // a bad address first: raise, unless some went already (the caller comes back for it)
                Err(e) => return if sent > 0 { Ok(sent) } else { Err(e) },
            },
            _ => None,
        };
        let count = names.as_ref().map_or(end - at, Vec::len);
        let items = bytes_at(datagrams, at, at + count)?;
        let went = match dest {
            Dest::Segmented => send_segmented(fd, &items),
            _ => send_once(fd, &items, names.as_deref_mut()),
        };
        match went {
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

/// `UDP_SEGMENT` of linux/udp.h (the libc crate has it for uclibc only): the segment size of one
/// message, as a `SOL_UDP` control message.
const UDP_SEGMENT: libc::c_int = 103;
/// The kernel's `UDP_MAX_SEGMENTS`: no more datagrams per segmented message.
const MAX_SEGMENTS: usize = 64;
/// The bytes of one segmented message at most: one IP packet of 64 KiB with its headers.
const MAX_SEGMENTED_BYTES: usize = 65_000;

/// Send `datagrams[start:]` on the connected socket `fd` like `send_many`, each run of consecutive
/// datagrams of one size (the last of a run may be shorter) as one segmented message: the receiver gets
/// the same datagrams in the same order, and the sender's kernel makes one pass through the stack per
/// run (on loopback, 0.5 instead of 3.2 µs of system time per 100-byte datagram). Returns how many
/// datagrams went. An error on the first message raises OSError with the errno: EIO or EINVAL when the
/// route cannot segment (no checksum offload, a segment over the path MTU, an old kernel), after which
/// the caller uses `send_many`; anything else as `send_many`.
#[pyfunction]
pub(crate) fn send_segments(
    fd: i32,
    datagrams: &Bound<'_, PyList>,
    start: usize,
) -> PyResult<usize> {
    send_all(fd, datagrams, Dest::Segmented, start)
}

/// `items` as one segmented message per run; how many datagrams the kernel took, or its error.
fn send_segmented(fd: i32, items: &[Bound<'_, PyBytes>]) -> std::io::Result<usize> {
    let lens: Vec<usize> = items.iter().map(|b| b.as_bytes().len()).collect();
    let runs = segment_runs(&lens);
    let msgs = send_runs(fd, items, &runs)?;
    Ok(runs[..msgs].iter().map(|r| r.0).sum())
}

/// The runs of `lens` that can each go as one segmented message, as (datagrams, segment size): one
/// size throughout save a shorter last one, at most `MAX_SEGMENTS` and `MAX_SEGMENTED_BYTES`.
pub(crate) fn segment_runs(lens: &[usize]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < lens.len() {
        let size = lens[i];
        let (mut n, mut bytes) = (1, size);
        while size > 0 && i + n < lens.len() && n < MAX_SEGMENTS {
            let next = lens[i + n];
            if next > size || next == 0 || bytes + next > MAX_SEGMENTED_BYTES {
                break;
            }
            n += 1;
            bytes += next;
            if next < size {
                break; // only the last segment may be shorter
            }
        }
        runs.push((n, size));
        i += n;
    }
    runs
}

/// One `sendmmsg(2)` with a message per run (a `UDP_SEGMENT` control message on the runs of more than
/// one datagram); how many messages the kernel took, or its error.
fn send_runs(
    fd: i32,
    items: &[Bound<'_, PyBytes>],
    runs: &[(usize, usize)],
) -> std::io::Result<usize> {
    let mut iovs = iovecs(items);
    // SAFETY: the iovecs point into live Python bytes objects held in `items`
    unsafe { send_run_msgs(fd, &mut iovs, runs, None) }
}

/// `send_runs` of the datagrams `iovs`, run r to `names[r]` when given (an unconnected socket: the
/// capacity sink's ACKs, sink.rs), else to the connected peer.
///
/// # Safety
/// Every iovec must point at bytes alive until the call returns.
pub(crate) unsafe fn send_run_msgs(
    fd: i32,
    iovs: &mut [libc::iovec],
    runs: &[(usize, usize)],
    mut names: Option<&mut [Name]>,
) -> std::io::Result<usize> {
    // SAFETY: CMSG_SPACE is arithmetic on its argument
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    let words = space.div_ceil(8);
    let mut control: Vec<u64> = vec![0; words * runs.len()]; // u64: the alignment a cmsghdr needs
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(runs.len());
    let mut first = 0usize;
    for (r, &(n, size)) in runs.iter().enumerate() {
        // SAFETY: msghdr is plain old data; iov, the name and the control message are set below
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_iov = iovs[first..].as_mut_ptr();
        h.msg_hdr.msg_iovlen = n;
        if let Some(names) = names.as_deref_mut() {
            let (name, len) = &mut names[r];
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = *len;
        }
        if n > 1 {
            h.msg_hdr.msg_control = control[r * words..].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = space;
            // SAFETY: the header's control buffer is `space` bytes of this run's own, aligned words
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size as u16);
            }
        }
        msgs.push(h);
        first += n;
    }
    // SAFETY: every header points at the caller's iovecs, at a name in `names` and at its control
    // words in `control`, all alive until the call returns
    unsafe { sendmmsg(fd, &mut msgs) }
}

/// The iovec of each of `items`, pointing into the bytes objects (which must outlive its use).
fn iovecs(items: &[Bound<'_, PyBytes>]) -> Vec<libc::iovec> {
    items
        .iter()
        .map(|b| {
            let s = b.as_bytes();
            libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            }
        })
        .collect()
}

/// `sendmmsg(2)` of `msgs`, non-blocking: how many messages the kernel took, or its error.
///
/// # Safety
/// Every pointer in `msgs` (iovecs, names, control messages) must be valid for the call.
pub(crate) unsafe fn sendmmsg(fd: i32, msgs: &mut [libc::mmsghdr]) -> std::io::Result<usize> {
    let n = libc::sendmmsg(
        fd,
        msgs.as_mut_ptr(),
        msgs.len() as libc::c_uint,
        libc::MSG_DONTWAIT,
    );
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(crate) type Name = (libc::sockaddr_storage, libc::socklen_t);

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
    let mut iovs = iovecs(items);
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
    unsafe { sendmmsg(fd, &mut msgs) }
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
    send_all(fd, datagrams, Dest::Each(addrs), start)
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
