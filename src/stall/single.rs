//! Deadlock detection on the Blocking model: a run of one thread, waiting with nothing left that
//! could wake it.
//!
//! On Blocking every task runs inline on the root's thread, and `io.blocking` calls run there
//! too: the run is one thread. When that thread parks in a pure zsync wait (no deadline, no
//! descriptor) and it is the process's *only* thread, nobody can ever wake it, except a wake-up
//! that arrived before it parked (std's park token, which cannot be read). So the park is done in
//! two steps (`crate::park`):
//!
//! 1. **Probe**: with the process down to this one thread, the thread clears its parker's `woke`
//!    flag, stores `CHECKING` in its parker state (`SeqCst`; a waker that sees `CHECKING` sets
//!    `woke`), consumes any pending token with a zero-timeout park, and returns as a spurious
//!    wake-up: the caller looks at its condition again (a wake-up that came earlier has made it
//!    true by now) and parks again.
//! 2. **Verdict**: a park that finds the state still `CHECKING` (no other wait in between), `woke`
//!    still clear (no wake-up since step 1, its own code's included) and the process still down
//!    to this thread is a deadlock: every wake-up sent before step 1 was consumed and looked at,
//!    none came after, and no other thread exists to send one.
//!
//! The run is then failed like Green's: the report is printed, the run marked, and the root
//! scope canceled (the wait returns `Canceled`). A second verdict after that (a wait that
//! cancellation does not reach) aborts the process. Wakers pay nothing new: they already load
//! the state to find `POLLING`; `CHECKING` is one more value of it.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::model::ModelImpl;

/// Whether the calling thread runs a task of a Blocking run whose deadlock check is on, and the
/// process has no other thread.
pub(crate) fn alone_in_a_checked_run() -> bool {
    let checked = crate::context::with(|c| {
        c.is_some_and(|c| {
            matches!(c.io.inner.model, ModelImpl::Blocking)
                && c.io.inner.state.single_thread_check.is_some()
        })
    });
    checked && alone()
}

/// The first and longest pause between two looks at the process's threads while it has others.
const LOOK_MIN: Duration = Duration::from_millis(1);
const LOOK_MAX: Duration = Duration::from_secs(1);

thread_local! {
    /// When this thread may look at the process's threads again, and the pause after that: a
    /// Blocking run in a process with other threads reads `/proc` at most once per pause
    /// (doubling up to `LOOK_MAX`), not at every wait.
    static NEXT_LOOK: Cell<(Option<Instant>, Duration)> = const { Cell::new((None, LOOK_MIN)) };
}

/// Whether this is the process's only thread (`/proc/self/stat`), looked at no more often than
/// `NEXT_LOOK` allows while the answer is no. A skipped look answers no: the check only misses a
/// deadlock for a while, it never reports one wrongly.
fn alone() -> bool {
    let (next, pause) = NEXT_LOOK.with(Cell::get);
    let now = Instant::now();
    if next.is_some_and(|t| now < t) {
        return false;
    }
    if super::threads::count_fast() == Some(1) {
        NEXT_LOOK.with(|c| c.set((None, LOOK_MIN)));
        return true;
    }
    NEXT_LOOK.with(|c| c.set((Some(now + pause), (pause * 2).min(LOOK_MAX))));
    false
}

/// Reports the deadlock of the calling thread's Blocking run and cancels it (see the module
/// docs); aborts if it was reported before.
#[cold]
pub(crate) fn deadlocked() {
    crate::context::with(|c| {
        let Some(c) = c else { return };
        let state = &c.io.inner.state;
        let Some(out) = &state.single_thread_check else {
            return;
        };
        let again = state.deadlocked.swap(true, Ordering::AcqRel);
        let mut msg = String::from("zsync: all tasks are asleep: deadlock\n");
        msg.push_str(&super::describe::alone(c.task));
        if again {
            msg.push_str(
                "  Still so after every task was canceled (it waits where cancellation does not \
                 reach); aborting.\n",
            );
            msg.push_str(&super::describe::tasks(c.io));
            out.write(&msg);
            std::process::abort();
        }
        msg.push_str(
            "  No other thread is left to wake it. Every task is canceled now and the run fails \
             with zsync::Deadlock.\n",
        );
        msg.push_str(&super::describe::tasks(c.io));
        out.write(&msg);
        c.io.inner.root.cancel();
    });
}
