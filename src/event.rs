//! Events: things a task can wait for, one at a time or several at once.
//!
//! Every coordination type in zsync exposes its waits as an [`Event`]: a value with a
//! `poll_event(&Waker) -> Poll<Output>` method that either completes now or registers the waker
//! where the condition can change. [`Io::wait`](crate::Io::wait) blocks on one event; `select`
//! polls several with one waker and completes exactly one of them.
//!
//! The contract that makes `select` sound ("the losers are left untouched"):
//!
//! 1. `poll_event` consumes state (takes a message, a permit, a lock) **only** when it returns
//!    `Ready`. A `Pending` poll has no effect besides registering the waker.
//! 2. Dropping an event that has not completed leaves the primitive as if the event never
//!    existed: its registration is removed and a wake-up it received but did not use is passed
//!    on to the next waiter (see the crate's `WaitList`).
//! 3. After `Ready`, the event is not polled again.

use std::task::{Poll, Waker};
use std::time::Instant;

/// Something a task can wait for: a message, a permit, a task's completion, a point in time.
///
/// Implemented by the events of zsync's channels, sync primitives, tasks and timers; implement it
/// for your own primitive to make it usable with [`Io::wait`](crate::Io::wait) and `select`.
pub trait Event {
    /// What the event yields when it completes.
    type Output;

    /// Completes the event if possible; otherwise registers `waker` to be woken when it may
    /// complete, and returns `Pending`. See the module docs for the contract.
    fn poll_event(&mut self, waker: &Waker) -> Poll<Self::Output>;

    /// A time at which the event may complete without anybody waking the task (a timer); the
    /// waiting task re-polls then.
    fn wake_at(&self) -> Option<Instant> {
        None
    }

    /// Whether this event completes when the waiting task is canceled (the [`select::cancel_requested`](crate::select::cancel_requested) event).
    /// A wait that contains such an event reports it instead of failing with `Canceled`.
    #[doc(hidden)]
    fn observes_cancel(&self) -> bool {
        false
    }
}

impl<E: Event + ?Sized> Event for &mut E {
    type Output = E::Output;
    fn poll_event(&mut self, waker: &Waker) -> Poll<E::Output> {
        (**self).poll_event(waker)
    }
    fn wake_at(&self) -> Option<Instant> {
        (**self).wake_at()
    }
    fn observes_cancel(&self) -> bool {
        (**self).observes_cancel()
    }
}

impl<E: Event + ?Sized> Event for Box<E> {
    type Output = E::Output;
    fn poll_event(&mut self, waker: &Waker) -> Poll<E::Output> {
        (**self).poll_event(waker)
    }
    fn wake_at(&self) -> Option<Instant> {
        (**self).wake_at()
    }
    fn observes_cancel(&self) -> bool {
        (**self).observes_cancel()
    }
}

/// Blocks the running task until `event` completes; see [`Io::wait`](crate::Io::wait).
pub(crate) fn wait<E: Event>(
    mut event: E,
    deadline: Option<Instant>,
) -> std::io::Result<E::Output> {
    let check_cancel = !event.observes_cancel();
    let hint = event.wake_at();
    crate::wait::block_on(
        deadline,
        check_cancel,
        || hint,
        // A future polled inside may start ring ops on a Green worker: this wait parks the
        // fiber between polls, so the worker's loop runs and completes them.
        |waker| crate::model::green::polling_in_zsync_wait(|| event.poll_event(waker)),
    )
}
