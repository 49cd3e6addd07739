//! Fibers: stackful coroutines (corosensei) pinned to the worker that started them.
//!
//! A fiber runs one task. It never migrates: Rust code may hold `!Send` values (an `Rc`, a
//! `RefCell` borrow, a std `MutexGuard`) and thread-local references across a blocking call, and
//! compiled code may cache a thread-local's address; resuming on another OS thread would break
//! both. Only tasks that have not started yet are stolen between workers.
//!
//! ## Wake-up protocol
//!
//! Each fiber has a [`FiberHandle`] (shared, `Send + Sync`, the thing inside its `Waker`) with a
//! state word:
//!
//! ```text
//!            park()                      wake()
//!  RUNNING ────────────▶ PARKED ──────────────────▶ SCHEDULED ──resume──▶ RUNNING
//!     │  ▲                                                                   │
//!     │  └──────── park() consumes the notification, does not suspend ───────┘
//!     └──wake() while running──▶ NOTIFIED
//! ```
//!
//! `wake` and `park` race only through compare-and-swap on that word: a wake that lands while
//! the fiber is still running (between its last check and its suspension) turns into `NOTIFIED`,
//! and the `park` that follows returns at once. A wake of a `PARKED` fiber moves it to
//! `SCHEDULED` and queues it exactly once: on the owner's local ready queue when the waker runs on
//! the owner's thread, else on the owner's inbox, writing the owner's eventfd if it sleeps.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use corosensei::Yielder;

use super::worker;
use super::Shared;
use crate::context;
use crate::diag::dump::{self, FiberSeen};
use crate::diag::wait_point;
use crate::fiber_stack::{self, TaskName};

pub(super) const RUNNING: u8 = 0;
pub(super) const PARKED: u8 = 1;
pub(super) const SCHEDULED: u8 = 2;
pub(super) const NOTIFIED: u8 = 3;
pub(super) const DONE: u8 = 4;

/// Why a fiber gave control back to its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Suspend {
    /// Waiting for a waker.
    Park,
    /// Still runnable: requeue behind the others.
    Yield,
    /// Back from a trace for a task dump ([`Resume::Trace`]): in the state it was before.
    Traced,
}

/// Why a worker resumes a suspended fiber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// To run on (woken, or its turn after a yield).
    Run,
    /// To report itself for a task dump and suspend again at once (see [`trace`]).
    Trace,
}

pub(super) type FiberYielder = Yielder<Resume, Suspend>;

/// The shareable identity of a fiber: what its `Waker` holds.
pub(crate) struct FiberHandle {
    /// `RUNNING`, `PARKED`, `SCHEDULED`, `NOTIFIED` or `DONE`; see the module docs.
    pub(super) state: AtomicU8,
    /// Index of the owning worker.
    pub(super) worker: usize,
    /// Slot of the fiber in the owner's fiber table. Changes only while the handle is unshared
    /// (recycled by its worker for a new fiber, see `WorkerLocal::fiber_handle`).
    pub(super) key: usize,
    /// The top of the fiber's stack, for the worker's prefetch before a resume. Changes only
    /// while the handle is unshared, like `key`.
    pub(super) stack_top: usize,
    pub(super) shared: Arc<Shared>,
    /// When a waker last made the fiber ready, for profiles (nothing without the feature).
    pub(super) woken: crate::diag::hooks::FiberWoken,
}

impl FiberHandle {
    pub(super) fn new(
        shared: Arc<Shared>,
        worker: usize,
        key: usize,
        stack_top: usize,
    ) -> Arc<FiberHandle> {
        Arc::new(FiberHandle {
            state: AtomicU8::new(RUNNING),
            worker,
            key,
            stack_top,
            shared,
            woken: Default::default(),
        })
    }
}

impl FiberHandle {
    /// Moves the fiber towards running: `PARKED → SCHEDULED` (returns true: the caller must
    /// schedule it) or `RUNNING → NOTIFIED` (its next park returns at once); otherwise nothing.
    fn notify(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                RUNNING => NOTIFIED,
                PARKED => SCHEDULED,
                _ => return false,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == SCHEDULED,
                Err(actual) => state = actual,
            }
        }
    }
}

