//! [`Semaphore`]: the fair counting semaphore every lock of this module is built on.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::queue::{wake_all, Grant, HandOffQueue};
use super::{closed_error, deadline_after};
use crate::diag::hooks::{LockKind, LockWait};
use crate::wait::block_until;
use crate::Event;

/// A fair counting semaphore.
///
/// Tasks [`acquire`](Semaphore::acquire) permits and give them back by dropping the returned
/// guard. Waiting is a cancellation point and never blocks the OS thread of a green task: it
/// goes through the running model's wait primitive.
///
/// **Fairness: FIFO with direct hand-off.** Waiters queue in arrival order. When permits are
/// released they are *handed* to the waiters at the head of the queue, inside the semaphore's
/// lock, before anyone is woken; a task that arrives while anybody is queued joins the back of
/// the queue even if enough permits happen to be free. So a large
/// [`acquire_many`](Semaphore::acquire_many) at the head is never overtaken by a stream of small
/// ones: permits accumulate for it until it has all it asked for.
///
/// **Cancellation.** A canceled (or timed-out) acquire leaves the queue at once. If permits had
/// already been handed to it but it had not taken them yet, they go back and are handed on to the
/// next waiters; if it was the head blocking smaller requests behind it, those are served. No
/// permit and no wake-up is lost.
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::Semaphore;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let sem = Arc::new(Semaphore::new(2));
///     let tasks: Vec<_> = (0..4)
///         .map(|i| {
///             let sem = sem.clone();
///             io.spawn(move |_| {
///                 let _permit = sem.acquire()?; // at most 2 tasks in here at once
///                 Ok::<_, std::io::Error>(i)
///             })
///         })
///         .collect();
///     let sum: u32 = tasks.into_iter().map(|t| t.join().unwrap().unwrap()).sum();
///     assert_eq!(sum, 6);
///     assert_eq!(sem.available_permits(), 2);
/// });
/// ```
pub struct Semaphore {
    state: StdMutex<State>,
}

struct State {
    permits: usize,
    closed: bool,
    queue: HandOffQueue,
}

impl State {
    /// Hands free permits to the waiters at the head, in order; returns whom to wake.
    fn hand_off(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        if self.closed {
            return wakers;
        }
        while let Some(need) = self.queue.front_need() {
            if need > self.permits {
                break;
            }
            self.permits -= need;
            wakers.extend(self.queue.grant_front(Grant::Handed));
        }
        wakers
    }
}

/// Why [`Semaphore::try_acquire`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore was [closed](Semaphore::close).
    Closed,
    /// Not enough permits are free, or other tasks are queued first (fairness: no barging).
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("semaphore closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}

impl std::error::Error for TryAcquireError {}

impl TryAcquireError {
    /// Whether the semaphore was closed (rather than short of permits).
    ///
    /// ```
    /// let sem = zsync::sync::Semaphore::new(0);
    /// assert!(!sem.try_acquire().unwrap_err().is_closed());
    /// sem.close();
    /// assert!(sem.try_acquire().unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TryAcquireError::Closed)
    }
}

