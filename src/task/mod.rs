//! Tasks: the handles [`Io::spawn`](crate::Io::spawn) and [`Io::concurrent`](crate::Io::concurrent)
//! return, [`Group`]s of them, their ids and names ([`TaskBuilder`], [`current`]) and
//! task-local storage ([`task_local!`](crate::task_local)).
//!
//! Zig's `std.Io` names a task handle a `Future` and its operations `await` and `cancel`; zsync
//! calls it a [`Task`] with [`join`](Task::join) and [`cancel`](Task::cancel), because in Rust
//! "future" means the `async` trait.

mod builder;
mod cell;
mod group;
pub(crate) mod id;
pub(crate) mod live;
pub(crate) mod local;

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::stackless::frame::{CellRef, Frame};
pub use crate::stackless::{yield_now, YieldNow};
pub use builder::{GroupTaskBuilder, TaskBuilder};
#[cfg(all(test, loom))]
pub(crate) use cell::Lifecycle;
pub use cell::Runnable;
pub(crate) use cell::{Body, Claimed, Core, Dropped, Joinable, Run, TaskCell};
pub use group::{Group, GroupPolicy};
pub use id::{current, CurrentTask, TaskId};
pub use local::{AccessError, LocalKey};

use crate::error::canceled;
use id::Name;

/// A handle to a task started by [`Io::spawn`](crate::Io::spawn) or
/// [`Io::concurrent`](crate::Io::concurrent).
///
/// Zig: the `Future(T)` returned by `io.async`/`io.concurrent`.
///
/// Dropping the handle cancels the task and waits for it (Zig's `defer future.cancel(io)`), so a
/// scope never leaks a running task; call [`detach`](Task::detach) to let it run on.
#[must_use = "dropping a Task cancels it; call join() for its value or detach() to let it run"]
pub struct Task<T> {
    id: TaskId,
    name: Option<Name>,
    state: State<T>,
}

enum State<T> {
    /// Ran inline at spawn (Blocking model): the result is here already.
    Ready(std::thread::Result<T>),
    /// Shared with a scheduler.
    Shared(CellRef<dyn Joinable<T>>),
    /// Joined, canceled or detached.
    Consumed,
}

impl<T> Task<T> {
    pub(crate) fn ready(id: TaskId, name: Option<Name>, result: std::thread::Result<T>) -> Task<T> {
        Task {
            id,
            name,
            state: State::Ready(result),
        }
    }

    pub(crate) fn shared(cell: Arc<dyn Joinable<T>>) -> Task<T> {
        Task::from_cell(CellRef::from_arc(cell))
    }

    /// The handle of a future task, whose cell is a pooled frame.
    pub(crate) fn frame(cell: Frame<dyn Joinable<T>>) -> Task<T> {
        Task::from_cell(CellRef::from_frame(cell))
    }

    fn from_cell(cell: CellRef<dyn Joinable<T>>) -> Task<T> {
        let meta = &cell.core().meta;
        Task {
            id: meta.id,
            name: meta.name.clone(),
            state: State::Shared(cell),
        }
    }

