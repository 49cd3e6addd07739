//! The one call per event that the schedulers make (see the module docs of [`crate::diag`]).
//!
//! | event | called from |
//! | --- | --- |
//! | [`spawned`] | `task::cell::Core::new` (every task cell), the Blocking model's inline spawn |
//! | [`entered`] / [`leaving`] | `context::enter` and its guard: a task starts or ends a run (a whole closure task, one poll of a future task, a task run inline by its joiner) |
//! | [`suspending`] / [`resumed`] | `fiber::suspend`: a fiber parks or yields, and is resumed |
//! | [`thread_parking`] / [`thread_unparked`] | `park.rs`: a task on an OS thread blocks |
//! | [`fiber_woken`] | the fiber waker, when it makes a parked fiber ready |
//! | [`finished`] / [`cancel_requested`] | a task's completion; `Task::cancel`/`request_cancel` |
//! | [`fiber_done`] | the Green worker, when a fiber returned: its stack's high-water mark |
//! | [`LockWait`] | `Semaphore::wait_for_as` (under `Mutex`, `RwLock`, `Semaphore`) |
//!
//! Without the `tracing` and `profile` features every function here is empty and every type
//! zero-sized.

#![allow(unused_variables)]

#[cfg(feature = "profile")]
use std::cell::Cell;
use std::panic::Location;
#[cfg(feature = "profile")]
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::TaskContext;
#[cfg(feature = "profile")]
use crate::diag::now_ticks;
#[cfg(feature = "profile")]
use crate::diag::record::{self, Charge, LockKind as RecLockKind, Recorder, Who};
use crate::task::id::Meta;
use crate::Io;

#[cfg(any(feature = "tracing", feature = "profile"))]
/// What a task's cell keeps for diagnostics (in its `Meta`): one pointer, null unless the task
/// was spawned while observed (a subscriber wanted its span, or its runtime profiled), so a
/// task cell grows by 8 bytes with the features and allocates nothing more when unobserved.
#[derive(Default)]
pub(crate) struct TaskDiag(Option<Box<Observed>>);

/// What [`TaskDiag`] adds to a task cell (nothing without the features), for the frame-size
/// test.
#[cfg(all(test, any(feature = "tracing", feature = "profile")))]
pub(crate) type TaskDiagSize = TaskDiag;
#[cfg(all(test, not(any(feature = "tracing", feature = "profile"))))]
pub(crate) type TaskDiagSize = ();

#[cfg(any(feature = "tracing", feature = "profile"))]
struct Observed {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    /// Bit 0 ([`STARTED`]): the task has started. Bits 1..: clock units (see [`crate::diag::clock`]) of
    /// its spawn until it starts, then of the end of its last run (a future's poll); 0 for
    /// none. Its first run charges the time since its spawn as scheduling, later ones the
    /// time since the last as blocked.
    #[cfg(feature = "profile")]
    mark: AtomicU64,
}

/// See [`Observed::mark`].
#[cfg(feature = "profile")]
const STARTED: u64 = 1;

#[cfg(any(feature = "tracing", feature = "profile"))]
impl TaskDiag {
    /// The task's span, if it has a live one.
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.0.as_ref().map(|o| &o.span)
    }

    #[cfg(feature = "profile")]
    #[inline]
    fn mark(&self) -> Option<&AtomicU64> {
        self.0.as_ref().map(|o| &o.mark)
    }
}

#[cfg(any(feature = "tracing", feature = "profile"))]
impl Clone for TaskDiag {
    fn clone(&self) -> TaskDiag {
        TaskDiag(self.0.as_ref().map(|o| {
            Box::new(Observed {
                #[cfg(feature = "tracing")]
                span: o.span.clone(),
                #[cfg(feature = "profile")]
                mark: AtomicU64::new(o.mark.load(Ordering::Relaxed)),
            })
        }))
    }
}

#[cfg(any(feature = "tracing", feature = "profile"))]
/// What a running task's context keeps for diagnostics (on the stack of the frame that runs
/// the task, like the context itself).
pub(crate) struct CtxDiag {
    /// The context that was current when this one was entered: the chain a fiber's suspension
    /// walks to leave every span entered on it (a task run inline by its joiner runs nested in
    /// the joiner's context).
    #[cfg(any(feature = "tracing", feature = "profile"))]
    prev: std::cell::Cell<*const TaskContext<'static>>,
    /// When the task last started running, in clock units (see [`crate::diag::clock`]); 0
    /// while it is not running or not recorded.
    #[cfg(feature = "profile")]
    since: Cell<u64>,
    /// The recorder of the task's runtime, looked up once per run, so that a switch reads its
    /// flag with one load instead of following `io → inner → state → profile`. Valid for the
    /// context's life: the context borrows the `Io`, which keeps the runtime's state alive.
    #[cfg(feature = "profile")]
    rec: *const Recorder,
}

