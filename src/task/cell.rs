//! The shared state of one task: its closure until it runs, its result until it is joined.
//!
//! One allocation per task holds the closure, the result slot, the joiner's waker and the task's
//! cancellation node. Three parties touch it: the scheduler (which runs it), the handle (which
//! joins, cancels or detaches it) and possibly a joiner that runs it inline. The `state` word
//! arbitrates:
//!
//! - `CLAIMED`: set by whoever starts the closure, exactly once (`fetch_or`). A worker that pops a
//!   task already claimed by its joiner skips it, which is how an unstarted task is run inline by
//!   its joiner without being taken out of the queue.
//! - `DONE`: set (`Release`) after the result is written; readers `Acquire` it before reading.
//! - `DETACHED`: set by [`Task::detach`](crate::Task::detach). Whichever of `DONE` and `DETACHED`
//!   is set second disposes of the result (drops the value or reports a panic), so a detached
//!   task's result is handled exactly once.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;

use atomic_waker::AtomicWaker;

use crate::cancel::CancelNode;
use crate::context::{self, TaskContext};
use crate::fiber_stack::{self, TaskName};
use crate::{park, Io};

const CLAIMED: u8 = 1;
const DONE: u8 = 2;
const DETACHED: u8 = 4;

/// A task ready to run, as a scheduler sees it: type-erased, cheap to move between threads.
///
/// Custom models (see [`Runtime`](crate::Runtime)) receive tasks as `Runnable`s and call
/// [`run`](Runnable::run) on whatever thread they choose.
pub struct Runnable(pub(crate) Arc<dyn Run>);

impl Runnable {
    /// Runs the task to completion on the calling thread. Does nothing if the task was already
    /// started elsewhere (for example inline by a joiner).
    pub fn run(self) {
        self.0.run();
    }

    /// Where the task was spawned (`file:line` of the `spawn` call): its name in diagnostics.
    pub fn location(&self) -> &'static Location<'static> {
        self.0.location()
    }
}

impl std::fmt::Debug for Runnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runnable")
    }
}

pub(crate) trait Run: Send + Sync {
    fn run(self: Arc<Self>);
    /// Where the task was spawned.
    fn location(&self) -> &'static Location<'static>;
}

/// The typed half a handle needs, independent of the closure type.
pub(crate) trait Joinable<T>: Send + Sync {
    fn core(&self) -> &Core<T>;
    /// Runs the closure here if nobody has started it. Returns whether it ran.
    fn run_if_unclaimed(&self) -> bool;
    /// Discards the task if nobody has started it (its model refused it). Returns whether it did.
    fn abandon(&self) -> bool;
}

pub(crate) struct Core<T> {
    state: AtomicU8,
    /// Written once by the runner before `DONE`; taken once by the party that owns the result.
    result: UnsafeCell<Option<thread::Result<T>>>,
    /// The joiner waiting for `DONE`.
    waiter: AtomicWaker,
    pub(crate) cancel: Arc<CancelNode>,
    pub(crate) io: Io,
    /// Where the task was spawned: its name in diagnostics (a stack overflow report).
    pub(crate) location: &'static Location<'static>,
}

// SAFETY: `result` is written by exactly one runner before it publishes `DONE` with Release, and
// read by exactly one owner after observing `DONE` with Acquire (see the module docs); everything
// else is Sync. `T: Send` because the value crosses from the runner's thread to the owner's.
unsafe impl<T: Send> Sync for Core<T> {}
// SAFETY: as above; the value is only moved, never shared.
unsafe impl<T: Send> Send for Core<T> {}

impl<T> Core<T> {
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    fn claim(&self) -> bool {
        self.state.fetch_or(CLAIMED, Ordering::AcqRel) & CLAIMED == 0
    }

    /// Takes the result. Call only after `is_done()` returned true, and only from the owner.
    pub(crate) fn take(&self) -> thread::Result<T> {
        debug_assert!(self.is_done());
        // SAFETY: DONE was observed with Acquire, so the runner's write happened-before; the
        // owner is the only reader (handle consumed or detached exactly once).
        unsafe { (*self.result.get()).take() }.expect("task result taken twice")
    }

    /// Registers the waker to be woken when the task completes (one waiter at a time).
    pub(crate) fn register_waiter(&self, waker: &std::task::Waker) {
        self.waiter.register(waker);
    }

