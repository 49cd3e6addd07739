//! The Blocking model: no threads, direct syscalls, `spawn` is a function call.
//!
//! A spawned closure runs to completion inside [`Io::spawn`](crate::Io::spawn), in the caller's
//! own task context (or in a group's scope), with its panic caught and kept for the handle, so
//! `join`, `cancel`, `detach` and drop behave exactly as on the other models. `concurrent`
//! always reports [`ConcurrencyUnavailable`](crate::ConcurrencyUnavailable): under Zig's split of
//! `async` (may run inline) and `concurrent` (must not), Blocking is a correct model, not a
//! degraded one.

use crate::cancel::NodeSource;
use crate::context::{self, TaskContext};
use crate::Io;

/// Runs `f` right here: in the caller's context when `scope` is the caller's own node, else in a
/// context whose cancellation scope is `scope` (a group's), so canceling the group reaches it.
pub(crate) fn run_inline<T>(
    io: &Io,
    scope: &dyn NodeSource,
    f: impl FnOnce(&Io) -> T,
) -> std::thread::Result<T> {
    let same = context::with(|c| {
        c.is_some_and(|c| std::ptr::eq(c.cancel.cancel_node(), scope.cancel_node()))
    });
    if same {
        return crate::contain::catch(|| f(io));
    }
    let ctx = TaskContext::new(io, scope);
    let _entered = context::enter(&ctx);
    crate::contain::catch(|| f(io))
}
