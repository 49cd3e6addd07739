//! The lock around a watch channel's value: a std `RwLock` whose waits park the *task*.
//!
//! A [`Ref`](super::Ref) is a read guard the user holds for as long as they like, and
//! [`send_modify`](super::Sender::send_modify) runs the user's closure under the write guard.
//! With std's blocking `read`/`write`, a task holding a guard across a wait (a fiber parked on a
//! Green worker) would leave a task that wants the lock blocking its *worker thread* in the
//! kernel, so the holder, parked on that same worker, could never run again to release it. So
//! the std lock is only ever *tried* (`try_read`/`try_write`, which never block), and a task
//! that finds it taken waits like every other zsync wait: registered in a [`WaitList`], its
//! fiber (or, off a fiber, its thread) parked until a guard drops.
//!
//! Lost wake-ups are excluded by a Dekker pair: a waiter counts itself in `waiting`, fences,
//! and then (registered first) tries the lock; a guard releases the lock, fences, and wakes the
//! list if `waiting` is non-zero. Either the waiter's try sees the release, or the releaser sees
//! the count; in the second case the list's mutex orders the releaser's `notify_all` and the
//! waiter's registration: the waiter is either in the list when it is notified, or registers
//! after the notification and then sees the release when it tries.
//!
//! The wait is not a cancellation point and ignores deadlines: the lock is held only while a
//! value is swapped or borrowed, and an error here would have nowhere to go (`borrow` and
//! `send_replace` cannot fail). A waiter keeps trying only the std lock, so a steady stream of
//! readers can keep a writer waiting: borrows are meant to be short.

use std::ops::{Deref, DerefMut};
use std::sync::{TryLockError, TryLockResult};
use std::task::{Poll, Waker};

use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::loom::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::park;
use crate::wait::{WaitList, Waiter};

/// A value behind a lock whose contended acquisitions park the running task.
pub(super) struct ValueLock<T> {
    lock: RwLock<T>,
    /// Tasks waiting to acquire `lock`: written by waiters, read by every release.
    waiting: AtomicUsize,
    waiters: WaitList,
}

impl<T> ValueLock<T> {
    pub(super) fn new(value: T) -> ValueLock<T> {
        ValueLock {
            lock: RwLock::new(value),
            waiting: AtomicUsize::new(0),
            waiters: WaitList::new(),
        }
    }

    /// Shared access; waits (parking the task) while a writer holds the lock.
    pub(super) fn read(&self) -> ReadGuard<'_, T> {
        self.read_with(park_task)
    }

    /// Exclusive access; waits (parking the task) while anyone holds the lock.
    pub(super) fn write(&self) -> WriteGuard<'_, T> {
        self.write_with(park_task)
    }

    /// [`read`](Self::read), blocking with `block` (the loom models bring their own).
    fn read_with<'a>(&'a self, block: impl BlockFn<RwLockReadGuard<'a, T>>) -> ReadGuard<'a, T> {
        ReadGuard {
            guard: Some(self.acquire(RwLock::try_read, block)),
            lock: self,
        }
    }

    fn write_with<'a>(&'a self, block: impl BlockFn<RwLockWriteGuard<'a, T>>) -> WriteGuard<'a, T> {
        WriteGuard {
            guard: Some(self.acquire(RwLock::try_write, block)),
            lock: self,
        }
    }

    fn acquire<'a, G>(
        &'a self,
        try_lock: impl Fn(&'a RwLock<T>) -> TryLockResult<G>,
        block: impl BlockFn<G>,
    ) -> G {
        if let Some(g) = tried(try_lock(&self.lock)) {
            return g;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut waiter = self.waiters.waiter();
        let guard =
            block(&mut |waker: &Waker| poll_acquire(&self.lock, &try_lock, &mut waiter, waker));
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        guard
    }

    /// After a guard released the lock: wake the waiters, if any.
    fn released(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) != 0 {
            self.waiters.notify_all();
        }
    }
}

/// Blocks the caller until a poll function is ready.
trait BlockFn<G>: FnOnce(&mut dyn FnMut(&Waker) -> Poll<G>) -> G {}
impl<G, F: FnOnce(&mut dyn FnMut(&Waker) -> Poll<G>) -> G> BlockFn<G> for F {}

