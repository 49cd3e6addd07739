//! [`Notify`] (wake one task, or store a permit) and [`ResetEvent`] (a manual-reset flag).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex as StdMutex, MutexGuard as StdGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use super::deadline_after;
use super::queue::{wake_all, Grant, HandOffQueue};
use super::wait_group::poll_condition;
use crate::wait::{block_until, WaitList, Waiter};
use crate::Event;

/// Wakes a waiting task, or remembers that it should not wait: a single-permit signal.
///
/// - [`notify_one`](Notify::notify_one) hands the notification to the longest-waiting task; with
///   nobody waiting it stores **one permit** (several calls still store one), which the next
///   [`notified`](Notify::notified) consumes without waiting. A notification sent before the
///   wait is therefore not lost.
/// - [`notify_waiters`](Notify::notify_waiters) wakes every task waiting now and stores nothing.
///
/// **Cancellation.** A canceled or timed-out wait leaves the queue; if a `notify_one` had already
/// been handed to it, the notification is passed on to the next waiter or, with none, stored as
/// the permit. A wake-up from `notify_waiters` is not passed on (it was for everyone waiting at
/// that time).
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::Notify;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let notify = Arc::new(Notify::new());
///     let n = notify.clone();
///     let waiter = io.concurrent(move |_| n.notified()).unwrap();
///     notify.notify_one(); // delivered whether or not the task is waiting yet
///     waiter.join().unwrap().unwrap();
/// });
/// ```
pub struct Notify {
    state: StdMutex<NotifyState>,
}

struct NotifyState {
    /// Invariant: a permit is stored only while nobody is queued.
    permit: bool,
    queue: HandOffQueue,
}

impl NotifyState {
    /// Gives a `notify_one` to the head waiter, or stores it.
    fn notify_one(&mut self) -> Option<Waker> {
        let waker = self.queue.grant_front(Grant::Handed);
        if waker.is_none() {
            self.permit = true;
        }
        waker
    }
}

impl Default for Notify {
    fn default() -> Notify {
        Notify::new()
    }
}

impl Notify {
    /// A `Notify` with no permit stored.
    pub const fn new() -> Notify {
        Notify {
            state: StdMutex::new(NotifyState {
                permit: false,
                queue: HandOffQueue::new(),
            }),
        }
    }

    fn lock(&self) -> StdGuard<'_, NotifyState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the longest-waiting task, or stores a permit if none waits.
    pub fn notify_one(&self) {
        let waker = self.lock().notify_one();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wakes every task waiting now. Stores no permit.
    pub fn notify_waiters(&self) {
        let wakers = self.lock().queue.grant_all(Grant::Broadcast);
        wake_all(wakers);
    }

    /// Waits for a notification, consuming the stored permit if there is one. Cancellation
    /// point.
    #[track_caller]
    pub fn notified(&self) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Notify,
            crate::diag::wait_point::Object::of(self),
        );
        let mut ev = self.notified_event();
        block_until(None, |w| ev.poll_event(w))
    }

    /// Like [`notified`](Notify::notified), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn notified_timeout(&self, timeout: Duration) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Notify,
            crate::diag::wait_point::Object::of(self),
        );
        let mut ev = self.notified_event();
        block_until(deadline_after(timeout), |w| ev.poll_event(w))
    }

    /// The [`Event`] form of [`notified`](Notify::notified). It starts waiting (and can be
    /// reached by `notify_waiters`) when first polled; dropped before completion it passes on a
    /// `notify_one` it received.
    pub fn notified_event(&self) -> NotifiedEvent<'_> {
        NotifiedEvent {
            notify: self,
            key: None,
        }
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Notify")
            .field("permit", &s.permit)
            .field("waiting", &s.queue.len())
            .finish()
    }
}

/// The [`Event`] form of [`Notify::notified`].
///
/// Also a [`Future`](std::future::Future), for async code:
///
/// ```
/// let notify = zsync::sync::Notify::new();
/// notify.notify_one(); // stored: nobody is waiting yet
/// futures::executor::block_on(notify.notified_event());
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct NotifiedEvent<'a> {
    notify: &'a Notify,
    key: Option<usize>,
}

impl Event for NotifiedEvent<'_> {
    type Output = ();

    fn poll_event(&mut self, waker: &Waker) -> Poll<()> {
        let mut s = self.notify.lock();
        match self.key {
            None if s.permit => {
                s.permit = false;
                Poll::Ready(())
            }
            None => {
                self.key = Some(s.queue.push(0, waker));
                Poll::Pending
            }
            Some(key) if s.queue.granted(key).is_some() => {
                s.queue.remove(key);
                self.key = None;
                Poll::Ready(())
            }
            Some(key) => {
                s.queue.update_waker(key, waker);
                Poll::Pending
            }
        }
    }
}

crate::event::event_future!([] NotifiedEvent<'_>, [] ResetWaitEvent<'_>);

