//! Waiting for a condition: the Io-level wait/wake primitive under every coordination type.
//!
//! Two pieces:
//!
//! - [`WaitList`] (in [`list`]): who is waiting for a condition, woken in FIFO order, with the
//!   rule that a waiter leaving with an unused notification passes it on. Its bookkeeping is a
//!   [`WaitQueue`] (in [`queue`]), which a type with a lock of its own (a channel) keeps under
//!   that lock instead, so that one operation takes one lock.
//! - [`block_until`]: blocks the running task until a poll function is ready. It is a
//!   cancellation point and honours deadlines. On the thread models "blocks" means parking the
//!   OS thread; Green parks the fiber instead; both wake through a `std::task::Waker`, so
//!   a coordination type written once as `poll(&Waker) -> Poll<T>` works on every model and can
//!   later be wrapped as a `Future` unchanged.
//!
//! Zig's `std.Io` exposes the same idea as `futexWait`/`futexWake`; zsync offers that too
//! ([`Io::futex_wait`](crate::Io::futex_wait)), built on the same two pieces.

pub(crate) mod list;
pub(crate) mod queue;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::{context, park};
pub(crate) use list::{WaitList, Waiter};
pub(crate) use queue::{WaitQueue, WaitSlot, Wakeups};

/// Blocks the running task until `poll` returns `Ready`. Cancellation point: checked before
/// each poll, so a canceled task stops even when its condition keeps being ready.
///
/// `poll` must register the waker it is given wherever the condition can change *before* it
/// re-checks the condition (see [`WaitList`]).
///
/// Errors: `Canceled`; `TimedOut` when `deadline` (or the task's own deadline) passes first.
pub(crate) fn block_until<T>(
    deadline: Option<Instant>,
    poll: impl FnMut(&Waker) -> Poll<T>,
) -> io::Result<T> {
    block_on(deadline, true, || None, poll)
}

/// The general form of [`block_until`]: `check_cancel = false` lets `poll` observe cancellation
/// itself (a `select` with a `cancel_requested()` arm), and `wake_hint` names a time at which `poll` wants
/// to run again even if nobody wakes it (a sleep arm), without that being an error.
pub(crate) fn block_on<T>(
    deadline: Option<Instant>,
    check_cancel: bool,
    wake_hint: impl Fn() -> Option<Instant>,
    mut poll: impl FnMut(&Waker) -> Poll<T>,
) -> io::Result<T> {
    crate::model::green::fiber::consume_budget();
    park::with_waiter(|waiter| {
        // Spinning only pays off for an OS thread: a fiber's park is a cheap context switch.
        let mut spins = if waiter.is_fiber() { SPIN_POLLS } else { 0 };
        let waker = waiter.waker();
        loop {
            if check_cancel {
                context::check()?;
            }
            if let Poll::Ready(v) = poll(waker) {
                return Ok(v);
            }
            let deadline = context::effective_deadline(deadline);
            if deadline.is_some_and(park::deadline_passed) {
                context::check()?;
                return Err(crate::error::timed_out());
            }
            let wake_at = context::earlier(deadline, wake_hint());
            if spins < SPIN_POLLS {
                spins += 1;
                spin_pause();
                continue;
            }
            waiter.park(wake_at);
        }
    })
}

/// How many times a waiting OS thread re-polls before it parks. Waking a parked thread costs a
/// futex wake plus a trip through the scheduler (several to tens of microseconds on a VM); a
/// partner that answers within a few yields is caught by the spin instead. Bounded, so a wait
/// for something slow costs only these few yields of CPU before the thread sleeps.
///
/// Yielding, not busy-spinning with `spin_loop`: a busy spinner keeps the partner it waits for
/// off the CPU on a machine with few cores. The count was chosen with the channel ping-pong
/// benchmark (figures in docs/ARCHITECTURE.md, "Measurements behind the tuning").
const SPIN_POLLS: u32 = 50;

/// The pause between two polls of the spin: give the CPU to the thread we are waiting for, if it
/// is runnable (on a machine with few cores it often shares ours); returns at once otherwise.
#[inline]
fn spin_pause() {
    std::thread::yield_now();
}

/// Buckets of the futex table: waiters are hashed by address, tagged with it.
const FUTEX_BUCKETS: usize = 64;

fn futex_bucket(addr: usize) -> &'static WaitList {
    static TABLE: OnceLock<Vec<WaitList>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..FUTEX_BUCKETS).map(|_| WaitList::new()).collect());
    // Fibonacci hashing spreads aligned addresses over the buckets.
    &table[(addr.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) % FUTEX_BUCKETS]
}

pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
) -> io::Result<()> {
    let addr = word as *const AtomicU32 as usize;
    let mut waiter = futex_bucket(addr).tagged_waiter(addr);
    block_until(deadline, |waker| {
        if word.load(Ordering::SeqCst) != expected || waiter.is_notified() {
            waiter.used();
            return Poll::Ready(());
        }
        waiter.register(waker);
        if word.load(Ordering::SeqCst) != expected {
            waiter.used();
            return Poll::Ready(());
        }
        Poll::Pending
    })
}

pub(crate) fn futex_wake(word: &AtomicU32, n: usize) -> usize {
    let addr = word as *const AtomicU32 as usize;
    futex_bucket(addr).notify_tagged(Some(addr), n)
}
