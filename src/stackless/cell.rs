//! A future task's one allocation: the task's shared [`Core`] (result, joiner, cancellation node,
//! identity), a scheduling word, and the future itself, inline (its "frame": the state machine
//! the compiler laid out for the `async` body). The cell lives in a [`Frame`]: reference-counted
//! like an `Arc`, its memory recycled through the per-thread cache of [`super::cache`]. Every
//! reference (the handle, a queue entry, an owning waker, a link in the cancellation tree) is
//! one count on it; a waker is the frame's pointer, so waking allocates nothing.
//!
//! ## Scheduling protocol
//!
//! The `sched` word says where the task is between polls:
//!
//! ```text
//!          wake()                 run()                       poll: Pending
//!  IDLE ──────────▶ SCHEDULED ──────────▶ RUNNING ──────────────────────────▶ IDLE
//!                       ▲                    │  wake() while polling: NOTIFIED
//!                       └── poll: Pending ───┘  (requeued once the poll returns)
//!                                            │
//!                                            └── Ready / panic / canceled ──▶ COMPLETE
//! ```
//!
//! Only a `wake` that moves `IDLE → SCHEDULED` queues the task, so it sits in at most one
//! queue, and only the party that takes it from a queue polls it (`SCHEDULED → RUNNING`), so
//! two threads never poll it at once. A wake during the poll sets `NOTIFIED`; the poller sees it
//! when it tries `RUNNING → IDLE` and requeues the task itself: no wake-up is lost, and none
//! makes a second queue entry. Wakes of a `COMPLETE` task do nothing. The word is a
//! [`crate::loom`] atomic and the protocol is checked by the loom models at the end of this file.
//!
//! ## Cancellation
//!
//! A future task's node is a child of its spawner's, like a fiber's. Its waker in the node (what
//! `cancel` calls) is a *borrowed* waker of the cell: stored inside the cell, it cannot keep the
//! cell alive (that would be a cycle) and cannot outlive it. Whoever cancels holds the node, so
//! the cell is alive while it wakes. At its next poll a canceled task drops its future instead
//! of polling it (Tokio's `abort`), and its result becomes [`Dropped`]: joiners see
//! `Err(Canceled)`. A task that returned `Pending` registers its node with its ancestors (once),
//! so the cancellation of any ancestor — `run`'s shutdown included — reaches it.
//! That registration happens once: later `Pending` polls skip it (and the walk up the chain of
//! ancestors it ends with), since a registered node stays reachable until it finishes. If it
//! finds an ancestor already canceled, that cancel's push may have missed the node, so the task
//! requeues itself and its next poll drops it. Every poll still begins by walking the chain
//! (`CancelNode::is_canceled`): an ancestor that finished has left its own parent, and a cancel
//! above it reaches the task only that way.
//!
//! ## Who runs user code
//!
//! The future's `poll` and its `Drop` run under [`contain::catch`]; a panic becomes the task's
//! result, as a closure task's does. The rest runs under an abort-on-unwind guard.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::cancel::{NodeOwner, NodeRef, NodeSource};
use crate::contain;
use crate::context::{self, TaskContext, TaskRef};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use crate::stackless::frame::{CellRef, Frame};
use crate::task::id::Meta;
use crate::task::{Claimed, Core, Dropped, Joinable, Run, Runnable};
use crate::Io;

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const COMPLETE: u8 = 4;

/// Where a future task is polled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Home {
    /// Anywhere the model likes; on Green, any worker (stealable at every poll).
    Any,
    /// Only on this Green worker: a `!Send` future ([`Io::spawn_local_future`]).
    Worker(usize),
}

/// The scheduling word of the module docs, on its own so the loom models check exactly it.
pub(crate) struct Sched(AtomicU8);

