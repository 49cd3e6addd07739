//! [`Mutex`]: a fair lock whose waits are cancellation points.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::task::{Poll, Waker};
use std::time::Duration;

use super::deadline_after;
use super::semaphore::{RawAcquire, Semaphore};
use crate::diag::hooks::LockKind;
use crate::Event;

/// A mutual-exclusion lock for colorblind code: [`lock`](Mutex::lock) waits through the running
/// model (a green task parks its fiber, not its OS thread) and is a cancellation point.
///
/// A [`Semaphore`] with one permit underneath, so it is **fair** (FIFO hand-off: a task waiting
/// for the lock is never overtaken by later arrivals) and a canceled `lock` leaves it consistent.
///
/// **No poisoning**: a panic while a [`MutexGuard`] is alive unlocks the mutex as the guard drops
/// during unwinding, and the next `lock` succeeds. See the [module docs](super) for why.
///
/// ```
/// use std::sync::Arc;
/// use zsync::sync::Mutex;
///
/// zsync::run(zsync::Model::Threaded, |io| {
///     let total = Arc::new(Mutex::new(0u64));
///     let tasks: Vec<_> = (0..4)
///         .map(|_| {
///             let total = total.clone();
///             io.spawn(move |_| -> std::io::Result<()> {
///                 for _ in 0..100 {
///                     *total.lock()? += 1;
///                 }
///                 Ok(())
///             })
///         })
///         .collect();
///     for t in tasks {
///         t.join().unwrap().unwrap();
///     }
///     assert_eq!(*total.lock().unwrap(), 400);
/// });
/// ```
pub struct Mutex<T: ?Sized> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a `MutexGuard` (or `&mut Mutex`), and the semaphore's
// single permit admits one guard at a time, so sharing the mutex between threads only ever moves
// exclusive access to `T` from one thread to another: `T: Send` is enough, as for std's Mutex.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::new(1),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value. Never fails: there is no poisoning.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting in FIFO order. Cancellation point.
    ///
    /// Errors: `Canceled`; `TimedOut` at the task's own deadline. The mutex is not reentrant: a
    /// task locking a mutex it holds waits forever (or until canceled or timed out).
    #[track_caller]
    pub fn lock(&self) -> io::Result<MutexGuard<'_, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Mutex,
            crate::diag::wait_point::Object::of(self),
        );
        self.sem.wait_for_as(1, None, LockKind::Mutex)?;
        Ok(self.guard())
    }

    /// Like [`lock`](Mutex::lock), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn lock_timeout(&self, timeout: Duration) -> io::Result<MutexGuard<'_, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Mutex,
            crate::diag::wait_point::Object::of(self),
        );
        self.sem
            .wait_for_as(1, deadline_after(timeout), LockKind::Mutex)?;
        Ok(self.guard())
    }

    /// Locks the mutex if it is free and nobody is waiting for it.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.sem.try_take(1).ok().map(|()| self.guard())
    }

    /// The [`Event`] form of [`lock`](Mutex::lock), for `select` and
    /// [`Io::wait`](crate::Io::wait).
    ///
    /// ```
    /// use zsync::sync::Mutex;
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let m = Mutex::new(1);
    ///     *io.wait(m.lock_event()).unwrap() += 1;
    ///     assert_eq!(m.into_inner(), 2);
    /// });
    /// ```
    pub fn lock_event(&self) -> LockEvent<'_, T> {
        LockEvent {
            mutex: self,
            raw: self.sem.acquire_raw(1),
        }
    }

    /// A mutable reference to the value: no locking needed, the borrow proves exclusivity.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Builds the guard for a permit just taken.
    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            _marker: PhantomData,
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// The [`Event`] form of [`Mutex::lock`]. Dropping it before it completes leaves the mutex as if
/// it never existed.
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let m = zsync::sync::Mutex::new(1);
/// futures::executor::block_on(async {
///     *m.lock_event().await += 1;
/// });
/// assert_eq!(m.into_inner(), 2);
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct LockEvent<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    raw: RawAcquire<'a>,
}

impl<'a, T: ?Sized> Event for LockEvent<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll_event(&mut self, waker: &Waker) -> Poll<MutexGuard<'a, T>> {
        match self.raw.poll_raw(waker) {
            Poll::Ready(Ok(())) => Poll::Ready(self.mutex.guard()),
            // A mutex never closes its semaphore.
            Poll::Ready(Err(_)) => unreachable!("a Mutex's semaphore is never closed"),
            Poll::Pending => Poll::Pending,
        }
    }
}

crate::event::event_future!(['a, T: ?Sized] LockEvent<'a, T>);

impl<T: ?Sized> fmt::Debug for LockEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockEvent").finish_non_exhaustive()
    }
}

/// Exclusive access to the value of a [`Mutex`]; unlocks when dropped (also during a panic).
///
/// Unlike std's guard it may be sent to another task or thread (`T: Send`): unlocking is a
/// semaphore release, not an OS-thread-bound unlock.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// Makes the guard `Send` only if `T: Send` and `Sync` only if `T: Sync`, as `&mut T`.
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks (for [`Condvar`](super::Condvar)).
    pub(crate) fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its task holds the mutex's single permit, so no
        // other guard (and no `&mut Mutex`) can reach the data meanwhile.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through this guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.sem.release(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
