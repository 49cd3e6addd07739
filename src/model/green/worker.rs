//! A Green worker: one OS thread running fibers, with its own ready queue, timers, reactor and
//! stack pool (thread-per-core).
//!
//! One turn of the loop:
//!
//! 1. move fibers woken from other threads (the inbox) to the ready queue;
//! 2. resume up to `BATCH` ready fibers;
//! 3. fire due timers;
//! 4. if nothing is ready, start an unstarted task (own deque, then the injector, then steal);
//! 5. poll the reactor: without blocking while work remains, else sleep in it until the next
//!    timer or until another thread writes this worker's eventfd (first giving back memory it
//!    has not used for a while: see [`WorkerLocal::trim_memory`]).
//!
//! Sleeping is announced in `Remote::sleeping` (`SeqCst`) before the last look at the inbox and
//! the task queues; a waker or spawner publishes its item first and reads `sleeping` after, and
//! writes the eventfd if it is set. So a wake-up can never land unseen between the last look and
//! the sleep.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use corosensei::{Coroutine, CoroutineResult};
use crossbeam_deque::{Steal, Worker};
use slab::Slab;

use super::checkdead::{self, Verdict};
use super::fiber::{self, Current, FiberHandle, Resume, Suspend, DONE, RUNNING, SCHEDULED};
use super::placement::{self, OwnTasks, Placement};
use super::reactor::Reactor;
use super::timers::{TimerId, Timers};
use super::Shared;
use crate::fiber_stack::{self, PooledStack, StackPool, TaskName};
use crate::task::Runnable;

mod sim_loop;

/// How long an idle worker looks for work before it sleeps in the kernel: rounds of checking
/// its inbox, the task queues and its ring, `SPIN_PAUSES` pause instructions apart: a few
/// microseconds in all ([`SPIN_SPAN`]). A much longer spin (it used to be 64 rounds) took a
/// large share of an HTTP server's CPU while the channel ping-pong and spawn→join benchmarks
/// did not change with the number of rounds (figures in docs/ARCHITECTURE.md, "Measurements behind the tuning").
const SPIN_ROUNDS: usize = 4;
const SPIN_PAUSES: usize = 32;

/// An idle worker whose spin is off (see `WorkerLocal::spin_pays`) still spins in one idle
/// period of this many, to find out whether spinning pays again.
const SPIN_PROBE_EVERY: u8 = 16;

/// Longest stretch a worker runs without giving its CPU up; after it, the worker calls
/// `sched_yield` (see [`WorkerLocal::share_cpu`]).
const YIELD_AFTER: Duration = Duration::from_micros(200);

/// About how long the spin lasts: an idle period whose work came within this would have ended
/// in a spin.
const SPIN_SPAN: Duration = Duration::from_micros(5);

/// Finished fibers' handles a worker keeps for reuse.
const SPARE_HANDLES: usize = 1024;

/// Stacks released at once by an idle trim from which a burst of fibers is taken to have ended
/// and the worker trims its other memory too (see [`WorkerLocal::trim_memory`]).
const BURST_STACKS: usize = 1024;

/// How long after a burst's trim the C allocator is trimmed once more: the burst's last task
/// cells and handles are freed by their joiners, often after the worker's first trim ran.
const LATE_TRIM: std::time::Duration = std::time::Duration::from_millis(500);

/// Fibers resumed per loop turn before the reactor and timers get a look.
const BATCH: usize = 128;
/// At most this many future tasks taken from another worker's deque at once (half of it up to
/// this; crossbeam's default batch is 32). Tokio's thief takes half of a 256-slot queue: with
/// 32, a worker that woke for a backlog of a thousand yielding tasks ran dry and went back to
/// sleep (and had to be woken again) many times per round, and did a small part of the work.
const STEAL_FUTURES_LIMIT: usize = 128;

/// Tasks started per loop turn, at most, while no started fiber is ready.
const START_BATCH: usize = 128;

/// While fibers are ready, a worker starts one fresh task (its own or a global one) every this
/// many loop turns, so that fibers that keep yielding cannot hold fresh tasks back for ever.
/// Not every turn: idle workers steal fresh tasks faster, and starting them on every busy turn
/// made the yield benchmark (1000 tasks spawned, then yielding) markedly slower (see
/// docs/ARCHITECTURE.md, "Measurements behind the tuning").
const BUSY_START_EVERY: u64 = 64;

/// A fiber: a coroutine on a stack from the worker's [`StackPool`].
type Fiber = Coroutine<Resume, Suspend, (), PooledStack>;

/// A started fiber in the worker's table: the coroutine (`None` only while it is being created).
struct FiberSlot {
    co: Option<Fiber>,
}

/// Bytes below a stack's top that [`prefetch_stack`] brings into the cache: what a fiber parked
/// in a plain wait (a sleep, a channel receive) has in use, entry frames to the switch (a
/// little over 1 KiB for a task parked in `Io::sleep`).
const PREFETCH_STACK_BYTES: usize = 1280;

/// Live fibers on a worker from which [`prefetch_stack`] pays: their stacks (one page each, ~1 KiB
/// of it in use), cells and handles no longer fit in the caches (how many fit depends on the
/// last-level cache; see docs/ARCHITECTURE.md, "Measurements behind the tuning").
const PREFETCH_MIN_FIBERS: usize = 4096;

/// Asks the CPU to load the top `PREFETCH_STACK_BYTES` of the stack whose top is `top`. A fiber about to be resumed was last touched long ago when many are
/// parked (100k sleeping fibers touch ~120 MiB of stack, more than the last-level cache), and
/// resuming it walks its frames back up, one dependent cache miss after another; prefetched
/// while the fiber before it runs, they arrive together. A hint only: a prefetch never faults.
#[inline]
fn prefetch_stack(top: usize) {
    let mut line = top.saturating_sub(PREFETCH_STACK_BYTES) & !63;
    while line < top {
        prefetch_line(line as *const u8);
        line += 64;
    }
}