impl Sched {
    /// The state word now, for a task dump (a hint: it may change at once).
    fn peek(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What [`Sched::wake`] asks of the waker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WakeAction {
    /// The task was idle: queue it (the caller now owns the one queue entry).
    Queue,
    /// Nothing: queued already, being polled (it will requeue itself), or complete.
    Nothing,
}

/// What [`Sched::after_pending`] asks of the poller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterPoll {
    /// Woken during the poll: queue it again.
    Requeue,
    /// Left idle; a later wake queues it.
    Idle,
}

impl Sched {
    pub(crate) fn new_scheduled() -> Sched {
        Sched(AtomicU8::new(SCHEDULED))
    }

    /// A wake: `IDLE → SCHEDULED` (queue it), `RUNNING → NOTIFIED`, otherwise nothing.
    ///
    /// Always a read-modify-write with `Release` (rewriting `SCHEDULED` or `NOTIFIED` as it is):
    /// what the waker published before waking (a message, a cancellation flag) must be seen by
    /// the poll that the wake relies on. That poll begins with `start`'s (or ends with
    /// `after_pending`'s) `Acquire` read-modify-write on the same word, which comes after ours
    /// in its modification order, so it synchronizes with the wake. A plain load for "already
    /// scheduled" would leave a store-buffering window: the poll could miss the flag and the
    /// wake could miss the poll.
    pub(crate) fn wake(&self) -> WakeAction {
        let mut state = self.0.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                SCHEDULED | NOTIFIED => state,
                _ => return WakeAction::Nothing,
            };
            match self
                .0
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if state == IDLE => return WakeAction::Queue,
                Ok(_) => return WakeAction::Nothing,
                Err(actual) => state = actual,
            }
        }
    }

    /// Taken from a queue: `SCHEDULED → RUNNING`. `false` for a stale entry (the task is
    /// complete: it was canceled and dropped by an earlier poll).
    pub(crate) fn start(&self) -> bool {
        self.0
            .compare_exchange(SCHEDULED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// After a `Pending` poll: `RUNNING → IDLE`, or `NOTIFIED → SCHEDULED` (requeue).
    pub(crate) fn after_pending(&self) -> AfterPoll {
        match self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => AfterPoll::Idle,
            Err(NOTIFIED) => {
                self.0.store(SCHEDULED, Ordering::Release);
                AfterPoll::Requeue
            }
            Err(other) => unreachable!("future task in state {other} after its poll"),
        }
    }

    /// The poll finished the task: wakes from now on do nothing.
    ///
    /// A read-modify-write rather than a store: a wake racing the completion may have turned
    /// `RUNNING` into `NOTIFIED`, and the completion must come after it in the word's
    /// modification order (a plain store is ordered only after what this thread has seen, so
    /// the memory model would let the stale `NOTIFIED` stand as the word's last value).
    pub(crate) fn complete(&self) {
        self.0.swap(COMPLETE, Ordering::AcqRel);
    }
}

