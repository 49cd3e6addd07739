//! `send(2)` with `MSG_NOSIGNAL` on a connected socket: `write` of TCP and Unix streams (a
//! closed peer is an `EPIPE` error, never a `SIGPIPE`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use rustix::net::SendFlags;

use crate::model::green;
use crate::model::operation::Operation;
use crate::model::CustomModel;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

/// Writes some of `buf`, returning how much. Cancellation point; gives up with `TimedOut` at
/// `deadline`.
#[inline]
pub(crate) fn send(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &[u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    match super::custom(io) {
        None => native(fd, buf, deadline),
        Some(model) => on_model(model, fd, buf, deadline),
    }
}

/// [`send`] on a custom model, out of line (see `recv`).
#[cold]
#[inline(never)]
fn on_model(
    model: &dyn CustomModel,
    fd: BorrowedFd<'_>,
    buf: &[u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    super::count_of(model, Operation::Send { fd, buf, deadline })
}

/// [`send`] on a built-in model.
#[inline]
fn native(fd: BorrowedFd<'_>, buf: &[u8], deadline: Option<Instant>) -> io::Result<usize> {
    let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_ptr(), super::ring_len(buf.len()));
    let sqe = || {
        opcode::Send::new(Fd(raw), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    };
    // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Send::CODE, deadline, sqe) } {
        return res.map(super::count);
    }
    retry_on_fd(fd, Interest::Write, deadline, || {
        Ok(rustix::net::send(fd, buf, SendFlags::NOSIGNAL)?)
    })
}
