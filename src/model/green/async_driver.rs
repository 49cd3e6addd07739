//! Green's side of the async driver ([`crate::driver`]): the workers turn it, no thread of its
//! own.
//!
//! - **Made on first use** ([`Green::make_driver`]): the driver is stored in `Shared` and every
//!   worker is woken, so that each starts watching the driver's epoll descriptor from its own
//!   reactor at its next loop turn (readiness already pending then is seen at once: the watch
//!   is level-triggered).
//! - **Each loop turn** ([`WorkerLocal::turn_driver`]): a worker whose reactor saw the driver's
//!   descriptor readable drains it without blocking; due driver timers are fired (one worker at
//!   a time; the others skip). Several workers may drain at once: `epoll_wait` is thread-safe
//!   and each event reaches one of them.
//! - **Sleeping**: a worker bounds its reactor sleep by the driver's next timer
//!   ([`WorkerLocal::driver_deadline`]), read after it announced `sleeping`. Arming a timer
//!   earlier than every other publishes the new deadline and then wakes one sleeping worker
//!   (the same fence pairing as any cross-worker wake-up, see `Remote::unpark_if_sleeping`):
//!   either the worker sees the deadline or the arming side sees it sleeping.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::worker::WorkerLocal;
use super::Green;
use crate::driver::Driver;

impl Green {
    /// Makes this runtime's async driver (called once, by [`crate::Io::driver`]).
    pub(crate) fn make_driver(&self) -> io::Result<Arc<Driver>> {
        let shared = Arc::downgrade(&self.shared);
        let driver = Driver::hooked(Box::new(move || {
            if let Some(shared) = shared.upgrade() {
                shared.wake_one_idle(None);
            }
        }))?;
        let _ = self.shared.driver.set(driver.clone());
        // Every worker starts watching the driver at its next loop turn.
        for remote in &self.shared.remotes {
            remote.unpark();
        }
        Ok(driver)
    }
}

impl WorkerLocal {
    /// The async driver's share of one loop turn: watch it (first time), drain it if the
    /// reactor saw it readable, fire its due timers. `clock` is this turn's clock reading, if
    /// the worker took one.
    pub(super) fn turn_driver(&self, clock: Option<Instant>) {
        let Some(driver) = self.shared.driver.get() else {
            return;
        };
        if !self.reactor.is_watching() {
            // SAFETY: the driver is kept in `Shared` for the runtime's life, and `Shared`
            // outlives this worker's reactor (the worker holds it and drops the reactor first,
            // see `WorkerLocal`'s field order), so the descriptor stays open while watched.
            let fd = unsafe {
                std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(
                    &driver.epoll_fd(),
                ))
            };
            if let Err(e) = self.reactor.watch(fd) {
                eprintln!(
                    "zsync: worker {} cannot watch the async driver: {e}",
                    self.index
                );
            }
            driver.drain();
        }
        if self.reactor.take_watched() {
            driver.drain();
        }
        if driver.next_timer().is_some() {
            driver.fire_timers(clock.unwrap_or_else(crate::clock::now));
        }
    }

    /// When the async driver's next timer is due, if it has one: a bound for the worker's
    /// sleep.
    pub(super) fn driver_deadline(&self) -> Option<Instant> {
        self.shared.driver.get()?.next_timer()
    }
}
