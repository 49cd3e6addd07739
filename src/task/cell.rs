//! The shared state of one task: its closure until it runs, its result until it is joined.
//!
//! One allocation per task holds the closure, the result slot, the joiner's waker and the task's
//! cancellation node. Three parties touch it: the scheduler (which runs it), the handle (which
//! joins, cancels or detaches it) and possibly a joiner that runs it inline. The `state` word
//! arbitrates:
//!
//! - `CLAIMED`: set by whoever starts the closure, exactly once (`fetch_or`). A worker that pops a
//!   task already claimed by its joiner skips it, which is how an unstarted task is run inline by
//!   its joiner without being taken out of the queue. (When the task is still on top of the
//!   joiner's own deque, the joiner pops it first: see `Io::unqueue`.)
//! - `DONE`: set (`Release`) after the result is written; readers `Acquire` it before reading.
//! - `DETACHED`: set by [`Task::detach`](crate::Task::detach). Whichever of `DONE` and `DETACHED`
//!   is set second disposes of the result (drops the value or reports a panic), so a detached
//!   task's result is handled exactly once.
//!
//! The word and the two cells it guards (the closure and the result) are [`Lifecycle`] and
//! [`Closure`]: small, runtime-free types whose atomics and cells come from [`crate::loom`], so the
//! loom models in this file check exactly this protocol — every interleaving of claim, complete,
//! detach and take — for data races and double disposal.
//!
//! The cancellation node is embedded, not boxed: the cell is a [`NodeOwner`], so a child's
//! parent link or a parent's registration keeps the whole cell alive through a [`NodeRef`]. The
//! running task's context borrows the node (a `CellNode`) and makes such a reference from the
//! cell's `Arc` only when the task spawns or blocks.

use std::any::Any;
use std::panic::{self, Location};
use std::ptr::NonNull;
use std::sync::Arc;
use std::thread;

use crate::loom::waker::AtomicWaker;

use crate::cancel::{CancelNode, NodeOwner, NodeRef, NodeSource};
use crate::contain;
use crate::context::{self, TaskContext, TaskRef};
use crate::fiber_stack::{self, TaskName};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU8, Ordering};
use crate::stackless::frame::{CellRef, Frame};
use crate::task::id::{Meta, TaskId};
use crate::{park, Io};

const CLAIMED: u8 = 1;
const DONE: u8 = 2;
const DETACHED: u8 = 4;

/// A task ready to run, as a scheduler sees it: type-erased, cheap to move between threads.
///
/// Custom models (see [`CustomModel`](crate::CustomModel)) receive tasks as `Runnable`s and call
/// [`run`](Runnable::run) on whatever thread they choose.
pub struct Runnable(pub(crate) CellRef<dyn Run>);

impl Runnable {
    /// A queue entry for a task (or job) whose cell is an `Arc`.
    pub(crate) fn from_arc(task: Arc<dyn Run>) -> Runnable {
        Runnable(CellRef::from_arc(task))
    }

    /// A second queue entry for the same task: a task runs once, whichever entry runs it.
    pub(crate) fn another(&self) -> Runnable {
        Runnable(self.0.clone())
    }

    /// The address of the task's cell: identifies the task across its handles.
    pub(crate) fn addr(&self) -> *const () {
        self.0.addr()
    }

    /// Runs the task to completion on the calling thread. Does nothing if the task was already
    /// started elsewhere (for example inline by a joiner).
    ///
    /// Does not unwind: a panic of the task (or of its value's `Drop`, or of its joiner's
    /// waker) is kept for whoever observes the task, or for [`run`](crate::run) to re-raise.
    pub fn run(self) {
        match self.0.into_owner() {
            Err(task) => task.run(),
            Ok(frame) => {
                let entry = frame.frame_entry();
                // SAFETY: `frame_entry` is the entry point of the frame's concrete cell type,
                // which takes the thin pointer of a frame of that type and the one reference
                // `into_thin` gives up.
                unsafe { entry(Frame::into_thin(frame)) }
            }
        }
    }

    /// Where the task was spawned (`file:line` of the `spawn` call): its name in diagnostics.
    pub fn location(&self) -> &'static Location<'static> {
        self.0.location()
    }

