//! The trait a user-supplied model implements: scheduling, and optionally the I/O operations.

use std::io;

use crate::error::ConcurrencyUnavailable;
use crate::model::operation::{Completion, Operation};
use crate::task::Runnable;

/// A user-supplied execution model: decides where and when tasks run, and may provide the I/O
/// operations themselves. Zig: an `std.Io` implementation.
///
/// Tasks of a custom model run on OS threads and wait the way the thread models do (parking the
/// thread, polling the descriptor). Every I/O operation of its tasks — open, read, write,
/// accept, connect, send, receive, sync, sleep, clock reads, and the rest as
/// [`Operation::Other`] — reaches [`operate`](CustomModel::operate), which by default performs
/// it; a model may instead fail it (to test error paths, as Zig's `Io.failing`), delay it,
/// record it, or answer it from a world of its own. Shutdown (cancel what is left, wait for
/// every task, re-raise panics of detached tasks) is handled by [`run`](crate::run) for every
/// model.
///
/// ```
/// use std::sync::Arc;
/// use zsync::{ConcurrencyUnavailable, Model, Runnable, CustomModel};
///
/// /// One OS thread per task.
/// struct ThreadPerTask;
/// impl CustomModel for ThreadPerTask {
///     fn name(&self) -> &'static str { "ThreadPerTask" }
///     fn spawn(&self, task: Runnable) {
///         std::thread::spawn(move || task.run());
///     }
///     fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
///         self.spawn(task);
///         Ok(())
///     }
/// }
///
/// let v = zsync::run(Model::Custom(Arc::new(ThreadPerTask)), |io| {
///     io.concurrent(|_| 6 * 7).unwrap().join().unwrap()
/// });
/// assert_eq!(v, 42);
/// ```
pub trait CustomModel: Send + Sync + 'static {
    /// The model's name.
    fn name(&self) -> &'static str;
    /// Arranges for `task` to run, possibly inline on the caller. Zig: `vtable.async`.
    fn spawn(&self, task: Runnable);
    /// Arranges for `task` to run concurrently with the caller, or refuses with
    /// `Err(ConcurrencyUnavailable::new(self.name()))`. Zig: `vtable.concurrent`.
    ///
    /// On a refusal zsync takes the closure back out of the task and hands it to the caller of
    /// [`Io::concurrent`](crate::Io::concurrent) in the error; the `Runnable` may be dropped, or
    /// kept (running it later does nothing). A refused task that the model started anyway
    /// counts as accepted.
    fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable>;
    /// Called once by [`run`](crate::run) after every task has finished: release threads here.
    fn shutdown(&self) {}
    /// Performs one I/O operation of a task of this model. The default runs it as the thread
    /// models do ([`Operation::perform`]). Called on the task's own thread, inside the task.
    fn operate(&self, op: Operation<'_, '_>) -> io::Result<Completion> {
        op.perform()
    }
}
