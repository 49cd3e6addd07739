//! The Blocking model: no threads, direct syscalls, `spawn` is a function call.
//!
//! A spawned closure runs to completion inside [`Io::spawn`](crate::Io::spawn), in a task context
//! of its own (its id and name, no task-local values of the caller) under the caller's
//! cancellation node (or a group's scope), with its panic caught and kept for the handle, so
//! `join`, `cancel`, `detach` and drop behave exactly as on the other models. `concurrent`
//! always reports [`ConcurrencyUnavailable`](crate::ConcurrencyUnavailable): under Zig's split of
//! `async` (may run inline) and `concurrent` (must not), Blocking is a correct model, not a
//! degraded one.

use std::cell::Cell;
use std::ptr;

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
    // The chain of tasks running inline on this thread, for a task dump taken inside: they
    // share their caller's cancellation node, so only this chain tells them apart.
    let frame = InlineFrame {
        meta,
        prev: INLINE.with(|c| c.replace(ptr::null())),
    };
    INLINE.with(|c| c.set(&frame));
    struct Pop(*const InlineFrame);
    impl Drop for Pop {
        fn drop(&mut self) {
            INLINE.with(|c| c.set(self.0));
        }
    }
    let _pop = Pop(frame.prev);
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

/// One task running inline on this thread (see [`run_inline`]): a plain linked list through
/// the frames of the nested `run_inline` calls.
struct InlineFrame {
    meta: *const Meta,
    prev: *const InlineFrame,
}

thread_local! {
    static INLINE: Cell<*const InlineFrame> = const { Cell::new(ptr::null()) };
}

/// The tasks running inline on this thread, innermost first: id, name, spawn site. For a task
/// dump taken on this thread.
pub(crate) fn inline_chain() -> Vec<(
    crate::task::TaskId,
    Option<String>,
    &'static std::panic::Location<'static>,
)> {
    let mut out = Vec::new();
    let mut p = INLINE.with(|c| c.get());
    // SAFETY: every frame in the list lives on the stack of a `run_inline` call still active
    // on this thread (each call unlinks its frame when it returns or unwinds, `Pop`), and the
    // `Meta` it points at is borrowed by that call.
    while let Some(frame) = unsafe { p.as_ref() } {
        // SAFETY: the `Meta` a frame points at is borrowed by its `run_inline` call, active
        // (see above) for as long as the frame is linked.
        let meta = unsafe { &*frame.meta };
        out.push((meta.id, meta.name().map(str::to_owned), meta.location));
        p = frame.prev;
    }
    out
}