    /// The task's id (`None` for work that is not a task's, such as a model's internal jobs).
    pub fn id(&self) -> Option<TaskId> {
        self.0.meta().map(|m| m.id)
    }

    /// The task's name, if it was given one (see [`TaskBuilder`](crate::task::TaskBuilder)).
    pub fn name(&self) -> Option<&str> {
        self.0.meta().and_then(Meta::name)
    }

    /// For a future task ([`Io::spawn_future`](crate::Io::spawn_future)), the size in bytes of
    /// its future: the frame the compiler laid out for the `async` state machine, held inline in
    /// the task's one allocation. `None` for a closure task.
    pub fn frame_size(&self) -> Option<usize> {
        self.0.frame_size()
    }

    /// Whether someone started the task already (a worker, or its joiner inline). A hint: it
    /// may be started right after. For a closure task that makes a queue entry stale (see
    /// [`is_stale`](Runnable::is_stale)); a future task is started by its first poll and is
    /// queued again by every wake.
    pub(crate) fn is_started(&self) -> bool {
        self.0.is_claimed()
    }

    /// Whether this queue entry can be dropped unrun, as a worker would skip it: a closure task
    /// that was started already (by its joiner, inline). Never for a future task: its entry
    /// is a scheduled poll (it was woken), and dropping it loses the wake-up for good.
    pub(crate) fn is_stale(&self) -> bool {
        self.frame_size().is_none() && self.is_started()
    }

    /// The task's cell as its node's owner (`None` for work that is not a task's): what a task
    /// dump reads of a queued task.
    pub(crate) fn dump_owner(&self) -> Option<&dyn NodeOwner> {
        self.0.dump_owner()
    }
}

impl std::fmt::Debug for Runnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runnable")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("location", &self.location())
            .field("frame_size", &self.frame_size())
            .finish()
    }
}

/// What a task runs: a closure taking the task's `Io`, or a wrapper around one that can give the
/// closure back (a [`Group`](crate::Group)'s, see [`Io::concurrent`](crate::Io::concurrent)).
pub(crate) trait Body<T>: Send + 'static {
    fn call(self, io: &Io) -> T;
}

impl<T, F> Body<T> for F
where
    F: FnOnce(&Io) -> T + Send + 'static,
{
    #[inline]
    fn call(self, io: &Io) -> T {
        self(io)
    }
}

pub(crate) trait Run: Send + Sync {
    fn run(self: Arc<Self>);
    /// For a task whose cell is a pooled [`Frame`] (a future task's, the only kind): the
    /// function that runs it, given the frame's thin pointer and one reference to it, which it
    /// takes over. Called only on frames (see [`Runnable::run`]).
    fn frame_entry(&self) -> unsafe fn(NonNull<()>) {
        unreachable!("only a future task's cell lives in a frame")
    }
    /// Where the task was spawned.
    fn location(&self) -> &'static Location<'static>;
    /// The task's identity; none for work that is not a task's.
    fn meta(&self) -> Option<&Meta> {
        None
    }
    /// Whether the task was claimed (see [`Lifecycle::is_claimed`]); never, for work that is
    /// not a task's.
    fn is_claimed(&self) -> bool {
        false
    }
    /// For a future task, the size of its future (its "frame": what the compiler laid out for
    /// the `async` state machine); `None` for a closure task.
    fn frame_size(&self) -> Option<usize> {
        None
    }
    /// The task's cell as the owner of its cancellation node, for a task dump that finds the
    /// task in a queue (`None` for work that is not a task's).
    fn dump_owner(&self) -> Option<&dyn NodeOwner> {
        None
    }
}

/// The typed half a handle needs, independent of the closure type.
pub(crate) trait Joinable<T>: Send + Sync {
    fn core(&self) -> &Core<T>;
    /// Runs the closure here if nobody has started it. Returns whether it ran. `me` is
    /// `Arc::as_ptr` of the handle's `Arc` (the task's own cell): the running task's context
    /// makes owning references to its node from it.
    fn run_if_unclaimed(&self, me: *const ()) -> bool;
    /// For a future task, the size of its future; `None` for a closure task.
    fn frame_size(&self) -> Option<usize> {
        None
    }
}

