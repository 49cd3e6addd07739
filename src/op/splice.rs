//! `splice(2)`: moves bytes between a descriptor and a pipe inside the kernel — the two hops of
//! a zero-copy file-to-socket transfer ([`crate::transfer`]): file → pipe, then pipe → socket.
//!
//! On a Green fiber whose worker runs an io_uring with `IORING_OP_SPLICE` a hop can be a ring op
//! ([`Splice::on_ring`]): the kernel runs it on one of its io-wq threads, so a file whose pages
//! are not cached makes *that* thread wait for the disk, not the fiber's worker. Elsewhere
//! (thread models, epoll workers, kernels without the opcode) it is the syscall
//! ([`Splice::syscall`]). The transfer uses the ring only where it pays: file → pipe for bytes
//! not in the page cache ([`cached`]); pipe → socket never waits for the disk and stays a
//! syscall (a ring splice always costs an io-wq hand-off; see docs/ARCHITECTURE.md).
//!
//! **The pipe is the buffer here.** A ring splice names two descriptors and no memory, but the
//! pages it moves sit in the pipe until a later hop takes them out, and the kernel may still be
//! filling or draining the pipe until the op's completion. [`Splice::on_ring`] returns only after
//! that completion (also when the op is canceled or its deadline passes, as every ring op does:
//! see [`green::ring_op`]), and its callers own the pipe for the whole transfer, so a pipe is
//! never closed or reused while an op on it is in flight.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use io_uring::{opcode, types::Fd};
use rustix::pipe::SpliceFlags;

use crate::model::green;

/// `SPLICE_F_MOVE | SPLICE_F_NONBLOCK`: never wait for the pipe (a full or empty pipe is
/// `EAGAIN`); a non-blocking socket on the other end reports `EAGAIN` too.
const FLAGS: SpliceFlags = SpliceFlags::MOVE.union(SpliceFlags::NONBLOCK);

/// One splice hop: up to `len` bytes from `from` to `to`, one of which is a pipe.
#[derive(Clone, Copy)]
pub(crate) struct Splice<'a> {
    /// The source: a file (read at `offset`) or a pipe.
    pub(crate) from: BorrowedFd<'a>,
    /// `Some(offset)`: read `from` at this position and leave its file offset alone. `None`:
    /// read at (and advance) its own position; always `None` for a pipe.
    pub(crate) offset: Option<u64>,
    /// The sink: a pipe, or a socket when `from` is a pipe.
    pub(crate) to: BorrowedFd<'a>,
    /// At most this many bytes.
    pub(crate) len: usize,
}

#[cfg(test)]
thread_local! {
    /// Ring splices completed on this thread (for tests: proves which path a transfer took).
    /// Per thread, so that tests running in parallel do not count each other's ops: a test
    /// reads it from a fiber of a one-worker runtime, on the thread where its ops complete.
    static RING_OPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Ring splices completed on this thread so far (tests only).
#[cfg(test)]
pub(crate) fn ring_ops() -> usize {
    RING_OPS.with(std::cell::Cell::get)
}

/// Whether a splice would go through a ring here (on a fiber of an io_uring worker whose
/// kernel has `IORING_OP_SPLICE`).
pub(crate) fn on_ring_here() -> bool {
    green::ring_available(opcode::Splice::CODE)
}

impl Splice<'_> {
    /// The hop as a ring op, waiting for its completion; `None` when it cannot go through a ring
    /// here (the caller then makes the [`syscall`](Self::syscall)). A full socket is
    /// `Err(WouldBlock)`: the caller waits for writability and submits again. Cancellation
    /// point; gives up with `TimedOut` at `deadline` (or the task's), after the kernel is done
    /// with the op.
    pub(crate) fn on_ring(&self, deadline: Option<Instant>) -> Option<io::Result<usize>> {
        // The ring reads -1 as "no offset" (use and advance the file position); a larger offset
        // is refused by the syscall too.
        let off_in = match self.offset {
            None => -1,
            Some(o) => i64::try_from(o).ok()?,
        };
        let (from, to) = (self.from.as_raw_fd(), self.to.as_raw_fd());
        let len = super::ring_len(self.len);
        let sqe = || {
            opcode::Splice::new(Fd(from), off_in, Fd(to), -1, len)
                .flags(FLAGS.bits())
                .build()
        };
        // SAFETY: the entry names two descriptors and no memory; both stay borrowed (open) until
        // `ring_op` returns, which is after the op's completion.
        let res = unsafe { green::ring_op(opcode::Splice::CODE, deadline, sqe) }?;
        #[cfg(test)]
        RING_OPS.with(|n| n.set(n.get() + 1));
        Some(res.map(super::count))
    }

    /// The hop as a syscall on the calling thread. Never waits for the pipe (`EAGAIN`) nor for a
    /// non-blocking socket; a regular file makes it wait for the disk. `EINTR` is returned.
    pub(crate) fn syscall(&self) -> io::Result<usize> {
        let mut offset = self.offset;
        Ok(rustix::pipe::splice(
            self.from,
            offset.as_mut(),
            self.to,
            None,
            self.len,
            FLAGS,
        )?)
    }
}

/// `cachestat(2)`'s syscall number: 451 on every architecture (Linux 6.5+); the `libc` crate
/// does not name it for x86_64 glibc yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Set once `cachestat(2)` reported `ENOSYS` (or is filtered): stop asking.
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// Whether every page of bytes `offset..offset + len` of the file `fd` is in the page cache, so
/// that reading them cannot wait for the disk (`cachestat(2)`, one syscall, no page touched).
/// `false` when the kernel cannot tell (before 6.5) or a page lies beyond the end of the file.
pub(crate) fn cached(fd: BorrowedFd<'_>, offset: u64, len: u64) -> bool {
    if len == 0 || NO_CACHESTAT.load(Ordering::Relaxed) {
        return false;
    }
    static PAGE: OnceLock<u64> = OnceLock::new();
    let page = *PAGE.get_or_init(|| {
        // SAFETY: `sysconf` only reads a configuration value.
        u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
    });
    let Some(end) = offset.checked_add(len) else {
        return false;
    };
    let pages = end.div_ceil(page) - offset / page;
    let range = CachestatRange { off: offset, len };
    let mut stat = Cachestat::default();
    // SAFETY: `range` and `stat` are valid `cachestat_range` / `cachestat` structs (the kernel
    // reads the first and writes the second); flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0,
        )
    };
    if r != 0 {
        if matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS | libc::EPERM)
        ) {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
        }
        return false;
    }
    stat.nr_cache >= pages
}
