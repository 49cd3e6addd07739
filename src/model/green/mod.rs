//! The Green model: M:N stackful fibers on per-worker event loops.
//!
//! `run` turns the calling thread into worker 0 and starts `workers - 1` more threads. Every task
//! runs on a fiber (a corosensei coroutine on a pooled stack); a blocking operation parks the
//! fiber and the worker runs another, so thousands of tasks share a few threads.
//!
//! - **Scheduling**: unstarted tasks sit in crossbeam-deque work-stealing queues (a worker's own
//!   deque, a global injector) and any worker may take them. A started fiber stays on its worker
//!   for life (see [`fiber`] for why), so wake-ups are routed back to it.
//! - **Waiting**: [`crate::park`] checks whether it runs on a fiber and, if so, parks the fiber
//!   instead of the thread: sleeps arm a timer on the worker, descriptor waits register with the
//!   worker's reactor, pure waits just park. Every wait wakes through a `std::task::Waker`.
//! - **Cross-worker wake-ups**: a waker on another thread pushes the fiber on its worker's inbox
//!   and writes the worker's eventfd only if the worker announced it is sleeping.
//! - **Shutdown**: when the root fiber has returned, the root scope is canceled, worker 0 keeps
//!   running until every task has finished, then the pool closes and the threads are joined.

mod async_driver;
mod checkdead;
mod dump;
pub(crate) mod fiber;
mod offload;
mod placement;
pub(crate) mod reactor;
mod sysmon;
pub(crate) mod timers;
mod worker;

use std::cell::Cell;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_deque::{Injector, Stealer, Worker};
use rustix::event::{eventfd, EventfdFlags};

use crate::context::{self, TaskContext};
use crate::fiber_stack::{self, GuardPolicy, TaskName};
use crate::model::run_state::RunState;
use crate::park::Interest;
use crate::stackless::cell::Home;
use crate::task::Runnable;
use crate::Io;
use fiber::FiberHandle;
use worker::{with_worker, WorkerLocal};

/// Which I/O engine the Green model's workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// io_uring where the kernel allows it (`io_uring_setup` accepted, checked at each runtime
    /// start, and the required opcodes present, probed once per process), else epoll, silently.
    /// Overridden by the
    /// `ZSYNC_BACKEND` environment variable (`io_uring` or `epoll`).
    #[default]
    Auto,
    /// Linux io_uring (completion-based): socket reads and writes, accept, connect and
    /// positioned file I/O run on each worker's ring. If the kernel refuses io_uring, `run`
    /// panics with the reason instead of falling back ([`Backend::resolve`] tells beforehand).
    IoUring,
    /// Linux epoll (readiness-based), with a helper pool for regular-file operations.
    Epoll,
}

impl Backend {
    /// The engine a Green runtime built with this choice would run on if it started now
    /// (`IoUring` or `Epoll`). The kernel's io_uring capabilities are probed once per process;
    /// whether io_uring may be used at all is asked again at each call (and so at each runtime
    /// start), since `kernel.io_uring_disabled` can change while a process runs.
    ///
    /// `Auto` follows `ZSYNC_BACKEND` (`epoll` or `io_uring`) if set, else takes io_uring when
    /// the probe succeeds and epoll otherwise, silently. An explicit io_uring request (`IoUring`,
    /// or `Auto` with `ZSYNC_BACKEND=io_uring`) that the kernel refuses is an error naming why
    /// (`kernel.io_uring_disabled`, a seccomp filter such as Docker's default profile, a kernel
    /// without io_uring or without an opcode zsync needs): the error
    /// [`Builder::run`](crate::Builder::run) would panic with. So code (or a test) that forces
    /// io_uring can ask first and fall back or skip.
    ///
    /// ```
    /// use zsync::Backend;
    ///
    /// assert_eq!(Backend::Epoll.resolve().unwrap(), Backend::Epoll);
    /// match Backend::IoUring.resolve() {
    ///     Ok(b) => assert_eq!(b, Backend::IoUring),
    ///     Err(e) => println!("skipped: io_uring unavailable: {e}"),
    /// }
    /// ```
    pub fn resolve(self) -> io::Result<Backend> {
        Self::resolve_with(
            self,
            std::env::var("ZSYNC_BACKEND").ok().as_deref(),
            reactor::uring::available,
        )
    }

    /// [`resolve`](Self::resolve) with the environment and the probe passed in (for tests).
    fn resolve_with(
        self,
        env: Option<&str>,
        probe: impl FnOnce() -> Result<(), String>,
    ) -> io::Result<Backend> {
        let requested = match self {
            Backend::Auto => match env {
                Some("epoll") => Backend::Epoll,
                Some("io_uring") | Some("uring") => Backend::IoUring,
                _ => Backend::Auto,
            },
            other => other,
        };
        match requested {
            Backend::Epoll => Ok(Backend::Epoll),
            Backend::IoUring => match probe() {
                Ok(()) => Ok(Backend::IoUring),
                Err(why) => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the io_uring backend was requested but cannot start: {why}"),
                )),
            },
            Backend::Auto => Ok(match probe() {
                Ok(()) => Backend::IoUring,
                Err(_) => Backend::Epoll,
            }),
        }
    }
}

