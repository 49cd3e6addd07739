//! `recv(2)` on a connected socket: `read` of TCP and Unix streams.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use rustix::net::RecvFlags;

use crate::model::green;
use crate::model::operation::Operation;
use crate::model::CustomModel;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// Reads up to `buf.len()` bytes; 0 at end of stream. Cancellation point; gives up with
/// `TimedOut` at `deadline`.
#[inline]
pub(crate) fn recv(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    match super::custom(io) {
        None => native(fd, buf, deadline),
        Some(model) => on_model(model, fd, buf, deadline),
    }
}

/// [`recv`] on a custom model. Out of line, so that the built-in models' path stays as small
/// as it was.
#[cold]
#[inline(never)]
fn on_model(
    model: &dyn CustomModel,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let peek = false;
    let op = Operation::Recv {
        fd,
        buf,
        peek,
        deadline,
    };
    super::count_of(model, op)
}

/// [`recv`] on a built-in model.
#[inline]
fn native(fd: BorrowedFd<'_>, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
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
