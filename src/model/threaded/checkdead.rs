//! Deadlock detection on Threaded: "all tasks are asleep: deadlock", proven, never guessed
//! (the Green check's argument, `model/green/checkdead.rs`, carried over to OS threads).
//!
//! Who is watched: the pool's workers and the run's root thread. Each publishes a word that
//! every change of its state bumps (an epoch):
//!
//! - its parker word ([`WaitWatch::word`], `crate::park`): `PARKED | FOREVER` while it is in a
//!   zsync coordination wait with no deadline (channel, lock, join, notify, condvar … with no
//!   timeout), stored `SeqCst` before the futex wait; every other state (running, a wait with a
//!   deadline, a descriptor wait in `ppoll`) is not quiet;
//! - for a worker, its sleep word ([`Runner`](super::monitor::Runner)): odd from just before it
//!   looks for work a last time and sleeps for lack of it, even again (`SeqCst`) before it does
//!   anything after the sleep.
//!
//! The monitor thread checks ([`Shared::check_dead`]) when it samples the pool, and now and then
//! while every worker sleeps:
//!
//! 1. read every watched word (`s0`): the root and every worker must be quiet (a worker:
//!    asleep, or parked forever);
//! 2. both elastic pools (`concurrent`/`blocking` threads, rescue threads) have no job queued
//!    and every thread idle, and the process has no thread besides the workers, the root, the
//!    monitor and those idle threads (`/proc/self/task`): no `std::thread`, no signal watcher,
//!    no driver thread, nothing that could hold a waker or a channel end; the idle counts are
//!    read again after the thread count and must not have changed;
//! 3. no queue holds a task (the injector, every worker's deque);
//! 4. every watched thread is asleep in the kernel (`/proc/self/task/<tid>/stat`: `S`);
//! 5. read every word again (`s1`): each unchanged.
//!
//! Why that proves a deadlock. Every store to a word changes it (the epoch), so a word equal at
//! `s0` and `s1` held its quiet value all along, in particular at the instant `T` between the
//! two collections, when steps 2 to 4 ran: every watched thread was in a park without deadline
//! (or a worker's idle sleep) and stayed there. A quiet thread runs no code that wakes anybody
//! (between its quiet store and its futex wait, and between the futex's return and its next
//! store, it runs only std's park code). The one thing a word cannot show is a wake-up already
//! on its way: std's park token, set by an `unpark` that came just before the park, which makes
//! the park return at once without sleeping. Step 4 excludes it: a thread that found a token
//! never sleeps in that park, and a thread woken in its sleep is runnable (`R`), no longer `S`;
//! the waker that sent the token was running then, so it was a watched thread whose word was
//! not quiet, another thread (step 2), or a helper that went idle after it (its idle state is
//! read under its pool's lock, after which step 4 sees the wake-up). A task pushed by someone
//! who then parked is in a queue (step 3). Stackless tasks waiting for a waker and idle helpers
//! are moved only by a running thread. So after `s1` nothing will ever run a task again.
//!
//! What it cannot see, so it never reports: a waker held by another thread (any extra thread
//! prevents the report: a test harness, a `Runtime`'s owner, a `dump_on_signal` watcher); what
//! it misses: a deadlock while a helper thread runs or a wait has a timeout, and a run that
//! never spawned (the monitor starts with the first spawn). Cost: the parker's store before a
//! park without deadline is `SeqCst` instead of relaxed (one locked instruction before a futex
//! wait), a worker stores its sleep word twice per idle sleep (the idle path), and the monitor,
//! while every worker sleeps, wakes up now and then (10 ms doubling to 1 s) instead of parking
//! for good.
//!
//! On a deadlock the monitor prints the report with the task dump, marks the run and cancels the
//! root scope, which cancels every task: the run ends and fails with
//! [`Deadlock`](crate::Deadlock). A second proven deadlock after that (waits cancellation does
//! not reach) aborts the process, as Go's does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;
use crate::park::WaitWatch;

/// The first pause before the monitor looks again when a check could not decide.
pub(super) const RECHECK_MIN: Duration = super::monitor::PERIOD;
/// The longest pause between looks.
pub(super) const RECHECK_MAX: Duration = Duration::from_secs(1);

pub(super) use crate::stall::Verdict;

/// One reading of every watched word: the root's parker word, then per worker its sleep word
/// and its parker word.
fn collect(shared: &Shared, root: &WaitWatch) -> Option<Vec<u64>> {
    let monitor = &shared.monitor;
    let mut words = Vec::with_capacity(1 + 2 * monitor.workers().len());
    let root_word = root.word();
    if !WaitWatch::parked_forever(root_word) {
        return None;
    }
    words.push(u64::from(root_word));
    for runner in monitor.workers() {
        let sleep = runner.sleep_word();
        let parked = runner.waits().map_or(0, WaitWatch::word);
        if sleep & 1 == 0 && !WaitWatch::parked_forever(parked) {
            return None;
        }
        words.push(sleep);
        words.push(u64::from(parked));
    }
    Some(words)
}

impl Shared {
    /// Checks whether every task of the run is asleep for good (see the module docs). Called
    /// by the monitor thread.
    pub(super) fn check_dead(&self) -> Verdict {
        let monitor = &self.monitor;
        let Some(root) = monitor.root() else {
            return Verdict::Alive;
        };
        let Some(s0) = collect(self, root) else {
            return Verdict::Alive;
        };
        let idle = || Some(self.elastic.idle_threads()? + monitor.rescue_idle_threads()?);
        let Some(helpers) = idle() else {
            return Verdict::Undecided;
        };
        // Workers, the root, the monitor and the idle helpers.
        let ours = monitor.workers().len() + 2 + helpers;
        match crate::stall::threads::count() {
            Ok(n) if n == ours => {}
            _ => return Verdict::Undecided,
        }
        if idle() != Some(helpers) {
            return Verdict::Undecided;
        }
        if self.has_queued() {
            return Verdict::Alive;
        }
        let asleep = |w: &WaitWatch| crate::stall::threads::state(w.tid()) == Some(b'S');
        if !asleep(root)
            || !monitor
                .workers()
                .iter()
                .all(|r| r.waits().is_some_and(asleep))
        {
            return Verdict::Alive;
        }
        if collect(self, root).is_some_and(|s1| s1 == s0) {
            Verdict::Dead
        } else {
            Verdict::Alive
        }
    }
}

/// Reports a proven deadlock on the run's diagnostics writer and cancels every task (the run
/// then fails with [`Deadlock`](crate::Deadlock)); aborts if the run was canceled for one
/// already.
#[cold]
pub(super) fn deadlocked(io: &crate::Io, out: &crate::stall::Diagnostics) {
    let again = io.inner.state.deadlocked.swap(true, Ordering::AcqRel);
    let mut msg = String::from("zsync: all tasks are asleep: deadlock\n");
    if again {
        msg.push_str(
            "  Still so after every task was canceled (tasks wait where cancellation does not \
             reach); aborting.\n",
        );
    } else {
        msg.push_str(
            "  Every thread of the Threaded pool and the root wait in zsync waits with no \
             timeout, and nothing can wake them: no I/O, timer, helper thread or other thread \
             is left. Every task is canceled now and the run fails with zsync::Deadlock.\n",
        );
    }
    msg.push_str(&crate::stall::describe::tasks(io));
    out.write(&msg);
    if again {
        std::process::abort();
    }
    io.inner.root.cancel();
}
