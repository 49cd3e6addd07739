//! Background maintenance ([`Builder::maintenance`](super::Builder::maintenance)): a task that
//! closes expired idle connections and tops the idle list up to `min_idle`, every period.
//!
//! **Ownership.** The task holds only a `Weak` of the pool's state, so it never keeps a pool
//! alive. Its handle lives in a [`Maintenance`] shared by the `Pool` handles (not by the
//! checked-out guards, and never by the task itself): when the last `Pool` handle drops, or
//! the pool is closed, the handle is dropped, which cancels the task (its sleep or its
//! `connect` ends with *Canceled*) and waits for it to end. No task outlives its pool, and the
//! task can never be the one dropping its own handle (which would wait for itself).
//!
//! **Where no task can run concurrently** (Blocking), `build` cannot start one: the pool then
//! reaps on checkout instead, at most once a period (see [`Lazy`]), and leaves `min_idle` to
//! [`Pool::replenish`](super::Pool::replenish).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{Inner, Manager};
use crate::{Io, Task};

/// The handle of a pool's maintenance task, shared by its `Pool` handles.
pub(crate) struct Maintenance {
    /// `None` once stopped.
    task: Mutex<Option<Task<()>>>,
}

impl Maintenance {
    /// Starts the task through `io`; `None` where the model cannot run it concurrently.
    pub(crate) fn start<M: Manager>(
        io: &Io,
        inner: &Arc<Inner<M>>,
        every: Duration,
    ) -> Option<Arc<Maintenance>> {
        let weak = Arc::downgrade(inner);
        let task = io
            .task()
            .name("pool maintenance")
            .concurrent(move |io| run(io, &weak, every))
            .ok()?;
        Some(Arc::new(Maintenance {
            task: Mutex::new(Some(task)),
        }))
    }

    /// Cancels the task and waits for it to end (a future task's poll detaches it instead: see
    /// `Task`'s `Drop`). Idempotent.
    pub(crate) fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(task); // outside the lock: it waits for the task
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The task's body: every `every`, one [`Inner::maintain`] round, until the pool is closed or
/// gone or the task is canceled.
fn run<M: Manager>(io: &Io, weak: &Weak<Inner<M>>, every: Duration) {
    while io.sleep(every).is_ok() {
        let Some(inner) = weak.upgrade() else { return };
        if !inner.maintain(io) {
            return;
        }
    }
}

/// Reaping on checkout, where no maintenance task could be started: due at most once a
/// period, decided with one clock read and one atomic.
pub(crate) struct Lazy {
    epoch: Instant,
    every: Duration,
    /// Nanoseconds since `epoch` when the next reap is due.
    next: AtomicU64,
}

impl Lazy {
    pub(crate) fn new(every: Duration) -> Lazy {
        let epoch = crate::clock::now();
        Lazy {
            epoch,
            every,
            next: AtomicU64::new(nanos(every)),
        }
    }

    /// Whether a reap is due now; `true` for one caller per period.
    pub(crate) fn due(&self) -> bool {
        let now = nanos(self.epoch.elapsed());
        let next = self.next.load(Ordering::Relaxed);
        now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(nanos(self.every)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
