//! The monotonic clock every zsync deadline is measured on: the real one, or a simulation's
//! virtual clock.
//!
//! Deadlines (`io.sleep`, `timeout`, channel and lock timeouts, socket timeouts, a task's
//! deadline) are `Instant`s read here, never from `Instant::now` directly. A
//! [`Sim`](crate::sim::Sim) runs all its tasks on one OS thread and sets that thread's virtual
//! reading: every clock read of its tasks then sees simulated time, which jumps to the next
//! timer when every task waits, so an hour of timeouts passes in microseconds. Everywhere else
//! the reading is unset and this is `Instant::now()` behind one thread-local load.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    /// The simulated time of the simulation running on this thread, if one is.
    static VIRTUAL: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current time: the simulation's on a simulation's thread, else the real monotonic clock.
#[inline]
pub(crate) fn now() -> Instant {
    match VIRTUAL.with(Cell::get) {
        Some(t) => t,
        None => Instant::now(),
    }
}

/// Whether this thread runs a simulation (its clock is virtual).
#[inline]
pub(crate) fn is_virtual() -> bool {
    VIRTUAL.with(Cell::get).is_some()
}

/// Sets (or with `None` clears) this thread's virtual time; returns the previous setting.
pub(crate) fn set_virtual(at: Option<Instant>) -> Option<Instant> {
    VIRTUAL.with(|v| v.replace(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn virtual_time_is_what_was_set_and_only_on_its_thread() {
        let origin = Instant::now();
        let at = origin + Duration::from_secs(3600);
        assert_eq!(set_virtual(Some(at)), None);
        assert_eq!(now(), at);
        let real = std::thread::spawn(now).join().unwrap();
        assert!(real < at, "another thread reads the real clock");
        assert_eq!(set_virtual(None), Some(at));
        assert!(now() < at);
    }
}
