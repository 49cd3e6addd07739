//! The Threaded model: a work-stealing pool of OS threads.
//!
//! - [`Io::spawn`](crate::Io::spawn) pushes the task on the spawning worker's own deque (or on the
//!   global injector from outside the pool) and wakes one sleeping worker. Idle workers steal:
//!   first a batch from the injector, then from their siblings (crossbeam-deque, the Chase-Lev
//!   deque Tokio and Rayon use).
//! - [`Io::concurrent`](crate::Io::concurrent) must guarantee progress even when every worker is
//!   blocked (a worker blocked in `recv` waiting for a producer that is itself queued would
//!   otherwise deadlock the pool), so it hands the task to an elastic thread of its own
//!   ([`super::elastic`]): an idle one if any, else a new one up to a limit.
//! - A joiner that finds its task still queued claims and runs it inline (see
//!   [`crate::task`]), so fork-join never deadlocks a saturated pool; the stale queue entry is
//!   skipped when popped.
//! - A pool whose every worker is blocked while spawned tasks wait in the queue (N tasks waiting
//!   for an (N+1)th, a task per connection blocked in a handshake) is noticed by a [`monitor`]
//!   thread, which prints a one-time diagnostic and starts extra workers so the queued tasks
//!   run.
//!
//! Workers sleep on a condvar when they find no work ([`sleepers`]). Shutdown happens after
//! every task has finished (see [`crate::run`]): workers drain, see the pool closed, and exit;
//! `shutdown` joins them all.

mod checkdead;
mod monitor;
mod sleepers;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::diag::dump::ModelReport;
use crate::diag::running::RunningSlot;

use super::elastic::{self, Elastic};
use crate::task::Runnable;
use crate::Io;
use monitor::Monitor;
use sleepers::Sleepers;

/// Settings of the Threaded model, filled in by [`Builder`](crate::Builder).
#[derive(Debug, Clone)]
pub(crate) struct ThreadedConfig {
    pub(crate) workers: usize,
    pub(crate) max_concurrent: usize,
    pub(crate) keep_alive: Duration,
    /// The starved-queue warning's settings (its threshold only turns it off: see
    /// `monitor.rs`) and where it goes.
    pub(crate) stall: crate::stall::StallConfig,
}

impl Default for ThreadedConfig {
    fn default() -> Self {
        ThreadedConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_concurrent: 1024,
            keep_alive: Duration::from_secs(5),
            stall: crate::stall::StallConfig::default(),
        }
    }
}

/// Identifies a pool, so a worker only pushes to its local deque for its own pool.
static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The local deque of the pool worker running on this thread, with its pool's id.
    static LOCAL: RefCell<Option<(usize, Worker<Runnable>)>> = const { RefCell::new(None) };
    /// The task this worker pushed on its deque last (its cell's address), for `unqueue`.
    static LAST_PUSHED: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