    /// The task's id, unique in the process. Inside the task, [`current`] returns it too.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's name, if it was started with one ([`Io::task`](crate::Io::task)).
    ///
    /// ```
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let named = io.task().name("conn").spawn(|_| ());
    ///     assert_eq!(named.name(), Some("conn"));
    ///     assert_eq!(io.spawn(|_| ()).name(), None);
    /// });
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_ref().map(Name::as_str)
    }

    /// Waits for the task and returns its value. Zig: `future.await(io)`.
    ///
    /// If the task has not started yet, it runs inline on the caller: a saturated pool cannot
    /// deadlock on fork-join. A panic in the task resumes on the caller.
    ///
    /// Cancellation point: if the *calling* task is canceled while waiting, the joined task is
    /// canceled too, waited for, and `join` returns `Canceled` (its value is dropped). A task that
    /// already finished always yields its value.
    #[track_caller]
    pub fn join(mut self) -> io::Result<T> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Join,
            crate::diag::wait_point::Object::None,
        );
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Ready(r) => cell::into_io(r),
            State::Shared(cell) => {
                cell.run_if_unclaimed(cell.addr());
                let core = cell.core();
                if core.wait_done_or_canceled() {
                    cell::into_io(core.take())
                } else {
                    core.cancel.cancel();
                    core.wait_done();
                    let _ = cell::into_io(core.take());
                    Err(canceled())
                }
            }
            State::Consumed => panic!("Task joined after its join_event completed"),
        }
    }

    /// Like [`join`](Task::join), but never runs the task inline, and a canceled joiner
    /// detaches the task instead of waiting for it: for work that must not run on the caller's
    /// thread and cannot be interrupted (a `getaddrinfo` call, an `Io::blocking` closure) and
    /// whose result nobody needs any more. The task is still waited for at shutdown.
    pub(crate) fn join_or_detach(mut self) -> io::Result<T> {
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Ready(r) => cell::into_io(r),
            // Never run inline: the work is exactly what must not run on the caller's thread.
            State::Shared(cell) => {
                let core = cell.core();
                if core.wait_done_or_canceled() {
                    cell::into_io(core.take())
                } else {
                    core.cancel.cancel();
                    core.detach();
                    Err(canceled())
                }
            }
            State::Consumed => panic!("Task joined after its join_event completed"),
        }
    }

    /// Requests cancellation, waits for the task to finish and returns its value (which is then
    /// usually an `Err` carrying [`Canceled`](crate::Canceled) from the task's own blocking call).
    /// Zig: `future.cancel(io)`.
    ///
    /// `Err(Canceled)` when the task ended without a value: a future task
    /// ([`Io::spawn_future`](crate::Io::spawn_future)) is dropped at its next poll once canceled,
    /// as Tokio's `abort` does. A closure task always runs to its end, so for it this is always
    /// `Ok`.
    ///
    /// Not a cancellation point: it always waits, so nothing the task owns is leaked. A task
    /// that has not started yet still runs (inline here), seeing itself canceled from its first
    /// blocking operation.
    pub fn cancel(mut self) -> io::Result<T> {
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Ready(r) => cell::into_io(r),
            State::Shared(cell) => {
                let core = cell.core();
                crate::diag::hooks::cancel_requested(&core.meta);
                core.cancel.cancel();
                cell.run_if_unclaimed(cell.addr());
                core.wait_done();
                cell::into_io(core.take())
            }
            State::Consumed => panic!("Task canceled after its join_event completed"),
        }
    }

    /// For a future task ([`Io::spawn_future`](crate::Io::spawn_future)), the size in bytes of
    /// its future: the frame the compiler laid out for its `async` state machine, held inline in
    /// the task's one allocation (also shown by `Debug`). `None` for a closure task, and once
    /// the handle is spent.
    ///
    /// ```
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let task = io.spawn_future(async { [0u8; 100].len() });
    ///     assert!(task.frame_size().unwrap() >= 1);
    ///     assert_eq!(io.spawn(|_| ()).frame_size(), None);
    ///     task.join().unwrap();
    /// });
    /// ```
    pub fn frame_size(&self) -> Option<usize> {
        match &self.state {
            State::Shared(cell) => cell.frame_size(),
            State::Ready(_) | State::Consumed => None,
        }
    }

    /// Whether the task has finished (its value is ready to be joined without waiting).
    pub fn is_finished(&self) -> bool {
        match &self.state {
            State::Ready(_) => true,
            State::Shared(cell) => cell.core().is_done(),
            State::Consumed => true,
        }
    }

    /// Leaves `waker` to be woken when the task finishes; returns whether it has finished
    /// already (then it may not be woken). Replaces a waker left by an earlier call.
    pub(crate) fn notify_finished(&self, waker: &std::task::Waker) -> bool {
        match &self.state {
            State::Ready(_) | State::Consumed => true,
            State::Shared(cell) => {
                let core = cell.core();
                if core.is_done() {
                    return true;
                }
                core.register_waiter(waker);
                core.is_done()
            }
        }
    }

    /// Requests cancellation without waiting. The task sees `Canceled` at its next cancellation
    /// point; join or drop the handle to wait for it.
    pub fn request_cancel(&self) {
        if let State::Shared(cell) = &self.state {
            crate::diag::hooks::cancel_requested(&cell.core().meta);
            cell.core().cancel.cancel();
        }
    }

    /// An event that completes when the task finishes, yielding its value (a panic in the task
    /// resumes on the waiter). For `select!`; unlike [`join`](Task::join), it never runs an
    /// unstarted task inline. After it completed, the handle is spent: joining it again panics.
    pub fn join_event(&mut self) -> crate::select::JoinEvent<'_, T> {
        crate::select::JoinEvent { task: self }
    }

    pub(crate) fn poll_join(&mut self, waker: &std::task::Waker) -> std::task::Poll<io::Result<T>> {
        use std::task::Poll;
        let ready = match &self.state {
            State::Ready(_) => true,
            State::Shared(cell) => {
                let core = cell.core();
                if !core.is_done() {
                    core.register_waiter(waker);
                }
                core.is_done()
            }
            State::Consumed => panic!("Task polled after it completed"),
        };
        if !ready {
            return Poll::Pending;
        }
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Ready(r) => Poll::Ready(cell::into_io(r)),
            State::Shared(cell) => Poll::Ready(cell::into_io(cell.core().take())),
            State::Consumed => unreachable!(),
        }
    }

    /// Lets the task run on unobserved. Its value is dropped when it finishes; a panic in it is
    /// re-raised by [`run`](crate::run) when the runtime shuts down, after every other task ended.
    /// Tasks still running at shutdown are canceled and waited for.
    pub fn detach(mut self) {
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Ready(Err(payload)) if payload.is::<cell::Dropped>() => {}
            State::Ready(Err(payload)) => crate::io::record_detached_panic(payload),
            // Dropped as a detached task's value is on the other models: a panic in its `Drop`
            // is recorded for `run`, like the task's own panic.
            State::Ready(Ok(value)) => {
                if let Err(payload) = crate::contain::catch(move || drop(value)) {
                    crate::io::record_detached_panic(payload);
                }
            }
            State::Consumed => {}
            State::Shared(cell) => {
                let core = cell.core();
                // Nobody will join it, so nobody will run it inline: any worker may have it.
                core.io.announce_spawned();
                core.detach();
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Consumed) {
            State::Consumed | State::Ready(Ok(_)) => {}
            State::Ready(Err(payload)) if payload.is::<cell::Dropped>() => {}
            State::Ready(Err(payload)) => drop_panic(payload),
            State::Shared(cell) => {
                let core = cell.core();
                if !core.is_done() {
                    crate::diag::hooks::cancel_requested(&core.meta);
                }
                core.cancel.cancel();
                if crate::stackless::in_future_poll() {
                    // Inside a future task's poll, waiting would block the worker thread (and
                    // every task on it): the canceled task is detached instead; `run` still
                    // waits for it at shutdown.
                    core.io.announce_spawned();
                    core.detach();
                    return;
                }
                cell.run_if_unclaimed(cell.addr());
                core.wait_done();
                match core.take() {
                    Err(payload) if !payload.is::<cell::Dropped>() => drop_panic(payload),
                    _ => {}
                }
            }
        }
    }
}

