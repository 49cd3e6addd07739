//! Idle workers of the Threaded pool sleep here until a task is queued or the pool closes.
//!
//! No lost wake-ups: a worker announces itself idle (`idle += 1`, `SeqCst`) and then looks for
//! work once more before it blocks; a spawner pushes its task and then reads `idle` (`SeqCst`).
//! Either the worker's second look finds the task, or the spawner sees the worker idle and posts
//! a wake-up under the lock, which the worker consumes before it blocks. A push on the
//! injector is a `SeqCst` read-modify-write, so that pairing holds as written; a push on a
//! worker's own deque is only a `Release` store, which the later load of `idle` may overtake
//! (x86's store buffer does exactly that), so `Pool::spawn` puts a `SeqCst` fence between them
//! (the stealers' `is_empty` in the worker's second look has the matching fence).
//!
//! `idle` also tells the pool's monitor when every worker is idle (it parks then; see
//! `monitor`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

pub(super) struct Sleepers {
    /// Workers between announcing idleness and taking a wake-up.
    idle: AtomicUsize,
    /// Wake-ups posted and not yet taken.
    pending: Mutex<usize>,
    cv: Condvar,
}

impl Sleepers {
    pub(super) fn new() -> Sleepers {
        Sleepers {
            idle: AtomicUsize::new(0),
            pending: Mutex::new(0),
            cv: Condvar::new(),
        }
    }

    /// Wakes one idle worker, if any. Called after a task was queued.
    pub(super) fn notify_one(&self) {
        if self.idle.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending = (*pending + 1).min(self.idle.load(Ordering::SeqCst).max(1));
        self.cv.notify_one();
    }

    /// Whether all `workers` are idle (between announcing idleness and taking a wake-up).
    /// `SeqCst`: the monitor's half of a Dekker pair with a waking worker (see `monitor`).
    pub(super) fn all_idle(&self, workers: usize) -> bool {
        self.idle.load(Ordering::SeqCst) >= workers
    }

    /// Wakes every worker (shutdown).
    pub(super) fn notify_all(&self) {
        let _pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.cv.notify_all();
    }

    /// Blocks until woken, unless `has_work` finds something first. Returns `is_open()` as seen
    /// after waking: `false` tells the worker to exit once it has drained its queues.
    pub(super) fn sleep(&self, has_work: impl Fn() -> bool, is_open: impl Fn() -> bool) -> bool {
        self.idle.fetch_add(1, Ordering::SeqCst);
        if has_work() {
            self.idle.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        while *pending == 0 && is_open() {
            pending = self.cv.wait(pending).unwrap_or_else(|p| p.into_inner());
        }
        if *pending > 0 {
            *pending -= 1;
        }
        self.idle.fetch_sub(1, Ordering::SeqCst);
        is_open()
    }
}