#[cfg(any(feature = "tracing", feature = "profile"))]
impl CtxDiag {
    /// The context current before this one was entered.
    #[cfg(feature = "tracing")]
    pub(in crate::diag) fn prev(&self) -> *const TaskContext<'static> {
        self.prev.get()
    }

    #[inline]
    pub(crate) fn new(io: &Io) -> CtxDiag {
        CtxDiag {
            #[cfg(any(feature = "tracing", feature = "profile"))]
            prev: std::cell::Cell::new(std::ptr::null()),
            #[cfg(feature = "profile")]
            since: Cell::new(0),
            #[cfg(feature = "profile")]
            rec: &*io.inner.state.profile,
        }
    }
}

/// The profile recorder of the runtime `ctx` runs in, if it records now.
#[cfg(feature = "profile")]
#[inline]
fn recorder<'a>(ctx: &'a TaskContext<'_>) -> Option<&'a Recorder> {
    // SAFETY: set by `CtxDiag::new` from the `Io` the context borrows for its whole life
    // (see the field's docs); the recorder lives in that runtime's state, behind an `Arc`.
    let rec = unsafe { &*ctx.diag.rec };
    rec.enabled().then_some(rec)
}

#[cfg(feature = "profile")]
fn who<'a>(ctx: &'a TaskContext<'_>) -> Who<'a> {
    Who {
        id: ctx.task.id,
        meta: ctx.task.meta,
    }
}

/// Ends `ctx`'s stretch of running at `now` and returns its length (0 if it was not running
/// while recorded); the caller charges it.
#[cfg(feature = "profile")]
#[inline]
fn stop_running(ctx: &TaskContext<'_>, now: u64) -> u64 {
    let since = ctx.diag.since.replace(0);
    if since != 0 && now > since {
        now - since
    } else {
        0
    }
}

/// Ends `ctx`'s stretch of running at `now` and charges it.
#[cfg(feature = "profile")]
fn pause(ctx: &TaskContext<'_>, now: u64) {
    let ran = stop_running(ctx, now);
    if ran != 0 {
        if let Some(rec) = recorder(ctx) {
            rec.charge(who(ctx), Charge::Running, ran);
        }
    }
}

/// A task was spawned (its cell is being made): its span, its spawn time.
#[inline]
pub(crate) fn spawned(io: &Io, meta: &mut Meta) {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    {
        #[cfg(feature = "tracing")]
        let span = super::trace::task_span(io, meta);
        #[cfg(feature = "tracing")]
        let traced = !span.is_none();
        #[cfg(not(feature = "tracing"))]
        let traced = false;
        #[cfg(feature = "profile")]
        let spawned_ns = if io.inner.state.profile.enabled() {
            now_ticks()
        } else {
            0
        };
        #[cfg(not(feature = "profile"))]
        let spawned_ns = 0u64;
        if traced || spawned_ns != 0 {
            meta.diag = TaskDiag(Some(Box::new(Observed {
                #[cfg(feature = "tracing")]
                span,
                #[cfg(feature = "profile")]
                mark: AtomicU64::new(spawned_ns << 1),
            })));
        }
    }
}

/// `ctx` became the running task's context (`context::enter`); `prev` was.
#[inline]
pub(crate) fn entered(ctx: &TaskContext<'_>, prev: *const TaskContext<'static>) {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    ctx.diag.prev.set(prev);
    #[cfg(feature = "tracing")]
    if let Some(span) = ctx.task.meta.and_then(|m| m.diag.span()) {
        super::trace::enter(span);
    }
    #[cfg(feature = "profile")]
    if let Some(rec) = recorder(ctx) {
        profile_entered(rec, ctx, prev);
    }
}