    /// Blocks the calling thread until the task is done, without cancellation.
    pub(crate) fn wait_done(&self) {
        while !self.is_done() {
            self.waiter.register(&park::current_waker());
            if self.is_done() {
                break;
            }
            park::park(None);
        }
    }

    /// Waits until done; returns `false` if the *calling* task got canceled first.
    pub(crate) fn wait_done_or_canceled(&self) -> bool {
        loop {
            if self.is_done() {
                return true;
            }
            if context::check().is_err() {
                return false;
            }
            self.waiter.register(&park::current_waker());
            if self.is_done() {
                return true;
            }
            park::park(None);
        }
    }

    /// Marks the handle detached; if the task already finished, disposes of its result now.
    pub(crate) fn detach(&self) {
        if self.state.fetch_or(DETACHED, Ordering::AcqRel) & DONE != 0 {
            self.dispose();
        }
    }

    fn complete(&self, result: thread::Result<T>) {
        // SAFETY: only the claimant reaches here, once, before DONE is published.
        unsafe { *self.result.get() = Some(result) };
        let prev = self.state.fetch_or(DONE, Ordering::AcqRel);
        if prev & DETACHED != 0 {
            self.dispose();
        } else {
            self.waiter.wake();
        }
    }

    /// Drops a detached task's value; records its panic so `run` re-raises it.
    fn dispose(&self) {
        if let Err(payload) = self.take() {
            self.io.inner.state.record_panic(payload);
        }
    }
}

pub(crate) struct TaskCell<F, T> {
    core: Core<T>,
    func: UnsafeCell<Option<F>>,
}

// SAFETY: `func` is taken exactly once, by the party whose `claim()` succeeded; F: Send lets it
// run on another thread. `core` is Sync for T: Send.
unsafe impl<F: Send, T: Send> Sync for TaskCell<F, T> {}

impl<F, T> TaskCell<F, T>
where
    F: FnOnce(&Io) -> T + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(
        io: Io,
        cancel: Arc<CancelNode>,
        location: &'static Location<'static>,
        func: F,
    ) -> Arc<Self> {
        Arc::new(TaskCell {
            core: Core {
                state: AtomicU8::new(0),
                result: UnsafeCell::new(None),
                waiter: AtomicWaker::new(),
                cancel,
                io,
                location,
            },
            func: UnsafeCell::new(Some(func)),
        })
    }

    fn execute(&self) {
        // SAFETY: the caller won the claim, so it is the only party touching `func`.
        let func = unsafe { (*self.func.get()).take() }.expect("task closure taken twice");
        let core = &self.core;
        let ctx = TaskContext::new(core.io.clone(), core.cancel.clone());
        core.cancel.set_waker(park::current_waker);
        // Name the task in a fiber stack-overflow report while it runs: it may run inline on
        // another task's fiber (its joiner's), whose name is put back afterwards.
        let outer = fiber_stack::replace_current_task_name(TaskName::spawned(core.location));
        let result = {
            let _entered = context::enter(&ctx);
            panic::catch_unwind(AssertUnwindSafe(|| func(&ctx.io)))
        };
        fiber_stack::replace_current_task_name(outer);
        core.cancel.detach_from_parent();
        let state = core.io.inner.state.clone();
        core.complete(result);
        state.task_finished();
    }
}

impl<F, T> Run for TaskCell<F, T>
where
    F: FnOnce(&Io) -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Arc<Self>) {
        if self.core.claim() {
            self.execute();
        }
    }

    fn location(&self) -> &'static Location<'static> {
        self.core.location
    }
}

impl<F, T> Joinable<T> for TaskCell<F, T>
where
    F: FnOnce(&Io) -> T + Send + 'static,
    T: Send + 'static,
{
    fn core(&self) -> &Core<T> {
        &self.core
    }

    fn run_if_unclaimed(&self) -> bool {
        if self.core.claim() {
            self.execute();
            true
        } else {
            false
        }
    }

    fn abandon(&self) -> bool {
        if !self.core.claim() {
            return false;
        }
        // SAFETY: the claim succeeded, so nobody else touches `func`.
        drop(unsafe { (*self.func.get()).take() });
        self.core.cancel.detach_from_parent();
        self.core.io.inner.state.task_finished();
        true
    }
}

/// Re-raises a task's panic on the joiner.
pub(crate) fn resume(payload: Box<dyn Any + Send>) -> ! {
    panic::resume_unwind(payload)
}
