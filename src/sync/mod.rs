//! Coordination for colorblind code: locks, semaphores, condition variables, barriers, wait
//! groups, notifications and once-cells whose waits go through the running model.
//!
//! These are the `std::sync` (and `tokio::sync`) types rebuilt for zsync. Their waits never block
//! an OS thread with a std lock or condvar: they wait through the crate's wait primitive, which
//! parks the OS thread on the thread models and only the *fiber* on Green (its worker thread
//! runs other fibers meanwhile).
//! Every wait is a **cancellation point** (it reports `Canceled` when the task is asked to stop,
//! and `TimedOut` at the task's deadline, see [`Io::timeout_until`](crate::Io::timeout_until)),
//! most have a `_timeout` variant, and each one that can sit in a `select` also has an
//! [`Event`](crate::Event) form (`acquire_event`, `lock_event`, `read_event`, `write_event`,
//! `notified_event`, `wait_event`), usable with [`Io::wait`](crate::Io::wait).
//!
//! | type | for |
//! |---|---|
//! | [`Semaphore`] | limiting concurrency; the fair core the locks are built on |
//! | [`Mutex`] | exclusive access to a value |
//! | [`RwLock`] | many readers or one writer |
//! | [`Condvar`] | waiting for a condition protected by a [`Mutex`] |
//! | [`Barrier`] | `n` tasks meeting at a point |
//! | [`WaitGroup`] | waiting for a counted set of jobs (Go) |
//! | [`Notify`] | waking one task, with a stored permit |
//! | [`ResetEvent`] | a manual-reset flag |
//! | [`OnceCell`] | lazy one-time initialisation |
//!
//! # Design
//!
//! Two wait mechanisms, both driven by the crate's `block_until` (the running model's "block
//! this task until a poll function is ready, honouring cancellation and deadlines"):
//!
//! - **Hand-off** ([`Semaphore`], and so [`Mutex`], [`RwLock`] and [`OnceCell`]; also
//!   [`Notify`]): waiters queue in FIFO order, and what they wait for — permits, a notification —
//!   is *assigned* to them under the primitive's lock, in the same critical section that frees
//!   it, before they are woken. A woken task finds its grant waiting; nobody can take it in the
//!   meantime.
//! - **Condition + `WaitList`** ([`Condvar`], [`Barrier`], [`WaitGroup`], [`ResetEvent`]): a
//!   waiter registers its waker in the crate's `WaitList` and then re-checks the condition; a
//!   notifier changes the state and then wakes. Registration before the re-check means a wake-up
//!   cannot fall between check and sleep. These conditions are shared (a count at zero, a flag),
//!   so there is nothing to hand off.
//!
//! The std mutexes inside the primitives guard only short bookkeeping (a counter, a queue) and
//! are never held while a task waits or while a waker runs.
//!
//! # Fairness
//!
//! [`Semaphore`] is strictly FIFO by **direct hand-off**. An acquire takes permits immediately
//! only if nobody is queued; otherwise it joins the back of the queue. Released permits go to the
//! head of the queue until the head needs more than is free. So the head cannot be overtaken:
//! a request for many permits accumulates them while later small requests wait behind it, and
//! once granted, permits belong to the waiter even before it runs. The bound is strict — every
//! waiter is served after at most the waiters queued before it. [`Mutex`] (one permit) and
//! [`RwLock`] (a reader takes one of `MAX_PERMITS`, a writer all) inherit it: neither readers
//! nor writers starve. The price is the classic one of fair locks: no barging, so under heavy
//! contention a lock is handed to a sleeping task rather than to a running one.
//!
//! # Cancellation
//!
//! A wait that ends early (`Canceled`, `TimedOut`, or an `Event` dropped by a `select` it lost)
//! leaves the primitive as if it had never waited:
//!
//! - a queued acquire is removed; if it was the head, the requests behind it are re-examined (a
//!   canceled large request no longer blocks small ones);
//! - permits already handed to it are returned and handed on to the next waiters;
//! - a `notify_one` handed to a canceled [`Notify`] waiter goes to the next waiter, or becomes
//!   the stored permit; a `WaitList` notification a canceled waiter received is passed on;
//! - a [`Barrier`] waiter takes its arrival back (on a timeout too: the others keep waiting for
//!   a full round); a [`Condvar`] waiter returns *without* the lock (see [`Condvar`] for why
//!   that is the deadlock-free choice).
//!
//! Waits inside [`Io::shielded`](crate::Io::shielded) are not interrupted by cancellation.
//!
//! # No poisoning
//!
//! std's `Mutex` poisons itself when a holder panics; zsync's locks, like `parking_lot`'s and
//! tokio's, do not: the guard's `Drop` runs during unwinding and simply unlocks. Reasons:
//!
//! - zsync already reports the panic: it resumes on the task's joiner (or is re-raised by
//!   [`run`](crate::run) for detached tasks), so a poison flag would be a second, weaker channel
//!   for the same event;
//! - cancellation makes early exits routine, and every `lock()` already returns an
//!   `io::Result`; a poison case would make each call site handle a third outcome that almost
//!   all code turns into a panic anyway;
//! - a poisoned lock stays unusable forever, which turns one failed task into a failed program,
//!   while most protected data (counters, maps, queues) is still valid after a panic.
//!
//! Code whose invariant can be broken half-way through a critical section should restore it
//! with a drop guard, or catch the panic, before the lock is released.

mod barrier;
mod condvar;
mod mutex;
mod notify;
mod once_cell;
mod queue;
mod rwlock;
mod semaphore;
mod wait_group;

use std::io;
use std::time::{Duration, Instant};

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{LockEvent, Mutex, MutexGuard};
pub use notify::{NotifiedEvent, Notify, ResetEvent, ResetWaitEvent};
pub use once_cell::OnceCell;
pub use rwlock::{ReadLockEvent, RwLock, RwLockReadGuard, RwLockWriteGuard, WriteLockEvent};
pub use semaphore::{
    AcquireEvent, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError,
};
pub use wait_group::{WaitGroup, WaitGroupEvent};

/// The `io::Error` an acquire reports when its [`Semaphore`] was closed: recognise it with
/// [`zsync::is_closed`](crate::is_closed).
fn closed_error() -> io::Error {
    crate::Closed::error(io::ErrorKind::Other, "semaphore")
}

/// `now + timeout`, or no deadline if that overflows the clock.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    crate::clock::now().checked_add(timeout)
}