/// Asks the CPU to load the cache line at `addr` (a hint: a prefetch never faults, whatever
/// the address, and the pointer is never dereferenced).
#[inline]
fn prefetch_line(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching has no architectural effect and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

pub(super) struct WorkerLocal {
    // Field order matters for drop: the reactor borrows `shared`'s eventfd.
    pub(super) reactor: Reactor,
    timers: RefCell<Timers>,
    ready: RefCell<VecDeque<Arc<FiberHandle>>>,
    /// Future tasks ready to be polled here, stealable by idle workers (FIFO: a task woken
    /// again goes behind the others).
    futures: Worker<Runnable>,
    /// `!Send` future tasks at home here, ready to be polled; never stolen.
    local_futures: RefCell<VecDeque<Runnable>>,
    /// Started fibers, keyed by `FiberHandle::key`. A slot is `None` only while its fiber is
    /// being created; fibers are resumed in place. Kept small: 100k parked fibers cost 100k slots. A fiber's
    /// other per-fiber state (its overflow-report name) lives in its `fiber::Current`, on its
    /// own stack.
    fibers: RefCell<Slab<FiberSlot>>,
    /// Stacks for new fibers; finished fibers give theirs back, so a spawn maps memory only
    /// when more fibers are alive than ever before on this worker.
    stacks: RefCell<StackPool>,
    /// Fresh (unstarted) closure tasks spawned here; stealable.
    local: Worker<Runnable>,
    /// The task pushed on `local` last (its cell's address), for [`unqueue`](Self::unqueue).
    last_pushed: Cell<*const ()>,
    /// Whether the wake-up for the task pushed last was deferred (see `push_task`).
    wake_deferred: Cell<bool>,
    /// Whether future tasks were queued behind a backlog here since the loop last offered it
    /// to an idle worker (see [`push_future_from_loop`](Self::push_future_from_loop)).
    backlog_to_share: Cell<bool>,
    /// Whether to start fresh tasks here or leave them to another worker (see [`placement`]).
    placement: Placement,
    /// Loop turns so far, published in the worker's `Remote` for `placement`.
    turns: Cell<u64>,
    /// The last 8 idle periods, newest in bit 0: 1 where work came within a spin's length (see
    /// [`spin_pays`](Self::spin_pays)).
    spin_history: Cell<u8>,
    /// Idle periods so far (wrapping), for the spin's probes (see [`spin_pays`](Self::spin_pays)).
    idle_periods: Cell<u8>,
    /// When this worker last slept in the kernel or yielded its CPU.
    busy_since: Cell<Instant>,
    /// When to trim the C allocator once more after a burst (see [`LATE_TRIM`]).
    late_trim: Cell<Option<Instant>>,
    /// Handles of finished fibers that nothing refers to any more, reused for new fibers: a
    /// fiber start then allocates nothing and moves no shared reference count.
    spare_handles: RefCell<Vec<Arc<FiberHandle>>>,
    /// Whether this worker announced it is quiet (see `checkdead.rs`).
    quiet: Cell<bool>,
    /// The pause before the next deadlock check when the last one could not decide.
    recheck: Cell<Duration>,
    /// The last task-dump request this worker answered (see `super::dump`).
    dump_served: Cell<u64>,
    pub(super) index: usize,
    pub(super) shared: Arc<Shared>,
}

impl Drop for WorkerLocal {
    /// A worker is dropped only after its loop returned, which it does only once no fiber is
    /// left. Dropping it with live fibers would force-unwind them, freeing stacks the kernel
    /// (ring ops) or a helper thread (offloaded calls) may still write into: abort instead.
    fn drop(&mut self) {
        let live = self.fibers.get_mut().len();
        if live != 0 {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!(
                    "zsync: Green worker {} dropped with {live} live fibers; aborting\n",
                    self.index
                ),
            );
            std::process::abort();
        }
    }
}

/// Restores the previously installed worker (and progress word) when dropped.
pub(super) struct Installed(*const WorkerLocal, Option<crate::stall::progress::Bound>);

impl Drop for Installed {
    fn drop(&mut self) {
        self.1.take();
        WORKER.with(|w| w.set(self.0));
    }
}

