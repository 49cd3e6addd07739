//! Deadlock detection on Green: "all tasks are asleep: deadlock", checked when a worker is about
//! to sleep with nothing that could wake it (Go's `checkdead`, run where Go runs it: when a
//! thread goes idle).
//!
//! A worker that is about to sleep in its reactor *without a timeout* (no timer of its own, no
//! async-driver timer, no tasks held back for another worker, no memory trim due), with no
//! descriptor wait or ring op registered and no async driver in the runtime, announces that it
//! is **quiet**: it sets the low bit of its `Remote::quiet` word (`SeqCst`) before its last look
//! at the others; it bumps the word's epoch (the bits above) as soon as its sleep ends, before
//! it touches anything. Then it runs [`Shared::check_dead`]:
//!
//! 1. read every worker's quiet word (`s0`): all must be quiet;
//! 2. the monitor is not surveying the queues (it takes tasks out for a moment: see `sysmon.rs`);
//! 3. the helper pool (`Io::blocking`, offloaded file ops) has no job queued and every thread of
//!    it is idle, and the process has no thread besides the workers, those idle helpers and the
//!    monitor (`/proc/self/task`, io_uring's kernel workers left out): no `std::thread`, no
//!    `Runtime` owner, no foreign runtime, nothing that could hold a waker or a channel end;
//! 4. no queue holds anything: the global and per-worker queues of fresh tasks and of future
//!    tasks, every worker's inbox of woken fibers;
//! 5. read every quiet word again (`s1`): each unchanged, so no worker ran between the reads.
//!
//! Why that proves a deadlock: between `s0` and `s1` no worker ran (an epoch bump would show),
//! so no fiber or future ran. At step 3 every other thread of the process was an idle helper
//! or the monitor. An idle helper starts work only when a running thread gives it some; the
//! monitor only moves queued tasks, and step 2 with the quiet bits (the monitor announces a
//! survey and then checks that no worker is quiet, the Dekker pattern) excludes that. Nothing
//! in the kernel can wake a fiber: no registration and no ring op on any worker, no timer. A
//! wake-up sent before `s0` by a thread that then went idle published its fiber in an inbox
//! first (step 4, read after the helper's idle state under the pool's lock, sees it) or ended the worker's sleep (its epoch changes). So after `s1` no
//! thread will ever run a task again: every task of the run is asleep for good.
//!
//! What it cannot see, so it never reports: a waker held by another thread (any extra thread
//! prevents the report); a signal handler that wakes a task directly (zsync's own go through
//! its dispatcher thread, an extra thread). What it misses: a deadlock while any of those
//! conditions lasts (a `Runtime`'s owner thread always exists; a test harness's threads do;
//! a pending timer, even far away, or a descriptor wait). When the check fails only for a
//! reason that may change without any worker waking (a busy or exiting helper thread, an extra
//! thread), the worker looks again after a pause that doubles up to [`RECHECK_MAX`], then
//! stops looking until a check finds a worker awake (an idle runtime beside other threads must
//! not wake forever).
//!
//! On a deadlock the first checker sets [`Shared::deadlock`] and wakes worker 0, whose loop
//! (`Green::run_root`) prints the report with what is known of the tasks and cancels the root
//! scope, which cancels every task: the run then ends and fails with
//! [`Deadlock`](crate::Deadlock). Tasks whose waits are no cancellation points may stay asleep:
//! a second proven deadlock after the cancellation aborts the process, as Go's does.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Shared;

/// The low bit of a worker's quiet word: the worker sleeps with nothing that could wake it.
pub(super) const QUIET: u64 = 1;

/// [`Shared::deadlock`]: no deadlock seen.
pub(super) const ALIVE: u8 = 0;
/// [`Shared::deadlock`]: a deadlock was proven; worker 0 reports it and cancels every task.
pub(super) const DETECTED: u8 = 1;
/// [`Shared::deadlock`]: reported, every task canceled.
pub(super) const HANDLED: u8 = 2;

