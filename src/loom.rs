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
//! - `channel::core` — the channel's state lock with its waiter queue (one lock per operation).
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
    pub(crate) use ::loom::sync::{Arc, Mutex, MutexGuard};
    #[cfg(not(loom))]
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

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
