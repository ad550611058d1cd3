//! Many datagrams per system call: `sendmmsg(2)` on a connected, non-blocking UDP socket.
//!
//! The simulator's devices share a few sockets, each connected to one gateway; a tick sends thousands of
//! datagrams, and one `send` per datagram through the event loop's transport was a quarter of the
//! simulator's CPU. `send_many(fd, datagrams, start)` hands the kernel up to 1,024 of them at once.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

const MAX_BATCH: usize = 1024; // the kernel's UIO_MAXIOV: sendmmsg takes no more per call

/// Send `datagrams[start:]` on the connected socket `fd`, as many as the kernel takes now; returns how
/// many went (0 when the send buffer is full: EAGAIN). An error on the first datagram (say ECONNREFUSED
/// from an earlier ICMP) raises OSError with the errno: the caller drops that datagram and goes on.
#[pyfunction]
pub(crate) fn send_many(fd: i32, datagrams: &Bound<'_, PyList>, start: usize) -> PyResult<usize> {
    let total = datagrams.len();
    let mut sent = 0usize;
    let mut at = start;
    while at < total {
        let end = total.min(at + MAX_BATCH);
        let items: Vec<Bound<'_, PyBytes>> = (at..end)
            .map(|i| datagrams.get_item(i)?.downcast_into::<PyBytes>().map_err(Into::into))
            .collect::<PyResult<_>>()?;
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
            .map(|iov| {
                // SAFETY: msghdr is plain old data; a connected socket needs no name
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: every header points at the bytes of a live Python bytes object held in `items`
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(sent),
                _ if sent > 0 => Ok(sent),
                _ => Err(PyOSError::new_err((
                    err.raw_os_error().unwrap_or(0),
                    err.to_string(),
                ))),
            };
        }
        sent += n as usize;
        at += n as usize;
        if (n as usize) < msgs.len() {
            break; // the send buffer filled up
        }
    }
    Ok(sent)
}