/// The first pause before a quiet worker looks again when the check could not decide.
pub(super) const RECHECK_MIN: Duration = Duration::from_millis(1);
/// The longest pause between looks.
pub(super) const RECHECK_MAX: Duration = Duration::from_secs(1);

pub(super) use crate::stall::Verdict;

impl Shared {
    /// Checks whether every task of the run is asleep for good (see the module docs). Called by
    /// a worker that has just announced it is quiet.
    pub(super) fn check_dead(&self) -> Verdict {
        let s0: Vec<u64> = self
            .remotes
            .iter()
            .map(|r| r.quiet.load(Ordering::SeqCst))
            .collect();
        if s0.iter().any(|q| q & QUIET == 0) {
            return Verdict::Alive;
        }
        if self.sysmon.surveying() {
            return Verdict::Undecided;
        }
        // A cheap look first: work queued anywhere, or a worker that ran since `s0`, already
        // answers `Alive`, without the thread count below (a `/proc` directory read, tens of
        // microseconds). Workers that hand messages to each other are often all asleep at once
        // for a moment, one of them already woken but not yet running: this look sees its
        // inbox. It proves nothing by itself: a `Dead` verdict still rests on the full
        // sequence below.
        if self.has_queued_work() || self.any_ran_since(&s0) {
            return Verdict::Alive;
        }
        // Helpers and threads before the queues: a helper that woke a fiber and then went
        // idle published the fiber in an inbox first, so the queues, read after its idle
        // state, show it.
        let Some(helpers) = self.blocking.idle_threads() else {
            return Verdict::Undecided;
        };
        let ours = self.remotes.len() + helpers + usize::from(self.sysmon.has_thread());
        match crate::stall::threads::count() {
            Ok(n) if n == ours => {}
            _ => return Verdict::Undecided,
        }
        if self.has_queued_work() {
            return Verdict::Alive;
        }
        if self.any_ran_since(&s0) {
            Verdict::Alive
        } else {
            Verdict::Dead
        }
    }

    /// Whether any queue holds something: fresh or future tasks, global or per worker, or a
    /// woken fiber in an inbox.
    fn has_queued_work(&self) -> bool {
        !self.injector.is_empty()
            || !self.future_injector.is_empty()
            || self.stealers.iter().any(|s| !s.is_empty())
            || self.future_stealers.iter().any(|s| !s.is_empty())
            || self.remotes.iter().any(|r| !r.inbox.is_empty())
    }

    /// Whether some worker's quiet word changed since `s0` was read: it ran meanwhile.
    fn any_ran_since(&self, s0: &[u64]) -> bool {
        self.remotes
            .iter()
            .zip(s0)
            .any(|(r, &q)| r.quiet.load(Ordering::SeqCst) != q)
    }

    /// Records a proven deadlock (see [`Found`]).
    pub(super) fn deadlock_found(&self) -> Found {
        match self
            .deadlock
            .compare_exchange(ALIVE, DETECTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // Worker 0 reports and cancels (it holds the run's `Io`).
                self.remotes[0].unpark();
                Found::First
            }
            Err(DETECTED) => Found::Pending,
            Err(_) => Found::Again,
        }
    }
}

/// What a proven deadlock is, in the run's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// The first: worker 0 is told to report it and cancel every task.
    First,
    /// Worker 0 has not handled the first yet.
    Pending,
    /// Another one after every task was canceled: see [`fatal`].
    Again,
}

/// A deadlock proven again after every task was canceled: tasks asleep in waits that are no
/// cancellation points can never finish, so the run can neither go on nor end. Like Go, say so
/// and end the process.
#[cold]
pub(super) fn fatal(out: &crate::stall::Diagnostics, live: &[usize]) -> ! {
    let mut msg = String::from(
        "zsync: all tasks are asleep: deadlock, and still after every task was canceled \
         (tasks wait where cancellation does not reach); aborting\n",
    );
    msg.push_str(&crate::stall::describe::asleep(live));
    out.write(&msg);
    std::process::abort();
}