#[cfg(feature = "profile")]
#[cold]
fn profile_entered(rec: &Recorder, ctx: &TaskContext<'_>, prev: *const TaskContext<'static>) {
    let now = now_ticks();
    // SAFETY: `prev` was the current context when `ctx` was entered: it belongs to a frame
    // further up this same stack, which outlives `ctx` (see `context::enter`).
    if let Some(prev) = unsafe { prev.as_ref() } {
        pause(prev, now);
    }
    let who = who(ctx);
    match ctx.task.meta.map(|m| m.diag.mark()) {
        Some(Some(mark)) => {
            let prev = mark.swap(STARTED, Ordering::Relaxed);
            let at = prev >> 1;
            if prev & STARTED == 0 {
                rec.started(who);
                if at != 0 && now > at {
                    rec.charge(who, Charge::Scheduling, now - at);
                }
            } else if at != 0 && now > at {
                // A future task's next poll: it waited since its last one ended.
                rec.charge(who, Charge::Blocked("await"), now - at);
            }
        }
        // Spawned before the runtime profiled and before any subscriber wanted its span: its
        // time is recorded, but it is not counted among the tasks started.
        Some(None) => {}
        // A root task (`run`'s, a `block_on`'s).
        None => rec.started(who),
    }
    ctx.diag.since.set(now);
}

/// The running task's context `ctx` is being left for `prev` (`context::EnterGuard::drop`):
/// a closure task ended, a future task's poll returned.
#[cfg(any(feature = "tracing", feature = "profile"))]
#[inline]
pub(crate) fn leaving(ctx: *const TaskContext<'static>, prev: *const TaskContext<'static>) {
    {
        // SAFETY: `ctx` is the context the guard installed; the frame holding it is the
        // guard's own, still active.
        let Some(ctx) = (unsafe { ctx.as_ref() }) else {
            return;
        };
        #[cfg(feature = "tracing")]
        if let Some(span) = ctx.task.meta.and_then(|m| m.diag.span()) {
            super::trace::exit(span);
        }
        #[cfg(feature = "profile")]
        if let Some(rec) = recorder(ctx) {
            profile_leaving(rec, ctx, prev);
        }
    }
}

#[cfg(feature = "profile")]
#[cold]
fn profile_leaving(rec: &Recorder, ctx: &TaskContext<'_>, prev: *const TaskContext<'static>) {
    let now = now_ticks();
    pause(ctx, now);
    if let Some(mark) = ctx.task.meta.and_then(|m| m.diag.mark()) {
        mark.store(now << 1 | STARTED, Ordering::Relaxed);
    }
    // SAFETY: as in `profile_entered`.
    match unsafe { prev.as_ref() } {
        Some(prev) => prev.diag.since.set(now),
        None => {
            if crate::model::green::fiber::on_fiber() {
                // The outermost task of a fiber: the worker records the fiber's stack use for
                // it when the fiber returns (`fiber_done`).
                let site = ctx.task.meta.map(|m| m.location);
                FIBER_OWNER.with(|o| {
                    o.replace(Some((
                        ctx.io.inner.state.profile.clone(),
                        ctx.task.id,
                        site,
                    )))
                });
            }
        }
    }
}

#[cfg(feature = "profile")]
type FiberOwner = (
    std::sync::Arc<Recorder>,
    crate::task::TaskId,
    Option<&'static Location<'static>>,
);

#[cfg(feature = "profile")]
thread_local! {
    /// The recorder, task and spawn site of the outermost task that ended last on a fiber of
    /// this thread: the fiber about to return (see [`fiber_done`]).
    static FIBER_OWNER: std::cell::RefCell<Option<FiberOwner>> = const {
        std::cell::RefCell::new(None)
    };
}

/// What a fiber's suspension noted for its resumption. (Not the operation: the wait point
/// stays noted until the operation returns, so the resumption reads it only if it needs it.)
pub(crate) struct Suspended {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    park: bool,
    #[cfg(feature = "profile")]
    at: u64,
    /// The stretch of running the suspension ended (charged at the resumption, with the
    /// wait, under one lock).
    #[cfg(feature = "profile")]
    ran: u64,
}

/// The fiber running `ctx` suspends (`park`: until woken; else a yield). Leaves every span
/// entered on the fiber, so that the worker's thread holds none of them while it runs others.
#[inline]
pub(crate) fn suspending(ctx: *const TaskContext<'static>, park: bool) -> Suspended {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    {
        // SAFETY: `ctx` is the fiber's current context: its frame is on the fiber's stack,
        // which is not left before this returns.
        let ctx = unsafe { ctx.as_ref() };
        #[cfg(feature = "profile")]
        let (mut at, mut ran) = (0, 0);
        if let Some(ctx) = ctx {
            #[cfg(feature = "tracing")]
            super::trace::suspending(ctx, park);
            #[cfg(feature = "profile")]
            if recorder(ctx).is_some() {
                at = now_ticks();
                ran = stop_running(ctx, at);
            }
        }
        Suspended {
            park,
            #[cfg(feature = "profile")]
            at,
            #[cfg(feature = "profile")]
            ran,
        }
    }
    #[cfg(not(any(feature = "tracing", feature = "profile")))]
    Suspended {}
}