/// The state word of a task and its result slot: the whole claim/complete/detach protocol of
/// the module docs, without the runtime around it.
pub(crate) struct Lifecycle<T> {
    /// `CLAIMED | DONE | DETACHED` bits. `CLAIMED` is set by the runner or an inline joiner,
    /// `DONE` by the runner, `DETACHED` by the handle; anyone reads it.
    state: AtomicU8,
    /// Written once by the runner before `DONE`; taken once by the party that owns the result.
    result: UnsafeCell<Option<thread::Result<T>>>,
}

/// Proof that [`Lifecycle::claim`] succeeded: the holder is the one party allowed to take the
/// closure and complete the task.
pub(crate) struct Claimed(());

impl<T> Lifecycle<T> {
    pub(crate) fn new() -> Lifecycle<T> {
        Lifecycle {
            state: AtomicU8::new(0),
            result: UnsafeCell::new(None),
        }
    }

    /// Whether the result is written. `Acquire` pairs with the `Release` half of `complete`'s
    /// `fetch_or(DONE)`, so after `true` the result write is visible.
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    /// Whether someone claimed the task already (a hint: it may be claimed right after).
    pub(crate) fn is_claimed(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CLAIMED != 0
    }

    /// Claims the right to run the task; `Some` for exactly one caller. `AcqRel`: the winner
    /// synchronizes with whoever created the cell (the closure write); one RMW on one word, so
    /// two claimants cannot both see `CLAIMED` clear.
    pub(crate) fn claim(&self) -> Option<Claimed> {
        (self.state.fetch_or(CLAIMED, Ordering::AcqRel) & CLAIMED == 0).then_some(Claimed(()))
    }

    /// Takes the result. Call only after `is_done()` returned true, and only from the owner.
    pub(crate) fn take(&self) -> thread::Result<T> {
        debug_assert!(self.is_done());
        // SAFETY: DONE was observed with Acquire, so the runner's write happened-before; the
        // owner is the only reader (handle consumed or detached exactly once).
        self.result
            .with_mut(|r| unsafe { (*r).take() })
            .expect("task result taken twice")
    }

    /// Publishes the result. Returns it back when the handle was detached first: the caller then
    /// disposes of it; `None` means the joiner owns it and must be woken.
    pub(crate) fn complete(
        &self,
        _claimed: Claimed,
        result: thread::Result<T>,
    ) -> Option<thread::Result<T>> {
        // SAFETY: only the claimant reaches here, once, before DONE is published; nobody reads
        // the slot before observing DONE.
        self.result.with_mut(|r| unsafe { *r = Some(result) });
        // Release publishes the write above; Acquire makes a prior detach's view ours (we may
        // be the one to dispose).
        let prev = self.state.fetch_or(DONE, Ordering::AcqRel);
        if prev & DETACHED != 0 {
            Some(self.take())
        } else {
            None
        }
    }

    /// Marks the handle detached. Returns the result when the task already finished: the caller
    /// disposes of it. Of `complete` and `detach`, the second to set its bit gets the result.
    pub(crate) fn detach(&self) -> Option<thread::Result<T>> {
        // Acquire: if DONE is set we read the result; Release: a later `complete` that sees
        // DETACHED takes over the result.
        if self.state.fetch_or(DETACHED, Ordering::AcqRel) & DONE != 0 {
            Some(self.take())
        } else {
            None
        }
    }
}

// SAFETY: `result` is written by exactly one runner before it publishes `DONE` with Release, and
// read by exactly one owner after observing `DONE` with Acquire (see the module docs); the state is
// an atomic. `T: Send` because the value crosses from the runner's thread to the owner's.
unsafe impl<T: Send> Sync for Lifecycle<T> {}
// SAFETY: as above; the value is only moved, never shared.
unsafe impl<T: Send> Send for Lifecycle<T> {}

/// A task's closure until it runs: taken once, by the holder of the [`Claimed`] proof.
pub(crate) struct Closure<F>(UnsafeCell<Option<F>>);

