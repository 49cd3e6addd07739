//! Stacks of tasks sleeping on OS threads (Threaded, Blocking, custom models), for a task dump.
//!
//! A parked thread's stack can be walked only from that thread. So a dump *asks* it:
//!
//! 1. For each task it found sleeping on a thread, the dump sets the trace bit in the task's
//!    wait slot ([`WaitSlot::request_trace`](super::wait_point::WaitSlot::request_trace)) and
//!    wakes the task through the waker the task registered in its cancellation node (the
//!    same wake-up `cancel` uses: an unpark, and an eventfd write if the thread polls).
//! 2. The thread's wait (`park.rs`: `park_this_thread`, `poll_this_thread`) ends, and the end
//!    of the sleep ([`wait_point::end`](super::wait_point::end), which loads the slot's word
//!    anyway) reports the bit. The thread then captures its own stack, unresolved
//!    ([`answer`]), posts it here, and returns from the wait as from any spurious wake-up.
//! 3. Every caller of those waits loops on its own condition (a park has token semantics and
//!    `ppoll` may return spuriously; see `park.rs`), so the task re-checks what it waits for,
//!    observes cancellation and its deadline as after any wake-up, and sleeps again. Nothing
//!    is lost: the thread does not re-park inside the wait, where a real wake-up that arrived
//!    with the trace request would have been absorbed by the same park token.
//! 4. The dump waits for the answers on a condition variable, for a bounded time; a task that
//!    does not answer (its thread is busy, or the request raced with the end of its sleep) is
//!    shown without a stack, with a note.
//!
//! Cost when no dump is taken: none beyond what `wait_point::end` did already (it returns a
//! bit of the word it loaded); a thread wait checks that boolean once.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cancel::NodeRef;
use crate::context;

/// Stacks posted by threads, by the address of their task's wait slot.
static POSTED: Mutex<Vec<(usize, backtrace::Backtrace)>> = Mutex::new(Vec::new());
static ANSWERED: Condvar = Condvar::new();

/// Asks every task of `targets` (sleeping on a thread) for its stack; returns the stacks that
/// came within `patience`, by the address of the task's wait slot.
pub(crate) fn request(
    targets: &[NodeRef],
    patience: Duration,
) -> HashMap<usize, backtrace::Backtrace> {
    let mut wanted: Vec<usize> = Vec::new();
    {
        let mut posted = POSTED.lock().unwrap_or_else(|p| p.into_inner());
        for node in targets {
            let addr = &node.wait as *const _ as usize;
            posted.retain(|(a, _)| *a != addr); // a stale answer to an earlier dump
            if let Some(waker) = node.waker() {
                node.wait.request_trace();
                wanted.push(addr);
                waker.wake_by_ref();
            }
        }
    }
    let mut got = HashMap::new();
    let give_up = Instant::now() + patience;
    let mut posted = POSTED.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let mut i = 0;
        while i < posted.len() {
            if wanted.contains(&posted[i].0) {
                let (a, bt) = posted.swap_remove(i);
                got.insert(a, bt);
            } else {
                i += 1;
            }
        }
        let now = Instant::now();
        if got.len() == wanted.len() || now >= give_up {
            return got;
        }
        posted = ANSWERED
            .wait_timeout(posted, give_up - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// The running task was asked for its stack during its sleep: captures it here (on its own
/// thread, in the wait it sleeps in) and posts it. The caller then returns from its wait as
/// from a spurious wake-up (see the module docs).
#[cold]
#[inline(never)]
pub(crate) fn answer() {
    let Some(addr) = context::with(|c| c.map(|c| c.wait as *const _ as usize)) else {
        return;
    };
    let stack = super::dump::capture_here();
    POSTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((addr, stack));
    ANSWERED.notify_all();
}