/// The fiber running `ctx` was resumed after `suspended`; `woken` is the stamp of its waker
/// making it ready (0 if unknown).
#[inline]
pub(crate) fn resumed(ctx: *const TaskContext<'static>, suspended: Suspended, woken: WokenStamp) {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    {
        // SAFETY: as in `suspending`: the fiber is running again on its own stack.
        let Some(ctx) = (unsafe { ctx.as_ref() }) else {
            return;
        };
        #[cfg(feature = "tracing")]
        super::trace::resumed(ctx, suspended.park);
        #[cfg(feature = "profile")]
        if let Some(rec) = recorder(ctx) {
            let now = now_ticks();
            if suspended.at != 0 && now >= suspended.at {
                let ran = (Charge::Running, suspended.ran);
                if suspended.park {
                    // The stamp is in wrapping microseconds: how long ago, capped by the wait.
                    let woken = if woken == 0 {
                        now
                    } else {
                        let ago = (stamp32(now).wrapping_sub(woken) as u64) << STAMP_SHIFT;
                        now - ago.min(now - suspended.at)
                    };
                    rec.charge_all(
                        who(ctx),
                        &[
                            ran,
                            (Charge::Blocked(wait_op(ctx)), woken - suspended.at),
                            (Charge::Scheduling, now - woken),
                        ],
                    );
                } else {
                    rec.charge_all(who(ctx), &[ran, (Charge::Scheduling, now - suspended.at)]);
                }
            }
            ctx.diag.since.set(now);
        }
    }
}

/// A fiber's waker made it ready: remembers when, in `slot` (the fiber's handle), if any
/// runtime profiles.
#[inline]
pub(crate) fn fiber_woken(slot: &FiberWoken) {
    #[cfg(feature = "profile")]
    if record::any_active() {
        slot.0.store(stamp32(now_ticks()), Ordering::Relaxed);
    }
}

/// A timestamp in units of 1024 clock units, modulo 2³², never 0: a wake-up stamp that fits
/// the padding after the fiber handle's state byte (with the TSC at 3 GHz a unit is 0.34 µs
/// and the stamps wrap after 24 minutes; differences of stamps closer than that are exact in
/// wrapping arithmetic).
#[cfg(feature = "profile")]
#[inline]
fn stamp32(ticks: u64) -> u32 {
    ((ticks >> STAMP_SHIFT) as u32).max(1)
}

#[cfg(feature = "profile")]
const STAMP_SHIFT: u32 = 10;

