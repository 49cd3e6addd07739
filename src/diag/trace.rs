//! `tracing` for tasks (feature `tracing`): a span per task and events for its life.
//!
//! The span (`zsync::task`, level INFO, named `task`; fields `task.id`, `task.name`,
//! `spawn.location`, `model`) is made when the task is spawned, as a child of the spawner's
//! span if one is entered, and is entered whenever the task runs: on each resume of its fiber,
//! around each poll of a future task, around the whole run on a thread model (where a parked
//! task keeps its thread). Events (target `zsync::task`): `spawn` and `finish` and `cancel` at
//! DEBUG, `park` and `wake` at TRACE (one of each per blocking wait), each with the task's span
//! as parent.
//!
//! Enter and exit are strictly paired on one thread: a fiber leaves its spans before it
//! switches to its worker and enters them again once resumed (fibers never move between
//! threads); a future task enters and leaves its span within one poll, on the thread that
//! polls it, even when it moves between workers from one poll to the next.
//!
//! A subscriber is user code, and these calls run on scheduler paths (a fiber between marking
//! itself parked and switching away, a task's completion): each is contained
//! ([`contained`]); a subscriber's panic is reported by the panic hook and goes no further.

use tracing::{Level, Span};

use crate::context::TaskContext;
use crate::task::id::Meta;
use crate::Io;

/// Runs subscriber code `f`, dropping its panic (the panic hook reported it).
#[inline]
fn contained(f: impl FnOnce()) {
    if let Err(payload) = crate::contain::catch(f) {
        crate::contain::drop_payload(payload);
    }
}

/// The span of a task being spawned, and its `spawn` event.
pub(crate) fn task_span(io: &Io, meta: &Meta) -> Span {
    crate::contain::catch(|| task_span_uncontained(io, meta)).unwrap_or_else(|payload| {
        crate::contain::drop_payload(payload);
        Span::none()
    })
}

fn task_span_uncontained(io: &Io, meta: &Meta) -> Span {
    let span = tracing::span!(
        target: "zsync::task",
        Level::INFO,
        "task",
        task.id = meta.id.as_u64(),
        task.name = meta.name().unwrap_or(""),
        spawn.location = %meta.location,
        model = io.model_name(),
    );
    if !span.is_disabled() {
        let by = crate::context::with(|c| c.map(|c| c.task.id.as_u64()));
        tracing::event!(
            target: "zsync::task",
            parent: &span,
            Level::DEBUG,
            spawned_by = by,
            "spawn"
        );
    }
    span
}

/// Enters `span` on this thread (paired with [`exit`] on the same thread).
#[inline]
pub(crate) fn enter(span: &Span) {
    contained(|| {
        span.with_subscriber(|(id, dispatch)| dispatch.enter(id));
    });
}

/// Leaves `span` on this thread.
#[inline]
pub(crate) fn exit(span: &Span) {
    contained(|| {
        span.with_subscriber(|(id, dispatch)| dispatch.exit(id));
    });
}

fn span_of<'a>(ctx: &'a TaskContext<'_>) -> Option<&'a Span> {
    ctx.task.meta.and_then(|m| m.diag.span())
}

/// A fiber suspends while running `ctx`: a `park` event (unless it yields), then every span
/// entered on the fiber is left, innermost first.
pub(crate) fn suspending(ctx: &TaskContext<'_>, park: bool) {
    if park {
        self::park(ctx);
    }
    let mut c: *const TaskContext<'_> = ctx;
    // SAFETY: each context in the chain lives in a frame further up the fiber's stack (see
    // `hooks::entered`), all still active while the fiber runs.
    while let Some(cx) = unsafe { c.as_ref() } {
        if let Some(span) = span_of(cx) {
            exit(span);
        }
        c = cx.diag.prev().cast();
    }
}

/// A fiber resumed running `ctx`: its spans are entered again, outermost first, then a `wake`
/// event after a park.
pub(crate) fn resumed(ctx: &TaskContext<'_>, park: bool) {
    fn enter_chain(c: *const TaskContext<'static>) {
        // SAFETY: as in `suspending`.
        if let Some(cx) = unsafe { c.as_ref() } {
            enter_chain(cx.diag.prev());
            if let Some(span) = span_of(cx) {
                enter(span);
            }
        }
    }
    enter_chain(ctx.diag.prev());
    if let Some(span) = span_of(ctx) {
        enter(span);
    }
    if park {
        wake(ctx);
    }
}

/// The task of `ctx` starts waiting in the operation its wait point names.
pub(crate) fn park(ctx: &TaskContext<'_>) {
    if let Some(span) = span_of(ctx) {
        let op = super::hooks::wait_op(ctx);
        contained(
            || tracing::event!(target: "zsync::task", parent: span, Level::TRACE, op, "park"),
        );
    }
}

/// The task of `ctx` runs again after waiting in that operation.
pub(crate) fn wake(ctx: &TaskContext<'_>) {
    if let Some(span) = span_of(ctx) {
        let op = super::hooks::wait_op(ctx);
        contained(
            || tracing::event!(target: "zsync::task", parent: span, Level::TRACE, op, "wake"),
        );
    }
}

/// The task's body ended.
pub(crate) fn finished(meta: &Meta, panicked: bool) {
    let Some(span) = meta.diag.span() else { return };
    contained(|| {
        tracing::event!(
            target: "zsync::task",
            parent: span,
            Level::DEBUG,
            panicked,
            "finish"
        )
    });
}

/// Someone asked the task to stop.
pub(crate) fn cancel_requested(meta: &Meta) {
    let Some(span) = meta.diag.span() else { return };
    let by = crate::context::with(|c| c.map(|c| c.task.id.as_u64()));
    contained(|| {
        tracing::event!(
            target: "zsync::task",
            parent: span,
            Level::DEBUG,
            canceled_by = by,
            "cancel"
        )
    });
}