impl Semaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` free permits.
    ///
    /// # Panics
    /// If `permits` exceeds [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= Self::MAX_PERMITS, "too many permits");
        Semaphore {
            state: StdMutex::new(State {
                permits,
                closed: false,
                queue: HandOffQueue::new(),
            }),
        }
    }

    fn lock(&self) -> StdGuard<'_, State> {
        // Nothing panics while the lock is held; ignore poisoning anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of free permits now (permits handed to a waiter that has not woken up yet are
    /// not free).
    pub fn available_permits(&self) -> usize {
        self.lock().permits
    }

    /// Whether [`close`](Semaphore::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Adds `n` permits, handing them to waiters in FIFO order.
    ///
    /// # Panics
    /// If the total would exceed [`MAX_PERMITS`](Semaphore::MAX_PERMITS).
    pub fn add_permits(&self, n: usize) {
        if n == 0 {
            return;
        }
        let wakers = {
            let mut s = self.lock();
            s.permits = s
                .permits
                .checked_add(n)
                .filter(|&p| p <= Self::MAX_PERMITS)
                .expect("too many permits");
            s.hand_off()
        };
        wake_all(wakers);
    }

    /// Closes the semaphore: every waiting and every future acquire fails with an error for
    /// which [`zsync::is_closed`](crate::is_closed) is true. Permits held stay valid and are still
    /// returned on drop; `try_acquire` reports [`TryAcquireError::Closed`].
    pub fn close(&self) {
        let wakers = {
            let mut s = self.lock();
            s.closed = true;
            s.queue.wakers()
        };
        wake_all(wakers);
    }

    /// Takes one permit, waiting in FIFO order. Cancellation point.
    ///
    /// Errors: `Canceled`; `TimedOut` at the task's deadline; closed (see
    /// [`zsync::is_closed`](crate::is_closed)).
    #[track_caller]
    pub fn acquire(&self) -> io::Result<SemaphorePermit<'_>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Semaphore,
            crate::diag::wait_point::Object::of(self),
        );
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting in FIFO order. Cancellation point. Waits forever if
    /// `n` permits never become free at the same time.
    #[track_caller]
    pub fn acquire_many(&self, n: usize) -> io::Result<SemaphorePermit<'_>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Semaphore,
            crate::diag::wait_point::Object::of(self),
        );
        self.wait_for(n, None)?;
        Ok(SemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Like [`acquire`](Semaphore::acquire), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> io::Result<SemaphorePermit<'_>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Semaphore,
            crate::diag::wait_point::Object::of(self),
        );
        self.acquire_many_timeout(1, timeout)
    }

    /// Like [`acquire_many`](Semaphore::acquire_many), giving up with `TimedOut` after
    /// `timeout`.
    #[track_caller]
    pub fn acquire_many_timeout(
        &self,
        n: usize,
        timeout: Duration,
    ) -> io::Result<SemaphorePermit<'_>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Semaphore,
            crate::diag::wait_point::Object::of(self),
        );
        self.wait_for(n, deadline_after(timeout))?;
        Ok(SemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Like [`acquire`](Semaphore::acquire) with a permit that keeps the semaphore alive.
    #[track_caller]
    pub fn acquire_owned(self: &Arc<Self>) -> io::Result<OwnedSemaphorePermit> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Semaphore,
            crate::diag::wait_point::Object::of(&**self),
        );
        self.acquire_many_owned(1)
    }

    /// Like [`acquire_many`](Semaphore::acquire_many) with a permit that keeps the semaphore
    /// alive.
    #[track_caller]
    pub fn acquire_many_owned(self: &Arc<Self>, n: usize) -> io::Result<OwnedSemaphorePermit> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Semaphore,
            crate::diag::wait_point::Object::of(&**self),
        );
        self.wait_for(n, None)?;
        Ok(OwnedSemaphorePermit {
            sem: self.clone(),
            permits: n,
        })
    }

    #[track_caller]
    pub(crate) fn wait_for(&self, n: usize, deadline: Option<Instant>) -> io::Result<()> {
        self.wait_for_as(n, deadline, LockKind::Semaphore)
    }

    /// [`wait_for`](Self::wait_for) on behalf of a `kind` of lock: a contended acquisition is
    /// recorded for the caller's call site in a profile (see [`crate::diag`]).
    #[track_caller]
    pub(crate) fn wait_for_as(
        &self,
        n: usize,
        deadline: Option<Instant>,
        kind: LockKind,
    ) -> io::Result<()> {
        let mut acquire = self.acquire_raw(n);
        let mut timing = LockWait::new(kind, std::panic::Location::caller());
        let result = block_until(deadline, |w| {
            let poll = acquire.poll_raw(w);
            timing.polled(poll.is_pending());
            poll
        });
        timing.done();
        result?
    }

    /// Takes one permit if one is free and nobody is queued.
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody is queued.
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Like [`try_acquire`](Semaphore::try_acquire) with an owned permit.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Like [`try_acquire_many`](Semaphore::try_acquire_many) with an owned permit.
    pub fn try_acquire_many_owned(
        self: &Arc<Self>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(n)?;
        Ok(OwnedSemaphorePermit {
            sem: self.clone(),
            permits: n,
        })
    }

    pub(crate) fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        let mut s = self.lock();
        if s.closed {
            Err(TryAcquireError::Closed)
        } else if n == 0 {
            Ok(())
        } else if s.queue.is_empty() && s.permits >= n {
            s.permits -= n;
            Ok(())
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }

    /// The [`Event`] form of [`acquire`](Semaphore::acquire), for `select` and
    /// [`Io::wait`](crate::Io::wait). It joins the queue when first polled; dropping it before it
    /// completes leaves the semaphore as if it never existed.
    ///
    /// ```
    /// use zsync::sync::Semaphore;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let sem = Semaphore::new(1);
    ///     let permit = io.wait(sem.acquire_event()).unwrap().unwrap();
    ///     assert_eq!(sem.available_permits(), 0);
    ///     drop(permit);
    ///     assert_eq!(sem.available_permits(), 1);
    /// });
    /// ```
    pub fn acquire_event(&self) -> AcquireEvent<'_> {
        self.acquire_many_event(1)
    }

    /// The [`Event`] form of [`acquire_many`](Semaphore::acquire_many).
    pub fn acquire_many_event(&self, n: usize) -> AcquireEvent<'_> {
        AcquireEvent {
            raw: self.acquire_raw(n),
        }
    }

    pub(crate) fn acquire_raw(&self, n: usize) -> RawAcquire<'_> {
        RawAcquire {
            sem: self,
            need: n,
            key: None,
        }
    }

    /// Returns `n` permits (from a dropped guard).
    pub(crate) fn release(&self, n: usize) {
        self.add_permits(n);
    }

    /// Number of tasks queued for permits (a snapshot, for tests and pool metrics).
    pub(crate) fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Semaphore")
            .field("permits", &s.permits)
            .field("queued", &s.queue.len())
            .field("closed", &s.closed)
            .finish()
    }
}