impl<F> Closure<F> {
    pub(crate) fn new(func: F) -> Closure<F> {
        Closure(UnsafeCell::new(Some(func)))
    }

    /// Takes the closure. `_claimed` proves the caller won the claim of this task's lifecycle.
    pub(crate) fn take(&self, _claimed: &Claimed) -> F {
        // SAFETY: exactly one party wins the claim, so this is the only access after creation
        // (whose write the claim's Acquire made visible).
        self.0
            .with_mut(|f| unsafe { (*f).take() })
            .expect("task closure taken twice")
    }
}

// SAFETY: the closure is moved out once by the single claimant (see `take`); `F: Send` lets it
// run on another thread.
unsafe impl<F: Send> Sync for Closure<F> {}

pub(crate) struct Core<T> {
    life: Lifecycle<T>,
    /// The joiner waiting for `DONE`.
    waiter: AtomicWaker,
    /// The task's node in the cancellation tree, in the cell itself: no allocation of its own.
    pub(crate) cancel: CancelNode,
    pub(crate) io: Io,
    /// Id, name and spawn location: what diagnostics (a panic, a stack overflow report) and
    /// [`crate::task::current`] say about the task. No allocation for an unnamed task.
    pub(crate) meta: Meta,
}

impl<T> Core<T> {
    /// A task's shared state, before it runs: its node a child of `parent`.
    pub(crate) fn new(io: Io, parent: NodeRef, mut meta: Meta) -> Core<T> {
        crate::diag::hooks::spawned(&io, &mut meta);
        Core {
            life: Lifecycle::new(),
            waiter: AtomicWaker::new(),
            cancel: CancelNode::child_of(parent),
            io,
            meta,
        }
    }

    /// Claims the right to run the task and publish its result (see [`Lifecycle::claim`]).
    pub(crate) fn claim(&self) -> Option<Claimed> {
        self.life.claim()
    }

    /// Whether someone claimed (started) the task already.
    pub(crate) fn is_claimed(&self) -> bool {
        self.life.is_claimed()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.life.is_done()
    }

    /// Takes the result. Call only after `is_done()` returned true, and only from the owner.
    pub(crate) fn take(&self) -> thread::Result<T> {
        self.life.take()
    }

    /// A result nobody took from a cell about to be freed (see `Drop for FutureCell`), for the
    /// caller to drop under containment: the value's `Drop` is user code.
    pub(crate) fn take_leftover(&mut self) -> Option<thread::Result<T>> {
        // SAFETY: `&mut self`: nobody else can touch the slot.
        self.life.result.with_mut(|r| unsafe { (*r).take() })
    }

    /// Registers the waker to be woken when the task completes (one waiter at a time).
    pub(crate) fn register_waiter(&self, waker: &std::task::Waker) {
        self.waiter.register(waker);
    }

    /// Blocks the calling task until the task is done, without cancellation.
    pub(crate) fn wait_done(&self) {
        park::with_current_waker(|waker| {
            while !self.is_done() {
                self.waiter.register(waker);
                if self.is_done() {
                    break;
                }
                park::park(None);
            }
        });
    }

    /// Waits until done; returns `false` if the *calling* task got canceled first.
    pub(crate) fn wait_done_or_canceled(&self) -> bool {
        // Done already (its joiner ran it inline, or it finished): no waker to borrow.
        if self.is_done() {
            return true;
        }
        park::with_current_waker(|waker| loop {
            if self.is_done() {
                return true;
            }
            if context::check().is_err() {
                return false;
            }
            self.waiter.register(waker);
            if self.is_done() {
                return true;
            }
            park::park(None);
        })
    }

    /// Marks the handle detached; if the task already finished, disposes of its result now.
    pub(crate) fn detach(&self) {
        if let Some(result) = self.life.detach() {
            self.dispose(result);
        }
    }