thread_local! {
    /// Whether this thread is inside a future task's poll (see [`in_future_poll`]).
    static IN_POLL: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller runs inside a future task's poll, where blocking the thread would stall
/// the worker's other tasks (a `Task` dropped there is detached instead of waited for).
pub(crate) fn in_future_poll() -> bool {
    IN_POLL.with(Cell::get)
}

/// Marks the thread as polling a future task until dropped (restoring the outer mark: a future
/// task polled inside a `block_on` inside another's poll).
struct Polling(bool);

impl Polling {
    fn enter() -> Polling {
        Polling(IN_POLL.with(|p| p.replace(true)))
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        IN_POLL.with(|p| p.set(self.0));
    }
}

/// One future task: see the module docs.
pub(crate) struct FutureCell<F: Future> {
    core: Core<F::Output>,
    sched: Sched,
    home: Home,
    /// Set by the first poll (the claim of the task's lifecycle), consumed by the completion.
    /// Touched only by the poller (`RUNNING`), or by `take_back` before any poll.
    claimed: UnsafeCell<Option<Claimed>>,
    /// The future until it completes, panics or is dropped by cancellation. Touched only by the
    /// poller (the `RUNNING` state gives it exclusive access), or by `take_back`.
    future: UnsafeCell<Option<F>>,
    /// `size_of::<F>()`, for diagnostics.
    frame_size: usize,
    /// The node was registered with its ancestors after a `Pending` poll (see "Cancellation"
    /// in the module docs). Touched only by the poller (`Relaxed`: the `Sched` word's `AcqRel`
    /// orders successive pollers).
    registered: AtomicBool,
}

// SAFETY: `future` and `claimed` are accessed only by the single poller (the `Sched` protocol:
// only the party that moved the word `SCHEDULED → RUNNING` touches them until it moves it on,
// with `AcqRel` ordering between successive pollers), or by `take_back` before the first poll
// (the lifecycle claim excludes a poll). A `!Send` future (`Home::Worker`) is polled and dropped
// only on its home worker's thread: its wakes are routed there, and `Drop for FutureCell` leaks
// a `!Send` future rather than drop it elsewhere. The output crosses threads, hence
// `F::Output: Send`; the core is `Sync` on its own terms.
unsafe impl<F: Future> Send for FutureCell<F> where F::Output: Send {}
// SAFETY: as above: shared access goes through atomics, the core, or the exclusive poller.
unsafe impl<F: Future> Sync for FutureCell<F> where F::Output: Send {}

impl<F> FutureCell<F>
where
    F: Future + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(io: Io, parent: NodeRef, meta: Meta, future: F, home: Home) -> Frame<Self> {
        Frame::new(FutureCell {
            core: Core::new(io, parent, meta),
            sched: Sched::new_scheduled(),
            home,
            claimed: UnsafeCell::new(None),
            future: UnsafeCell::new(Some(future)),
            frame_size: std::mem::size_of::<F>(),
            registered: AtomicBool::new(false),
        })
    }

    /// A queue entry for the task `this`.
    pub(crate) fn runnable(this: Frame<Self>) -> Runnable {
        Runnable(CellRef::from_frame(Frame::into_run(this)))
    }

    /// The handle of the task `this`.
    pub(crate) fn handle(this: Frame<Self>) -> crate::Task<F::Output> {
        crate::Task::frame(Frame::into_joinable(this))
    }

    /// Queues the task on its model (after `Sched` said so).
    fn schedule(this: Frame<Self>) {
        let home = this.home;
        // On a worker of the task's own runtime (a requeue after a yield, a wake from a task
        // polled there), the worker queues it: no reference count on the `Io` moves (that
        // count is one cache line every worker would otherwise write at every yield).
        let this = match this.core.io.inner.model.runtime_id() {
            Some(id) => {
                match crate::model::green::schedule_future_here(id, home, this, Self::runnable) {
                    Ok(()) => return,
                    Err(this) => this,
                }
            }
            None => this,
        };
        let io = this.core.io.clone();
        io.inner
            .model
            .schedule_future(Self::runnable(this), home, false);
    }

    /// Takes the future back from a task whose model refused it, if it has not been polled.
    pub(crate) fn take_back(&self) -> Option<F> {
        let _claimed = self.core.claim()?;
        // SAFETY: the claim succeeded, so no poll ever started (the first poll claims) and none
        // will (they find the lifecycle claimed and `sched` complete below).
        let future = self.future.with_mut(|f| unsafe { (*f).take() });
        self.sched.complete();
        self.core.cancel.detach_from_parent();
        self.core.io.inner.state.task_finished();
        future
    }

    /// The task's waker, borrowed for a poll: no reference count moves.
    fn borrowed_waker(this: &Frame<Self>) -> ManuallyDrop<Waker> {
        let raw = RawWaker::new(Frame::as_raw(this).as_ptr(), &Self::OWNED);
        // SAFETY: the pointer is that of a `Frame<Self>` kept alive by the caller for as long
        // as this waker is used; `ManuallyDrop` keeps it from releasing a count it does not
        // own, and `clone` makes owning wakers from it.
        ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
    }

    /// A waker that holds no reference: what the task's own cancellation node keeps (see the
    /// module docs). `frame` is the cell's frame pointer.
    fn node_waker(frame: NonNull<()>) -> Waker {
        let raw = RawWaker::new(frame.as_ptr(), &Self::BORROWED);
        // SAFETY: stored only in this cell's own node, it lives no longer than the cell; every
        // call through it comes from someone holding the node, so the cell is alive then.
        unsafe { Waker::from_raw(raw) }
    }

    const OWNED: RawWakerVTable = RawWakerVTable::new(
        Self::waker_clone,
        Self::waker_wake,
        Self::waker_wake_by_ref,
        Self::waker_drop,
    );

    const BORROWED: RawWakerVTable = RawWakerVTable::new(
        Self::waker_clone,
        Self::waker_wake_by_ref,
        Self::waker_wake_by_ref,
        Self::waker_forget,
    );

    /// A waker's data pointer as the frame pointer it is.
    fn frame_ptr(p: *const ()) -> NonNull<()> {
        // SAFETY: every waker of these vtables was made from a frame's pointer
        // (`borrowed_waker`, `node_waker`, `waker_clone`), which is never null.
        unsafe { NonNull::new_unchecked(p.cast_mut()) }
    }

    unsafe fn waker_clone(p: *const ()) -> RawWaker {
        // SAFETY: `p` is a live `Frame<Self>` (every waker's contract).
        unsafe { Frame::<Self>::increment(Self::frame_ptr(p)) };
        RawWaker::new(p, &Self::OWNED)
    }

    unsafe fn waker_wake(p: *const ()) {
        // SAFETY: an owning waker holds one count, which this takes over.
        let cell = unsafe { Frame::<Self>::from_raw(Self::frame_ptr(p)) };
        if cell.sched.wake() == WakeAction::Queue {
            Self::schedule(cell);
        }
    }

    unsafe fn waker_wake_by_ref(p: *const ()) {
        let frame = Self::frame_ptr(p);
        // SAFETY: `p` is a live frame for the duration of the call (the waker's contract).
        let cell = unsafe { Frame::<Self>::value(frame) };
        if cell.sched.wake() == WakeAction::Queue {
            // SAFETY: as above; the queue entry needs a count of its own, made here.
            let owned = unsafe {
                Frame::<Self>::increment(frame);
                Frame::<Self>::from_raw(frame)
            };
            Self::schedule(owned);
        }
    }

    unsafe fn waker_drop(p: *const ()) {
        // SAFETY: an owning waker holds one count, released here.
        drop(unsafe { Frame::<Self>::from_raw(Self::frame_ptr(p)) });
    }

    /// [`Run::frame_entry`]: polls the task whose frame is `p`, taking over the queue entry's
    /// reference.
    ///
    /// # Safety
    /// `p` is a frame of this cell type and the caller gives up one reference to it.
    unsafe fn run_frame(p: NonNull<()>) {
        // SAFETY: forwarded from the contract.
        Self::poll_once(unsafe { Frame::from_raw(p) });
    }

    unsafe fn waker_forget(_: *const ()) {}

    /// Polls the task once; called by whoever took it from a queue (see the module docs).
    fn poll_once(this: Frame<Self>) {
        let me = &this;
        if !me.sched.start() {
            return; // complete: a stale entry
        }
        let guard = contain::AbortOnUnwind::new("a future task's poll (zsync::stackless)");
        // SAFETY: RUNNING: we are the only party touching `claimed` and `future`.
        let first = me.claimed.with_mut(|c| unsafe { (*c).is_none() });
        if first {
            let Some(claimed) = me.core.claim() else {
                // Taken back by a refused `concurrent_future`: nothing to run.
                me.sched.complete();
                guard.disarm();
                return;
            };
            // SAFETY: as above.
            me.claimed.with_mut(|c| unsafe { *c = Some(claimed) });
            // Register in the parent's children shard of this thread (see `crate::cancel`),
            // and hand the node the task's waker.
            me.core.cancel.settle();
            let frame = Frame::as_raw(&this);
            me.core.cancel.set_waker(|| Self::node_waker(frame));
        }
        let core = &me.core;
        let source = FutureNode::<F>(Frame::as_raw(&this), PhantomData);
        let meta = &core.meta;
        let ctx = TaskContext::new(&core.io, &source, TaskRef::of(meta));
        let outcome = {
            let _entered = context::enter(&ctx);
            let _polling = Polling::enter();
            if core.cancel.is_canceled() {
                Err(None)
            } else {
                let waker = Self::borrowed_waker(&this);
                let mut cx = Context::from_waker(&waker);
                let polled = contain::catch(|| {
                    // SAFETY: RUNNING gives exclusive access. The future is never moved once
                    // polled: the cell is in a frame that never moves (its memory is freed or
                    // recycled only after the cell's drop), and the future is dropped in place
                    // (`drop_in_place`), so pinning it here is sound.
                    me.future.with_mut(|f| unsafe {
                        match &mut *f {
                            Some(f) => Pin::new_unchecked(f).poll(&mut cx),
                            None => unreachable!("a running future task has its future"),
                        }
                    })
                });
                match polled {
                    Ok(Poll::Pending) => Ok(None),
                    Ok(Poll::Ready(v)) => Ok(Some(v)),
                    Err(payload) => Err(Some(payload)),
                }
            }
        };
        match outcome {
            Ok(None) => {
                // It may wait for ever now: make sure an ancestor's cancellation reaches it.
                if !me.registered.load(Ordering::Relaxed) {
                    me.registered.store(true, Ordering::Relaxed);
                    if core.cancel.ensure_registered(|| source.node_ref()) {
                        // Canceled before the registration: that cancel's push may have missed
                        // this node, so nothing else may wake it. Poll again (and drop it):
                        // RUNNING → NOTIFIED, requeued just below.
                        let _ = me.sched.wake();
                    }
                }
                if me.sched.after_pending() == AfterPoll::Requeue {
                    guard.disarm();
                    Self::schedule(this);
                    return;
                }
            }
            Ok(Some(value)) => me.finish(Ok(value)),
            Err(Some(payload)) => {
                meta.report_panic();
                me.finish(Err(payload));
            }
            Err(None) => me.finish(Err(Box::new(Dropped))),
        }
        guard.disarm();
    }

    /// Drops the future (its `Drop` is user code: contained) and publishes the result.
    fn finish(&self, result: std::thread::Result<F::Output>) {
        self.sched.complete();
        let dropped = {
            let _polling = Polling::enter();
            // SAFETY: still the poller (nobody polls a COMPLETE task): exclusive access.
            contain::catch(|| self.future.with_mut(|f| unsafe { drop_in_place(f) }))
        };
        // A panicking `Drop` of a finished future: keep the first panic as the result.
        let result = match (result, dropped) {
            (Ok(_), Err(payload)) => Err(payload),
            (result, Err(payload)) => {
                self.core.io.inner.state.record_panic(payload);
                result
            }
            (result, Ok(())) => result,
        };
        // SAFETY: the poller owns the claim.
        let claimed = self
            .claimed
            .with_mut(|c| unsafe { (*c).take() })
            .expect("a polled task was claimed");
        crate::diag::hooks::finished(&self.core.io, &self.core.meta, result.is_err());
        self.core.cancel.detach_from_parent();
        self.core.complete(claimed, result, true);
        self.core.io.inner.state.task_finished();
    }
}

