//! The task a thread (or a Green fiber on it) is running right now.
//!
//! Each model sets the current [`TaskContext`] while it runs a task body and restores the previous
//! one afterwards, so contexts nest when a joiner runs an unstarted task inline. Cancellation
//! points read the current task's [`CancelNode`] from here; [`Io::current`](crate::Io::current)
//! returns its `Io`.

use std::cell::Cell;
use std::io;
use std::ptr;
use std::time::Instant;

use crate::cancel::{NodeRef, NodeSource};
use crate::diag::hooks;
#[cfg(any(feature = "tracing", feature = "profile"))]
use crate::diag::hooks::CtxDiag;
use crate::diag::wait_point::WaitSlot;
use crate::error::{canceled, timed_out};
use crate::task::id::{Meta, Name, TaskId};
use crate::task::local;
use crate::Io;

/// What a running task carries besides its closure. It borrows the task's `Io` and node from
/// wherever they live (the task's cell, `run`'s frame), so entering a task costs no
/// reference-count traffic.
pub(crate) struct TaskContext<'a> {
    pub(crate) io: &'a Io,
    pub(crate) cancel: &'a dyn NodeSource,
    /// The task's own deadline (set by timeouts); each blocking operation stops waiting at it.
    pub(crate) deadline: Cell<Option<Instant>>,
    /// Who the task is, for [`crate::task::current`].
    pub(crate) task: TaskRef<'a>,
    /// The task's innermost [`task_local!`](crate::task_local) scope: a list of entries on the
    /// stacks of the `scope` calls that made them (see [`crate::task::local`]). Here, and not
    /// in a thread-local, because a Green worker runs many tasks on one thread: the context is
    /// swapped with its fiber on every switch, and the values with it.
    pub(crate) locals: Cell<*const local::Entry>,
    /// Tracing and profiling state of this run (features `tracing`, `profile`).
    #[cfg(any(feature = "tracing", feature = "profile"))]
    pub(crate) diag: CtxDiag,
    /// The task's wait point, in its cancellation node: borrowed once here so that recording a
    /// wait costs no virtual call (see [`crate::diag::wait_point`]).
    pub(crate) wait: &'a WaitSlot,
}

/// A running task's identity, borrowed from its cell (or `run`'s frame).
#[derive(Clone, Copy)]
pub(crate) struct TaskRef<'a> {
    pub(crate) id: TaskId,
    pub(crate) name: Option<&'a Name>,
    /// The task's cell's identity (span, spawn site) for tracing and profiles; `None` for a
    /// root task.
    #[cfg(any(feature = "tracing", feature = "profile"))]
    pub(crate) meta: Option<&'a Meta>,
}

impl<'a> TaskRef<'a> {
    /// The task of `meta`.
    #[inline]
    pub(crate) fn of(meta: &'a Meta) -> TaskRef<'a> {
        TaskRef {
            id: meta.id,
            name: meta.name.as_ref(),
            #[cfg(any(feature = "tracing", feature = "profile"))]
            meta: Some(meta),
        }
    }
}

impl TaskRef<'static> {
    /// A task with a fresh id and no name: the root task of a `run`, a foreign `block_on`.
    pub(crate) fn root() -> TaskRef<'static> {
        TaskRef {
            id: TaskId::next(),
            name: None,
            #[cfg(any(feature = "tracing", feature = "profile"))]
            meta: None,
        }
    }
}

impl<'a> TaskContext<'a> {
    #[inline]
    pub(crate) fn new(
        io: &'a Io,
        cancel: &'a dyn NodeSource,
        task: TaskRef<'a>,
    ) -> TaskContext<'a> {
        TaskContext {
            io,
            cancel,
            deadline: Cell::new(None),
            task,
            locals: Cell::new(ptr::null()),
            #[cfg(any(feature = "tracing", feature = "profile"))]
            diag: CtxDiag::new(io),
            wait: &cancel.cancel_node().wait,
        }
    }
}

