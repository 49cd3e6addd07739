//! `send(2)` and `sendmsg(2)` on a connected socket: `write` and `write_vectored` of TCP and
//! Unix streams, `send` of UDP sockets.
//!
//! Every send here carries `MSG_NOSIGNAL` ([`FLAGS`]), on the ring and off it: a write to a
//! stream whose peer has gone fails with `EPIPE` (`BrokenPipe`) and never raises `SIGPIPE`,
//! whatever the process's disposition of it. This file is the one place that decides it; no
//! socket type writes with plain `write(2)`/`writev(2)` (which cannot take the flag).

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use rustix::net::{SendAncillaryBuffer, SendFlags};

use crate::model::green;
use crate::model::operation::Operation;
use crate::model::CustomModel;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

use super::send_zc::ZeroCopy;
use super::vectored::IOV_MAX;

/// The flags of every send: no `SIGPIPE` on a closed peer.
const FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

/// [`FLAGS`] as rustix takes them.
pub(crate) fn flags() -> SendFlags {
    SendFlags::from_bits_retain(FLAGS as u32)
}

/// Writes some of `buf` to a TCP stream, returning how much: [`send`], except that a large
/// write on a Green io_uring worker may go zero-copy, as `zc` decides (see
/// [`super::send_zc`]). Cancellation point; gives up with `TimedOut` at `deadline`.
#[inline]
pub(crate) fn send_stream(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &[u8],
    deadline: Option<Instant>,
    zc: &ZeroCopy,
) -> io::Result<usize> {
    if buf.len() >= super::send_zc::THRESHOLD && super::custom(io).is_none() {
        if let Some(res) = super::send_zc::send_zc(zc, fd, buf, FLAGS, deadline) {
            return res;
        }
    }
    send(io, fd, buf, deadline)
}

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
    let sqe = || opcode::Send::new(Fd(raw), ptr, len).flags(FLAGS).build();
    // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Send::CODE, deadline, sqe) } {
        return res.map(super::count);
    }
    let flags = flags();
    retry_on_fd(fd, Interest::Write, deadline, || {
        Ok(rustix::net::send(fd, buf, flags)?)
    })
}

/// Writes from `bufs` in order (at most `IOV_MAX` of them: a vectored write may move less than
/// asked), returning how much: one `sendmsg(2)`, tried first, then waited for like
/// [`send`]. Cancellation point; gives up with `TimedOut` at `deadline`.
pub(crate) fn send_vectored(
    io: &Io,
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        return super::count_of(model, Operation::SendVectored { fd, bufs, deadline });
    }
    send_vectored_on_thread(fd, bufs, deadline)
}

/// [`send_vectored`] by `sendmsg(2)` and readiness waits.
pub(crate) fn send_vectored_on_thread(
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(IOV_MAX)];
    let flags = flags();
    retry_on_fd(fd, Interest::Write, deadline, || {
        // An empty ancillary buffer: no control data, nothing allocated.
        let mut control = SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(fd, bufs, &mut control, flags)?)
    })
}
