//! The one place the crate's checked synchronization primitives come from (after Tokio's
//! `src/loom/`).
//!
//! Normally these are std's types, re-exported unchanged: the shim costs nothing. Built with
//! `RUSTFLAGS="--cfg loom"`, the same names resolve to [loom]'s instrumented types, and the
//! `loom_models` unit tests next to each structure explore every interleaving (up to a preemption
//! bound) of its real code. They run with
//! `LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" cargo test --release --lib loom_models` (see
//! `.ci/run`, which uses its own target directory). The structures routed through here, each with
//! its `mod loom_models`:
//!
//! - `wait::list` — the `WaitList` mutex (registration, notification, passing an unused turn on);
//! - `cancel` — the `CancelNode` flag word, the shield counter, the children lock;
//! - `task::cell` — the `CLAIMED`/`DONE`/`DETACHED` state word and the closure/result cells;
//! - `task::live` — the per-worker started/finished shards and the shutdown sum;
//! - `channel::core` — the channel's state lock with its waiter queue (one lock per operation);
//! - `channel::watch::lock` — the watch value's lock: tried, never blocked on, with a counted
//!   waiter list (a Dekker pair between a release and a waiter's registration).
//!
//! Everything else keeps using std directly. A loom type only works inside `loom::model`, so under
//! `cfg(loom)` the crate still compiles whole but only the routed structures may be exercised; the
//! runtime itself (workers, parkers, epoll) is not run under loom.
//!
//! [`UnsafeCell`](cell::UnsafeCell) is the one type whose API differs from std's: loom tracks
//! every access to a cell's contents, so the std version here has loom's closure-based `with_mut`
//! instead of `get`.
//!
//! [loom]: https://docs.rs/loom

#![allow(unused_imports)] // not every item is used by every configuration

/// Cells whose accesses loom checks for data races.
pub(crate) mod cell {
    #[cfg(loom)]
    pub(crate) use ::loom::cell::UnsafeCell;

    /// `std::cell::UnsafeCell` with loom's access API.
    #[cfg(not(loom))]
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[cfg(not(loom))]
    impl<T> UnsafeCell<T> {
        /// Wraps `data`.
        #[inline]
        pub(crate) const fn new(data: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(data))
        }

        /// Runs `f` with a mutable pointer to the contents. The caller upholds the aliasing rules
        /// exactly as with `std::cell::UnsafeCell::get`.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// `Arc`, `Mutex` and the atomics.
pub(crate) mod sync {
    #[cfg(loom)]
    pub(crate) use super::try_rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
    #[cfg(loom)]
    pub(crate) use ::loom::sync::{Arc, Mutex, MutexGuard};
    #[cfg(not(loom))]
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

    /// The atomic integer types and `Ordering`.
    pub(crate) mod atomic {
        #[cfg(loom)]
        pub(crate) use ::loom::sync::atomic::{
            fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering,
        };
        #[cfg(not(loom))]
        pub(crate) use std::sync::atomic::{
            fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering,
        };
    }
}

/// A read-write lock with std's `try_read`/`try_write` (the only calls the crate makes on one),
/// built on a loom atomic. loom's own `RwLock` cannot stand in: it schedules a thread whose next
/// operation is on a held lock only once the lock is free, so a `try_*` never finds it taken and
/// the contended path of its caller is never explored.
#[cfg(loom)]
mod try_rwlock {
    use std::ops::{Deref, DerefMut};
    use std::sync::{TryLockError, TryLockResult};

    use ::loom::sync::atomic::{AtomicUsize, Ordering};

    /// [`RwLock::state`] while a writer holds the lock; otherwise the number of readers.
    const WRITER: usize = usize::MAX;

    pub(crate) struct RwLock<T> {
        state: AtomicUsize,
        data: std::cell::UnsafeCell<T>,
    }

    // SAFETY: as std's `RwLock`: the value moves with the lock, and is shared (`&T` to readers on
    // several threads, `&mut T` to one writer) only under the `state` protocol.
    unsafe impl<T: Send> Send for RwLock<T> {}
    // SAFETY: see `Send`; readers on several threads need `T: Sync`, a writer `T: Send`.
    unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> RwLock<T> {
            RwLock {
                state: AtomicUsize::new(0),
                data: std::cell::UnsafeCell::new(value),
            }
        }