impl Wake for FiberHandle {
    /// Consumes the waker's reference: when the fiber must be scheduled, this very `Arc` goes
    /// into the run queue (no clone, no drop: two atomic operations fewer than `wake_by_ref`).
    fn wake(self: Arc<Self>) {
        if self.notify() {
            crate::diag::hooks::fiber_woken(&self.woken);
            worker::schedule(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.notify() {
            crate::diag::hooks::fiber_woken(&self.woken);
            worker::schedule(self.clone());
        }
    }
}

/// What a running fiber knows about itself; lives on the fiber's own stack.
pub(super) struct Current {
    /// The fiber's handle, kept alive by `waker` (built from it): one reference, not two.
    pub(super) handle: *const FiberHandle,
    /// The fiber's waker, built once: waits borrow it instead of cloning the handle each time.
    pub(super) waker: Waker,
    pub(super) yielder: *const FiberYielder,
}

thread_local! {
    /// The fiber running on this thread, or null in scheduler code and on plain threads. Each
    /// fiber sets it when it starts and again whenever it resumes after a suspension; `suspend`
    /// clears it before switching away.
    static CURRENT: Cell<*const Current> = const { Cell::new(ptr::null()) };
}

/// Whether the caller runs on a fiber.
#[inline]
pub(crate) fn on_fiber() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// Runs `f` with the running fiber, if any.
#[inline]
fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    CURRENT.with(|c| {
        // SAFETY: a non-null pointer was set by the running fiber from a `Current` on its own
        // stack, which lives until the fiber's entry frame ends; it is cleared before every
        // switch away and when that frame ends, also by an unwind (`Entered`).
        f(unsafe { c.get().as_ref() })
    })
}

/// Installs `current` for the fiber starting now. Called first thing on the fiber's stack; the
/// fiber is current until the returned guard drops, which it does last thing on the fiber's
/// stack, also if the fiber unwinds: the thread-local never outlives the stack it points into.
pub(super) fn enter(current: &Current) -> Entered {
    CURRENT.with(|c| c.set(current));
    Entered(())
}

/// Clears the current fiber when dropped (see [`enter`]).
pub(super) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
    }
}

/// Replaces the current-fiber pointer, returning the previous one: a runtime nested inside a
/// fiber of another sets the outer fiber aside while it runs its own.
pub(super) fn swap_current(current: *const Current) -> *const Current {
    CURRENT.with(|c| c.replace(current))
}

/// A waker for the running fiber.
pub(crate) fn current_waker() -> Option<Waker> {
    with_current(|c| c.map(|c| c.waker.clone()))
}

/// The running fiber's waker, borrowed for as long as the fiber runs (it lives on the fiber's
/// own stack), or null off fibers. Saves two reference-count updates per wait.
pub(crate) fn current_waker_ptr() -> *const Waker {
    with_current(|c| c.map_or(ptr::null(), |c| &c.waker as *const Waker))
}

/// Switches back to the worker with `reason`, restoring this fiber's thread-local state when the
/// worker resumes it: the task context, the current fiber, and the name a stack-overflow report
/// gives it (the worker's own name is put back while the fiber is away).
///
/// A park is bracketed by the task's wait point ([`wait_point::begin_in`] / `end_in`), with
/// the context this function takes off the thread anyway (no second thread-local lookup).
/// Always inlined into its two callers, [`park`] and [`yield_now`], so that each is compiled
/// for its own `reason` and a yield pays nothing for the park's bracket.
#[inline(always)]
fn suspend(current: *const Current, reason: Suspend) {
    let name = fiber_stack::replace_current_task_name(TaskName::NONE);
    let task = context::swap_current(ptr::null());
    let park = reason == Suspend::Park;
    if park {
        // SAFETY: `task` is null or the fiber's task context, whose frame is on this fiber's
        // stack below this call (the task's `execute`, or `run`) and outlives it.
        unsafe { wait_point::begin_in(task) };
    }
    let diag = crate::diag::hooks::suspending(task, park);
    CURRENT.with(|c| c.set(ptr::null()));
    // SAFETY: `current` points into this fiber's stack (see `with_current`), and its yielder is
    // the one corosensei handed to this fiber's closure, valid for the fiber's life.
    let resumed = unsafe { (*(*current).yielder).suspend(reason) };
    if resumed == Resume::Trace {
        answer_traces(current, task);
    }
    CURRENT.with(|c| c.set(current));
    context::swap_current(task);
    // SAFETY: as above; the handle is kept alive by the `Current`'s waker.
    let woken = unsafe { (*(*current).handle).woken.take() };
    crate::diag::hooks::resumed(task, diag, woken);
    if park {
        // SAFETY: as for `begin_in` above.
        unsafe { wait_point::end_in(task) };
    }
    fiber_stack::replace_current_task_name(name);
}

/// Task dumps (resumes with [`Resume::Trace`]) for a suspended fiber: report, then give
/// control straight back, until the worker resumes it to run. The thread-locals stay the
/// worker's: the fiber does not run, and nothing here touches its task. Out of line and
/// cold: a switch pays one comparison for it.
#[cold]
#[inline(never)]
fn answer_traces(current: *const Current, task: *const context::TaskContext<'static>) {
    let mut resumed = Resume::Trace;
    while resumed == Resume::Trace {
        trace_self(current, task);
        // SAFETY: as in `suspend`, the caller: `current` is this fiber's, its yielder valid
        // for the fiber's life.
        resumed = unsafe { (*(*current).yielder).suspend(Suspend::Traced) };
    }
}

thread_local! {
    /// What the last fiber resumed with [`Resume::Trace`] on this thread reported.
    static TRACED: std::cell::RefCell<Option<FiberSeen>> = const { std::cell::RefCell::new(None) };
}

/// Stack a trace needs below the point where a fiber suspended: the unwinder's frames (a few
/// KiB; more in debug builds). A fiber with less left is reported without its stack.
const TRACE_STACK_ROOM: usize = 32 * 1024;