/// One acquire in progress: not queued until first polled; leaves the queue when dropped.
pub(crate) struct RawAcquire<'a> {
    sem: &'a Semaphore,
    need: usize,
    /// Our node in the queue, while queued or granted but not yet taken.
    key: Option<usize>,
}

impl RawAcquire<'_> {
    /// `Ready(Ok(()))` once the permits are ours (the caller then owns them); `Ready(Err)` if
    /// the semaphore was closed; `Pending` with `waker` registered otherwise.
    pub(crate) fn poll_raw(&mut self, waker: &Waker) -> Poll<io::Result<()>> {
        let mut s = self.sem.lock();
        match self.key {
            None => {
                if s.closed {
                    Poll::Ready(Err(closed_error()))
                } else if self.need == 0 || (s.queue.is_empty() && s.permits >= self.need) {
                    s.permits -= self.need;
                    Poll::Ready(Ok(()))
                } else {
                    // Someone is queued, or not enough permits: join the back (no barging).
                    self.key = Some(s.queue.push(self.need, waker));
                    Poll::Pending
                }
            }
            Some(key) => {
                if s.queue.granted(key).is_some() {
                    // Handed to us: the permits were already subtracted from the count.
                    s.queue.remove(key);
                    self.key = None;
                    Poll::Ready(Ok(()))
                } else if s.closed {
                    s.queue.remove(key);
                    self.key = None;
                    Poll::Ready(Err(closed_error()))
                } else {
                    s.queue.update_waker(key, waker);
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for RawAcquire<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let wakers = {
            let mut s = self.sem.lock();
            let (need, granted) = s.queue.remove(key);
            if granted.is_some() {
                // Handed to us but never taken (canceled, timed out, lost a select): give back.
                s.permits += need;
            }
            // Either the permits came back, or we were the head blocking the ones behind us.
            s.hand_off()
        };
        wake_all(wakers);
    }
}

/// The [`Event`] form of an acquire: see [`Semaphore::acquire_event`].
///
/// Output: the permit, or the closed error.
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let sem = zsync::sync::Semaphore::new(1);
/// let permit = futures::executor::block_on(sem.acquire_event()).unwrap();
/// assert_eq!(sem.available_permits(), 0);
/// drop(permit);
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct AcquireEvent<'a> {
    raw: RawAcquire<'a>,
}

impl<'a> Event for AcquireEvent<'a> {
    type Output = io::Result<SemaphorePermit<'a>>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<Self::Output> {
        let sem = self.raw.sem;
        let permits = self.raw.need;
        self.raw
            .poll_raw(waker)
            .map(|r| r.map(|()| SemaphorePermit { sem, permits }))
    }
}