/// Usable bytes of a fiber stack unless [`Builder::stack_size`](crate::Builder::stack_size)
/// says otherwise: 256 KiB in release builds, 512 KiB in debug builds, whose unoptimised frames
/// are several times larger. Room for ordinary recursive crates (serde_json to its nesting
/// limit) with a margin; address space only, since stacks cost the pages they touch (see
/// "Stacks (Green)" in docs/ARCHITECTURE.md for the measurements behind the figures).
pub(crate) const DEFAULT_STACK_SIZE: usize = if cfg!(debug_assertions) {
    512 * 1024
} else {
    256 * 1024
};

/// Settings of the Green model, filled in by [`Builder`](crate::Builder).
#[derive(Debug, Clone)]
pub(crate) struct GreenConfig {
    pub(crate) workers: usize,
    /// Usable bytes of each fiber stack (rounded up to whole pages, at least corosensei's
    /// minimum), guard page excluded. Each worker's `StackPool` hands out stacks of this size.
    pub(crate) stack_size: usize,
    pub(crate) backend: Backend,
    /// Which guard pages the workers' stack pools may install: `None` for what the kernel
    /// offers ([`GuardPolicy::detect`]); tests force the fallbacks with it.
    pub(crate) guard_policy: Option<GuardPolicy>,
    /// The stall and deadlock detectors' settings.
    pub(crate) stall: crate::stall::StallConfig,
    /// The simulated world this runtime is the scheduler of, if it runs a
    /// [`Sim`](crate::sim::Sim): one worker, driven by the seed (see `worker/sim_loop.rs`).
    pub(crate) sim: Option<Arc<crate::sim::world::World>>,
}

impl Default for GreenConfig {
    fn default() -> Self {
        GreenConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            stack_size: DEFAULT_STACK_SIZE,
            backend: Backend::Auto,
            guard_policy: None,
            stall: crate::stall::StallConfig::default(),
            sim: None,
        }
    }
}

/// A worker's own queues, handed to it when it starts: fresh (unstarted) closure tasks, and
/// future tasks ready to be polled. Both are stealable by the other workers.
pub(crate) struct Queues {
    fresh: Worker<Runnable>,
    futures: Worker<Runnable>,
}

/// Work another thread hands to one particular worker.
pub(crate) enum Wakeup {
    /// A parked fiber of that worker, woken.
    Fiber(Arc<FiberHandle>),
    /// A `!Send` future task at home on that worker, woken.
    LocalFuture(Runnable),
}

/// What other threads may touch of a worker.
pub(crate) struct Remote {
    /// Fibers and local future tasks of this worker woken by other threads.
    inbox: Injector<Wakeup>,
    /// Set while the worker is about to sleep or sleeps in its reactor.
    sleeping: AtomicBool,
    /// The worker's load, for the others' placement decisions (on a cache line of its own: it
    /// is written every loop turn, `sleeping` is read on every cross-worker wake-up).
    load: placement::Load,
    /// Written to end the worker's reactor sleep.
    eventfd: OwnedFd,
    /// Whether the worker sleeps with nothing that could wake it (bit `checkdead::QUIET`), and
    /// an epoch bumped each time such a sleep ends (see `checkdead.rs`). Written by the worker
    /// only on its idle path.
    quiet: AtomicU64,
}

impl Remote {
    fn unpark(&self) {
        let _ = rustix::io::write(&self.eventfd, &1u64.to_ne_bytes());
    }

    /// Called after publishing work for this worker. The fence orders that publication (a
    /// release store inside crossbeam) before the `sleeping` load, pairing with the worker's
    /// `SeqCst` store of `sleeping` before its last look: one of the two sides sees the other.
    fn unpark_if_sleeping(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        // Only the first waker of a sleeping worker writes its eventfd: it clears the flag, and
        // the worker, once up, handles everything published meanwhile before sleeping again.
        if self.sleeping.load(Ordering::SeqCst) && self.sleeping.swap(false, Ordering::SeqCst) {
            self.unpark();
        }
    }
}

