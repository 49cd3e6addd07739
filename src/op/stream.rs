//! `read(2)`/`write(2)` and their vectored and positioned forms on a *non-blocking descriptor
//! that is not a socket*: a pipe, a FIFO, a terminal, a character device, an eventfd. What
//! [`zsync::pipe`](crate::pipe) and a [`zsync::fs::File`](crate::fs::File) that is not a regular
//! file use, so that a wait for the other end is interruptible like a socket's.
//!
//! On a Green io_uring fiber the transfer is a ring op with the caller's deadline: the kernel
//! waits for readiness itself (it polls a pipe internally even when the description is
//! `O_NONBLOCK`, since pipes support `IOCB_NOWAIT`), and the op is canceled like any other. A
//! descriptor whose driver cannot wait that way (a terminal: no `FMODE_NOWAIT`) completes with
//! `EAGAIN`; the call then takes the readiness path. Everywhere else the syscall is tried and,
//! on `WouldBlock`, the task waits for readiness ([`retry_on_fd`]): a cancellation point that
//! honours `deadline` and the task's deadline.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Instant;

use io_uring::{opcode, types::Fd};

use crate::model::green;
use crate::model::operation::Operation;
use crate::park::{retry_on_fd, Interest};
use crate::Io;

use super::vectored::{ring_offset, ring_readv, ring_writev, IOV_MAX};

/// The ring's answer unless it is `WouldBlock` (the driver cannot wait in the kernel): `None`
/// then, and when the op did not go through a ring.
fn unless_would_block(res: Option<io::Result<i32>>) -> Option<io::Result<usize>> {
    match res? {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        other => Some(other.map(super::count)),
    }
}

/// Reads up to `buf.len()` bytes, at `offset` or at the stream position (`None`); 0 at end of
/// stream. Cancellation point; gives up with `TimedOut` at `deadline`.
pub(crate) fn read(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        let op = Operation::Read {
            fd,
            buf,
            offset,
            deadline,
        };
        return super::count_of(model, op);
    }
    if let Some(at) = ring_offset(offset) {
        let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_mut_ptr(), super::ring_len(buf.len()));
        let sqe = || opcode::Read::new(Fd(raw), ptr, len).offset(at).build();
        // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
        let res = unsafe { green::ring_op(opcode::Read::CODE, deadline, sqe) };
        if let Some(res) = unless_would_block(res) {
            return res;
        }
    }
    read_on_thread(fd, buf, offset, deadline)
}

/// [`read`] as the thread models do it: the syscall, then readiness waits.
pub(crate) fn read_on_thread(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    retry_on_fd(fd, Interest::Read, deadline, || {
        Ok(match offset {
            Some(o) => rustix::io::pread(fd, &mut *buf, o)?,
            None => rustix::io::read(fd, &mut *buf)?,
        })
    })
}

/// Writes some of `buf`, at `offset` or at the stream position; returns how much.
/// Cancellation point; gives up with `TimedOut` at `deadline`.
pub(crate) fn write(
    io: &Io,
    fd: BorrowedFd<'_>,
    buf: &[u8],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        let op = Operation::Write {
            fd,
            buf,
            offset,
            deadline,
        };
        return super::count_of(model, op);
    }
    if let Some(at) = ring_offset(offset) {
        let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_ptr(), super::ring_len(buf.len()));
        let sqe = || opcode::Write::new(Fd(raw), ptr, len).offset(at).build();
        // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
        let res = unsafe { green::ring_op(opcode::Write::CODE, deadline, sqe) };
        if let Some(res) = unless_would_block(res) {
            return res;
        }
    }
    write_on_thread(fd, buf, offset, deadline)
}

/// [`write`] as the thread models do it: the syscall, then readiness waits.
pub(crate) fn write_on_thread(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    retry_on_fd(fd, Interest::Write, deadline, || {
        Ok(match offset {
            Some(o) => rustix::io::pwrite(fd, buf, o)?,
            None => rustix::io::write(fd, buf)?,
        })
    })
}

/// Reads into `bufs` in order (at most `IOV_MAX` of them), at `offset` or at the stream
/// position. Cancellation point; gives up with `TimedOut` at `deadline`.
pub(crate) fn readv(
    io: &Io,
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        let op = Operation::ReadVectored {
            fd,
            bufs,
            offset,
            deadline,
        };
        return super::count_of(model, op);
    }
    let n = bufs.len().min(IOV_MAX);
    let bufs = &mut bufs[..n];
    if let Some(at) = ring_offset(offset) {
        if let Some(res) = unless_would_block(ring_readv(fd, bufs, at, deadline)) {
            return res;
        }
    }
    readv_on_thread(fd, bufs, offset, deadline)
}

/// [`readv`] as the thread models do it: the syscall, then readiness waits.
pub(crate) fn readv_on_thread(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let n = bufs.len().min(IOV_MAX);
    let bufs = &mut bufs[..n];
    retry_on_fd(fd, Interest::Read, deadline, || {
        Ok(match offset {
            Some(o) => rustix::io::preadv(fd, &mut *bufs, o)?,
            None => rustix::io::readv(fd, &mut *bufs)?,
        })
    })
}

/// Writes from `bufs` in order (at most `IOV_MAX` of them), at `offset` or at the stream
/// position; returns how much. Cancellation point; gives up with `TimedOut` at `deadline`.
pub(crate) fn writev(
    io: &Io,
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    if let Some(model) = super::custom(io) {
        let op = Operation::WriteVectored {
            fd,
            bufs,
            offset,
            deadline,
        };
        return super::count_of(model, op);
    }
    let bufs = &bufs[..bufs.len().min(IOV_MAX)];
    if let Some(at) = ring_offset(offset) {
        if let Some(res) = unless_would_block(ring_writev(fd, bufs, at, deadline)) {
            return res;
        }
    }
    writev_on_thread(fd, bufs, offset, deadline)
}

/// [`writev`] as the thread models do it: the syscall, then readiness waits.
pub(crate) fn writev_on_thread(
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    offset: Option<u64>,
    deadline: Option<Instant>,
) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(IOV_MAX)];
    retry_on_fd(fd, Interest::Write, deadline, || {
        Ok(match offset {
            Some(o) => rustix::io::pwritev(fd, bufs, o)?,
            None => rustix::io::writev(fd, bufs)?,
        })
    })
}

/// Puts the open file description of `fd` in non-blocking mode (`O_NONBLOCK`); returns whether
/// it was blocking before (`false`: nothing changed). Every descriptor that shares the
/// description sees the change.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    if flags.contains(rustix::fs::OFlags::NONBLOCK) {
        return Ok(false);
    }
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(true)
}

/// Puts the open file description of `fd` back in blocking mode.
pub(crate) fn set_blocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::ioctl_fionbio(fd, false)?)
}
