//! `openat(2)`: open a file by path, relative to the working directory.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use io_uring::{opcode, squeue, types::Fd};

use crate::model::green;

/// Whether [`openat`] goes through the ring here (a Green io_uring fiber, kernel with
/// `OPENAT`); elsewhere the caller opens the file its own way.
pub(crate) fn on_ring() -> bool {
    green::ring_available(opcode::OpenAt::CODE)
}

/// Opens `path` with `open(2)` `flags` (which include `O_CLOEXEC`) and `mode` on the ring, or
/// returns `None` where [`on_ring`] is false. Cancellation point before it starts; an open the
/// kernel has begun runs to completion (a descriptor it returns is never leaked: the completion
/// is always taken, and a successful one is returned even if the task was canceled meanwhile).
pub(crate) fn openat(path: &Path, flags: i32, mode: u32) -> Option<io::Result<OwnedFd>> {
    let path = match super::path::c_path(path) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let ptr = path.as_ptr();
    // `ASYNC`: the kernel's first, inline attempt at an open adds `O_NONBLOCK`, which changes
    // what opening a FIFO means (a writer fails with `ENXIO` instead of waiting for a reader, a
    // reader does not wait for a writer). Sent straight to the ring's worker threads, the open
    // blocks exactly as `open(2)` does, without blocking this worker.
    let sqe = || {
        opcode::OpenAt::new(Fd(libc::AT_FDCWD), ptr)
            .flags(flags)
            .mode(mode)
            .build()
            .flags(squeue::Flags::ASYNC)
    };
    // SAFETY: `path` lives until `ring_op` returns, after the completion.
    let res = unsafe { green::ring_op(opcode::OpenAt::CODE, None, sqe) }?;
    Some(res.map(|fd| {
        // SAFETY: a successful OPENAT completion is a new descriptor that nobody else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }))
}