/// When a fiber was last made ready (see [`fiber_woken`]); a field of its handle, 32 bits so
/// that it takes the padding after the handle's state byte instead of growing it.
#[derive(Default)]
pub(crate) struct FiberWoken(#[cfg(feature = "profile")] std::sync::atomic::AtomicU32);

/// A wake-up stamp taken from a [`FiberWoken`] (0: none).
pub(crate) type WokenStamp = u32;

impl FiberWoken {
    /// Takes the stamp of the fiber's last wake-up (0 if not recorded).
    #[inline]
    pub(crate) fn take(&self) -> WokenStamp {
        #[cfg(feature = "profile")]
        if record::any_active() {
            // A load and a store, not a swap (a locked instruction): only the fiber's own
            // resumption takes the value, and a wake-up's store that lands in between is the
            // stamp of a later readiness, which the next park's wait begins after anyway.
            let at = self.0.load(Ordering::Relaxed);
            if at != 0 {
                self.0.store(0, Ordering::Relaxed);
            }
            return at;
        }
        0
    }
}

/// What [`thread_parking`] noted.
pub(crate) struct ThreadPark {
    #[cfg(feature = "profile")]
    at: u64,
    #[cfg(feature = "profile")]
    ran: u64,
}

/// The running task blocks its OS thread (thread models).
#[inline]
pub(crate) fn thread_parking() -> ThreadPark {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    {
        crate::context::with(|ctx| {
            #[cfg(feature = "profile")]
            let (mut at, mut ran) = (0, 0);
            if let Some(ctx) = ctx {
                #[cfg(feature = "tracing")]
                super::trace::park(ctx);
                #[cfg(feature = "profile")]
                if recorder(ctx).is_some() {
                    at = now_ticks();
                    ran = stop_running(ctx, at);
                }
            }
            ThreadPark {
                #[cfg(feature = "profile")]
                at,
                #[cfg(feature = "profile")]
                ran,
            }
        })
    }
    #[cfg(not(any(feature = "tracing", feature = "profile")))]
    ThreadPark {}
}

/// The thread's wait that [`thread_parking`] announced returned.
#[inline]
pub(crate) fn thread_unparked(park: ThreadPark) {
    #[cfg(any(feature = "tracing", feature = "profile"))]
    crate::context::with(|ctx| {
        let Some(ctx) = ctx else { return };
        #[cfg(feature = "tracing")]
        super::trace::wake(ctx);
        #[cfg(feature = "profile")]
        if let Some(rec) = recorder(ctx) {
            let now = now_ticks();
            if park.at != 0 && now >= park.at {
                rec.charge_all(
                    who(ctx),
                    &[
                        (Charge::Running, park.ran),
                        (Charge::Blocked(wait_op(ctx)), now - park.at),
                    ],
                );
            }
            ctx.diag.since.set(now);
        }
    });
}

/// The operation the task of `ctx` is about to wait in (its wait point, see
/// [`crate::diag::wait_point`]), for the park event and the blocked time: `"wait"` when none
/// was noted.
#[cfg(any(feature = "tracing", feature = "profile"))]
#[inline]
pub(in crate::diag) fn wait_op(ctx: &TaskContext<'_>) -> &'static str {
    ctx.wait.op().name()
}

/// A task's body ended (`panicked`: by a panic). After its last [`leaving`].
#[inline]
pub(crate) fn finished(io: &Io, meta: &Meta, panicked: bool) {
    #[cfg(feature = "tracing")]
    super::trace::finished(meta, panicked);
    #[cfg(feature = "profile")]
    if io.inner.state.profile.enabled()
        && meta
            .diag
            .mark()
            .is_some_and(|m| m.load(Ordering::Relaxed) & STARTED != 0)
    {
        io.inner.state.profile.finished(Who {
            id: meta.id,
            meta: Some(meta),
        });
    }
}

/// Someone asked the task to stop (`Task::cancel`, `request_cancel`, a drop of its handle).
#[inline]
pub(crate) fn cancel_requested(meta: &Meta) {
    #[cfg(feature = "tracing")]
    super::trace::cancel_requested(meta);
}

/// A fiber returned; `stack` is its stack, about to go back to the pool. Records its
/// high-water mark for the task it was started for (see [`crate::diag::stack`]).
#[inline]
pub(crate) fn fiber_done(stack: &crate::fiber_stack::PooledStack) {
    #[cfg(feature = "profile")]
    if record::any_active() {
        if let Some((rec, task, site)) = FIBER_OWNER.with(|o| o.borrow_mut().take()) {
            let (used, size) = super::stack::high_water(stack);
            rec.stack_used(site, Some(task), used, size);
        }
    }
}

/// The kind of lock a [`LockWait`] is for.
#[derive(Clone, Copy)]
pub(crate) enum LockKind {
    Mutex,
    RwLockRead,
    RwLockWrite,
    Semaphore,
}

/// Times one lock acquisition at a user's call site: whether it had to wait, and how long.
pub(crate) struct LockWait {
    #[cfg(feature = "profile")]
    site: &'static Location<'static>,
    #[cfg(feature = "profile")]
    kind: LockKind,
    /// When the first poll found the lock taken (ns), 0 while it has not.
    #[cfg(feature = "profile")]
    since: u64,
}

impl LockWait {
    #[inline]
    pub(crate) fn new(kind: LockKind, site: &'static Location<'static>) -> LockWait {
        LockWait {
            #[cfg(feature = "profile")]
            site,
            #[cfg(feature = "profile")]
            kind,
            #[cfg(feature = "profile")]
            since: 0,
        }
    }

    /// A poll of the acquisition returned; `pending`: the lock was not free.
    #[inline]
    pub(crate) fn polled(&mut self, pending: bool) {
        #[cfg(feature = "profile")]
        if pending && self.since == 0 && record::any_active() {
            self.since = now_ticks();
        }
    }

    /// The acquisition ended (acquired, or given up).
    #[inline]
    pub(crate) fn done(self) {
        #[cfg(feature = "profile")]
        if self.since != 0 {
            let waited = now_ticks().saturating_sub(self.since);
            let kind = match self.kind {
                LockKind::Mutex => RecLockKind::Mutex,
                LockKind::RwLockRead => RecLockKind::RwLockRead,
                LockKind::RwLockWrite => RecLockKind::RwLockWrite,
                LockKind::Semaphore => RecLockKind::Semaphore,
            };
            crate::context::with(|ctx| {
                if let Some(rec) = ctx.and_then(recorder) {
                    rec.lock_waited(self.site, kind, waited);
                }
            });
        }
    }
}
