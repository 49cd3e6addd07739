//! `pread(2)` and `read(2)` on files: a read at an offset or at the file position.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{opcode, types::Fd};

use crate::model::green;

/// Reads up to `buf.len()` bytes at `offset`. Cancellation point before it starts; on the ring
/// it can also be canceled while queued (a read the disk has started runs to completion).
pub(crate) fn read_at(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    crate::context::check()?;
    // The ring reads `u64::MAX` as "at the file position"; pread rejects such offsets.
    if offset <= i64::MAX as u64 {
        let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_mut_ptr(), super::ring_len(buf.len()));
        let sqe = || opcode::Read::new(Fd(raw), ptr, len).offset(offset).build();
        // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
        if let Some(res) = unsafe { green::ring_op(opcode::Read::CODE, None, sqe) } {
            return res.map(super::count);
        }
    }
    Ok(rustix::io::pread(fd, buf, offset)?)
}

/// Reads up to `buf.len()` bytes at the file position, advancing it. Cancellation point before it starts; on the ring it can also be canceled while queued.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    crate::context::check()?;
    let (raw, ptr, len) = (fd.as_raw_fd(), buf.as_mut_ptr(), super::ring_len(buf.len()));
    let at = super::vectored::AT_CURSOR;
    let sqe = || opcode::Read::new(Fd(raw), ptr, len).offset(at).build();
    // SAFETY: `buf` (and `fd`) stay borrowed until `ring_op` returns, after the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Read::CODE, None, sqe) } {
        return res.map(super::count);
    }
    Ok(rustix::io::read(fd, buf)?)
}
