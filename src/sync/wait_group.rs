//! [`WaitGroup`]: wait for a counted set of jobs (Go's `sync.WaitGroup`).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

use super::deadline_after;
use crate::wait::{block_until, WaitList, Waiter};
use crate::Event;

/// A counter of outstanding jobs: [`add`](WaitGroup::add) before starting them, each calls
/// [`done`](WaitGroup::done) when finished, and [`wait`](WaitGroup::wait) blocks until the count
/// is zero. Go: `sync.WaitGroup`.
///
/// Waiting is a cancellation point; a canceled waiter just leaves (the count is not affected).
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::WaitGroup;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let wg = Arc::new(WaitGroup::new());
///     for _ in 0..4 {
///         wg.add(1);
///         let wg = wg.clone();
///         io.spawn(move |_| wg.done()).detach();
///     }
///     wg.wait().unwrap();
///     assert_eq!(wg.count(), 0);
/// });
/// ```
#[derive(Default)]
pub struct WaitGroup {
    count: AtomicUsize,
    waiters: WaitList,
}

impl WaitGroup {
    /// A wait group with a count of zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` outstanding jobs.
    pub fn add(&self, n: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
    }

    /// Marks one job finished; wakes the waiters when the count reaches zero.
    ///
    /// # Panics
    /// If the count is already zero (more `done` than `add`).
    pub fn done(&self) {
        let prev = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .expect("WaitGroup::done called more often than add");
        if prev == 1 {
            self.waiters.notify_all();
        }
    }

    /// The number of outstanding jobs now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until the count is zero. Cancellation point.
    #[track_caller]
    pub fn wait(&self) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::WaitGroup,
            crate::diag::wait_point::Object::of(self),
        );
        let mut ev = self.wait_event();
        block_until(None, |w| ev.poll_event(w))
    }

    /// Like [`wait`](WaitGroup::wait), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::WaitGroup,
            crate::diag::wait_point::Object::of(self),
        );
        let mut ev = self.wait_event();
        block_until(deadline_after(timeout), |w| ev.poll_event(w))
    }

    /// The [`Event`] form of [`wait`](WaitGroup::wait).
    pub fn wait_event(&self) -> WaitGroupEvent<'_> {
        WaitGroupEvent {
            group: self,
            waiter: self.waiters.waiter(),
        }
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish()
    }
}

/// The [`Event`] form of [`WaitGroup::wait`]: completes when the count is zero.
///
/// Also a [`Future`](std::future::Future), for async code:
///
/// ```
/// use std::sync::Arc;
///
/// let wg = Arc::new(zsync::sync::WaitGroup::new());
/// wg.add(1);
/// let worker = std::thread::spawn({
///     let wg = wg.clone();
///     move || wg.done()
/// });
/// futures::executor::block_on(wg.wait_event());
/// assert_eq!(wg.count(), 0);
/// worker.join().unwrap();
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct WaitGroupEvent<'a> {
    group: &'a WaitGroup,
    waiter: Waiter<'a>,
}

impl Event for WaitGroupEvent<'_> {
    type Output = ();
    fn poll_event(&mut self, waker: &Waker) -> Poll<()> {
        poll_condition(&mut self.waiter, waker, || self.group.count() == 0)
    }
}

crate::event::event_future!([] WaitGroupEvent<'_>);

impl fmt::Debug for WaitGroupEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroupEvent").finish_non_exhaustive()
    }
}

/// The standard `WaitList` wait for a condition: check, register, re-check.
pub(crate) fn poll_condition(
    waiter: &mut Waiter<'_>,
    waker: &Waker,
    ready: impl Fn() -> bool,
) -> Poll<()> {
    if ready() {
        waiter.used();
        return Poll::Ready(());
    }
    waiter.register(waker);
    if ready() {
        waiter.used();
        return Poll::Ready(());
    }
    Poll::Pending
}