pub(crate) struct Shared {
    injector: Injector<Runnable>,
    stealers: Vec<Stealer<Runnable>>,
    /// Future tasks woken outside the workers (another thread, a timer thread): any worker
    /// polls them.
    future_injector: Injector<Runnable>,
    /// The workers' future deques, for stealing: a `Send` future task may be polled by any
    /// worker at each poll.
    future_stealers: Vec<Stealer<Runnable>>,
    remotes: Vec<Remote>,
    open: AtomicBool,
    backend: Backend,
    /// [`GreenConfig::stack_size`], read by each worker when it builds its stack pool.
    stack_size: usize,
    /// [`GreenConfig::guard_policy`] (resolved), read by each worker when it builds its stack
    /// pool.
    guard_policy: GuardPolicy,
    /// Threads for `Io::blocking` calls, which would stall a worker, and for tasks a worker
    /// cannot give a guarded fiber stack.
    blocking: crate::model::elastic::Elastic,
    /// The runtime's async driver once made (see `async_driver.rs`); the workers turn it.
    driver: std::sync::OnceLock<Arc<crate::driver::Driver>>,
    /// Whether a proven deadlock fails the run (see `checkdead.rs`).
    check_deadlock: bool,
    /// `checkdead::{ALIVE, DETECTED, HANDLED}`.
    deadlock: AtomicU8,
    /// Where stall and deadlock reports go.
    diagnostics: crate::stall::Diagnostics,
    /// The monitor of blocked workers and starved queues (see `sysmon.rs`).
    sysmon: sysmon::Sysmon,
    /// Task-dump requests and the workers' answers (see `dump.rs`).
    dump: dump::DumpBoard,
}

impl Shared {
    /// Wakes worker `index` if it sleeps.
    fn wake(&self, index: usize) {
        self.remotes[index].unpark_if_sleeping();
    }

    /// Wakes one sleeping worker so that it looks for work.
    fn wake_one_idle(&self, except: Option<usize>) {
        // See `Remote::unpark_if_sleeping` for the fence.
        std::sync::atomic::fence(Ordering::SeqCst);
        for (i, r) in self.remotes.iter().enumerate() {
            if Some(i) != except
                && r.sleeping.load(Ordering::SeqCst)
                && r.sleeping.swap(false, Ordering::SeqCst)
            {
                r.unpark();
                return;
            }
        }
    }
}

