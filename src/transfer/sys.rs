//! The syscall layer of `zsync::transfer`: how each kind of descriptor waits, which errors mean
//! "this path is not supported here, try the next", and SIGPIPE suppression.

use std::io;
use std::mem::MaybeUninit;
use std::ptr;

use crate::park::{retry_on_fd, Interest};
use crate::Io;

use super::{End, FdKind};

/// Runs one blocking file syscall as `fs` does (mirrors `fs::sys::blocking_op`): a cancellation
/// point, then `f` — here on the thread models, on a helper thread for a Green fiber, so a disk
/// wait cannot stall the worker. `Interrupted` is retried.
pub(super) fn file_op<T: Send>(
    io: &Io,
    mut f: impl FnMut() -> io::Result<T> + Send,
) -> io::Result<T> {
    crate::context::check()?;
    let run = move || loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    };
    match crate::op::custom(io) {
        Some(model) => crate::op::other(model, "transfer::file", run),
        None => io.inner.model.offload(run),
    }
}

/// Runs `attempt` on the transfer's end `end` and waits the way that kind of descriptor waits:
/// a non-blocking socket or pipe is tried, then waited on for `interest` (parking the fiber on
/// Green) until it stops reporting `WouldBlock` — each wait for at most the end's timeout, whose
/// expiry is reported as `WouldBlock` like std's socket timeouts (the task's deadline:
/// `TimedOut`) —; a file syscall goes through [`file_op`].
pub(super) fn op<T: Send>(
    end: &End<'_>,
    interest: Interest,
    attempt: impl FnMut() -> io::Result<T> + Send,
) -> io::Result<T> {
    match end.kind {
        FdKind::Socket | FdKind::Pipe => crate::op::other_or(end.io, "transfer::stream", || {
            crate::net::timeout::bounded(end.timeout, |deadline| {
                retry_on_fd(end.fd, interest, deadline, attempt)
            })
        }),
        FdKind::File => file_op(end.io, attempt),
    }
}

/// Errors that mean "this kernel, file system or descriptor pair does not do this transfer":
/// the caller moves on to the next path, from the exact position reached.
pub(super) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EINVAL
                | libc::ENOSYS
                | libc::EOPNOTSUPP
                | libc::EXDEV
                | libc::EBADF
                | libc::EPERM
                | libc::ESPIPE
        )
    )
}

/// Whether a `SIGPIPE` raised by this process would do anything (its disposition is not
/// `SIG_IGN`). Rust binaries ignore it (std's runtime sets `SIG_IGN` before `main`); a C host
/// embedding this crate, or a program that restored `SIG_DFL`, does not.
pub(super) fn sigpipe_live() -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action makes `sigaction` only read the current one into `old`, a valid,
    // writable `sigaction`-sized buffer.
    let r = unsafe { libc::sigaction(libc::SIGPIPE, ptr::null(), old.as_mut_ptr()) };
    // SAFETY: zero-initialised, then filled by a successful `sigaction`; all-zero is a valid
    // `sigaction` (SIG_DFL, empty mask) if it failed.
    let old = unsafe { old.assume_init() };
    r != 0 || old.sa_sigaction != libc::SIG_IGN
}

/// Runs `f` (a `sendfile`/`splice`/`write` that may hit a closed pipe or socket) so that the
/// `SIGPIPE` it raises is never delivered: when `live`, `SIGPIPE` is blocked on this thread
/// around `f`, and if `f` failed with `EPIPE` the signal it left pending is consumed with a
/// zero-timeout `sigtimedwait`. The caller sees `BrokenPipe`, the process keeps running.
///
/// `SIGPIPE` for a write is thread-directed (the kernel sends it to the writing thread), so the
/// thread mask suffices. A `SIGPIPE` already pending before `f` is left alone.
pub(super) fn no_sigpipe<T>(live: bool, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    if !live {
        return f();
    }
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigemptyset` initialises `set`; `sigaddset` and `pthread_sigmask` get valid,
    // initialised sets and a writable `old`, which a successful call initialises.
    let blocked = unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr()) == 0
    };
    if !blocked {
        return f();
    }
    let pending_before = sigpipe_pending();
    let r = f();
    if !pending_before && matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` was initialised above; a null info pointer is allowed; `zero` is a valid
        // timespec. With SIGPIPE blocked this only dequeues it if pending.
        unsafe { libc::sigtimedwait(set.as_ptr(), ptr::null_mut(), &zero) };
    }
    // SAFETY: `old` was initialised by the successful `pthread_sigmask` above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), ptr::null_mut()) };
    r
}

fn sigpipe_pending() -> bool {
    let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `sigpending` fills the writable set; `sigismember` reads it only if it did.
    unsafe {
        libc::sigpending(pending.as_mut_ptr()) == 0
            && libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1
    }
}
