//! `fsync(2)` and `fdatasync(2)`: flush a file to its device.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::opcode;
use io_uring::types::{Fd, FsyncFlags};

use crate::model::green;

/// Flushes the file's data and, unless `data_only`, its metadata. Cancellation point before it
/// starts.
pub(crate) fn fsync(fd: BorrowedFd<'_>, data_only: bool) -> io::Result<()> {
    crate::context::check()?;
    let raw = fd.as_raw_fd();
    let flags = if data_only {
        FsyncFlags::DATASYNC
    } else {
        FsyncFlags::empty()
    };
    let sqe = || opcode::Fsync::new(Fd(raw)).flags(flags).build();
    // SAFETY: the entry names no memory; `fd` stays borrowed until the completion.
    if let Some(res) = unsafe { green::ring_op(opcode::Fsync::CODE, None, sqe) } {
        return res.map(drop);
    }
    if data_only {
        Ok(rustix::fs::fdatasync(fd)?)
    } else {
        Ok(rustix::fs::fsync(fd)?)
    }
}