impl<F: Future> Drop for FutureCell<F> {
    /// Runs when the last reference goes, on whichever thread drops it, before the frame's
    /// memory is recycled. What may still be user code's is dropped here, contained, with its
    /// panic recorded for `run`: a future never polled (its runtime ended abnormally) and a
    /// result nobody took; normally both are gone already. (A joiner's waker left in the core
    /// drops with the fields, inside the frame's own containment.)
    fn drop(&mut self) {
        if matches!(self.home, Home::Worker(_)) {
            // A `!Send` future is dropped by its last poll, on its worker. One still here
            // belongs to a runtime that ended abnormally, and this may be another thread: it
            // can neither be dropped here nor (pinned, it must be dropped before its memory
            // goes) leaked while the cell is freed.
            // SAFETY: `&mut self`: exclusive access.
            if self.future.with_mut(|f| unsafe { (*f).is_some() }) {
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    b"zsync: a !Send future task was freed before it finished (its runtime \
                      ended abnormally); it cannot be dropped safely here: aborting\n",
                );
                std::process::abort();
            }
        }
        let future = &self.future;
        // SAFETY: `&mut self`: exclusive access; a `Send` future may be dropped here (a
        // `!Send` one is gone, or the process aborted above).
        let dropped = contain::catch(|| future.with_mut(|f| unsafe { drop_in_place(f) }));
        if let Err(payload) = dropped {
            self.core.io.inner.state.record_panic(payload);
        }
        let result = self.core.take_leftover();
        if let Err(payload) = contain::catch(move || drop(result)) {
            self.core.io.inner.state.record_panic(payload);
        }
    }
}

