//! [`Condvar`]: wait for a condition protected by a [`Mutex`].

use std::fmt;
use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::deadline_after;
use super::mutex::{Mutex, MutexGuard};
use crate::wait::{block_until, WaitList};

/// A condition variable for [`Mutex`]: a task releases the lock and sleeps until notified.
///
/// Built on a `WaitList`: the waiter registers *before* it unlocks the mutex, and a notifier
/// changes the protected state under the lock before notifying, so a notification sent after the
/// waiter released the lock is never missed. Notifications go to waiters in FIFO order; a waiter
/// that was notified but leaves without using it (canceled, timed out) passes it on to the next.
///
/// **Cancellation.** [`wait`](Condvar::wait) is a cancellation point. Returning `Err` *with* the
/// re-locked guard is impossible in an `io::Result<MutexGuard>`, and re-locking unconditionally
/// would make a canceled task wait for the lock, so the rule is: **on `Err`, the mutex is not
/// held** by the caller (the guard it passed in was released). The protected data is as the last
/// holder left it, nothing deadlocks, and `?` simply propagates. Code that must restore an
/// invariant after a failed wait locks again, shielded if it must not be interrupted
/// ([`Io::shielded`](crate::Io::shielded)). A wait that *ends by its own timeout*
/// ([`wait_timeout`](Condvar::wait_timeout)) does re-lock, and reports the timeout.
///
/// Waits never return spuriously, but another task may change the state between the
/// notification and the re-lock: check the condition in a loop, or use
/// [`wait_while`](Condvar::wait_while).
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::{Condvar, Mutex};
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let pair = Arc::new((Mutex::new(false), Condvar::new()));
///     let p = pair.clone();
///     let setter = io.spawn(move |_| {
///         *p.0.lock().unwrap() = true;
///         p.1.notify_one();
///     });
///     let (lock, cv) = &*pair;
///     let ready = cv.wait_while(lock.lock().unwrap(), |ready| !*ready).unwrap();
///     assert!(*ready);
///     drop(ready);
///     setter.join().unwrap();
/// });
/// ```
#[derive(Default)]
pub struct Condvar {
    waiters: WaitList,
}

/// Whether a [`Condvar::wait_timeout`] returned because its timeout elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended by timing out rather than by a notification.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    /// A condition variable with no waiters.
    pub fn new() -> Condvar {
        Condvar::default()
    }

    /// Unlocks `guard`'s mutex, waits for a notification, and locks again. Cancellation point.
    ///
    /// On `Err` (`Canceled`, or `TimedOut` at the task's deadline) the mutex is **not** held:
    /// see the type's docs.
    #[track_caller]
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> io::Result<MutexGuard<'a, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Condvar,
            crate::diag::wait_point::Object::of(self),
        );
        self.wait_inner(guard, None).map(|(g, _)| g)
    }

    /// Waits until `condition` returns false, re-checking after each notification (and at once,
    /// without waiting, if it is false already). On `Err` the mutex is not held.
    #[track_caller]
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> io::Result<MutexGuard<'a, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Condvar,
            crate::diag::wait_point::Object::of(self),
        );
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`wait`](Condvar::wait), but gives up after `timeout`: then it re-locks and returns
    /// the guard with [`timed_out`](WaitTimeoutResult::timed_out) set. `Err` (mutex not held)
    /// only for cancellation or the task's own deadline.
    #[track_caller]
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> io::Result<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Condvar,
            crate::diag::wait_point::Object::of(self),
        );
        let (g, timed_out) = self.wait_inner(guard, deadline_after(timeout))?;
        Ok((g, WaitTimeoutResult(timed_out)))
    }

    /// Like [`wait_while`](Condvar::wait_while) with an overall `timeout`; when it elapses the
    /// guard is returned with the condition possibly still true and `timed_out` set.
    #[track_caller]
    pub fn wait_timeout_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> io::Result<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Condvar,
            crate::diag::wait_point::Object::of(self),
        );
        let deadline = deadline_after(timeout);
        while condition(&mut *guard) {
            let (g, timed_out) = self.wait_inner(guard, deadline)?;
            guard = g;
            if timed_out {
                return Ok((guard, WaitTimeoutResult(true)));
            }
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    fn wait_inner<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        deadline: Option<Instant>,
    ) -> io::Result<(MutexGuard<'a, T>, bool)> {
        let mutex: &'a Mutex<T> = MutexGuard::mutex(&guard);
        let mut waiter = self.waiters.waiter();
        let mut guard = Some(guard);
        let waited = block_until(deadline, |waker| {
            if let Some(g) = guard.take() {
                // Register first, then unlock: a notify after the unlock finds us queued.
                waiter.register(waker);
                drop(g);
            }
            if waiter.is_notified() {
                waiter.used();
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        // Canceled before the first poll: the guard is still here; release it.
        drop(guard);
        match waited {
            Ok(()) => Ok((mutex.lock()?, false)),
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut
                    && deadline.is_some_and(crate::park::deadline_passed) =>
            {
                // Our own timeout. Leave the list first: a notification that raced with the
                // timeout is passed on to the next waiter instead of being lost.
                drop(waiter);
                Ok((mutex.lock()?, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Wakes the longest-waiting task, if any. Notifications are not stored: with nobody
    /// waiting, this does nothing.
    pub fn notify_one(&self) {
        self.waiters.notify_one();
    }

    /// Wakes every task waiting now.
    pub fn notify_all(&self) {
        self.waiters.notify_all();
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar")
            .field("waiters", &self.waiters.waiting())
            .finish()
    }
}
