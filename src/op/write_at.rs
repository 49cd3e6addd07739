//! `pwrite(2)` and `write(2)` on files: a write at an offset or at the file position.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{opcode, types::Fd};

use crate::model::green;

/// Writes some of `buf` at `offset`, returning how much. Cancellation point before it starts;
/// on the ring it can also be canceled while queued.
pub(crate) fn write_at(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> io::Result<usize> {
    crate::context::check()?;
    // The ring reads `u64::MAX` as "at the file position"; pwrite rejects such offsets.
    if offset <= i64::MAX as u64 {
        let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_ptr(), super::ring_len(buf.len()));
        let sqe = || opcode::Write::new(Fd(raw), ptr, len).offset(offset).build();
        // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
        if let Some(res) = unsafe { green::ring_op(opcode::Write::CODE, None, sqe) } {
            return res.map(super::count);
        }
    }
    Ok(rustix::io::pwrite(fd, buf, offset)?)
}

/// Writes some of `buf` at the file position (at the end with `O_APPEND`), advancing it;
/// returns how much. Cancellation point before it starts; on the ring it can also be canceled while queued.
pub(crate) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    crate::context::check()?;
    let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_ptr(), super::ring_len(buf.len()));
    let at = super::vectored::AT_CURSOR;
    let sqe = || opcode::Write::new(Fd(raw), ptr, len).offset(at).build();
    // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Write::CODE, None, sqe) } {
        return res.map(super::count);
    }
    Ok(rustix::io::write(fd, buf)?)
}