/// A suspended fiber's report of itself for a task dump, made on its own stack by
/// [`suspend`] when resumed with [`Resume::Trace`]. `task` is the task context it took with it
/// when it suspended (null outside any task).
#[cold]
#[inline(never)]
fn trace_self(current: *const Current, task: *const context::TaskContext<'static>) {
    // SAFETY: `current` is this fiber's (see `with_current`); its handle is kept alive by the
    // `Current`'s waker.
    let handle = unsafe { &*(*current).handle };
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the context is the one this fiber's `suspend` took off the thread: it lives
        // in the frame of the task running on this fiber (its cell's `execute`, or `run`), a
        // caller of this very call, so it is alive for the whole call.
        let task = unsafe { task.as_ref() }.map(dump::Seen::of);
        let here = &handle as *const _ as usize;
        let bottom = handle.stack_top.saturating_sub(handle.shared.stack_size);
        let (stack, note) = if here.saturating_sub(bottom) >= TRACE_STACK_ROOM {
            (Some(dump::capture_here()), None)
        } else {
            (None, Some("its stack is too close to full to be traced"))
        };
        FiberSeen {
            worker: handle.worker,
            ready: handle.state.load(Ordering::Acquire) != PARKED,
            task,
            stack,
            note,
        }
    }));
    // A panic while tracing (an allocation failure) leaves no report; the fiber is intact.
    TRACED.with(|t| *t.borrow_mut() = report.ok());
}

/// Has a suspended fiber report itself for a task dump: resumes it with [`Resume::Trace`],
/// which it answers from inside [`suspend`] without running on.
///
/// # Safety
/// `co` must be a fiber of the calling thread's worker that is suspended (it has run, and is
/// not running now: not the caller's own fiber, nor one of its resumers), so that its resume
/// lands in [`suspend`].
pub(super) unsafe fn trace<S: corosensei::stack::Stack>(
    co: &mut corosensei::Coroutine<Resume, Suspend, (), S>,
) -> Option<FiberSeen> {
    TRACED.with(|t| t.borrow_mut().take());
    match co.resume(Resume::Trace) {
        corosensei::CoroutineResult::Yield(Suspend::Traced) => {}
        _ => {
            // A fiber suspends only in `suspend`, which answers a trace with `Traced`.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"zsync: a fiber resumed for a task dump did not answer it; aborting\n",
            );
            std::process::abort();
        }
    }
    TRACED.with(|t| t.borrow_mut().take())
}

/// The slot of the fiber running on this thread in its worker's table, if one runs.
pub(super) fn current_key() -> Option<usize> {
    // SAFETY: the handle is kept alive by the running fiber's `Current` (see `with_current`).
    with_current(|c| c.map(|c| unsafe { (*c.handle).key }))
}

/// Parks the running fiber until its waker fires. Returns at once if a wake-up arrived since the
/// last park. May return spuriously; callers loop on their condition.
///
/// Not inlined: the callers' fast paths (a join whose task is done, a lock that is free) then
/// keep their small frames.
#[inline(never)]
pub(crate) fn park() {
    let current = CURRENT.with(|c| c.get());
    assert!(!current.is_null(), "zsync: fiber park outside a fiber");
    // SAFETY: non-null, set by this fiber (see `with_current`); the handle is kept alive by
    // the `Current`'s waker.
    let handle = unsafe { &*(*current).handle };
    match handle
        .state
        .compare_exchange(RUNNING, PARKED, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => suspend(current, Suspend::Park),
        Err(_) => {
            // NOTIFIED: consume the wake-up and keep running.
            handle.state.store(RUNNING, Ordering::Release);
        }
    }
}

/// Blocking operations a fiber may complete without waiting before it yields to its worker's
/// other fibers (Tokio calls this the cooperative budget). Without it, a fiber whose operations
/// are always ready (a semaphore with permits to spare, a socket with data) would never give its
/// worker back: Green scheduling is cooperative.
const BUDGET: u32 = 128;

thread_local! {
    /// Operations left to the running fiber before it yields; refilled on every resume.
    static BUDGET_LEFT: Cell<u32> = const { Cell::new(BUDGET) };
}

/// Refills the budget: the worker calls this before resuming a fiber.
pub(super) fn refill_budget() {
    BUDGET_LEFT.with(|b| b.set(BUDGET));
}

/// Spends one unit of the running fiber's budget, yielding to the worker when it is used up.
/// Called at the start of every blocking operation; does nothing off fibers.
#[inline]
pub(crate) fn consume_budget() {
    let exhausted = BUDGET_LEFT.with(|b| {
        let left = b.get().saturating_sub(1);
        b.set(left);
        left == 0
    });
    if exhausted && on_fiber() {
        refill_budget();
        yield_now();
    }
}

/// Requeues the running fiber behind the other ready fibers of its worker.
pub(crate) fn yield_now() {
    let current = CURRENT.with(|c| c.get());
    if current.is_null() {
        std::thread::yield_now();
        return;
    }
    suspend(current, Suspend::Yield);
}
