//! What every model shares during a run: live-task accounting for shutdown, and the first panic
//! of a detached task for `run` to re-raise.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "profile")]
use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::task::live::{LiveTasks, ShardId};

/// State every model shares: live-task accounting for shutdown, panics of detached tasks.
///
/// Live tasks are counted per worker thread ([`LiveTasks`]): each worker owns a shard, found
/// through a thread-local, and no cache line is written by every worker for every task. The
/// last finisher notifies the waiter when it sees `shutting_down`; without a fence on the
/// finisher's side the two can miss each other, so the waiter also re-checks every
/// [`SHUTDOWN_RECHECK`].
pub(crate) struct RunState {
    live: LiveTasks,
    shutting_down: AtomicBool,
    idle: Mutex<()>,
    all_done: Condvar,
    /// Called when the last task finishes during shutdown, for models whose shutdown waits in
    /// an event loop rather than on `all_done` (Green's worker 0).
    on_all_done: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    pub(crate) panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The runtime's async driver, made on first use (see [`crate::driver`]).
    pub(crate) driver: crate::driver::DriverCell,
    /// Set when the run was found deadlocked (Green: `model/green/checkdead.rs`; Blocking:
    /// `stall/single.rs`): `run` fails with [`Deadlock`](crate::Deadlock).
    pub(crate) deadlocked: AtomicBool,
    /// Blocking: where a deadlock is reported, if the check is on (see `stall/single.rs`).
    pub(crate) single_thread_check: Option<crate::stall::Diagnostics>,
    /// The runtime's profile figures (feature `profile`; see [`crate::diag::record`]).
    #[cfg(feature = "profile")]
    pub(crate) profile: Arc<crate::diag::record::Recorder>,
}

thread_local! {
    /// The `RunState` whose live-task shard this thread owns, and the shard's index (see
    /// [`RunState::own_shard`]).
    static SHARD: std::cell::Cell<(*const RunState, usize)> =
        const { std::cell::Cell::new((std::ptr::null(), 0)) };
}

/// Gives the calling thread's shard back when dropped (see [`RunState::own_shard`]).
pub(crate) struct ShardGuard((*const RunState, usize));

impl Drop for ShardGuard {
    fn drop(&mut self) {
        SHARD.with(|s| s.set(self.0));
    }
}

/// How often a shutdown waiting for tasks re-checks the counts on its own (see [`RunState`]).
pub(crate) const SHUTDOWN_RECHECK: Duration = Duration::from_millis(1);

impl RunState {
    /// State for a model with `workers` threads that own a live-task shard each.
    pub(crate) fn new(workers: usize) -> RunState {
        RunState {
            live: LiveTasks::new(workers),
            shutting_down: AtomicBool::new(false),
            idle: Mutex::new(()),
            all_done: Condvar::new(),
            on_all_done: std::sync::OnceLock::new(),
            panic: Mutex::new(None),
            driver: crate::driver::DriverCell::default(),
            deadlocked: AtomicBool::new(false),
            single_thread_check: None,
            #[cfg(feature = "profile")]
            profile: Default::default(),
        }
    }

    /// Turns the Blocking model's deadlock check on, reporting to `out`.
    pub(crate) fn with_single_thread_check(mut self, out: crate::stall::Diagnostics) -> RunState {
        self.single_thread_check = Some(out);
        self
    }

    /// Makes the calling thread the owner of live-task shard `index` (a worker's index) until
    /// the guard drops. Each index must be owned by one thread at a time.
    pub(crate) fn own_shard(&self, index: usize) -> ShardGuard {
        assert!(index < self.live.workers(), "worker {index} has no shard");
        ShardGuard(SHARD.with(|s| s.replace((self as *const RunState, index))))
    }

    /// Where the calling thread counts.
    #[inline]
    fn shard(&self) -> ShardId {
        let (state, index) = SHARD.with(|s| s.get());
        if std::ptr::eq(state, self) {
            ShardId::Owned(index)
        } else {
            ShardId::Shared
        }
    }

    /// Whether every task started so far has finished.
    pub(crate) fn all_finished(&self) -> bool {
        self.live.all_finished()
    }

    /// Tasks started (spawned) and not finished, roughly: for a task dump.
    pub(crate) fn live_estimate(&self) -> usize {
        self.live.live_estimate()
    }

    pub(crate) fn task_started(&self) {
        self.live.started(self.shard());
    }

    pub(crate) fn task_finished(&self) {
        self.live.finished(self.shard());
        if self.shutting_down.load(Ordering::Relaxed) && self.all_finished() {
            let _guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            self.all_done.notify_all();
            if let Some(notify) = self.on_all_done.get() {
                notify();
            }
        }
    }

    /// Enters shutdown with `notify` to call when the last task finishes. The caller re-checks
    /// [`all_finished`](Self::all_finished) after setting this up, after each wake-up and at
    /// least every [`SHUTDOWN_RECHECK`].
    pub(crate) fn begin_shutdown(&self, notify: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_all_done.set(Box::new(notify));
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Keeps the first panic of a detached task (or of other user code the runtime ran, see
    /// [`crate::contain`]) for `run` to re-raise. Later ones are dropped, outside the lock and
    /// without unwinding: their payload's `Drop` is user code too.
    pub(crate) fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let extra = {
            let mut slot = self.panic.lock().unwrap_or_else(|p| p.into_inner());
            match *slot {
                None => {
                    *slot = Some(payload);
                    None
                }
                Some(_) => Some(payload),
            }
        };
        if let Some(payload) = extra {
            crate::contain::drop_payload(payload);
        }
    }

    pub(crate) fn wait_all_done(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while !self.all_finished() {
            guard = self
                .all_done
                .wait_timeout(guard, SHUTDOWN_RECHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