crate::event::event_future!(['a] AcquireEvent<'a>);

impl fmt::Debug for AcquireEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireEvent")
            .field("permits", &self.raw.need)
            .field("queued", &self.raw.key.is_some())
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; given back when dropped.
#[must_use = "dropping the permit gives it back at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this guard holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Drops the guard without giving its permits back: the semaphore has that many fewer.
    pub fn forget(mut self) {
        self.permits = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}

/// Permits taken from an `Arc<Semaphore>`; given back when dropped. `'static`, so it can move
/// into a spawned task.
#[must_use = "dropping the permit gives it back at once"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    permits: usize,
}

impl OwnedSemaphorePermit {
    /// How many permits this guard holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore the permits belong to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }

    /// Drops the guard without giving its permits back.
    pub fn forget(mut self) {
        self.permits = 0;
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_waker::{counter, wakes};

    #[test]
    fn waiters_are_served_in_fifo_order_without_barging() {
        let sem = Semaphore::new(0);
        let (a, wa) = counter();
        let (b, wb) = counter();
        let mut big = sem.acquire_many_event(3);
        let mut small = sem.acquire_event();
        assert!(big.poll_event(&wa).is_pending());
        assert!(small.poll_event(&wb).is_pending());
        sem.add_permits(2);
        // Two permits are free but the head needs three: the small one behind it must wait,
        // and a newcomer may not barge either.
        assert_eq!((wakes(&a), wakes(&b)), (0, 0));
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        sem.add_permits(2);
        assert_eq!((wakes(&a), wakes(&b)), (1, 1));
        assert_eq!(sem.available_permits(), 0);
        let p3 = match big.poll_event(&wa) {
            Poll::Ready(Ok(p)) => p,
            _ => panic!("big acquire not granted"),
        };
        assert_eq!(p3.num_permits(), 3);
        assert!(matches!(small.poll_event(&wb), Poll::Ready(Ok(_))));
        drop(p3);
        assert_eq!(sem.available_permits(), 4);
    }

    #[test]
    fn a_granted_but_dropped_acquire_hands_its_permits_on() {
        let sem = Semaphore::new(0);
        let (_, wa) = counter();
        let (b, wb) = counter();
        let mut first = sem.acquire_event();
        let mut second = sem.acquire_event();
        assert!(first.poll_event(&wa).is_pending());
        assert!(second.poll_event(&wb).is_pending());
        sem.add_permits(1);
        assert_eq!(sem.available_permits(), 0, "handed to the first waiter");
        drop(first); // canceled before it took the permit
        assert_eq!(wakes(&b), 1, "the next waiter is woken");
        assert!(matches!(second.poll_event(&wb), Poll::Ready(Ok(_))));
        assert_eq!(sem.available_permits(), 1);
    }

    #[test]
    fn a_dropped_head_unblocks_the_waiters_behind_it() {
        let sem = Semaphore::new(1);
        let (_, wa) = counter();
        let (b, wb) = counter();
        let mut big = sem.acquire_many_event(5);
        let mut small = sem.acquire_event();
        assert!(big.poll_event(&wa).is_pending());
        assert!(small.poll_event(&wb).is_pending());
        drop(big);
        assert_eq!(wakes(&b), 1);
        assert!(matches!(small.poll_event(&wb), Poll::Ready(Ok(_))));
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.queued(), 0);
    }

    #[test]
    fn close_fails_waiters_and_newcomers() {
        let sem = Semaphore::new(0);
        let (a, wa) = counter();
        let mut ev = sem.acquire_event();
        assert!(ev.poll_event(&wa).is_pending());
        sem.close();
        assert_eq!(wakes(&a), 1);
        match ev.poll_event(&wa) {
            Poll::Ready(Err(e)) => assert!(crate::is_closed(&e)),
            _ => panic!("expected the closed error"),
        }
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
        assert_eq!(sem.queued(), 0);
    }

    #[test]
    fn forget_drops_permits() {
        let sem = Semaphore::new(3);
        sem.try_acquire_many(2).unwrap().forget();
        assert_eq!(sem.available_permits(), 1);
    }
}