/// Drops the future in its slot, in place (it is pinned there), leaving `None` even if its
/// `Drop` panics.
///
/// # Safety
/// `slot` must be valid for writes and accessed by nobody else meanwhile.
unsafe fn drop_in_place<F>(slot: *mut Option<F>) {
    /// Writes `None` over the slot on the way out, unwinding included.
    struct Clear<F>(*mut Option<F>);
    impl<F> Drop for Clear<F> {
        fn drop(&mut self) {
            // SAFETY: forwarded: the slot is valid and ours; its `Some` contents were dropped
            // (or their drop unwound) just before, so overwriting without a drop is right.
            unsafe { std::ptr::write(self.0, None) };
        }
    }
    // SAFETY: forwarded from the contract.
    if let Some(future) = unsafe { &mut *slot } {
        let _clear = Clear(slot);
        // SAFETY: the future is dropped exactly once, here; `Clear` then marks the slot empty.
        unsafe { std::ptr::drop_in_place(future) };
    }
}

impl<F> Run for FutureCell<F>
where
    F: Future + 'static,
    F::Output: Send + 'static,
{
    /// Never called: a future task's cell is a [`Frame`], run through
    /// [`frame_entry`](Run::frame_entry).
    fn run(self: Arc<Self>) {
        unreachable!("a future task's cell lives in a frame, not an Arc")
    }

    fn frame_entry(&self) -> unsafe fn(NonNull<()>) {
        Self::run_frame
    }

    fn location(&self) -> &'static Location<'static> {
        self.core.meta.location
    }

    fn meta(&self) -> Option<&Meta> {
        Some(&self.core.meta)
    }

    fn is_claimed(&self) -> bool {
        self.core.is_claimed()
    }

    fn dump_owner(&self) -> Option<&dyn crate::cancel::NodeOwner> {
        Some(self)
    }

    fn frame_size(&self) -> Option<usize> {
        Some(self.frame_size)
    }
}