pub(crate) struct Green {
    shared: Arc<Shared>,
    /// [`GreenConfig::sim`]: kept here, not in `Shared`, since the operation layer asks for it
    /// at every operation (one field load, no pointer chase).
    sim: Option<Arc<crate::sim::world::World>>,
    locals: Mutex<Vec<Queues>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Green {
    pub(crate) fn new(config: GreenConfig) -> io::Result<Green> {
        // A simulation runs every task on one thread, in the order its seed picks.
        let workers = if config.sim.is_some() {
            1
        } else {
            config.workers.max(1)
        };
        let locals: Vec<Queues> = (0..workers)
            .map(|_| Queues {
                fresh: Worker::new_lifo(),
                futures: Worker::new_fifo(),
            })
            .collect();
        let stealers = locals.iter().map(|q| q.fresh.stealer()).collect();
        let future_stealers = locals.iter().map(|q| q.futures.stealer()).collect();
        let remotes = (0..workers)
            .map(|_| {
                Ok(Remote {
                    inbox: Injector::new(),
                    sleeping: AtomicBool::new(false),
                    load: placement::Load::default(),
                    eventfd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
                    quiet: AtomicU64::new(0),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Green {
            shared: Arc::new(Shared {
                injector: Injector::new(),
                stealers,
                future_injector: Injector::new(),
                future_stealers,
                remotes,
                open: AtomicBool::new(true),
                backend: config.backend.resolve()?,
                stack_size: config.stack_size,
                guard_policy: config.guard_policy.unwrap_or_else(GuardPolicy::detect),
                blocking: crate::model::elastic::Elastic::new(
                    512,
                    std::time::Duration::from_secs(5),
                ),
                driver: std::sync::OnceLock::new(),
                check_deadlock: config.stall.deadlock,
                deadlock: AtomicU8::new(checkdead::ALIVE),
                diagnostics: config.stall.out.clone(),
                sysmon: {
                    let sysmon = sysmon::Sysmon::new(
                        workers,
                        config.stall.threshold,
                        config.stall.out.clone(),
                    );
                    if config.sim.is_some() {
                        sysmon.for_simulation()
                    } else {
                        sysmon
                    }
                },
                dump: dump::DumpBoard::new(workers),
            }),
            sim: config.sim,
            locals: Mutex::new(locals),
            threads: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn backend_name(&self) -> &'static str {
        match self.shared.backend {
            Backend::IoUring => "io_uring",
            _ => "epoll",
        }
    }

    /// The simulated world, if this runtime schedules a [`Sim`](crate::sim::Sim).
    pub(crate) fn sim(&self) -> Option<&Arc<crate::sim::world::World>> {
        self.sim.as_ref()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Queues an unstarted task: on the caller's own deque when it is one of our workers.
    ///
    /// An idle worker is woken to take it, except that on a worker, unless `eager`, the wake-up
    /// for the most recently queued task is held back until the spawning fiber spawns again or
    /// gives its worker back (see `WorkerLocal::push_task`): a task spawned and joined at once
    /// then runs inline on its joiner without waking anybody. `concurrent` passes `eager`,
    /// since its task must progress even while its spawner computes.
    pub(crate) fn spawn(&self, task: Runnable, eager: bool) {
        let here = with_worker(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => Ok(w.push_task(task, eager)),
            _ => Err(task),
        });
        match here {
            Ok(Some(index)) => self.shared.wake_one_idle(Some(index)),
            Ok(None) => {}
            Err(task) => {
                self.shared.injector.push(task);
                self.shared.wake_one_idle(None);
            }
        }
    }

    /// Sends the calling worker's deferred wake-up now, if it has one: the task it is for will
    /// not be joined (it was detached), so it must not wait for its spawner to suspend, which a
    /// spawner blocked in a call outside zsync would not do.
    pub(crate) fn announce_spawned(&self) {
        with_worker(|w| {
            if let Some(w) = w {
                if Arc::ptr_eq(&w.shared, &self.shared) {
                    w.flush_deferred_wake();
                }
            }
        });
    }

    /// Queues a future task to be polled (its first poll, or after a wake).
    ///
    /// A `Send` task ([`Home::Any`]) goes on the calling worker's future deque, polled after the
    /// ready fibers of this loop turn and stealable by idle workers, or on the global future
    /// queue from any other thread. A worker's loop that queues behind a backlog offers it to an
    /// idle worker once per batch of polls (`WorkerLocal::share_backlog`); a fiber that queues
    /// one wakes an idle worker at once. A `!Send` task goes to its home worker: its local
    /// queue there, or that worker's inbox from elsewhere. `eager` (a `concurrent_future`) always wakes an idle
    /// worker, so the task progresses while its spawner computes.
    pub(crate) fn schedule_future(&self, task: Runnable, home: Home, eager: bool) {
        let task = with_worker(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, &self.shared) => match home {
                Home::Any => {
                    w.push_here(task, eager);
                    None
                }
                Home::Worker(i) if i == w.index => {
                    w.push_local_future(task);
                    None
                }
                Home::Worker(_) => Some(task),
            },
            _ => Some(task),
        });
        let Some(task) = task else { return };
        match home {
            Home::Any => {
                self.shared.future_injector.push(task);
                self.shared.wake_one_idle(None);
            }
            Home::Worker(i) => {
                let remote = &self.shared.remotes[i];
                remote.inbox.push(Wakeup::LocalFuture(task));
                remote.unpark_if_sleeping();
            }
        }
    }

    /// This runtime's identity for [`schedule_future_here`]: the address of its shared state.
    pub(crate) fn id(&self) -> *const () {
        Arc::as_ptr(&self.shared).cast()
    }

    /// The index of the calling thread's worker, if it is one of this runtime's.
    pub(crate) fn current_worker(&self) -> Option<usize> {
        with_worker(|w| {
            w.filter(|w| Arc::ptr_eq(&w.shared, &self.shared))
                .map(|w| w.index)
        })
    }

    /// Whether the calling thread is one of this runtime's workers.
    pub(crate) fn on_own_worker(&self) -> bool {
        with_worker(|w| w.is_some_and(|w| Arc::ptr_eq(&w.shared, &self.shared)))
    }

    /// Takes `task` back out of the calling worker's deque if it is the task this worker queued
    /// last and nobody took it meanwhile, so that its joiner runs it inline without leaving a
    /// stale entry behind (which another worker would steal only to find it claimed).
    pub(crate) fn unqueue(&self, task: *const ()) {
        with_worker(|w| {
            if let Some(w) = w {
                if Arc::ptr_eq(&w.shared, &self.shared) {
                    w.unqueue(task);
                }
            }
        });
    }

    /// Runs `task` on a helper thread (for [`Io::blocking`](crate::Io::blocking)).
    pub(crate) fn blocking(&self, task: Runnable) -> Result<(), crate::model::elastic::Refused> {
        self.shared.blocking.submit(task)
    }

    /// Starts workers `1..n` on threads of their own; worker 0 is the caller of `run`. Returns
    /// once every started worker has built its reactor (on its own thread: a ring may only be
    /// used by the thread that made it), or, if one cannot be started (no thread, or no
    /// descriptors for its eventfd and ring: `EMFILE`), the first error after stopping and
    /// joining the ones that did start: nothing is left running.
    fn start_threads(&self, state: &Arc<RunState>) -> io::Result<Vec<Queues>> {
        let mut locals =
            std::mem::take(&mut *self.locals.lock().unwrap_or_else(|p| p.into_inner()));
        let rest = locals.split_off(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let mut started = Vec::new();
        let mut failure = None;
        for (i, local) in rest.into_iter().enumerate() {
            let index = i + 1;
            let shared = self.shared.clone();
            let state = state.clone();
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("zsync-green-{index}"))
                .spawn(move || {
                    prepare_worker_thread(index);
                    // Recycled future-task frames for as long as this worker runs.
                    let _frames = crate::stackless::cache::enable();
                    let _shard = state.own_shard(index);
                    let worker = match WorkerLocal::new(shared.clone(), index, local) {
                        Ok(worker) => {
                            let _ = ready.send(Ok(()));
                            worker
                        }
                        Err(e) => {
                            let _ = ready.send(Err(io::Error::new(
                                e.kind(),
                                format!("cannot start Green worker {index}: {e}"),
                            )));
                            return;
                        }
                    };
                    drop(ready);
                    let _installed = worker.install();
                    worker.run(&|| !shared.open.load(Ordering::Acquire));
                });
            match spawned {
                Ok(handle) => started.push(handle),
                Err(e) => {
                    failure = Some(io::Error::new(
                        e.kind(),
                        format!("cannot start a thread for Green worker {index}: {e}"),
                    ));
                    break;
                }
            }
        }
        drop(ready_tx);
        for _ in 0..started.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => break, // every started thread has reported (or died)
            }
        }
        *self.threads.lock().unwrap_or_else(|p| p.into_inner()) = started;
        match failure {
            None => Ok(locals),
            Some(e) => {
                self.stop_threads();
                Err(e)
            }
        }
    }

    /// Stops the worker threads started so far, before any task ran: they have no fiber, so
    /// they leave their loops as soon as they see the runtime closed.
    fn stop_threads(&self) {
        self.shared.open.store(false, Ordering::Release);
        for r in &self.shared.remotes {
            r.unpark();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        self.shared.blocking.shutdown();
    }

    /// Runs `f` as the root fiber on the calling thread (worker 0) and drives the runtime until
    /// the root and every task spawned from it have finished. `Err` if a worker could not be
    /// started: `f` has not run, and no worker thread is left running.
    pub(crate) fn run_root<T>(
        &self,
        io: &Io,
        f: impl FnOnce(&Io) -> T,
    ) -> io::Result<std::thread::Result<T>> {
        prepare_worker_thread(0);
        // A simulation's clock is virtual from here to the end of the run, on this thread (its
        // only one): set before the worker's timers take their origin from it.
        let _clock = self.sim.as_ref().map(|world| world.start_clock());
        // Recycled future-task frames while this thread is worker 0 (emptied on return, after
        // everything below has dropped).
        let _frames = crate::stackless::cache::enable();
        let mut locals = self.start_threads(&io.inner.state)?;
        let worker = match WorkerLocal::new(self.shared.clone(), 0, locals.remove(0)) {
            Ok(worker) => worker,
            Err(e) => {
                self.stop_threads();
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot start Green worker 0: {e}"),
                ));
            }
        };
        sysmon::start(&self.shared);
        let mut result: Option<std::thread::Result<T>> = None;
        let root_done = Cell::new(false);
        {
            let result = &mut result;
            let root_done = &root_done;
            let body = move || {
                let ctx = TaskContext::new(io, &io.inner.root, crate::context::TaskRef::root());
                ctx.cancel.set_waker(crate::park::current_waker);
                let _entered = context::enter(&ctx);
                *result = Some(crate::contain::catch(|| f(io)));
                root_done.set(true);
            };
            // A nested runtime inside another task: keep the outer task's context aside.
            let outer = context::swap_current(std::ptr::null());
            let outer_fiber = fiber::swap_current(std::ptr::null());
            let _installed = worker.install();
            let stack = worker
                .stack()
                .unwrap_or_else(|e| panic!("zsync: cannot allocate the root fiber's stack: {e}"));
            // From the root fiber's start to the loop's end nothing may unwind: the root fiber
            // writes `result` and `root_done`, which an unwind would drop first.
            let guard = crate::contain::AbortOnUnwind::new("the Green scheduler of zsync::run");
            // SAFETY: `body` borrows `io`, `f`, `result` and `root_done`, all of which outlive the
            // loop below, and the loop returns only once every fiber (the root's included) has
            // finished; nothing in between unwinds (`guard`).
            unsafe { worker.start(stack, ROOT_TASK_NAME, body) };
            let shutting_down = Cell::new(false);
            let state = &io.inner.state;
            let _shard = state.own_shard(0);
            // While tasks are left at shutdown, a timer makes sure the loop looks at the counts
            // again even if the last finisher's notification was missed (see `RunState`).
            let recheck_at: Cell<Option<Instant>> = Cell::new(None);
            let done = || {
                if self.shared.deadlock.load(Ordering::Acquire) == checkdead::DETECTED {
                    self.deadlocked(io);
                }
                if !root_done.get() {
                    return false;
                }
                if !shutting_down.replace(true) {
                    io.inner.root.cancel();
                    // The last task may finish on another worker while this one sleeps.
                    let shared = self.shared.clone();
                    state.begin_shutdown(move || shared.remotes[0].unpark());
                }
                if state.all_finished() {
                    return true;
                }
                let now = crate::clock::now();
                if recheck_at.get().is_none_or(|t| now >= t) {
                    let at = now + crate::model::run_state::SHUTDOWN_RECHECK;
                    worker.insert_timer(at, std::task::Waker::noop().clone());
                    recheck_at.set(Some(at));
                }
                false
            };
            match &self.sim {
                Some(world) => worker.run_sim(&done, world),
                None => worker.run(&done),
            }
            guard.disarm();
            context::swap_current(outer);
            fiber::swap_current(outer_fiber);
        }
        Ok(result.expect("the root fiber finished"))
    }

    /// Reports a proven deadlock (see `checkdead.rs`) and cancels every task so that the run
    /// ends; [`Builder::try_run`](crate::Builder::try_run) then fails with
    /// [`Deadlock`](crate::Deadlock). Runs on worker 0, from its loop.
    #[cold]
    fn deadlocked(&self, io: &Io) {
        let mut msg = String::from("zsync: all tasks are asleep: deadlock\n");
        msg.push_str(&crate::stall::describe::asleep(&self.live_fibers()));
        msg.push_str(
            "  Nothing can wake them: no I/O, timer, helper thread or other thread is left. \
             Every task is canceled now and the run fails with zsync::Deadlock.\n",
        );
        // The dump symbolizes stacks, which takes a while: not a task holding worker 0.
        let tasks = self
            .shared
            .sysmon
            .quiet_while(|| crate::stall::describe::tasks(io));
        msg.push_str(&tasks);
        self.shared.diagnostics.write(&msg);
        io.inner.state.deadlocked.store(true, Ordering::Release);
        self.shared
            .deadlock
            .store(checkdead::HANDLED, Ordering::Release);
        io.inner.root.cancel();
    }

    /// Every worker's live fiber count, as published for placement.
    fn live_fibers(&self) -> Vec<usize> {
        self.shared
            .remotes
            .iter()
            .map(|r| r.load.live.load(Ordering::Relaxed))
            .collect()
    }

    /// Closes the pool and joins the worker threads. Called once every task has finished.
    pub(crate) fn shutdown(&self) {
        self.shared.sysmon.shutdown();
        self.shared.open.store(false, Ordering::Release);
        for r in &self.shared.remotes {
            r.unpark();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            if let Err(payload) = t.join() {
                panic::resume_unwind(payload);
            }
        }
        self.shared.blocking.shutdown();
    }
}

/// How a stack-overflow report names the root fiber of [`run`](crate::run).
const ROOT_TASK_NAME: TaskName = TaskName::fixed("the root task of zsync::run");

/// Readies the calling thread to run fibers as worker `index`: a fiber that overflows its stack
/// faults with that stack exhausted, so the overflow report needs an alternate signal stack.
fn prepare_worker_thread(index: usize) {
    if let Err(e) = fiber_stack::ensure_sigaltstack() {
        eprintln!(
            "zsync: Green worker {index} has no alternate signal stack ({e}): a fiber stack \
             overflow will kill the process without naming the task"
        );
    }
}

/// Parks the running fiber until it is woken or `deadline` passes.
/// Queues a future task on the calling thread's worker if that is a worker of the runtime
/// whose [`Green::id`] is `runtime` (and, for a `!Send` task, its home): the path of a requeue
/// after a yield and of a wake by a task polled on this worker. No reference count on the
/// task's `Io` moves and no model dispatch happens: the worker's own state does the queueing.
/// Gives `item` back when the caller is elsewhere (then the model's `schedule_future` applies).
///
/// `runtime` must have been read from a runtime the caller keeps alive until this call (it
/// holds `item`, which holds the runtime): then an equal address is that runtime, since the
/// worker's own runtime is alive throughout the call as well. `runnable` turns `item` into the
/// queue entry only after that comparison.
pub(crate) fn schedule_future_here<T>(
    runtime: *const (),
    home: Home,
    item: T,
    runnable: impl FnOnce(T) -> Runnable,
) -> Result<(), T> {
    with_worker(|w| match w {
        Some(w) if std::ptr::eq(Arc::as_ptr(&w.shared).cast(), runtime) => match home {
            Home::Any => {
                w.push_here(runnable(item), false);
                Ok(())
            }
            Home::Worker(i) if i == w.index => {
                w.push_local_future(runnable(item));
                Ok(())
            }
            Home::Worker(_) => Err(item),
        },
        _ => Err(item),
    })
}

pub(crate) fn park_until(deadline: Option<Instant>) {
    match deadline {
        None => fiber::park(),
        Some(_) => crate::park::with_current_waker(|waker| park_with_timer(deadline, waker)),
    }
}

/// [`park_until`] for a caller that already borrows the running fiber's `waker`.
fn park_with_timer(deadline: Option<Instant>, waker: &std::task::Waker) {
    let timer = deadline.and_then(|d| with_worker(|w| w.map(|w| w.insert_timer(d, waker.clone()))));
    fiber::park();
    if let Some(id) = timer {
        with_worker(|w| {
            if let Some(w) = w {
                w.cancel_timer(id);
            }
        });
    }
}

/// Parks the running fiber until `fd` may be ready, it is canceled, or `deadline` passes.
/// `Ok(())` means "try again"; see [`crate::park::wait_fd`].
pub(crate) fn wait_fd(
    fd: BorrowedFd<'_>,
    interest: Interest,
    deadline: Option<Instant>,
) -> io::Result<()> {
    let waker = fiber::current_waker().expect("wait_fd on a fiber");
    let (registration, deadline) = with_worker(|w| {
        let w = w.expect("a fiber runs on a worker");
        let registration = w.reactor.register(fd, interest, &waker)?;
        match context::check_until(deadline) {
            Ok(deadline) => Ok((registration, deadline)),
            Err(e) => {
                w.reactor.deregister(registration);
                Err(e)
            }
        }
    })?;
    park_until(deadline);
    with_worker(|w| {
        if let Some(w) = w {
            w.reactor.deregister(registration);
        }
    });
    Ok(())
}

/// Whether an op with opcode `code` would go through a ring here: on a fiber of an io_uring
/// worker whose kernel supports the opcode.
pub(crate) fn ring_available(code: u8) -> bool {
    fiber::on_fiber()
        && with_worker(|w| {
            w.and_then(|w| w.reactor.uring())
                .is_some_and(|u| u.supports(code))
        })
}

thread_local! {
    /// Whether the running fiber is polling a future from a zsync wait (see
    /// [`polling_in_zsync_wait`]).
    static ZSYNC_WAIT_POLL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `poll`, a poll made by a zsync wait of the running task: a fiber that parks between
/// polls, so that its worker's loop runs on. Ring ops started inside may then complete on this
/// worker (see [`submit_owned`]). Off fibers it only runs `poll`.
#[inline]
pub(crate) fn polling_in_zsync_wait<R>(poll: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ZSYNC_WAIT_POLL.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(ZSYNC_WAIT_POLL.with(|c| c.replace(true)));
    poll()
}

/// Whether [`submit_owned`] would take an op with opcode `code` here (so that a caller can
/// skip preparing one, a socket op's duplicate descriptor, when it would not).
pub(crate) fn owned_ring_available(code: u8) -> bool {
    if fiber::on_fiber() && !ZSYNC_WAIT_POLL.with(Cell::get) {
        return false;
    }
    with_worker(|w| {
        w.and_then(|w| w.reactor.uring())
            .is_some_and(|u| u.supports(code))
    })
}

/// Submits an op whose memory `op` owns (a future's file op) to the calling worker's ring, or
/// returns `None` when the calling thread is not a Green worker with an io_uring whose kernel
/// supports opcode `code`, or when the future is polled on a fiber by something that would
/// block the worker (the caller then runs the op elsewhere). The op's completion reaches `op` (see
/// [`reactor::op::OwnedOp`]) on this worker, whichever thread polls the future by then.
///
/// The completion needs this worker's loop to run. It does for a future task (the worker polls
/// it from its loop, off any fiber) and for a fiber whose poll comes from a zsync wait
/// ([`polling_in_zsync_wait`]: `Io::wait`, `Io::block_on`; the fiber parks between polls). A
/// fiber that drives a future with another executor (`futures::executor::block_on`) blocks the
/// worker's thread instead, so its ops go to a helper thread, and the wait ends.
///
/// # Safety
/// As [`reactor::uring::Uring::submit_owned`]: every pointer in the entry built by `sqe` points
/// into memory `op` keeps alive, untouched by anyone else until `op` is completed.
pub(crate) unsafe fn submit_owned(
    code: u8,
    sqe: impl FnOnce() -> io_uring::squeue::Entry,
    op: impl FnOnce() -> Arc<dyn reactor::op::OwnedOp>,
) -> Option<io::Result<()>> {
    if fiber::on_fiber() && !ZSYNC_WAIT_POLL.with(Cell::get) {
        return None;
    }
    with_worker(|w| {
        let ring = w?.reactor.uring().filter(|u| u.supports(code))?;
        // SAFETY: forwarded from this function's contract.
        Some(unsafe { ring.submit_owned(sqe(), op()) })
    })
}

/// Runs one ring op for the running fiber and returns the completion's `res`, or `None` when
/// the op cannot go through a ring here (not on a fiber, an epoll worker, or a kernel without
/// opcode `code`): the caller then takes its readiness path.
///
/// A cancellation point before submission. Once submitted, the fiber waits for the op's
/// completion **whatever happens**: on cancellation or when `deadline` (or the task's deadline)
/// passes, it asks the kernel to cancel the op and keeps waiting. If the op still completed
/// successfully its result is returned (data read is never dropped); otherwise the outcome is
/// `Canceled` or `TimedOut`.
///
/// # Safety
/// Every pointer in the entry built by `sqe` must stay valid until this function returns; it
/// returns only after the kernel's completion for the op, so memory borrowed by the caller for
/// the duration of the call qualifies. It never unwinds while the op is in flight: an unwind
/// there (a bug, or a forced unwind of the fiber) aborts the process rather than let the
/// caller's frame, and the memory in it, go.
pub(crate) unsafe fn ring_op(
    code: u8,
    deadline: Option<Instant>,
    sqe: impl FnOnce() -> io_uring::squeue::Entry,
) -> Option<io::Result<i32>> {
    if !ring_available(code) {
        return None;
    }
    let waker = fiber::current_waker_ptr();
    if waker.is_null() {
        return None;
    }
    // SAFETY: the waker lives in the running fiber's `Current`, on that fiber's own stack, for
    // the fiber's whole life; this function runs on that fiber and does not outlive it.
    let waker = unsafe { &*waker };
    fiber::consume_budget();
    let deadline = match context::check_until(deadline) {
        Ok(deadline) => deadline,
        Err(e) => return Some(Err(e)),
    };
    let submitted = with_worker(|w| {
        let ring = w.and_then(|w| w.reactor.uring()).expect("checked above");
        // SAFETY: forwarded from this function's contract: we return only after the CQE.
        unsafe { ring.submit(sqe(), waker.clone()) }
    });
    let key = match submitted {
        Ok(key) => key,
        Err(e) => return Some(Err(e)),
    };
    // The kernel owns the op's memory until its completion: leaving this frame any other way
    // than through the loop below (an unwind of the fiber) would free it under the kernel.
    let in_flight = crate::contain::AbortOnUnwind::new("a fiber waiting for its io_uring op");
    let mut stop: Option<io::Error> = None;
    let mut first = true;
    let result = loop {
        // The first pass skips straight to the park: the op was just queued (the kernel sees
        // it at the worker's next enter, so it cannot have completed), and cancellation and
        // the deadline were checked just before; a cancel wakes the fiber, the timer covers
        // the deadline.
        if !std::mem::take(&mut first) {
            let done = with_worker(|w| {
                let ring = w
                    .and_then(|w| w.reactor.uring())
                    .expect("a fiber stays on its worker");
                ring.take(key, waker)
            });
            if let Some(res) = done {
                break res;
            }
            if stop.is_none() {
                // A timer that woke us published a clock reading past the deadline: no read.
                stop = context::check().err().or_else(|| {
                    deadline
                        .is_some_and(crate::park::deadline_passed)
                        .then(crate::error::timed_out)
                });
                if stop.is_some() {
                    with_worker(|w| {
                        let ring = w.and_then(|w| w.reactor.uring()).expect("on its worker");
                        ring.request_cancel(key);
                    });
                }
            }
        }
        // Once the cancel is requested only the completion matters: no more timers.
        park_with_timer(if stop.is_none() { deadline } else { None }, waker);
    };
    in_flight.disarm();
    Some(match (result, stop) {
        (res, _) if res >= 0 => Ok(res),
        (_, Some(stop)) => Err(stop),
        (res, None) => Err(io::Error::from_raw_os_error(-res)),
    })
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn backend_resolution_follows_request_then_env_then_probe() {
        let works = || Ok(());
        let refused = || Err("io_uring_setup refused (EPERM)".to_string());
        let r =
            |b: Backend, env, probe: &dyn Fn() -> Result<(), String>| b.resolve_with(env, probe);
        assert_eq!(r(Backend::Auto, None, &works).unwrap(), Backend::IoUring);
        assert_eq!(r(Backend::Auto, None, &refused).unwrap(), Backend::Epoll);
        assert_eq!(
            r(Backend::Auto, Some("epoll"), &works).unwrap(),
            Backend::Epoll
        );
        assert_eq!(
            r(Backend::Auto, Some("io_uring"), &works).unwrap(),
            Backend::IoUring
        );
        assert_eq!(
            r(Backend::Auto, Some("bogus"), &works).unwrap(),
            Backend::IoUring
        );
        // The environment only overrides `Auto`.
        assert_eq!(
            r(Backend::IoUring, Some("epoll"), &works).unwrap(),
            Backend::IoUring
        );
        assert_eq!(
            r(Backend::Epoll, Some("io_uring"), &works).unwrap(),
            Backend::Epoll
        );
        // An explicit io_uring request that cannot start fails, naming why.
        let err = r(Backend::IoUring, None, &refused).unwrap_err();
        assert!(err.to_string().contains("EPERM"), "{err}");
        let err = r(Backend::Auto, Some("io_uring"), &refused).unwrap_err();
        assert!(err.to_string().contains("io_uring backend"), "{err}");
    }
}
