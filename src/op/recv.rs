//! `recv(2)` on a connected socket: `read` of TCP and Unix streams.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use rustix::net::RecvFlags;

use crate::model::green;
use crate::model::operation::Operation;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// Reads up to `buf.len()` bytes; 0 at end of stream. Cancellation point; gives up with
/// `TimedOut` at `deadline`.
pub(crate) fn recv(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        let peek = false;
        return super::count_of(
            model,
            Operation::Recv {
                fd,
                buf,
                peek,
                deadline,
            },
        );
    }
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
