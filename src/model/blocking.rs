//! The Blocking model: no threads, direct syscalls, `spawn` is a function call.
//!
//! A spawned closure runs to completion inside [`Io::spawn`](crate::Io::spawn), in a task context
//! of its own (its id and name, no task-local values of the caller) under the caller's
//! cancellation node (or a group's scope), with its panic caught and kept for the handle, so
//! `join`, `cancel`, `detach` and drop behave exactly as on the other models. `concurrent`
//! always reports [`ConcurrencyUnavailable`](crate::ConcurrencyUnavailable): under Zig's split of
//! `async` (may run inline) and `concurrent` (must not), Blocking is a correct model, not a
//! degraded one.

use crate::cancel::NodeSource;
use crate::context::{self, TaskContext, TaskRef};
use crate::task::id::Meta;
use crate::Io;

/// Runs task `meta`'s closure `f` right here, in a task context of its own (its id, its name,
/// no task-local values of the caller), in the cancellation scope `scope` (a group's), or in the
/// caller's own when `None`. In the caller's scope the task keeps the caller's deadline, as a
/// direct call would.
pub(crate) fn run_inline<T>(
    io: &Io,
    scope: Option<&dyn NodeSource>,
    meta: &Meta,
    f: impl FnOnce(&Io) -> T,
) -> std::thread::Result<T> {
    // The task's span and spawn time (a copy of its identity: the caller keeps `meta`).
    #[cfg(any(feature = "tracing", feature = "profile"))]
    let meta = &{
        let mut meta = meta.clone();
        crate::diag::hooks::spawned(io, &mut meta);
        meta
    };
    let result = context::with(|caller| {
        let (scope, deadline) = match (scope, caller) {
            (None, Some(c)) => (c.cancel, c.deadline.get()),
            (None, None) => (&io.inner.root as &dyn NodeSource, None),
            (Some(s), Some(c)) if std::ptr::eq(c.cancel.cancel_node(), s.cancel_node()) => {
                (s, c.deadline.get())
            }
            (Some(s), _) => (s, None),
        };
        let task = TaskRef::of(meta);
        let ctx = TaskContext::new(io, scope, task);
        ctx.deadline.set(deadline);
        let _entered = context::enter(&ctx);
        crate::contain::catch(|| f(io))
    });
    crate::diag::hooks::finished(io, meta, result.is_err());
    if result.is_err() {
        meta.report_panic();
    }
    result
}