impl<F> Joinable<F::Output> for FutureCell<F>
where
    F: Future + 'static,
    F::Output: Send + 'static,
{
    fn core(&self) -> &Core<F::Output> {
        &self.core
    }

    /// A future task is never run inline by its joiner: its polls belong to its model.
    fn run_if_unclaimed(&self, _me: *const ()) -> bool {
        false
    }

    fn frame_size(&self) -> Option<usize> {
        Some(self.frame_size)
    }
}

impl<F> NodeOwner for FutureCell<F>
where
    F: Future + 'static,
    F::Output: Send + 'static,
{
    fn node(&self) -> &crate::cancel::CancelNode {
        &self.core.cancel
    }

    fn task_meta(&self) -> Option<&crate::task::id::Meta> {
        Some(&self.core.meta)
    }

    fn future_state(&self) -> Option<crate::diag::dump::FutureSeen> {
        use crate::diag::dump::TaskState;
        let state = match self.sched.peek() {
            IDLE => TaskState::Parked,
            SCHEDULED | NOTIFIED => TaskState::Ready,
            RUNNING => TaskState::Running,
            _ => return None, // complete: about to leave the tree
        };
        Some(crate::diag::dump::FutureSeen {
            type_name: std::any::type_name::<F>(),
            frame_size: self.frame_size,
            state,
        })
    }
}