    /// Publishes the result. `wake` is false when the handle's owner runs the task inline: it
    /// is the joiner, so nobody else can be waiting (a waker left by an earlier `join_event`
    /// poll would only be woken spuriously).
    ///
    /// Never unwinds: the joiner's waker may be the user's (an `Event` poll of `join_event`), and
    /// a detached value's `Drop` is the user's; a panic of either is recorded for `run` to
    /// re-raise (see [`crate::contain`]).
    pub(crate) fn complete(&self, claimed: Claimed, result: thread::Result<T>, wake: bool) {
        match self.life.complete(claimed, result) {
            Some(result) => self.dispose(result),
            None if wake => {
                if let Err(payload) = contain::catch(|| self.waiter.wake()) {
                    self.io.inner.state.record_panic(payload);
                }
            }
            None => {}
        }
    }

    /// Drops a detached task's value; records its panic so `run` re-raises it. A panic in the
    /// value's `Drop` is recorded the same way: it never unwinds into the caller, which may be
    /// a worker completing the task.
    fn dispose(&self, result: thread::Result<T>) {
        let payload = match result {
            Ok(value) => match contain::catch(move || drop(value)) {
                Ok(()) => return,
                Err(payload) => payload,
            },
            // A future task dropped by its cancellation: no value, and nothing to report.
            Err(payload) if payload.is::<Dropped>() => return,
            Err(payload) => payload,
        };
        self.io.inner.state.record_panic(payload);
    }
}

pub(crate) struct TaskCell<F, T> {
    core: Core<T>,
    func: Closure<F>,
}

impl<F, T> TaskCell<F, T>
where
    F: Body<T>,
    T: Send + 'static,
{
    pub(crate) fn new(io: Io, parent: NodeRef, meta: Meta, func: F) -> Arc<Self> {
        Arc::new(TaskCell {
            core: Core::new(io, parent, meta),
            func: Closure::new(func),
        })
    }

    /// Takes the closure back from a task its model refused, if nobody started it: the task is
    /// then over (counted as finished, unlinked from its parent) and never runs, whoever still
    /// holds a [`Runnable`] of it (running that does nothing). `None` if it was started after
    /// all (a custom model that refused a task it had already run).
    pub(crate) fn take_back(&self) -> Option<F> {
        let claimed = self.core.life.claim()?;
        let func = self.func.take(&claimed);
        self.core.cancel.detach_from_parent();
        self.core.io.inner.state.task_finished();
        Some(func)
    }

    /// Runs the closure and publishes its result; `inline` when the handle's owner runs it.
    /// `me` is `Arc::as_ptr` of an `Arc` of this cell that the caller holds for the call.
    ///
    /// Nothing but the closure is user code, and it runs inside [`contain::catch`]; what
    /// follows it publishes the result and the task's end, and must run for the task to count
    /// as finished, so an unwind out of here (only a bug, or a forced unwind of a coroutine
    /// running the task) aborts the process instead.
    fn execute(&self, claimed: Claimed, inline: bool, me: *const Self) {
        let guard = CompletionGuard;
        let func = self.func.take(&claimed);
        let core = &self.core;
        // The context borrows the cell's `Io` and node: no reference counts move unless the
        // task spawns or blocks. The node's waker is registered lazily, at the task's first
        // cancellation point (see `CancelNode::check_pending`): a task that never blocks never
        // needs waking.
        // Register in the parent's children shard of the thread the task runs on (see
        // `crate::cancel`): set before the task can block or spawn.
        core.cancel.settle();
        let source = CellNode(me);
        let meta = &core.meta;
        let ctx = TaskContext::new(&core.io, &source, TaskRef::of(meta));
        // Name the task in a fiber stack-overflow report while it runs: it may run inline on
        // another task's fiber (its joiner's), whose name is put back afterwards.
        // SAFETY: the name lives in this cell, which the caller keeps alive for the whole call,
        // and it is replaced below before this function returns (nothing here unwinds).
        let name = unsafe { TaskName::task(meta.name(), meta.id, meta.location) };
        let outer = fiber_stack::replace_current_task_name(name);
        let result = {
            let _entered = context::enter(&ctx);
            contain::catch(|| func.call(&core.io))
        };
        fiber_stack::replace_current_task_name(outer);
        crate::diag::hooks::finished(&core.io, meta, result.is_err());
        if result.is_err() {
            meta.report_panic();
        }
        core.cancel.detach_from_parent();
        core.complete(claimed, result, !inline);
        // The cell is still alive here: the caller holds a reference (the runnable, or the
        // joiner's handle when it runs the task inline).
        core.io.inner.state.task_finished();
        std::mem::forget(guard);
    }
}

