//! The per-worker I/O reactor of the Green model.
//!
//! A reactor tells a worker when a parked fiber can make progress on a descriptor, and ends the
//! worker's idle sleep when another thread writes its eventfd. Two backends, chosen at start-up
//! (see [`Backend`](crate::Backend)):
//!
//! - [`epoll`]: readiness of non-blocking descriptors; available everywhere on Linux.
//! - [`uring`]: one io_uring per worker. Readiness waits become one-shot `POLL_ADD`s; the
//!   operations of [`crate::op`] run on the ring itself (completion-based), each falling back
//!   to readiness when the kernel lacks its opcode. [`op`] holds the in-flight op lifecycle.
//!
//! Completions and readiness wake plain `std::task::Waker`s: a fiber's today, a future's when the
//! stackless model lands.

pub(crate) mod epoll;
pub(crate) mod op;
pub(crate) mod uring;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::task::Waker;
use std::time::Duration;

use crate::park::Interest;
use crate::Backend;

/// The reactor of one worker.
// One per worker, built once and never moved around: the size difference costs nothing, and
// boxing would add a pointer chase to every submission.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Reactor {
    Epoll(epoll::Epoll),
    Uring(uring::Uring),
}

/// A readiness wait in progress, to withdraw with [`Reactor::deregister`].
pub(crate) enum Registration {
    Epoll(RawFd, Interest, epoll::Token),
    Uring(op::OpKey),
}

impl Reactor {
    /// The reactor for `backend` (already resolved: `Epoll` or `IoUring`).
    pub(crate) fn new(wake_fd: BorrowedFd<'static>, backend: Backend) -> io::Result<Reactor> {
        match backend {
            Backend::IoUring => Ok(Reactor::Uring(uring::Uring::new(wake_fd)?)),
            Backend::Epoll | Backend::Auto => Ok(Reactor::Epoll(epoll::Epoll::new(wake_fd)?)),
        }
    }

    /// Wakes `waker` once `fd` may be ready for `interest` (or fails).
    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<Registration> {
        match self {
            Reactor::Epoll(r) => {
                let token = r.register(fd, interest, waker)?;
                Ok(Registration::Epoll(fd.as_raw_fd(), interest, token))
            }
            Reactor::Uring(r) => Ok(Registration::Uring(r.register(fd, interest, waker)?)),
        }
    }

    /// Withdraws a wait that ended (woken, canceled, timed out).
    pub(crate) fn deregister(&self, registration: Registration) {
        match (self, registration) {
            (Reactor::Epoll(r), Registration::Epoll(fd, interest, token)) => {
                r.deregister(fd, interest, token)
            }
            (Reactor::Uring(r), Registration::Uring(key)) => r.deregister(key),
            _ => debug_assert!(false, "a registration from another reactor"),
        }
    }

    /// Waits up to `timeout` (`None`: until woken; zero: not at all) and wakes whoever is ready.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Reactor::Epoll(r) => r.poll(timeout),
            Reactor::Uring(r) => r.poll(timeout),
        }
    }

    /// Whether a non-blocking [`poll`](Self::poll) would wake somebody, as far as can be told
    /// without a syscall: on io_uring, completions posted or pending in the kernel; on epoll,
    /// always `false` (readiness is only learnt from `epoll_wait`). For an idle worker's spin:
    /// it may stop spinning and poll as soon as this turns true.
    pub(crate) fn has_events(&self) -> bool {
        match self {
            Reactor::Uring(r) => r.has_events(),
            Reactor::Epoll(_) => false,
        }
    }

    /// Watches `fd` (the async driver's epoll instance, which outlives the reactor) for
    /// readability, level-triggered: after a [`poll`](Self::poll) that saw it readable,
    /// [`take_watched`](Self::take_watched) says so once. At most one descriptor is watched;
    /// watching is for the reactor's life.
    pub(crate) fn watch(&self, fd: BorrowedFd<'static>) -> io::Result<()> {
        match self {
            Reactor::Epoll(r) => r.watch(fd),
            Reactor::Uring(r) => {
                r.watch(fd);
                Ok(())
            }
        }
    }

    /// Whether a descriptor is watched.
    pub(crate) fn is_watching(&self) -> bool {
        match self {
            Reactor::Epoll(r) => r.is_watching(),
            Reactor::Uring(r) => r.is_watching(),
        }
    }

    /// Whether the watched descriptor was seen readable since the last call.
    pub(crate) fn take_watched(&self) -> bool {
        match self {
            Reactor::Epoll(r) => r.take_watched(),
            Reactor::Uring(r) => r.take_watched(),
        }
    }

    /// Whether nothing registered here can wake a fiber: no descriptor wait, and on io_uring no
    /// op in the kernel (for the deadlock check).
    pub(crate) fn is_idle(&self) -> bool {
        match self {
            Reactor::Epoll(r) => !r.has_waiters() && !r.is_watching(),
            Reactor::Uring(r) => r.in_flight() == 0 && !r.is_watching(),
        }
    }

    /// The ring, if this reactor has one.
    pub(crate) fn uring(&self) -> Option<&uring::Uring> {
        match self {
            Reactor::Uring(r) => Some(r),
            Reactor::Epoll(_) => None,
        }
    }
}