/// Blocks the running task (its fiber on Green, else its thread) until `poll` is ready: not a
/// cancellation point, no deadline (see the module docs).
fn park_task<G>(poll: &mut dyn FnMut(&Waker) -> Poll<G>) -> G {
    park::with_current_waker(|waker| loop {
        if let Poll::Ready(g) = poll(waker) {
            break g;
        }
        park::park(None);
    })
}

/// One attempt of a waiting acquisition: registered first, then tried (see the module docs).
fn poll_acquire<'a, T, G>(
    lock: &'a RwLock<T>,
    try_lock: &impl Fn(&'a RwLock<T>) -> TryLockResult<G>,
    waiter: &mut Waiter<'_>,
    waker: &Waker,
) -> Poll<G> {
    waiter.register(waker);
    match tried(try_lock(lock)) {
        Some(g) => {
            waiter.used();
            Poll::Ready(g)
        }
        None => Poll::Pending,
    }
}

/// The guard of a successful try; `None` if the lock is taken. Poisoning is ignored: a panic
/// under the write guard (in `send_modify`'s closure) leaves a value the closure was allowed to
/// leave, and the version is not bumped for it.
fn tried<G>(r: TryLockResult<G>) -> Option<G> {
    match r {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Shared access to the value; wakes waiting writers when dropped.
pub(super) struct ReadGuard<'a, T> {
    /// `Some` until dropped (then taken, so that the std lock is released before the wake-up).
    guard: Option<RwLockReadGuard<'a, T>>,
    lock: &'a ValueLock<T>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.lock.released();
    }
}

/// Exclusive access to the value; wakes waiting tasks when dropped.
pub(super) struct WriteGuard<'a, T> {
    guard: Option<RwLockWriteGuard<'a, T>>,
    lock: &'a ValueLock<T>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.lock.released();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_writer_waits_for_a_reader_on_another_thread() {
        let lock = std::sync::Arc::new(ValueLock::new(1));
        let r = lock.read();
        let writer = {
            let lock = lock.clone();
            std::thread::spawn(move || *lock.write() = 2)
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(*r, 1, "the writer waits for the borrow");
        drop(r);
        writer.join().unwrap();
        assert_eq!(*lock.read(), 2);
    }
}

/// Loom models of the lock's wake-up protocol (`RUSTFLAGS="--cfg loom" cargo test --lib
/// loom_models`): a waiter that misses the release it waits for stays parked, which loom
/// reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::model::{model, thread_waker};
    use crate::loom::sync::Arc;
    use ::loom::thread;

    fn park_loom<G>(poll: &mut dyn FnMut(&Waker) -> Poll<G>) -> G {
        let waker = thread_waker();
        loop {
            if let Poll::Ready(g) = poll(&waker) {
                return g;
            }
            thread::park();
        }
    }

    /// A writer that finds a borrow is woken when it ends.
    #[test]
    fn a_writer_is_woken_by_the_end_of_a_borrow() {
        model(|| {
            let lock = Arc::new(ValueLock::new(0));
            let reader = {
                let lock = lock.clone();
                thread::spawn(move || {
                    let r = lock.read_with(park_loom);
                    let v = *r;
                    drop(r);
                    v
                })
            };
            *lock.write_with(park_loom) = 1;
            let seen = reader.join().unwrap();
            assert!(seen == 0 || seen == 1);
            assert_eq!(*lock.read_with(park_loom), 1);
            assert_eq!(lock.waiting.load(Ordering::SeqCst), 0);
        });
    }

    /// Two writers and a reader contend; everyone gets through.
    #[test]
    fn contending_writers_and_a_reader_all_get_through() {
        model(|| {
            let lock = Arc::new(ValueLock::new(0));
            let writer = {
                let lock = lock.clone();
                thread::spawn(move || *lock.write_with(park_loom) += 1)
            };
            let reader = {
                let lock = lock.clone();
                thread::spawn(move || *lock.read_with(park_loom))
            };
            *lock.write_with(park_loom) += 1;
            writer.join().unwrap();
            assert!(reader.join().unwrap() <= 2);
            assert_eq!(*lock.read_with(park_loom), 2);
        });
    }
}
