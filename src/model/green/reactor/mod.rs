//! The per-worker I/O reactor of the Green model.
//!
//! A reactor tells a worker when a parked fiber can make progress on a descriptor, and ends the
//! worker's idle sleep when another thread writes its eventfd. Two backends, chosen at start-up
//! (see [`Backend`](crate::Backend)):
//!
//! - [`epoll`]: readiness of non-blocking descriptors; available everywhere on Linux.
//! - io_uring: (in progress) completion-based ring ops, falling back per op to readiness.
//!
//! Completions and readiness wake plain `std::task::Waker`s: a fiber's today, a future's when the
//! stackless model lands.

pub(crate) mod epoll;

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::task::Waker;
use std::time::Duration;

use crate::park::Interest;

/// The reactor of one worker.
pub(crate) enum Reactor {
    Epoll(epoll::Epoll),
}

impl Reactor {
    pub(crate) fn new(
        wake_fd: BorrowedFd<'static>,
        _backend: crate::Backend,
    ) -> io::Result<Reactor> {
        Ok(Reactor::Epoll(epoll::Epoll::new(wake_fd)?))
    }

    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        interest: Interest,
        waker: &Waker,
    ) -> io::Result<()> {
        match self {
            Reactor::Epoll(r) => r.register(fd, interest, waker),
        }
    }

    pub(crate) fn deregister(&self, fd: RawFd, interest: Interest) {
        match self {
            Reactor::Epoll(r) => r.deregister(fd, interest),
        }
    }

    pub(crate) fn poll(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Reactor::Epoll(r) => r.poll(timeout),
        }
    }
}
