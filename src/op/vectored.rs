//! `preadv(2)`/`pwritev(2)` and `readv(2)`/`writev(2)` on files: vectored transfers, at an
//! offset or at the file position.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{opcode, types::Fd};

use crate::model::green;

/// `IOV_MAX` on Linux: longer vectors are cut here (a vectored transfer may move less than
/// asked, like any other), never refused with `EINVAL`.
pub(super) const IOV_MAX: usize = 1024;

/// The ring's offset for "at the file position, and advance it" (`-1`; every kernel whose
/// ring zsync uses — it needs the 5.6 opcode probe — has `IORING_FEAT_RW_CUR_POS`).
pub(crate) const AT_CURSOR: u64 = u64::MAX;

/// Where a transfer reads or writes: at `Some(offset)`, or at the file position (`None`).
pub(super) fn ring_offset(offset: Option<u64>) -> Option<u64> {
    match offset {
        None => Some(AT_CURSOR),
        // The ring reads `u64::MAX` as the cursor; the syscalls reject offsets past i64::MAX.
        Some(o) if o <= i64::MAX as u64 => Some(o),
        Some(_) => None,
    }
}

/// `readv` as a ring op at ring offset `at` (see [`ring_offset`]), waiting at most until
/// `deadline`; `None` when the caller is not on a ring worker or the kernel lacks the opcode.
/// At most `IOV_MAX` slices (the caller cuts the vector).
pub(super) fn ring_readv(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    at: u64,
    deadline: Option<std::time::Instant>,
) -> Option<io::Result<i32>> {
    debug_assert!(bufs.len() <= IOV_MAX);
    let (raw, iov, n) = (
        fd.as_raw_fd(),
        bufs.as_ptr().cast::<libc::iovec>(),
        bufs.len(),
    );
    // `n` ≤ IOV_MAX fits the ring's u32.
    let sqe = || {
        opcode::Readv::new(Fd(raw), iov, n as u32)
            .offset(at)
            .build()
    };
    // SAFETY: `IoSliceMut` is ABI-compatible with `iovec` on Unix; the slices, the buffers they
    // name and `fd` stay borrowed until `ring_op` returns, after the completion.
    unsafe { green::ring_op(opcode::Readv::CODE, deadline, sqe) }
}

/// `writev` as a ring op; see [`ring_readv`].
pub(super) fn ring_writev(
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    at: u64,
    deadline: Option<std::time::Instant>,
) -> Option<io::Result<i32>> {
    debug_assert!(bufs.len() <= IOV_MAX);
    let (raw, iov, n) = (
        fd.as_raw_fd(),
        bufs.as_ptr().cast::<libc::iovec>(),
        bufs.len(),
    );
    // `n` ≤ IOV_MAX fits the ring's u32.
    let sqe = || {
        opcode::Writev::new(Fd(raw), iov, n as u32)
            .offset(at)
            .build()
    };
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; the slices, the buffers they
    // name and `fd` stay borrowed until `ring_op` returns, after the completion.
    unsafe { green::ring_op(opcode::Writev::CODE, deadline, sqe) }
}

/// Reads into `bufs` in order, at `offset` or at the file position. Cancellation point before
/// it starts; on the ring it can also be canceled while queued.
pub(crate) fn readv(
    fd: BorrowedFd<'_>,
    bufs: &mut [IoSliceMut<'_>],
    offset: Option<u64>,
) -> io::Result<usize> {
    crate::context::check()?;
    let n = bufs.len().min(IOV_MAX);
    let bufs = &mut bufs[..n];
    if let Some(at) = ring_offset(offset) {
        if let Some(res) = ring_readv(fd, bufs, at, None) {
            return res.map(super::count);
        }
    }
    Ok(match offset {
        Some(o) => rustix::io::preadv(fd, bufs, o)?,
        None => rustix::io::readv(fd, bufs)?,
    })
}

/// Writes from `bufs` in order, at `offset` or at the file position; returns how much.
/// Cancellation point before it starts; on the ring it can also be canceled while queued.
pub(crate) fn writev(
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    offset: Option<u64>,
) -> io::Result<usize> {
    crate::context::check()?;
    let bufs = &bufs[..bufs.len().min(IOV_MAX)];
    if let Some(at) = ring_offset(offset) {
        if let Some(res) = ring_writev(fd, bufs, at, None) {
            return res.map(super::count);
        }
    }
    Ok(match offset {
        Some(o) => rustix::io::pwritev(fd, bufs, o)?,
        None => rustix::io::writev(fd, bufs)?,
    })
}
