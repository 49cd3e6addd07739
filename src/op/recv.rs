//! `recv(2)` and `readv(2)` on a connected socket: `read` and `read_vectored` of TCP and Unix
//! streams, `recv` of UDP sockets.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use rustix::net::RecvFlags;

use crate::model::green;
use crate::park::{retry_on_fd, Interest};

use super::vectored::IOV_MAX;

/// Reads up to `buf.len()` bytes; 0 at end of stream. Cancellation point; gives up with
/// `TimedOut` at `deadline`.
pub(crate) fn recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_mut_ptr(), super::ring_len(buf.len()));
    let sqe = || opcode::Recv::new(Fd(raw), ptr, len).build();
    // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Recv::CODE, deadline, sqe) } {
        return res.map(super::count);
    }
    retry_on_fd(fd, Interest::Read, deadline, || {
        Ok(rustix::net::recv(fd, &mut *buf, RecvFlags::empty())?.0)
    })
}

/// Reads into `bufs` in order (at most `IOV_MAX` of them), tried first, then waited for like
/// [`recv`]; 0 at end of stream. Cancellation point; gives up with `TimedOut` at `deadline`.
pub(crate) fn recv_vectored(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let n = bufs.len().min(IOV_MAX);
    let bufs = &mut bufs[..n];
    retry_on_fd(fd, Interest::Read, deadline, || {
        Ok(rustix::io::readv(fd, &mut *bufs)?)
    })
}