/// [`TaskCell::execute`]'s [`contain::AbortOnUnwind`], zero-sized: it runs for every task.
struct CompletionGuard;

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        contain::abort_unwound_into("a task's completion (zsync::task)");
    }
}

impl<F, T> Run for TaskCell<F, T>
where
    F: Body<T>,
    T: Send + 'static,
{
    fn run(self: Arc<Self>) {
        if let Some(claimed) = self.core.life.claim() {
            self.execute(claimed, false, Arc::as_ptr(&self));
        }
    }

    fn location(&self) -> &'static Location<'static> {
        self.core.meta.location
    }

    fn meta(&self) -> Option<&Meta> {
        Some(&self.core.meta)
    }

    fn is_claimed(&self) -> bool {
        self.core.life.is_claimed()
    }

    fn dump_owner(&self) -> Option<&dyn NodeOwner> {
        Some(self)
    }
}

impl<F, T> Joinable<T> for TaskCell<F, T>
where
    F: Body<T>,
    T: Send + 'static,
{
    fn core(&self) -> &Core<T> {
        &self.core
    }

    fn run_if_unclaimed(&self, me: *const ()) -> bool {
        // Not on a thread of the runtime (a Green task joined from a foreign thread): the
        // task waits for a worker instead.
        if self.core.life.is_claimed() || !self.core.io.runs_joined_inline_here() {
            return false;
        }
        // Still queued: take it back from our own queue if it sits on top, so no worker finds
        // a stale entry later.
        self.core.io.unqueue(me);
        if let Some(claimed) = self.core.life.claim() {
            self.execute(claimed, true, me as *const Self);
            true
        } else {
            false
        }
    }
}

impl<F, T> NodeOwner for TaskCell<F, T>
where
    F: Send + 'static,
    T: Send + 'static,
{
    fn node(&self) -> &CancelNode {
        &self.core.cancel
    }

    fn task_meta(&self) -> Option<&Meta> {
        Some(&self.core.meta)
    }
}

/// The running task's node as its context sees it: the cell's own node, and owning references
/// made from the cell's `Arc` on demand (a child's parent link, a registration with the
/// parent).
struct CellNode<F, T>(*const TaskCell<F, T>);

impl<F, T> NodeSource for CellNode<F, T>
where
    F: Send + 'static,
    T: Send + 'static,
{
    fn cancel_node(&self) -> &CancelNode {
        // SAFETY: `self.0` comes from `Arc::as_ptr` of an `Arc` that the frame running the
        // task (which owns this `CellNode`) holds for the whole run.
        unsafe { &(*self.0).core.cancel }
    }

    fn node_ref(&self) -> NodeRef {
        // SAFETY: `self.0` is `Arc::as_ptr` of a live `Arc<TaskCell<F, T>>` (possibly coerced
        // to a trait object: same allocation, same pointer), held by the running frame, so the
        // strong count is at least one; adding one and rebuilding an `Arc` from the pointer
        // makes a new owning reference.
        let cell = unsafe {
            Arc::increment_strong_count(self.0);
            Arc::from_raw(self.0)
        };
        NodeRef::new(cell)
    }
}

/// The "result" of a future task that was dropped by its cancellation before it completed
/// (see [`crate::stackless`]): stored where a panic payload would be, so the state machine above
/// is unchanged; whoever takes a result turns it into `Err(Canceled)` ([`into_io`]), and
/// disposing of it reports nothing.
pub(crate) struct Dropped;

/// A taken result as a joiner sees it: the value, `Err(Canceled)` for a future task dropped by
/// its cancellation, and a panic resumed on the caller.
pub(crate) fn into_io<T>(result: thread::Result<T>) -> std::io::Result<T> {
    match result {
        Ok(v) => Ok(v),
        Err(payload) if payload.is::<Dropped>() => Err(crate::error::canceled()),
        Err(payload) => resume(payload),
    }
}

/// Re-raises a task's panic on the joiner.
pub(crate) fn resume(payload: Box<dyn Any + Send>) -> ! {
    panic::resume_unwind(payload)
}