/// The running future task's node as its context sees it (the cell is its own source): the
/// frame's pointer, valid while the poll that made it holds its reference.
struct FutureNode<F: Future>(NonNull<()>, PhantomData<*const FutureCell<F>>);

impl<F> NodeSource for FutureNode<F>
where
    F: Future + 'static,
    F::Output: Send + 'static,
{
    fn cancel_node(&self) -> &crate::cancel::CancelNode {
        // SAFETY: `self.0` is the frame of the cell whose poll holds a reference to it for as
        // long as this source exists (the poll's context).
        unsafe { &Frame::<FutureCell<F>>::value(self.0).core.cancel }
    }

    fn node_ref(&self) -> NodeRef {
        // SAFETY: as above: the count is at least one for the whole poll; one more makes an
        // owning reference.
        let cell = unsafe {
            Frame::<FutureCell<F>>::increment(self.0);
            Frame::<FutureCell<F>>::from_raw(self.0)
        };
        NodeRef::from_frame(Frame::into_node(cell))
    }
}

/// Loom models of the scheduling word: `RUSTFLAGS="--cfg loom" cargo test --lib stackless`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::model::model;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::sync::Arc;
    use ::loom::thread;

    /// A poller that drives one task the way `poll_once` does: counts polls, and "queues" by
    /// incrementing `queued` (a queue entry is a right to poll once).
    struct Task {
        sched: Sched,
        queued: AtomicUsize,
        polls: AtomicUsize,
    }

    impl Task {
        fn new() -> Task {
            // Spawned: one entry queued.
            Task {
                sched: Sched::new_scheduled(),
                queued: AtomicUsize::new(1),
                polls: AtomicUsize::new(0),
            }
        }
        fn wake(&self) {
            if self.sched.wake() == WakeAction::Queue {
                self.queued.fetch_add(1, Ordering::SeqCst);
            }
        }
        /// Takes one queue entry if any and polls; `ready` (asked once the poll has begun, as
        /// `poll_once` looks at the cancellation flag) decides the poll's outcome.
        fn run_one(&self, ready: impl Fn() -> bool) -> bool {
            let mut q = self.queued.load(Ordering::SeqCst);
            loop {
                if q == 0 {
                    return false;
                }
                match self
                    .queued
                    .compare_exchange(q, q - 1, Ordering::SeqCst, Ordering::SeqCst)
                {
                    Ok(_) => break,
                    Err(a) => q = a,
                }
            }
            if !self.sched.start() {
                return true;
            }
            self.polls.fetch_add(1, Ordering::SeqCst);
            if ready() {
                self.sched.complete();
            } else if self.sched.after_pending() == AfterPoll::Requeue {
                self.queued.fetch_add(1, Ordering::SeqCst);
            }
            true
        }
    }

    /// A wake racing a poll that returns Pending: the wake is never lost (the task ends up
    /// queued again, or the poll saw it and requeued), and never makes two entries.
    #[test]
    fn wake_while_polling_is_never_lost() {
        model(|| {
            let t = Arc::new(Task::new());
            let waker = {
                let t = t.clone();
                thread::spawn(move || t.wake())
            };
            assert!(t.run_one(|| false));
            waker.join().unwrap();
            // Whatever the interleaving, the wake left exactly one entry (or it landed before
            // the poll started, and that poll was the one that consumed it).
            let q = t.queued.load(Ordering::SeqCst);
            assert!(q <= 1, "at most one queue entry, got {q}");
            if q == 0 {
                // The wake landed while SCHEDULED (before the poll began): it was absorbed by
                // the poll that followed, which is correct (the poll saw the newest state).
                assert_eq!(t.polls.load(Ordering::SeqCst), 1);
            }
        });
    }

    /// Two wakers and a poller: never two polls at once, never more than one queue entry.
    #[test]
    fn concurrent_wakes_make_at_most_one_entry() {
        model(|| {
            let t = Arc::new(Task::new());
            assert!(t.run_one(|| false)); // now IDLE
            let a = {
                let t = t.clone();
                thread::spawn(move || t.wake())
            };
            t.wake();
            a.join().unwrap();
            assert_eq!(t.queued.load(Ordering::SeqCst), 1);
        });
    }

    /// A wake racing the completing poll: after completion nothing is queued and nothing polls
    /// again (a stale entry, if the wake queued one first, finds the task complete).
    #[test]
    fn wake_after_completion_does_nothing() {
        model(|| {
            let t = Arc::new(Task::new());
            let waker = {
                let t = t.clone();
                thread::spawn(move || t.wake())
            };
            assert!(t.run_one(|| true));
            waker.join().unwrap();
            while t.run_one(|| false) {}
            assert_eq!(t.polls.load(Ordering::SeqCst), 1);
        });
    }

    /// Join racing completion: a joiner awaiting the task (`Task::poll_join`: register its
    /// waker unless done, then look again) and the final poll publishing the result and waking
    /// (`Core::complete`). The joiner either sees the result or is woken to see it: loom's
    /// `block_on` reports a lost wake-up as a deadlock.
    #[test]
    fn join_racing_completion_is_never_lost() {
        use crate::loom::waker::AtomicWaker;
        use crate::task::Lifecycle;
        model(|| {
            let t = Arc::new(Task::new());
            let life = Arc::new(Lifecycle::<usize>::new());
            let waiter = Arc::new(AtomicWaker::new());
            let claimed = life.claim().expect("the first poll claims");
            let poller = {
                let (t, life, waiter) = (t.clone(), life.clone(), waiter.clone());
                thread::spawn(move || {
                    assert!(t.run_one(|| true));
                    assert!(life.complete(claimed, Ok(7)).is_none());
                    waiter.wake();
                })
            };
            let value = ::loom::future::block_on(std::future::poll_fn(|cx| {
                if !life.is_done() {
                    waiter.register(cx.waker());
                }
                if life.is_done() {
                    std::task::Poll::Ready(life.take())
                } else {
                    std::task::Poll::Pending
                }
            }));
            assert_eq!(value.ok(), Some(7));
            poller.join().unwrap();
            assert_eq!(t.sched.0.load(Ordering::SeqCst), COMPLETE);
        });
    }

    /// Cancel while polling: the canceler wakes the task (as the node's waker does); the poll
    /// in progress returns Pending; the wake is not lost, so the next poll runs and (seeing the
    /// flag) completes.
    #[test]
    fn cancel_while_polling_leads_to_a_final_poll() {
        model(|| {
            let t = Arc::new(Task::new());
            let canceled = Arc::new(crate::loom::sync::atomic::AtomicBool::new(false));
            let canceler = {
                let (t, c) = (t.clone(), canceled.clone());
                thread::spawn(move || {
                    c.store(true, Ordering::Relaxed);
                    t.wake();
                })
            };
            // First poll: pending unless it already sees the flag.
            let seen = || canceled.load(Ordering::Acquire);
            assert!(t.run_one(seen));
            canceler.join().unwrap();
            // Drain: each poll completes once it sees the flag.
            while t.run_one(seen) {}
            assert_eq!(t.sched.0.load(Ordering::SeqCst), COMPLETE);
        });
    }
}