impl<T, E: From<io::Error>> Task<Result<T, E>> {
    /// Joins a fallible task: its own error, or the join's (`Canceled` when the *caller* is
    /// canceled while waiting), in one `Result`: `task.try_join()?` where `task.join()??` would
    /// be. A panic in the task resumes on the caller, as with [`join`](Task::join).
    ///
    /// `E` is the task's error type; any that converts from `io::Error` works (an
    /// `io::Result` task's error is `io::Error` itself).
    ///
    /// ```
    /// use std::io;
    /// fn total(io: &zsync::Io) -> io::Result<u32> {
    ///     let a = io.spawn(|_| Ok::<_, io::Error>(20));
    ///     let b = io.spawn(|_| Ok::<_, io::Error>(22));
    ///     Ok(a.try_join()? + b.try_join()?)
    /// }
    /// assert_eq!(zsync::run(zsync::Model::Threaded, total).unwrap(), 42);
    /// ```
    pub fn try_join(self) -> Result<T, E> {
        self.join().map_err(E::from)?
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .field("frame_size", &self.frame_size())
            .finish()
    }
}

/// A dropped handle's task panicked: re-raise on the dropper unless it is already unwinding
/// (a second panic would abort), in which case the panic hook has already printed it.
fn drop_panic(payload: Box<dyn std::any::Any + Send>) {
    if !std::thread::panicking() {
        cell::resume(payload);
    }
    // A second panic while unwinding would abort: the payload's own `Drop` must not escape.
    crate::contain::drop_payload(payload);
}