thread_local! {
    /// Points at the `TaskContext` of the running task, or is null outside any task. The pointee
    /// lives on the stack of the frame that installed it (see [`enter`]), which outlives the guard.
    static CURRENT: Cell<*const TaskContext<'static>> = const { Cell::new(ptr::null()) };
}

/// Restores the previous context when dropped.
pub(crate) struct EnterGuard {
    prev: *const TaskContext<'static>,
    /// The context entered (for the diagnostics hook on leaving).
    #[cfg(any(feature = "tracing", feature = "profile"))]
    entered: *const TaskContext<'static>,
}

/// Makes `ctx` the current context until the returned guard drops. The lifetime is erased in
/// the thread-local; readers only ever see it re-borrowed for the duration of a [`with`] call,
/// while the frame holding `ctx` (and the guard) is still active.
pub(crate) fn enter(ctx: &TaskContext<'_>) -> EnterGuard {
    let ptr: *const TaskContext<'static> = (ctx as *const TaskContext<'_>).cast();
    let prev = CURRENT.with(|c| c.replace(ptr));
    hooks::entered(ctx, prev);
    EnterGuard {
        prev,
        #[cfg(any(feature = "tracing", feature = "profile"))]
        entered: ptr,
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        #[cfg(any(feature = "tracing", feature = "profile"))]
        hooks::leaving(self.entered, self.prev);
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// Replaces the current context pointer, returning the previous one. A fiber uses this to
/// take its task context with it when it suspends and to reinstall it when it resumes.
pub(crate) fn swap_current(ctx: *const TaskContext<'static>) -> *const TaskContext<'static> {
    CURRENT.with(|c| c.replace(ctx))
}

/// Runs `f` with the current context, if any.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(Option<&TaskContext<'_>>) -> R) -> R {
    CURRENT.with(|c| {
        let p = c.get();
        // SAFETY: a non-null pointer was installed by `enter` from a reference whose frame is
        // still active: the guard that will reset it lives in that same frame, and contexts are
        // only installed and read on this thread.
        f(unsafe { p.as_ref() })
    })
}

/// The cancellation node of the running task.
pub(crate) fn current_cancel() -> Option<NodeRef> {
    with(|c| c.map(|c| c.cancel.node_ref()))
}

/// Runs `f` with the running task's cancellation node borrowed, or `None` outside any task.
#[inline]
pub(crate) fn with_cancel<R>(f: impl FnOnce(Option<&dyn NodeSource>) -> R) -> R {
    with(|c| f(c.map(|c| c.cancel)))
}

/// A cancellation point: `Err(Canceled)` if the running task must stop, `Err(TimedOut)` if its
/// deadline has passed.
#[inline]
pub(crate) fn check() -> io::Result<()> {
    with(|c| match c {
        Some(c) if c.cancel.check_pending() => Err(canceled()),
        Some(c) if c.deadline.get().is_some_and(|d| crate::clock::now() >= d) => Err(timed_out()),
        _ => Ok(()),
    })
}

/// A cancellation point for an operation bounded by `deadline`: `Err(Canceled)` if the running
/// task must stop, `Err(TimedOut)` if the earlier of `deadline` and the task's own deadline has
/// passed; otherwise that earlier deadline. One clock reading at most ([`check`] followed by
/// [`effective_deadline`] and a comparison takes two when the task has a deadline).
#[inline]
pub(crate) fn check_until(deadline: Option<Instant>) -> io::Result<Option<Instant>> {
    let deadline = with(|c| match c {
        Some(c) if c.cancel.check_pending() => Err(canceled()),
        Some(c) => Ok(earlier(deadline, c.deadline.get())),
        None => Ok(deadline),
    })?;
    if deadline.is_some_and(|d| crate::clock::now() >= d) {
        return Err(timed_out());
    }
    Ok(deadline)
}

/// The earlier of `deadline` and the running task's own deadline.
pub(crate) fn effective_deadline(deadline: Option<Instant>) -> Option<Instant> {
    earlier(deadline, with(|c| c.and_then(|c| c.deadline.get())))
}

/// The earlier of two optional instants; `None` is "never".
pub(crate) fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