/// Loom models of the task state machine: `RUSTFLAGS="--cfg loom" cargo test --lib loom_models`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::model::model;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::sync::Arc;
    use ::loom::thread;

    /// A value that counts its drops: disposing of a result means dropping it.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The runner completing and the handle detaching race: whichever sets its bit second
    /// disposes of the result, so it is dropped exactly once, and the result cell is never
    /// touched by both (loom checks the `UnsafeCell` accesses).
    #[test]
    fn complete_racing_detach_disposes_exactly_once() {
        model(|| {
            let life = Arc::new(Lifecycle::<Tracked>::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let claimed = life.claim().expect("first claim");
            let runner = {
                let (life, drops) = (life.clone(), drops.clone());
                thread::spawn(move || {
                    // Disposing: drop the returned result here, as `Core::dispose` does.
                    drop(life.complete(claimed, Ok(Tracked(drops))));
                })
            };
            drop(life.detach());
            runner.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    /// Without detach the joiner, having seen `is_done`, owns the result.
    #[test]
    fn joiner_takes_the_result_after_done() {
        model(|| {
            let life = Arc::new(Lifecycle::<Tracked>::new());
            let drops = Arc::new(AtomicUsize::new(0));
            let claimed = life.claim().expect("first claim");
            let runner = {
                let (life, drops) = (life.clone(), drops.clone());
                thread::spawn(move || assert!(life.complete(claimed, Ok(Tracked(drops))).is_none()))
            };
            while !life.is_done() {
                thread::yield_now();
            }
            let value = life.take();
            assert_eq!(drops.load(Ordering::SeqCst), 0);
            drop(value);
            runner.join().unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        });
    }

    /// A worker that pops the task and a joiner that tries to run it inline both claim: the
    /// closure runs exactly once, and the joiner gets its value either way.
    #[test]
    fn claim_by_worker_and_joiner_runs_the_closure_once() {
        struct Cell<F> {
            life: Lifecycle<usize>,
            func: Closure<F>,
        }
        fn run_if_unclaimed<F: FnOnce() -> usize>(cell: &Cell<F>) -> bool {
            let Some(claimed) = cell.life.claim() else {
                return false;
            };
            let f = cell.func.take(&claimed);
            assert!(cell.life.complete(claimed, Ok(f())).is_none());
            true
        }
        model(|| {
            let runs = Arc::new(AtomicUsize::new(0));
            let r = runs.clone();
            let cell = Arc::new(Cell {
                life: Lifecycle::new(),
                func: Closure::new(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    42
                }),
            });
            let worker = {
                let cell = cell.clone();
                thread::spawn(move || {
                    run_if_unclaimed(&*cell);
                })
            };
            if !run_if_unclaimed(&*cell) {
                while !cell.life.is_done() {
                    thread::yield_now();
                }
            }
            assert_eq!(cell.life.take().ok(), Some(42));
            worker.join().unwrap();
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        });
    }

    /// A refused task's closure taken back by its spawner (`TaskCell::take_back`) while the
    /// model that refused it runs its `Runnable` anyway (a custom model that kept it): exactly
    /// one of them gets the closure, and the closure cell is never touched by both.
    #[test]
    fn take_back_racing_a_run_hands_the_closure_to_exactly_one() {
        struct Cell<F> {
            life: Lifecycle<usize>,
            func: Closure<F>,
        }
        fn take<F>(cell: &Cell<F>) -> Option<F> {
            let claimed = cell.life.claim()?;
            Some(cell.func.take(&claimed))
        }
        model(|| {
            let runs = Arc::new(AtomicUsize::new(0));
            let r = runs.clone();
            let cell = Arc::new(Cell {
                life: Lifecycle::new(),
                func: Closure::new(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                }),
            });
            let runner = {
                let cell = cell.clone();
                thread::spawn(move || take(&*cell).map(|f| f()).is_some())
            };
            let taken_back = take(&*cell);
            let ran = runner.join().unwrap();
            assert_ne!(taken_back.is_some(), ran, "exactly one got it");
            if let Some(f) = taken_back {
                f();
            }
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        });
    }
}