impl Drop for NotifiedEvent<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let waker = {
            let mut s = self.notify.lock();
            match s.queue.remove(key) {
                // A notify_one meant for one task: pass it on so it is not lost.
                (_, Some(Grant::Handed)) => s.notify_one(),
                _ => None,
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl fmt::Debug for NotifiedEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifiedEvent")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

/// A manual-reset event: a flag tasks can wait for. Zig: `std.Thread.ResetEvent`.
///
/// [`set`](ResetEvent::set) raises the flag and releases every waiter (present and future) until
/// [`reset`](ResetEvent::reset) lowers it again. Named `ResetEvent` rather than `Event` so it
/// does not clash with the [`Event`] trait.
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::ResetEvent;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let ready = Arc::new(ResetEvent::new());
///     let r = ready.clone();
///     let t = io.concurrent(move |_| r.wait()).unwrap();
///     ready.set();
///     t.join().unwrap().unwrap();
///     assert!(ready.is_set());
///     ready.reset();
///     assert!(!ready.is_set());
/// });
/// ```
#[derive(Default)]
pub struct ResetEvent {
    set: AtomicBool,
    waiters: WaitList,
}

impl ResetEvent {
    /// An event that is not set.
    pub fn new() -> ResetEvent {
        ResetEvent::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.waiters.notify_all();
    }

    /// Clears the flag; later waits block until the next [`set`](ResetEvent::set). A waiter
    /// woken by a `set` re-checks the flag, so one that had not run yet when `reset` came keeps
    /// waiting: use [`Notify`] for a signal that must not be missed.
    pub fn reset(&self) {
        self.set.store(false, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Waits until the flag is set (returns at once if it is). Cancellation point.
    #[track_caller]
    pub fn wait(&self) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Notify,
            crate::diag::wait_point::Object::of(self),
        );
        let mut ev = self.wait_event();
        block_until(None, |w| ev.poll_event(w))
    }

    /// Like [`wait`](ResetEvent::wait), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Notify,
            crate::diag::wait_point::Object::of(self),
        );
        let mut ev = self.wait_event();
        block_until(deadline_after(timeout), |w| ev.poll_event(w))
    }

    /// The [`Event`] form of [`wait`](ResetEvent::wait).
    pub fn wait_event(&self) -> ResetWaitEvent<'_> {
        ResetWaitEvent {
            event: self,
            waiter: self.waiters.waiter(),
        }
    }
}

impl fmt::Debug for ResetEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetEvent")
            .field("set", &self.is_set())
            .finish()
    }
}

/// The [`Event`] form of [`ResetEvent::wait`].
///
/// Also a [`Future`](std::future::Future), for async code:
///
/// ```
/// let ready = zsync::sync::ResetEvent::new();
/// ready.set();
/// futures::executor::block_on(ready.wait_event());
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct ResetWaitEvent<'a> {
    event: &'a ResetEvent,
    waiter: Waiter<'a>,
}

impl Event for ResetWaitEvent<'_> {
    type Output = ();
    fn poll_event(&mut self, waker: &Waker) -> Poll<()> {
        poll_condition(&mut self.waiter, waker, || self.event.is_set())
    }
}

impl fmt::Debug for ResetWaitEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetWaitEvent").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_waker::{counter, wakes};

    #[test]
    fn notify_one_is_stored_once_without_waiters() {
        let n = Notify::new();
        n.notify_one();
        n.notify_one();
        let (_, w) = counter();
        assert!(n.notified_event().poll_event(&w).is_ready());
        assert!(n.notified_event().poll_event(&w).is_pending());
    }

    #[test]
    fn a_dropped_waiter_passes_notify_one_on_or_stores_it() {
        let n = Notify::new();
        let (_, wa) = counter();
        let (b, wb) = counter();
        let mut x = n.notified_event();
        let mut y = n.notified_event();
        assert!(x.poll_event(&wa).is_pending());
        assert!(y.poll_event(&wb).is_pending());
        n.notify_one();
        drop(x);
        assert_eq!(wakes(&b), 1, "passed on to the next waiter");
        let mut z = n.notified_event();
        assert!(z.poll_event(&wb).is_pending(), "no permit stored: y has it");
        drop(y);
        drop(z); // y's notification went to z, which drops it: stored as the permit
        assert!(n.notified_event().poll_event(&wb).is_ready());
    }

    #[test]
    fn notify_waiters_wakes_all_and_stores_nothing() {
        let n = Notify::new();
        let (a, wa) = counter();
        let mut x = n.notified_event();
        let mut y = n.notified_event();
        assert!(x.poll_event(&wa).is_pending());
        assert!(y.poll_event(&wa).is_pending());
        n.notify_waiters();
        assert_eq!(wakes(&a), 2);
        drop(x); // not passed on
        assert!(y.poll_event(&wa).is_ready());
        assert!(n.notified_event().poll_event(&wa).is_pending());
    }
}