        pub(crate) fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
            let s = self.state.load(Ordering::Relaxed);
            if s == WRITER || s == WRITER - 1 {
                return Err(TryLockError::WouldBlock);
            }
            match self
                .state
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => Ok(RwLockReadGuard { lock: self }),
                Err(_) => Err(TryLockError::WouldBlock),
            }
        }

        pub(crate) fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
            match self
                .state
                .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => Ok(RwLockWriteGuard { lock: self }),
                Err(_) => Err(TryLockError::WouldBlock),
            }
        }
    }

    pub(crate) struct RwLockReadGuard<'a, T> {
        lock: &'a RwLock<T>,
    }

    impl<T> Deref for RwLockReadGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: this guard counts as a reader in `state`, so no writer holds the lock
            // until it drops: shared access only.
            unsafe { &*self.lock.data.get() }
        }
    }

    impl<T> Drop for RwLockReadGuard<'_, T> {
        fn drop(&mut self) {
            self.lock.state.fetch_sub(1, Ordering::Release);
        }
    }

    pub(crate) struct RwLockWriteGuard<'a, T> {
        lock: &'a RwLock<T>,
    }

    impl<T> Deref for RwLockWriteGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: `state` is `WRITER` while this guard lives: no other guard exists.
            unsafe { &*self.lock.data.get() }
        }
    }

    impl<T> DerefMut for RwLockWriteGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as `deref`, and `&mut self` makes this the only borrow through the guard.
            unsafe { &mut *self.lock.data.get() }
        }
    }

    impl<T> Drop for RwLockWriteGuard<'_, T> {
        fn drop(&mut self) {
            self.lock.state.store(0, Ordering::Release);
        }
    }
}

/// The task's joiner slot: the `atomic-waker` crate's, or loom's model of the same type.
pub(crate) mod waker {
    #[cfg(not(loom))]
    pub(crate) use atomic_waker::AtomicWaker;

    /// loom's `AtomicWaker` with the `atomic-waker` crate's signatures.
    #[cfg(loom)]
    #[derive(Default)]
    pub(crate) struct AtomicWaker(::loom::future::AtomicWaker);

    #[cfg(loom)]
    impl AtomicWaker {
        pub(crate) fn new() -> AtomicWaker {
            AtomicWaker(::loom::future::AtomicWaker::new())
        }
        pub(crate) fn register(&self, waker: &std::task::Waker) {
            self.0.register_by_ref(waker);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
}

/// Helpers for the `#[cfg(loom)]` models in the routed modules.
#[cfg(all(test, loom))]
pub(crate) mod model {
    use std::sync::Arc as StdArc;
    use std::task::{Wake, Waker};

    use super::sync::atomic::{AtomicUsize, Ordering};
    use super::sync::Arc;

    /// Preemption bound unless `LOOM_MAX_PREEMPTIONS` says otherwise: enough for the races of
    /// these small protocols, and keeps the whole loom run within a minute or two on 2 cores.
    const DEFAULT_PREEMPTIONS: usize = 3;

    /// Runs `f` under loom's exhaustive scheduler with a bounded number of preemptions.
    pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = ::loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
        }
        builder.check(f);
    }

    /// Unparks one loom thread: the model's stand-in for the thread parker.
    struct Unpark(::loom::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: StdArc<Self>) {
            self.0.unpark();
        }
    }

    /// A waker that unparks the calling loom thread.
    pub(crate) fn thread_waker() -> Waker {
        Waker::from(StdArc::new(Unpark(::loom::thread::current())))
    }

    /// Counts its wake-ups in a loom atomic.
    struct Count(Arc<AtomicUsize>);

    impl Wake for Count {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker that only counts how often it was woken.
    pub(crate) fn counting_waker() -> (Arc<AtomicUsize>, Waker) {
        let count = Arc::new(AtomicUsize::new(0));
        (count.clone(), Waker::from(StdArc::new(Count(count))))
    }
}