struct Shared {
    id: usize,
    injector: Injector<Runnable>,
    stealers: Vec<Stealer<Runnable>>,
    sleepers: Sleepers,
    open: AtomicBool,
    monitor: Monitor,
    /// Threads for `concurrent` tasks and `blocking` calls.
    elastic: Elastic,
    /// Per worker: the task it runs now, for a task dump (see `diag/running.rs`).
    running: Box<[RunningSlot]>,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Worker deques, handed to the threads by `start`.
    locals: Mutex<Vec<Worker<Runnable>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    pub(crate) fn new(config: ThreadedConfig) -> Pool {
        let locals: Vec<Worker<Runnable>> =
            (0..config.workers).map(|_| Worker::new_lifo()).collect();
        let stealers = locals.iter().map(Worker::stealer).collect();
        Pool {
            shared: Arc::new(Shared {
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                injector: Injector::new(),
                stealers,
                sleepers: Sleepers::new(),
                open: AtomicBool::new(true),
                monitor: Monitor::new(
                    config.workers,
                    config.max_concurrent,
                    config.keep_alive,
                    config.stall,
                ),
                elastic: Elastic::new(config.max_concurrent, config.keep_alive),
                running: (0..config.workers)
                    .map(|_| RunningSlot::default())
                    .collect(),
            }),
            locals: Mutex::new(locals),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Starts the worker threads; worker `i` owns live-task shard `i` of `io`'s run state.
    /// Called on the run's root thread.
    pub(crate) fn start(&self, io: &Io) {
        self.shared.monitor.set_root(io);
        let locals = std::mem::take(&mut *self.locals.lock().unwrap_or_else(|p| p.into_inner()));
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        for (index, local) in locals.into_iter().enumerate() {
            let shared = self.shared.clone();
            let state = io.inner.state.clone();
            let handle = std::thread::Builder::new()
                .name(format!("zsync-worker-{index}"))
                .spawn(move || {
                    let _shard = state.own_shard(index);
                    // Tasks contain their own panics; one that reaches the loop aborts.
                    crate::contain::abort_on_unwind("a Threaded worker's loop", || {
                        worker_main(shared, index, local)
                    })
                })
                .expect("zsync: cannot start a Threaded worker thread");
            threads.push(handle);
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Queues a task: on the local deque when called from one of this pool's workers.
    pub(crate) fn spawn(&self, task: Runnable) {
        let task = LOCAL.with(|local| match &*local.borrow() {
            Some((id, worker)) if *id == self.shared.id => {
                LAST_PUSHED.with(|l| l.set(task.addr()));
                worker.push(task);
                // The push is a `Release` store: keep `notify_one`'s load of `idle` after it
                // (see `sleepers`).
                fence(Ordering::SeqCst);
                None
            }
            _ => Some(task),
        });
        if let Some(task) = task {
            self.shared.injector.push(task);
        }
        self.shared.sleepers.notify_one();
        monitor::ensure_started(&self.shared);
    }

    /// Takes `task` back off this worker's deque if it was pushed last and is still on top,
    /// before its joiner runs it inline: no worker then pops a stale entry later.
    pub(crate) fn unqueue(&self, task: *const ()) {
        if LAST_PUSHED.with(|l| l.get()) != task {
            return;
        }
        LAST_PUSHED.with(|l| l.set(std::ptr::null()));
        LOCAL.with(|local| {
            if let Some((id, worker)) = &*local.borrow() {
                if *id == self.shared.id {
                    match worker.pop() {
                        Some(t) if t.addr() == task => {}
                        Some(t) => worker.push(t),
                        None => {}
                    }
                }
            }
        });
    }

    /// Hands a task to a thread of its own, or refuses (limit reached, pool closed, or the OS
    /// would not start a thread).
    pub(crate) fn concurrent(&self, task: Runnable) -> Result<(), elastic::Refused> {
        self.shared.elastic.submit(task)
    }

    /// Runs `task` on an elastic thread (for [`Io::blocking`](crate::Io::blocking)).
    pub(crate) fn blocking(&self, task: Runnable) -> Result<(), elastic::Refused> {
        self.shared.elastic.submit(task)
    }

    /// What a task dump learns from the pool: the tasks its workers run now, and the queued
    /// ones (each taken out of its queue, noted, and put back on the injector, as the monitor
    /// does for its report).
    pub(crate) fn dump_report(&self) -> ModelReport {
        let running = self
            .shared
            .running
            .iter()
            .filter_map(RunningSlot::current)
            .collect();
        let mut taken = Vec::new();
        while taken.len() < crate::diag::dump::SURVEY_LIMIT {
            match self.shared.steal_any() {
                Some(t) => taken.push(t),
                None => break,
            }
        }
        let queued = taken.iter().map(Runnable::another).collect();
        let any = !taken.is_empty();
        for t in taken {
            self.shared.injector.push(t);
        }
        if any {
            self.shared.sleepers.notify_one();
        }
        ModelReport {
            running,
            queued,
            ..Default::default()
        }
    }

    /// Stops and joins every thread. Called once every task has finished.
    pub(crate) fn shutdown(&self) {
        self.shared.open.store(false, Ordering::Release);
        self.shared.sleepers.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            // Task panics are caught per task; a worker itself never panics.
            let _ = t.join();
        }
        self.shared.monitor.shutdown();
        self.shared.elastic.shutdown();
    }
}

fn worker_main(shared: Arc<Shared>, index: usize, local: Worker<Runnable>) {
    // Recycled future-task frames for as long as this worker runs.
    let _frames = crate::stackless::cache::enable();
    LOCAL.with(|l| *l.borrow_mut() = Some((shared.id, local)));
    let runner = shared.monitor.worker(index);
    runner.bind();
    loop {
        if let Some(task) = find_task(&shared, index) {
            runner.starting(&task);
            let _running = shared.running[index].enter(&task);
            task.run();
            continue;
        }
        runner.set_asleep(true);
        let keep_going = shared.sleepers.sleep(
            || has_work(&shared, index),
            || shared.open.load(Ordering::Acquire),
        );
        runner.set_asleep(false);
        shared.monitor.worker_awake();
        if !keep_going && !has_work(&shared, index) {
            break;
        }
    }
    LOCAL.with(|l| *l.borrow_mut() = None);
}

fn has_work(shared: &Shared, index: usize) -> bool {
    let local_empty = LOCAL.with(|l| l.borrow().as_ref().is_none_or(|(_, w)| w.is_empty()));
    !local_empty
        || !shared.injector.is_empty()
        || shared
            .stealers
            .iter()
            .enumerate()
            .any(|(i, s)| i != index && !s.is_empty())
}

impl Shared {
    /// Whether any task waits in the injector or on a worker's deque.
    fn has_queued(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// One task from the injector or from any worker's deque, for a thread that is not one of
    /// the pool's workers (a rescue worker, the monitor).
    fn steal_any(&self) -> Option<Runnable> {
        loop {
            let mut retry = false;
            for steal in std::iter::once(self.injector.steal())
                .chain(self.stealers.iter().map(Stealer::steal))
            {
                match steal {
                    Steal::Success(task) => return Some(task),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }
}

/// Local deque first, then a batch from the injector, then the siblings, starting after ourselves.
fn find_task(shared: &Shared, index: usize) -> Option<Runnable> {
    LOCAL.with(|l| {
        let guard = l.borrow();
        let (_, local) = guard.as_ref()?;
        if let Some(task) = local.pop() {
            return Some(task);
        }
        loop {
            let mut retry = false;
            match shared.injector.steal_batch_and_pop(local) {
                Steal::Success(task) => return Some(task),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = shared.stealers.len();
            for k in 1..n {
                match shared.stealers[(index + k) % n].steal() {
                    Steal::Success(task) => return Some(task),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    })
}
