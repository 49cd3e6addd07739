//! [`RwLock`]: a fair reader-writer lock whose waits are cancellation points.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::ops::{Deref, DerefMut};
use std::task::{Poll, Waker};
use std::time::Duration;

use super::deadline_after;
use super::semaphore::{RawAcquire, Semaphore};
use crate::diag::hooks::LockKind;
use crate::Event;

/// Permits of the underlying semaphore: a reader takes one, a writer takes them all.
const MAX_READS: usize = Semaphore::MAX_PERMITS;

/// A reader-writer lock: many readers at once, or one writer.
///
/// **Fair (FIFO)**, neither reader- nor writer-preferring: requests are served in arrival order
/// by a [`Semaphore`] with [`MAX_READS`](Semaphore::MAX_PERMITS) permits, where a reader takes
/// one permit and a writer all of them. Consecutive readers at the head of the queue get in
/// together; a queued writer stops later readers from barging past it (so writers never starve),
/// and readers queued before a writer are not overtaken by it (so readers never starve either).
///
/// No poisoning, as for [`Mutex`](super::Mutex). Waits are cancellation points; a canceled wait
/// leaves the lock consistent.
///
/// ```
/// use zsync::sync::RwLock;
///
/// zsync::run(zsync::Model::Threaded, |_io| {
///     let lock = RwLock::new(vec![1, 2]);
///     {
///         let a = lock.read().unwrap();
///         let b = lock.read().unwrap(); // readers share the lock
///         assert_eq!(a.len() + b.len(), 4);
///         assert!(lock.try_write().is_none());
///     }
///     lock.write().unwrap().push(3);
///     assert_eq!(*lock.read().unwrap(), [1, 2, 3]);
/// });
/// ```
pub struct RwLock<T: ?Sized> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

// SAFETY: readers on several threads share `&T` (needs `T: Sync`), a writer may get `&mut T` on
// any thread (needs `T: Send`); the semaphore admits either many readers or one writer.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// An unlocked lock holding `value`.
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::new(MAX_READS),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for shared reading, waiting in FIFO order. Cancellation point.
    #[track_caller]
    pub fn read(&self) -> io::Result<RwLockReadGuard<'_, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::RwLockRead,
            crate::diag::wait_point::Object::of(self),
        );
        self.sem.wait_for_as(1, None, LockKind::RwLockRead)?;
        Ok(self.read_guard())
    }

    /// Like [`read`](RwLock::read), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn read_timeout(&self, timeout: Duration) -> io::Result<RwLockReadGuard<'_, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::RwLockRead,
            crate::diag::wait_point::Object::of(self),
        );
        self.sem
            .wait_for_as(1, deadline_after(timeout), LockKind::RwLockRead)?;
        Ok(self.read_guard())
    }

    /// Locks for reading if no writer holds the lock and nobody is queued.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        self.sem.try_take(1).ok().map(|()| self.read_guard())
    }

    /// Locks for exclusive writing, waiting in FIFO order. Cancellation point.
    #[track_caller]
    pub fn write(&self) -> io::Result<RwLockWriteGuard<'_, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::RwLockWrite,
            crate::diag::wait_point::Object::of(self),
        );
        self.sem
            .wait_for_as(MAX_READS, None, LockKind::RwLockWrite)?;
        Ok(self.write_guard())
    }

    /// Like [`write`](RwLock::write), giving up with `TimedOut` after `timeout`.
    #[track_caller]
    pub fn write_timeout(&self, timeout: Duration) -> io::Result<RwLockWriteGuard<'_, T>> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::RwLockWrite,
            crate::diag::wait_point::Object::of(self),
        );
        self.sem
            .wait_for_as(MAX_READS, deadline_after(timeout), LockKind::RwLockWrite)?;
        Ok(self.write_guard())
    }

    /// Locks for writing if the lock is free and nobody is queued.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        self.sem
            .try_take(MAX_READS)
            .ok()
            .map(|()| self.write_guard())
    }

    /// The [`Event`] form of [`read`](RwLock::read).
    pub fn read_event(&self) -> ReadLockEvent<'_, T> {
        ReadLockEvent {
            lock: self,
            raw: self.sem.acquire_raw(1),
        }
    }

    /// The [`Event`] form of [`write`](RwLock::write).
    pub fn write_event(&self) -> WriteLockEvent<'_, T> {
        WriteLockEvent {
            lock: self,
            raw: self.sem.acquire_raw(MAX_READS),
        }
    }

    /// A mutable reference to the value: the borrow proves exclusivity.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            _marker: PhantomData,
        }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// The [`Event`] form of [`RwLock::read`].
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let lock = zsync::sync::RwLock::new(1);
/// let n = futures::executor::block_on(async { *lock.read_event().await });
/// assert_eq!(n, 1);
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct ReadLockEvent<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    raw: RawAcquire<'a>,
}

impl<'a, T: ?Sized> Event for ReadLockEvent<'a, T> {
    type Output = RwLockReadGuard<'a, T>;
    fn poll_event(&mut self, waker: &Waker) -> Poll<Self::Output> {
        match self.raw.poll_raw(waker) {
            Poll::Ready(Ok(())) => Poll::Ready(self.lock.read_guard()),
            Poll::Ready(Err(_)) => unreachable!("an RwLock's semaphore is never closed"),
            Poll::Pending => Poll::Pending,
        }
    }
}

crate::event::event_future!(
    ['a, T: ?Sized] ReadLockEvent<'a, T>,
    ['a, T: ?Sized] WriteLockEvent<'a, T>,
);

impl<T: ?Sized> fmt::Debug for ReadLockEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadLockEvent").finish_non_exhaustive()
    }
}

/// The [`Event`] form of [`RwLock::write`].
///
/// Also a [`Future`](std::future::Future) with the same output, for async code:
///
/// ```
/// let lock = zsync::sync::RwLock::new(1);
/// futures::executor::block_on(async { *lock.write_event().await += 1 });
/// assert_eq!(lock.into_inner(), 2);
/// ```
#[must_use = "an event does nothing until waited for"]
pub struct WriteLockEvent<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    raw: RawAcquire<'a>,
}

impl<'a, T: ?Sized> Event for WriteLockEvent<'a, T> {
    type Output = RwLockWriteGuard<'a, T>;
    fn poll_event(&mut self, waker: &Waker) -> Poll<Self::Output> {
        match self.raw.poll_raw(waker) {
            Poll::Ready(Ok(())) => Poll::Ready(self.lock.write_guard()),
            Poll::Ready(Err(_)) => unreachable!("an RwLock's semaphore is never closed"),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: ?Sized> fmt::Debug for WriteLockEvent<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteLockEvent").finish_non_exhaustive()
    }
}

/// Shared read access to an [`RwLock`]; unlocks when dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// `Send`/`Sync` only if `T: Sync`, as `&T`.
    _marker: PhantomData<&'a T>,
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard holds one permit, so no writer (who needs all permits) can hold
        // the lock meanwhile; only shared references exist.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive write access to an [`RwLock`]; unlocks when dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// `Send` only if `T: Send`, `Sync` only if `T: Sync`, as `&mut T`.
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// Turns the write lock into a read lock without letting a writer in between; readers
    /// queued at the head are let in too.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let lock = self.lock;
        mem::forget(self);
        lock.sem.release(MAX_READS - 1);
        lock.read_guard()
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard holds every permit: no other guard exists.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard holds every permit: no other guard exists, and `&mut self`
        // makes this the only access through this one.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(MAX_READS);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