thread_local! {
    /// The worker running on this thread, or null.
    static WORKER: Cell<*const WorkerLocal> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with this thread's worker, if it is one.
pub(super) fn with_worker<R>(f: impl FnOnce(Option<&WorkerLocal>) -> R) -> R {
    WORKER.with(|w| {
        // SAFETY: the pointer is set by `WorkerLocal::run` to a worker that lives on that
        // frame's stack until it resets the pointer on return.
        f(unsafe { w.get().as_ref() })
    })
}

/// Queues a woken fiber on its worker: locally if we are on it, else through its inbox.
pub(super) fn schedule(handle: Arc<FiberHandle>) {
    // On the owner, the handle itself moves into the ready queue: no reference count changes.
    let Some(handle) = with_worker(move |w| match w {
        Some(w) if Arc::ptr_eq(&w.shared, &handle.shared) && w.index == handle.worker => {
            w.ready.borrow_mut().push_back(handle);
            None
        }
        _ => Some(handle),
    }) else {
        return;
    };
    {
        let remote = &handle.shared.remotes[handle.worker];
        remote.inbox.push(super::Wakeup::Fiber(handle.clone()));
        remote.unpark_if_sleeping();
    }
}

impl WorkerLocal {
    pub(super) fn new(
        shared: Arc<Shared>,
        index: usize,
        queues: super::Queues,
    ) -> std::io::Result<WorkerLocal> {
        // SAFETY: the eventfd lives in `shared`, which this worker keeps alive (field `shared`)
        // for longer than the reactor (dropped first, see the field order).
        let wake_fd: BorrowedFd<'static> = unsafe {
            BorrowedFd::borrow_raw(rustix::fd::AsRawFd::as_raw_fd(
                &shared.remotes[index].eventfd.as_fd(),
            ))
        };
        // Built on the worker's own thread: where the others examine it (see `placement`).
        shared.remotes[index].load.tid.store(
            rustix::thread::gettid().as_raw_nonzero().get(),
            Ordering::Relaxed,
        );
        Ok(WorkerLocal {
            reactor: Reactor::new(wake_fd, shared.backend)?,
            timers: RefCell::new(Timers::default()),
            ready: RefCell::new(VecDeque::new()),
            futures: queues.futures,
            local_futures: RefCell::new(VecDeque::new()),
            fibers: RefCell::new(Slab::new()),
            // Finished fibers' stacks stay hot (no syscall on the spawn path); the idle path
            // releases the ones a while unused (`StackPool::trim`).
            stacks: RefCell::new(StackPool::with_policy(
                shared.stack_size,
                shared.guard_policy,
            )),
            local: queues.fresh,
            last_pushed: Cell::new(ptr::null()),
            wake_deferred: Cell::new(false),
            backlog_to_share: Cell::new(false),
            placement: Placement::new(shared.remotes.len()),
            turns: Cell::new(0),
            spin_history: Cell::new(u8::MAX),
            idle_periods: Cell::new(0),
            busy_since: Cell::new(Instant::now()),
            late_trim: Cell::new(None),
            spare_handles: RefCell::new(Vec::new()),
            quiet: Cell::new(false),
            recheck: Cell::new(checkdead::RECHECK_MIN),
            dump_served: Cell::new(0),
            index,
            shared,
        })
    }

    pub(super) fn insert_timer(&self, deadline: Instant, waker: Waker) -> TimerId {
        self.timers.borrow_mut().insert(deadline, waker)
    }

    pub(super) fn cancel_timer(&self, id: TimerId) {
        self.timers.borrow_mut().cancel(id);
    }

    /// Queues a task spawned on this worker, where idle workers can steal it. Returns this
    /// worker's index when the caller must wake an idle worker now.
    ///
    /// There is deliberately no non-stealable LIFO slot (Tokio has one): a task parked there is
    /// stuck while its worker is blocked in a call that does not go through zsync, where here
    /// another worker picks it up. What a LIFO slot buys for spawn-then-join is had another
    /// way: the wake-up for the task queued last is *deferred* (unless `eager`) until the
    /// spawning fiber spawns again or suspends (`drive` sends it then). If the spawner joins
    /// the task first, [`unqueue`](Self::unqueue) pops it back and the wake-up is dropped:
    /// nobody was disturbed. Meanwhile the task is in the deque, stealable by any worker that
    /// is awake or spinning.
    pub(super) fn push_task(&self, task: Runnable, eager: bool) -> Option<usize> {
        self.last_pushed.set(task.addr());
        self.local.push(task);
        let deferred = self.wake_deferred.replace(!eager);
        (eager || deferred).then_some(self.index)
    }

    /// Queues a `Send` future task to be polled here (or by a thief). Returns whether others
    /// were queued already: a backlog another worker could share.
    pub(super) fn push_future(&self, task: Runnable) -> bool {
        let backlog = !self.futures.is_empty();
        self.futures.push(task);
        backlog
    }

    /// Queues a `Send` future task here. From a fiber, which may go on computing or block its
    /// thread in a call outside zsync, an idle worker must know at once, and so must it for an
    /// `eager` task (a `concurrent_future`); from the loop itself see
    /// [`push_future_from_loop`](Self::push_future_from_loop).
    pub(super) fn push_here(&self, task: Runnable, eager: bool) {
        if eager || fiber::on_fiber() {
            self.push_future(task);
            self.shared.wake_one_idle(Some(self.index));
        } else {
            self.push_future_from_loop(task);
        }
    }

    /// Queues a `Send` future task from this worker's own loop (a requeue after a yield, a wake
    /// by a task polled here, the reactor or a timer), where this worker polls it within the
    /// turn. A backlog is worth sharing with an idle worker, but the wake-up for it waits for
    /// the end of the futures' batch ([`share_backlog`](Self::share_backlog)): one fenced look
    /// at the sleepers per batch instead of one per requeue, which is what a yield loop pays
    /// most for otherwise (the `SeqCst` fence, and the other workers' cache lines).
    pub(super) fn push_future_from_loop(&self, task: Runnable) {
        if self.push_future(task) {
            self.backlog_to_share.set(true);
        }
    }

    /// Wakes an idle worker if future tasks were queued behind a backlog since the last call
    /// and some still wait. A worker that fell asleep meanwhile without seeing them (its last
    /// look at this deque raced the pushes) is thus woken within one batch; until then this
    /// worker polls them itself, so nothing is lost, only shared late.
    fn share_backlog(&self) {
        if self.backlog_to_share.replace(false) && !self.futures.is_empty() {
            self.shared.wake_one_idle(Some(self.index));
        }
    }

    /// Queues a `!Send` future task at home here.
    pub(super) fn push_local_future(&self, task: Runnable) {
        self.local_futures.borrow_mut().push_back(task);
    }

    /// Whether future tasks wait to be polled on this worker's own queues.
    fn has_ready_futures(&self) -> bool {
        !self.futures.is_empty() || !self.local_futures.borrow().is_empty()
    }

    /// Polls up to `BATCH` ready future tasks: the local ones first, then this worker's
    /// deque, then one from the global queue (so that a worker busy with its own futures does
    /// not leave the global ones waiting). A task woken during its poll goes behind the others.
    fn poll_futures(&self) {
        for _ in 0..BATCH {
            let next = self.local_futures.borrow_mut().pop_front();
            let Some(task) = next.or_else(|| self.futures.pop()) else {
                break;
            };
            task.run();
        }
        if let Some(task) = self.steal_global_future() {
            task.run();
        }
    }

    /// A future task from the global queue.
    fn steal_global_future(&self) -> Option<Runnable> {
        loop {
            match self.shared.future_injector.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    /// An idle worker's look for future tasks elsewhere: the global queue (a batch, into this
    /// worker's deque) and the other workers' deques (half of one). Returns whether it found
    /// some. Unlike fibers, a `Send` future task may be polled anywhere, so there is no
    /// placement rule here: stealing is Tokio's work-stealing.
    fn steal_futures(&self) -> bool {
        loop {
            let mut retry = false;
            match self.shared.future_injector.steal_batch(&self.futures) {
                Steal::Success(()) => return true,
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = self.shared.future_stealers.len();
            for k in 1..n {
                let victim = (self.index + k) % n;
                match self.shared.future_stealers[victim]
                    .steal_batch_with_limit(&self.futures, STEAL_FUTURES_LIMIT)
                {
                    Steal::Success(()) => return true,
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return false;
            }
        }
    }

    /// Whether future tasks wait anywhere this worker may take them from.
    fn futures_elsewhere(&self) -> bool {
        !self.shared.future_injector.is_empty()
            || self
                .shared
                .future_stealers
                .iter()
                .enumerate()
                .any(|(i, s)| i != self.index && !s.is_empty())
    }

    /// Pops `task` back off this worker's deque if it is the one pushed last and still on top;
    /// its deferred wake-up is then not needed any more.
    pub(super) fn unqueue(&self, task: *const ()) {
        if self.last_pushed.get() != task {
            return;
        }
        self.last_pushed.set(ptr::null());
        match self.local.pop() {
            Some(t) if t.addr() == task => self.wake_deferred.set(false),
            Some(t) => self.local.push(t), // stolen meanwhile; the top is an older task
            None => {}
        }
    }

    /// Sends a wake-up that [`push_task`](Self::push_task) deferred, if any.
    pub(super) fn flush_deferred_wake(&self) {
        if self.wake_deferred.replace(false) {
            self.shared.wake_one_idle(Some(self.index));
        }
    }

    /// Publishes this worker's live fiber count for the others' placement decisions.
    fn publish_load(&self, live: usize) {
        self.shared.remotes[self.index]
            .load
            .live
            .store(live, Ordering::Relaxed);
    }

    /// What [`placement`] needs to know of worker `index`.
    fn other(&self, index: usize) -> placement::Other {
        let load = &self.shared.remotes[index].load;
        // The turn count first: a count seen implies the loads published before it.
        let turns = load.turns.load(Ordering::Acquire);
        placement::Other {
            index,
            live: load.live.load(Ordering::Relaxed),
            turns,
        }
    }

    /// Examines the thread of worker `index`, whose loop stands still (see [`placement`]).
    fn examine(&self, index: usize) -> placement::Activity {
        let r = &self.shared.remotes[index];
        placement::examine(
            r.load.tid.load(Ordering::Relaxed),
            r.sleeping.load(Ordering::Relaxed),
        )
    }

    /// The least loaded other worker, if there is another worker.
    fn lightest_other(&self) -> Option<placement::Other> {
        (0..self.shared.remotes.len())
            .filter(|&i| i != self.index)
            .map(|i| self.other(i))
            .min_by_key(|o| o.live)
    }

    /// Whether [`placement`] lets this worker steal from worker `victim` now.
    fn may_steal_from(&self, victim: usize, mine: usize) -> bool {
        self.placement
            .may_steal(mine, self.other(victim), Instant::now, |i| self.examine(i))
    }

    /// A task to start here: this worker's newest, a global one, or one stolen from another
    /// worker, as [`placement`] decides.
    fn find_task(&self) -> Option<Runnable> {
        let mine = self.fibers.borrow().len();
        if let Some(t) = self.own_task(mine) {
            return Some(t);
        }
        let shared = &self.shared;
        loop {
            let mut retry = false;
            match shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = shared.stealers.len();
            for k in 1..n {
                let victim = (self.index + k) % n;
                let stealer = &shared.stealers[victim];
                if stealer.is_empty() || !self.may_steal_from(victim, mine) {
                    continue;
                }
                // One task, not a batch: tasks stolen in a batch would wait on this worker's
                // own (LIFO) deque behind whichever of them runs first, stranded if that one
                // blocks the thread in a call outside zsync (the conformance test
                // `concurrent_tasks_blocking_on_each_other_do_not_deadlock` hangs that way).
                match stealer.steal() {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// This worker's newest fresh task, if [`placement`] lets it start its own tasks now
    /// (`mine`: its live fibers).
    fn own_task(&self, mine: usize) -> Option<Runnable> {
        if self.local.is_empty() {
            self.placement.deque_empty();
            return None;
        }
        let lightest = self.lightest_other();
        match self
            .placement
            .own_tasks(mine, lightest, Instant::now, |i| self.examine(i))
        {
            OwnTasks::Start => {
                let t = self.local.pop();
                if t.is_some() {
                    // The newest task: the one whose wake-up may have been deferred.
                    self.wake_deferred.set(false);
                }
                t
            }
            OwnTasks::Leave => None,
            OwnTasks::Offer(worker) => {
                self.shared.wake(worker);
                None
            }
        }
    }

    /// A fresh task to start on a turn when fibers are ready too (see `BUSY_START_EVERY`): this
    /// worker's own ([`placement`] permitting) or a global one. Never a stolen one: stealing is
    /// for idle workers.
    fn find_task_while_busy(&self) -> Option<Runnable> {
        if let Some(t) = self.own_task(self.fibers.borrow().len()) {
            return Some(t);
        }
        loop {
            match self.shared.injector.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }

    /// Whether [`find_task`](Self::find_task) may find a task to start now.
    fn has_tasks(&self) -> bool {
        if !self.shared.injector.is_empty() {
            return true;
        }
        let mine = self.fibers.borrow().len();
        (!self.local.is_empty() && !self.placement.offering())
            || self
                .shared
                .stealers
                .iter()
                .enumerate()
                .any(|(i, s)| i != self.index && !s.is_empty() && self.may_steal_from(i, mine))
    }

    /// Whether fresh tasks wait in some deque, this worker's own included, that
    /// [`placement`] has this worker leave alone for now: it must look again within
    /// [`placement::LOOK_AGAIN`] rather than sleep on.
    fn tasks_held_back(&self) -> bool {
        !self.local.is_empty()
            || self
                .shared
                .stealers
                .iter()
                .enumerate()
                .any(|(i, s)| i != self.index && !s.is_empty())
    }

    /// A stack for a new fiber: a recycled one when any fiber of this worker has finished
    /// (no syscall), else a fresh slot carved from a slab.
    pub(super) fn stack(&self) -> std::io::Result<PooledStack> {
        self.stacks.borrow_mut().get()
    }

    /// Starts a fiber running `body` on `stack` and drives it to its first suspension. `name`
    /// names the fiber in a stack-overflow report (a task run inline on the fiber names itself
    /// while it runs; see `TaskCell::execute`).
    ///
    /// # Safety
    /// Everything `body` borrows must stay valid until the fiber finishes. Tasks (`'static`)
    /// satisfy this trivially; the root closure of `run` does because `run` drives the worker
    /// until the root fiber has finished.
    pub(super) unsafe fn start(&self, stack: PooledStack, name: TaskName, body: impl FnOnce()) {
        let top = corosensei::stack::Stack::base(&stack).get();
        let key = {
            let mut fibers = self.fibers.borrow_mut();
            if fibers.len() >= PREFETCH_MIN_FIBERS {
                // With this many fibers alive, a recycled stack was last used long ago: ask
                // for its top lines now, while the handle and the coroutine are set up.
                prefetch_stack(top);
            }
            let key = fibers.insert(FiberSlot { co: None });
            self.publish_load(fibers.len());
            key
        };
        let handle = self.fiber_handle(key, top);
        let for_fiber = handle.clone();
        let entry = move |yielder: &fiber::FiberYielder, _first: Resume| {
            let current = Current {
                handle: Arc::as_ptr(&for_fiber),
                waker: Waker::from(for_fiber),
                yielder,
            };
            let entered = fiber::enter(&current);
            fiber_stack::replace_current_task_name(name);
            body();
            drop(entered);
        };
        // SAFETY: forwarded from this function's contract: what `body` borrows stays valid
        // until the coroutine is driven to completion or dropped, and it is never dropped
        // unfinished. The loop returns only once no fiber is left, a panic that reaches it
        // aborts the process (`run`'s guard) instead of unwinding past the fiber table, and
        // dropping a worker with live fibers aborts too (`Drop for WorkerLocal`): the fiber
        // finishes or the process ends.
        let co: Fiber = unsafe { Coroutine::with_stack_unchecked(stack, entry) };
        self.fibers.borrow_mut()[key].co = Some(co);
        self.drive(handle);
    }

    fn start_task(&self, task: Runnable) {
        let stack = match self.stack() {
            Ok(stack) => stack,
            Err(e) => return self.start_without_fiber(task, &e),
        };
        let name = TaskName::spawned(task.location());
        // SAFETY: `Runnable` is 'static.
        unsafe { self.start(stack, name, move || task.run()) }
    }

    /// Runs a task for which no fiber stack can be had (no memory, or no guard page: see
    /// [`crate::fiber_stack`]) on a thread of the helper pool, whose stack has its own guard:
    /// off a fiber, its waits block that thread, and it keeps its concurrency. If the pool is
    /// full too, it runs on this worker's own (guarded) stack, blocking the worker whenever it
    /// waits. Says so once per process.
    #[cold]
    fn start_without_fiber(&self, task: Runnable, why: &std::io::Error) {
        static TOLD: std::sync::Once = std::sync::Once::new();
        TOLD.call_once(|| {
            eprintln!(
                "zsync: no fiber stack for a Green task ({why}); such tasks run on helper \
                 threads (or, with those exhausted, on the worker's own stack)"
            );
        });
        // A refused task is dropped unrun, so offer a second handle of it: a task runs once,
        // whichever handle runs it.
        let offered = task.another();
        if self.shared.blocking.submit(offered).is_err() {
            task.run();
        }
    }

    fn resume(&self, handle: Arc<FiberHandle>) {
        // Only this worker moves a fiber out of SCHEDULED (wakers leave it alone), so a plain
        // store suffices; a yielded fiber is RUNNING or NOTIFIED and keeps its state.
        if handle.state.load(Ordering::Acquire) == SCHEDULED {
            handle.state.store(RUNNING, Ordering::Release);
        }
        self.drive(handle);
    }

    /// Resumes the fiber in place until it suspends or finishes.
    fn drive(&self, handle: Arc<FiberHandle>) {
        let key = handle.key;
        let co: *mut Fiber = match self.fibers.borrow_mut().get_mut(key) {
            Some(FiberSlot { co: Some(co), .. }) => co,
            _ => return, // a stale queue entry of a finished fiber
        };
        fiber::refill_budget();
        let outer = fiber_stack::replace_current_task_name(TaskName::NONE);
        // SAFETY: the fiber table is mutated only by this worker's loop between resumes
        // (`start` inserts, the `Return` arm below removes), never while a fiber runs: fibers
        // queue new tasks instead of starting them. So the slot, and the coroutine in it, stay
        // where they are for the whole resume, and nothing else borrows them meanwhile.
        let result = unsafe { (*co).resume(Resume::Run) };
        fiber_stack::replace_current_task_name(outer);
        match result {
            CoroutineResult::Yield(Suspend::Park) => {}
            // Only `fiber::trace` resumes with `Resume::Trace`, the one answered by `Traced`.
            CoroutineResult::Yield(Suspend::Traced) => unreachable!("a trace answer to a run"),
            CoroutineResult::Yield(Suspend::Yield) => self.ready.borrow_mut().push_back(handle),
            CoroutineResult::Return(()) => {
                handle.state.store(DONE, Ordering::Release);
                let co = {
                    let mut fibers = self.fibers.borrow_mut();
                    let slot = fibers.remove(key);
                    self.publish_load(fibers.len());
                    slot.co.expect("a finished fiber's coroutine")
                };
                let stack = co.into_stack();
                crate::diag::hooks::fiber_done(&stack);
                self.stacks.borrow_mut().put(stack);
                self.recycle_handle(handle);
            }
        }
        if !self.ready.borrow().is_empty() {
            // Busy with other fibers (a yielding one included): let an idle worker take what
            // the fiber spawned. When nothing else is ready, this worker pops that task itself
            // next (`find_task`).
            self.flush_deferred_wake();
        }
    }

    /// Prefetches the stack and handle of the fiber that will be resumed after the one about to
    /// be (see [`prefetch_stack`]).
    /// Only with at least `PREFETCH_MIN_FIBERS` fibers alive: fewer stay in the cache, and the
    /// prefetches would only add to the cost of a resume (a yield).
    ///
    /// Two stages, so that no prefetch waits for a miss: the handle of the fiber after next
    /// (its address is in the ready queue), and the stack of the next one, whose top is read
    /// from its handle, prefetched one resume earlier.
    #[inline]
    fn prefetch_next(&self) {
        if self.fibers.borrow().len() < PREFETCH_MIN_FIBERS {
            return;
        }
        let ready = self.ready.borrow();
        if let Some(after) = ready.get(1) {
            prefetch_line(Arc::as_ptr(after).cast());
        }
        if let Some(next) = ready.front() {
            prefetch_stack(next.stack_top);
        }
    }

    /// A handle for a new fiber in slot `key`: a recycled one when a finished fiber left its
    /// handle unshared, else a new allocation.
    fn fiber_handle(&self, key: usize, stack_top: usize) -> Arc<FiberHandle> {
        match self.spare_handles.borrow_mut().pop() {
            Some(mut handle) => {
                let h = Arc::get_mut(&mut handle).expect("spare handles are unshared");
                h.key = key;
                h.stack_top = stack_top;
                *h.state.get_mut() = RUNNING;
                h.woken = Default::default();
                handle
            }
            None => FiberHandle::new(self.shared.clone(), self.index, key, stack_top),
        }
    }

    /// Keeps a finished fiber's handle for the next fiber if nothing else refers to it. A
    /// handle still held elsewhere (a waker left in a wait list, a timer, or the task's
    /// cancellation node) is dropped instead: that waker must keep seeing `DONE`.
    fn recycle_handle(&self, mut handle: Arc<FiberHandle>) {
        if Arc::get_mut(&mut handle).is_some() {
            let mut spare = self.spare_handles.borrow_mut();
            if spare.len() < SPARE_HANDLES {
                spare.push(handle);
            }
        }
    }

    /// Answers the latest task-dump request: every fiber of this worker but `skip` (the
    /// caller's own, when a fiber of this worker takes the dump) reports itself. Called at a
    /// safe point of the loop, or by a fiber of this worker (then every other fiber is
    /// suspended).
    pub(super) fn answer_dump(&self, skip: Option<usize>) {
        let epoch = self.shared.dump.requested();
        self.dump_served.set(epoch);
        let keys: Vec<usize> = self
            .fibers
            .borrow()
            .iter()
            .map(|(k, _)| k)
            .filter(|&k| Some(k) != skip)
            .collect();
        let mut seen = Vec::with_capacity(keys.len());
        for key in keys {
            let co: *mut Fiber = match self.fibers.borrow_mut().get_mut(key) {
                Some(FiberSlot { co: Some(co) }) => co,
                _ => continue,
            };
            // SAFETY: every fiber in the table but the caller's own (`skip`) is suspended in
            // `fiber::suspend`: fibers are started and resumed only by this worker's loop,
            // which is either here between resumes or is resuming the caller's fiber (the
            // one skipped); a fiber being created (`co: None`) was skipped above. The table is
            // not mutated meanwhile (only the loop inserts and removes), so the coroutine
            // stays where it is for the call.
            if let Some(report) = unsafe { fiber::trace(&mut *co) } {
                seen.push(report);
            }
        }
        self.shared.dump.answer(self.index, epoch, seen);
    }

    pub(super) fn live_fibers(&self) -> usize {
        self.fibers.borrow().len()
    }

    /// Makes this the current thread's worker until the guard drops (restoring the previous
    /// one, for a runtime nested in a task of another).
    pub(super) fn install(&self) -> Installed {
        // The workers of a runtime register blocked tasks in distinct shards of their parents'
        // children (see `crate::cancel`).
        crate::cancel::set_local_shard(self.index);
        // The worker's progress word for the monitor, from before the first fiber starts.
        // SAFETY: the word lives in `shared`, which this worker keeps alive; both callers
        // (`Green::run_root`, the worker threads) drop the returned guard, which unbinds the
        // word, before the worker itself.
        let bound = self
            .shared
            .sysmon
            .progress(self.index)
            .map(|p| unsafe { crate::stall::progress::bind(p) });
        Installed(WORKER.with(|w| w.replace(self)), bound)
    }

    /// Runs the loop until `done()` holds and this worker has no fiber left. The worker must be
    /// installed on this thread.
    ///
    /// Never unwinds: a panic that reaches the loop (it can only come from zsync itself, since
    /// every call into user code is contained, see [`crate::contain`]) aborts the process before
    /// anything owned by the worker is dropped.
    pub(super) fn run(&self, done: &dyn Fn() -> bool) {
        crate::contain::abort_on_unwind("a Green worker's loop", || self.run_loop(done));
    }

    fn run_loop(&self, done: &dyn Fn() -> bool) {
        debug_assert!(with_worker(|w| w.is_some_and(|w| ptr::eq(w, self))));
        let remote = &self.shared.remotes[self.index];
        let mut due: Vec<Waker> = Vec::new();
        loop {
            // A task dump asked for this worker's fibers: answer at this safe point (no fiber
            // runs). One relaxed load of a word written only by dumps.
            if self.shared.dump.requested() != self.dump_served.get() {
                self.answer_dump(None);
            }
            self.turns.set(self.turns.get() + 1);
            remote.load.turns.store(self.turns.get(), Ordering::Release);
            while let Steal::Success(wakeup) = remote.inbox.steal() {
                match wakeup {
                    super::Wakeup::Fiber(h) => self.ready.borrow_mut().push_back(h),
                    super::Wakeup::LocalFuture(t) => self.local_futures.borrow_mut().push_back(t),
                }
            }
            for _ in 0..BATCH {
                let next = self.ready.borrow_mut().pop_front();
                match next {
                    Some(h) => {
                        self.prefetch_next();
                        self.resume(h)
                    }
                    None => break,
                }
            }
            self.poll_futures();
            self.share_backlog();
            let clock = self.fire_timers(&mut due);
            self.turn_driver(clock);
            self.share_cpu(clock);
            // While fibers are ready, a fresh task still starts every `BUSY_START_EVERY` turns:
            // otherwise a fiber that only yields (waiting for a task it started with
            // `concurrent`) would hold every fresh task of this worker back for ever.
            let busy = !self.ready.borrow().is_empty() || self.has_ready_futures();
            if !busy && self.steal_futures() {
                continue;
            }
            let task = if !busy {
                self.find_task()
            } else if self.turns.get().is_multiple_of(BUSY_START_EVERY) {
                self.find_task_while_busy()
            } else {
                None
            };
            if let Some(task) = task {
                self.start_task(task);
                if !busy {
                    // Start more while nothing else is ready: a loop turn (the inbox, the
                    // clock reading for the timers) per task would cost more than the start.
                    for _ in 1..START_BATCH {
                        if !self.ready.borrow().is_empty()
                            || !remote.inbox.is_empty()
                            || self.has_ready_futures()
                        {
                            break;
                        }
                        match self.find_task() {
                            Some(task) => self.start_task(task),
                            None => break,
                        }
                    }
                    continue;
                }
            }
            if done() && self.live_fibers() == 0 {
                break;
            }
            // `Some((timeout, now))` to sleep in the kernel (`None` in the timeout: until
            // something happens), `None` to poll without waiting.
            let sleep = if self.ready.borrow().is_empty() && !self.has_ready_futures() {
                // Before sleeping in the kernel, look for work a little longer: a wake-up from
                // another worker then costs a queue push instead of an eventfd write and a
                // kernel wake-up (tens of microseconds on a VM). Bounded, so an idle worker does sleep.
                // Without a spin, the sleeping poll below submits and reaps in the same
                // syscall as it waits.
                if self.spin_pays() {
                    // Submit what the fibers queued on the ring and reap what already
                    // completed first: a spin must not hold back the submissions.
                    if let Err(e) = self.reactor.poll(Some(std::time::Duration::ZERO)) {
                        eprintln!("zsync: worker {} reactor failed: {e}", self.index);
                    }
                    if !self.ready.borrow().is_empty() || self.has_ready_futures() {
                        continue;
                    }
                    if self.spin_for_work(remote) {
                        self.note_idle_period(true);
                        continue;
                    }
                }
                remote.sleeping.store(true, Ordering::SeqCst);
                if !remote.inbox.is_empty()
                    || self.has_tasks()
                    || self.has_ready_futures()
                    || self.futures_elsewhere()
                    || done()
                {
                    remote.sleeping.store(false, Ordering::SeqCst);
                    continue;
                }
                let mut now = Instant::now();
                // Idle: give back memory unused for a while, and look again in time for the
                // next round.
                let trim_at = self.trim_memory(now);
                if trim_at.is_some() {
                    now = Instant::now(); // the trim may have taken a while
                }
                let next = self.timers.borrow_mut().next_deadline();
                // The async driver's timers too (read after announcing `sleeping`).
                let next = match (next, self.driver_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let mut timeout = next.map(|d| d.saturating_duration_since(now));
                if self.tasks_held_back() {
                    let look_again = placement::LOOK_AGAIN;
                    timeout = Some(timeout.map_or(look_again, |t| t.min(look_again)));
                }
                if let Some(at) = trim_at {
                    let trim_in = at.saturating_duration_since(now);
                    timeout = Some(timeout.map_or(trim_in, |t| t.min(trim_in)));
                }
                if timeout.is_none() && self.shared.check_deadlock {
                    match self.check_dead(remote) {
                        Some(Verdict::Dead) => {
                            self.leave_quiet(remote);
                            remote.sleeping.store(false, Ordering::SeqCst);
                            continue;
                        }
                        Some(Verdict::Undecided) => timeout = self.next_recheck(),
                        Some(Verdict::Alive) | None => {}
                    }
                }
                Some((timeout, now))
            } else {
                None
            };
            let result = match sleep {
                Some((t, slept_at)) => {
                    let result = self.reactor.poll(t);
                    self.leave_quiet(remote);
                    self.shared.sysmon.worker_awake();
                    let woke = Instant::now();
                    self.note_idle_period(woke - slept_at <= SPIN_SPAN);
                    self.busy_since.set(woke);
                    result
                }
                None => self.reactor.poll(Some(std::time::Duration::ZERO)),
            };
            remote.sleeping.store(false, Ordering::SeqCst);
            if let Err(e) = result {
                eprintln!("zsync: worker {} reactor failed: {e}", self.index);
            }
        }
    }

    /// Announces that this worker is quiet, about to sleep with nothing that could wake it, if
    /// it is (no descriptor wait or ring op, no async driver: its timers were looked at by the
    /// caller), and checks whether the whole run is deadlocked (see `checkdead.rs`). `None`:
    /// not quiet. A proven deadlock is recorded (worker 0 reports it); a second one, after every
    /// task was canceled, ends the process.
    #[cold]
    fn check_dead(&self, remote: &super::Remote) -> Option<Verdict> {
        if !self.reactor.is_idle() || self.shared.driver.get().is_some() {
            return None;
        }
        if !self.quiet.replace(true) {
            let word = remote.quiet.load(Ordering::Relaxed);
            remote
                .quiet
                .store(word | checkdead::QUIET, Ordering::SeqCst);
        }
        let verdict = self.shared.check_dead();
        match verdict {
            Verdict::Dead => match self.shared.deadlock_found() {
                checkdead::Found::First => Some(Verdict::Dead),
                // Worker 0 reports and cancels; it was woken for that.
                checkdead::Found::Pending => Some(Verdict::Alive),
                checkdead::Found::Again => {
                    let live: Vec<usize> = self
                        .shared
                        .remotes
                        .iter()
                        .map(|r| r.load.live.load(Ordering::Relaxed))
                        .collect();
                    checkdead::fatal(&self.shared.diagnostics, &live)
                }
            },
            Verdict::Alive => {
                self.recheck.set(checkdead::RECHECK_MIN);
                Some(verdict)
            }
            Verdict::Undecided => Some(verdict),
        }
    }

    /// Ends this worker's quiet state, if it announced one: bumps the epoch of its quiet word.
    #[inline]
    fn leave_quiet(&self, remote: &super::Remote) {
        if self.quiet.replace(false) {
            let word = remote.quiet.load(Ordering::Relaxed);
            remote
                .quiet
                .store((word | checkdead::QUIET) + 1, Ordering::SeqCst);
        }
    }

    /// The pause before the next deadlock check, doubling each time; `None` once it would
    /// exceed `RECHECK_MAX`: a worker whose checks keep failing for a reason outside the
    /// runtime (another thread of the process) then sleeps without a timeout, as it did before
    /// checks existed, until a verdict of `Alive` starts the series again. So an idle runtime in
    /// a process with other threads wakes about a dozen times over ~2 s, then no more.
    fn next_recheck(&self) -> Option<Duration> {
        let pause = self.recheck.get();
        if pause > checkdead::RECHECK_MAX {
            return None;
        }
        self.recheck.set(pause * 2);
        Some(pause)
    }

    /// Gives memory back to the system while the worker is idle: the pages of stacks unused for
    /// a while (see [`StackPool::trim`]) and, once a release of many stacks shows that a burst
    /// of fibers has ended, the fiber table's spare room and the C allocator's free memory
    /// (the burst's task cells and handles, freed but kept by glibc's malloc). Returns when to
    /// call again.
    fn trim_memory(&self, now: Instant) -> Option<Instant> {
        let trim = self.stacks.borrow_mut().trim(now);
        if trim.released >= BURST_STACKS {
            self.fibers.borrow_mut().shrink_to_fit();
            self.ready.borrow_mut().shrink_to_fit();
            trim_c_allocator();
            self.late_trim.set(Some(now + LATE_TRIM));
        } else if self.late_trim.get().is_some_and(|at| now >= at) {
            trim_c_allocator();
            self.late_trim.set(None);
        }
        match (trim.next, self.late_trim.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether to spin before sleeping: unless none of the last 8 idle periods got its work
    /// within a spin's length. A spin that never finds anything only burns CPU, which on a
    /// machine where other processes want the cores is taken from them (an HTTP server sharing
    /// its cores with its load generator served less with the spin than without); when work
    /// comes back within microseconds (cross-worker ping-pong), the spin saves a kernel
    /// wake-up per message (figures in docs/ARCHITECTURE.md, "Measurements behind the tuning"). A sleep that ends within the spin's span turns it back on.
    ///
    /// A kernel sleep never ends within the spin's span on a VM (the wake-up alone takes
    /// longer), so once the spin is off only a spin can turn it back on: every
    /// `SPIN_PROBE_EVERY`th idle period spins anyway, a probe. Without it, workers handing
    /// messages to each other that missed eight spins in a row (the partner preempted for a
    /// moment) paid a kernel wake-up per message for the rest of the run.
    fn spin_pays(&self) -> bool {
        self.spin_history.get() != 0 || self.idle_periods.get().is_multiple_of(SPIN_PROBE_EVERY)
    }

    /// Records whether an idle period got work within a spin's length.
    fn note_idle_period(&self, quick: bool) {
        self.spin_history
            .set(self.spin_history.get() << 1 | u8::from(quick));
        self.idle_periods
            .set(self.idle_periods.get().wrapping_add(1));
    }

    /// Spins up to `SPIN_ROUNDS` looking for woken fibers, new tasks or ring completions.
    /// Returns whether it found some. Tasks queued by others are only looked at in the second half: a task that
    /// was just spawned is usually about to be joined, and its joiner runs it inline, cheaper
    /// than a steal followed by a cross-worker wake-up.
    fn spin_for_work(&self, remote: &super::Remote) -> bool {
        for round in 0..SPIN_ROUNDS {
            if !remote.inbox.is_empty()
                || self.futures_elsewhere()
                || (round >= SPIN_ROUNDS / 2 && self.has_tasks())
            {
                return true;
            }
            // Completions are work too: stop and reap them rather than spin past them.
            if self.reactor.has_events() {
                return true;
            }
            for _ in 0..SPIN_PAUSES {
                std::hint::spin_loop();
            }
        }
        false
    }

    /// Wakes the fibers whose timers are due, and returns the clock reading it took (none if
    /// no timer is armed). The reading is published (see [`crate::park::deadline_passed`]): a
    /// sleeper woken here then needs no reading of its own.
    fn fire_timers(&self, due: &mut Vec<Waker>) -> Option<Instant> {
        if self.timers.borrow().is_empty() {
            return None;
        }
        let now = crate::clock::now();
        crate::park::note_clock(now);
        self.timers.borrow_mut().expire(now, due);
        for w in due.drain(..) {
            w.wake();
        }
        Some(now)
    }

    /// Gives the CPU up (`sched_yield`) once the worker has run `YIELD_AFTER` without sleeping.
    ///
    /// A worker with fibers always ready never blocks, so another thread waiting for its CPU —
    /// another worker, the process's other threads, a neighbour process — waits for the
    /// kernel to preempt it, a whole time slice: with an HTTP server's two workers pinned to one
    /// CPU, each ran for a long slice while the other's connections waited, and the p99 latency
    /// was several times Tokio's (which blocks more often; figures in docs/ARCHITECTURE.md, "Measurements behind the tuning"). A yield
    /// with nobody waiting returns at once; once per `YIELD_AFTER` it is a negligible share of
    /// a busy worker.
    /// `clock` is this turn's reading if the timers took one; otherwise the clock is read
    /// every 16th turn.
    fn share_cpu(&self, clock: Option<Instant>) {
        let Some(now) = clock.or_else(|| self.turns.get().is_multiple_of(16).then(Instant::now))
        else {
            return;
        };
        if now.saturating_duration_since(self.busy_since.get()) >= YIELD_AFTER {
            std::thread::yield_now();
            self.busy_since.set(now);
        }
    }
}

/// Returns the C allocator's free memory (every arena's) to the system.
fn trim_c_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only returns free memory of the
    // allocator's arenas to the system (a no-op for memory of another allocator).
    unsafe {
        libc::malloc_trim(0);
    }
}
