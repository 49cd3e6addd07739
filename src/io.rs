//! The `Io` handle: the one seam between colorblind code and the execution model.
//!
//! Zig's `std.Io` is a vtable every model fills in; zsync's [`Io`] is a cheap handle around a
//! closed enum of the built-in models (one `match`, inlinable, no virtual call for a program that
//! uses one model) plus [`Model::Custom`] for a user's [`Runtime`] behind a trait object.
//!
//! Adding a model means one arm in [`ModelImpl`] for the scheduling calls (`spawn`, `concurrent`,
//! shutdown) and, where it waits differently from an OS thread, an arm in the wait layer
//! ([`crate::park`]) and the operation layer.

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::cancel::{NodeRef, NodeSource};
use crate::context::{self, TaskContext};
use crate::error::{canceled, ConcurrencyUnavailable};
use crate::model::blocking;
use crate::model::green::{self, Backend, GreenConfig};
use crate::model::threaded::{self, ThreadedConfig};
use crate::task::live::{LiveTasks, ShardId};
use crate::task::{Runnable, Task, TaskCell};

/// Which execution model runs the tasks of a [`run`](crate::run).
///
/// The same colorblind code runs unchanged on every model; only timing and concurrency differ.
#[derive(Clone)]
#[non_exhaustive]
pub enum Model {
    /// Direct syscalls on the calling thread. [`Io::spawn`] runs the closure inline, at once;
    /// [`Io::concurrent`] reports [`ConcurrencyUnavailable`]. Zero overhead over plain std calls.
    Blocking,
    /// A work-stealing pool of OS threads (default size: available parallelism); blocking
    /// syscalls run on the workers, and each [`Io::concurrent`] task gets a thread of its own.
    Threaded,
    /// Stackful fibers, M:N on per-worker event loops (the calling thread becomes worker 0).
    /// A blocking operation parks the fiber, not the thread. The I/O engine is chosen with
    /// [`Builder::backend`].
    Green,
    /// A model supplied by the user.
    Custom(Arc<dyn Runtime>),
}

impl Model {
    /// The model's name, as printed by the demo and in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Model::Blocking => "Blocking",
            Model::Threaded => "Threaded",
            Model::Green => "Green",
            Model::Custom(rt) => rt.name(),
        }
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user-supplied execution model: decides where and when tasks run.
///
/// Tasks of a custom model run on OS threads and wait the way the thread models do (parking the
/// thread, polling the descriptor), so a custom model only chooses scheduling. Shutdown
/// (cancel what is left, wait for every task, re-raise panics of detached tasks) is handled by
/// [`run`](crate::run) for every model.
///
/// ```
/// use std::sync::Arc;
/// use zsync::{ConcurrencyUnavailable, Model, Runnable, Runtime};
///
/// /// One OS thread per task.
/// struct ThreadPerTask;
/// impl Runtime for ThreadPerTask {
///     fn name(&self) -> &'static str { "ThreadPerTask" }
///     fn spawn(&self, task: Runnable) {
///         std::thread::spawn(move || task.run());
///     }
///     fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable> {
///         self.spawn(task);
///         Ok(())
///     }
/// }
///
/// let v = zsync::run(Model::Custom(Arc::new(ThreadPerTask)), |io| {
///     io.concurrent(|_| 6 * 7).unwrap().join().unwrap()
/// });
/// assert_eq!(v, 42);
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// The model's name.
    fn name(&self) -> &'static str;
    /// Arranges for `task` to run, possibly inline on the caller. Zig: `vtable.async`.
    fn spawn(&self, task: Runnable);
    /// Arranges for `task` to run concurrently with the caller, or refuses.
    /// Zig: `vtable.concurrent`.
    fn concurrent(&self, task: Runnable) -> Result<(), ConcurrencyUnavailable>;
    /// Called once by [`run`](crate::run) after every task has finished: release threads here.
    fn shutdown(&self) {}
}

/// State every model shares: live-task accounting for shutdown, panics of detached tasks.
///
/// Live tasks are counted per worker thread ([`LiveTasks`]): each worker owns a shard, found
/// through a thread-local, and no cache line is written by every worker for every task. The
/// last finisher notifies the waiter when it sees `shutting_down`; without a fence on the
/// finisher's side the two can miss each other, so the waiter also re-checks every
/// [`SHUTDOWN_RECHECK`].
pub(crate) struct RunState {
    live: LiveTasks,
    shutting_down: AtomicBool,
    idle: Mutex<()>,
    all_done: Condvar,
    /// Called when the last task finishes during shutdown, for models whose shutdown waits in
    /// an event loop rather than on `all_done` (Green's worker 0).
    on_all_done: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

thread_local! {
    /// The `RunState` whose live-task shard this thread owns, and the shard's index (see
    /// [`RunState::own_shard`]).
    static SHARD: std::cell::Cell<(*const RunState, usize)> =
        const { std::cell::Cell::new((std::ptr::null(), 0)) };
}

/// Gives the calling thread's shard back when dropped (see [`RunState::own_shard`]).
pub(crate) struct ShardGuard((*const RunState, usize));

impl Drop for ShardGuard {
    fn drop(&mut self) {
        SHARD.with(|s| s.set(self.0));
    }
}

/// How often a shutdown waiting for tasks re-checks the counts on its own (see [`RunState`]).
pub(crate) const SHUTDOWN_RECHECK: Duration = Duration::from_millis(1);

impl RunState {
    /// State for a model with `workers` threads that own a live-task shard each.
    fn new(workers: usize) -> RunState {
        RunState {
            live: LiveTasks::new(workers),
            shutting_down: AtomicBool::new(false),
            idle: Mutex::new(()),
            all_done: Condvar::new(),
            on_all_done: std::sync::OnceLock::new(),
            panic: Mutex::new(None),
        }
    }

    /// Makes the calling thread the owner of live-task shard `index` (a worker's index) until
    /// the guard drops. Each index must be owned by one thread at a time.
    pub(crate) fn own_shard(&self, index: usize) -> ShardGuard {
        assert!(index < self.live.workers(), "worker {index} has no shard");
        ShardGuard(SHARD.with(|s| s.replace((self as *const RunState, index))))
    }

    /// Where the calling thread counts.
    #[inline]
    fn shard(&self) -> ShardId {
        let (state, index) = SHARD.with(|s| s.get());
        if std::ptr::eq(state, self) {
            ShardId::Owned(index)
        } else {
            ShardId::Shared
        }
    }

    /// Whether every task started so far has finished.
    pub(crate) fn all_finished(&self) -> bool {
        self.live.all_finished()
    }

    pub(crate) fn task_started(&self) {
        self.live.started(self.shard());
    }

    pub(crate) fn task_finished(&self) {
        self.live.finished(self.shard());
        if self.shutting_down.load(Ordering::Relaxed) && self.all_finished() {
            let _guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            self.all_done.notify_all();
            if let Some(notify) = self.on_all_done.get() {
                notify();
            }
        }
    }

    /// Enters shutdown with `notify` to call when the last task finishes. The caller re-checks
    /// [`all_finished`](Self::all_finished) after setting this up, after each wake-up and at
    /// least every [`SHUTDOWN_RECHECK`].
    pub(crate) fn begin_shutdown(&self, notify: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_all_done.set(Box::new(notify));
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Keeps the first panic of a detached task (or of other user code the runtime ran, see
    /// [`crate::contain`]) for `run` to re-raise. Later ones are dropped, outside the lock and
    /// without unwinding: their payload's `Drop` is user code too.
    pub(crate) fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let extra = {
            let mut slot = self.panic.lock().unwrap_or_else(|p| p.into_inner());
            match *slot {
                None => {
                    *slot = Some(payload);
                    None
                }
                Some(_) => Some(payload),
            }
        };
        if let Some(payload) = extra {
            crate::contain::drop_payload(payload);
        }
    }

    fn wait_all_done(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let mut guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while !self.all_finished() {
            guard = self
                .all_done
                .wait_timeout(guard, SHUTDOWN_RECHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

pub(crate) enum ModelImpl {
    Blocking,
    Threaded(threaded::Pool),
    Green(green::Green),
    Custom(Arc<dyn Runtime>),
}

pub(crate) struct IoInner {
    pub(crate) model: ModelImpl,
    pub(crate) state: Arc<RunState>,
    /// The cancellation node of the root task; parent of tasks spawned from outside any task.
    pub(crate) root: NodeRef,
}

/// The handle colorblind code receives: every blocking operation and every task goes through it.
///
/// Cheap to clone (one reference count), `Send + Sync`, usable from any task of its runtime.
/// Inside a task, [`Io::current`] returns the handle of the running runtime.
///
/// Zig: `std.Io`.
#[derive(Clone)]
pub struct Io {
    pub(crate) inner: Arc<IoInner>,
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("model", &self.model_name())
            .finish()
    }
}

/// Configures and runs a runtime. [`run`](crate::run) is `Builder::new(model).run(f)`.
///
/// ```
/// use zsync::{Builder, Model};
/// let n = Builder::new(Model::Threaded).worker_threads(2).run(|io| {
///     let a = io.spawn(|_| 20);
///     let b = io.spawn(|_| 22);
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(n, 42);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    model: Model,
    threaded: ThreadedConfig,
    green: GreenConfig,
}

impl Builder {
    /// A builder for `model` with default settings.
    pub fn new(model: Model) -> Builder {
        Builder {
            model,
            threaded: ThreadedConfig::default(),
            green: GreenConfig::default(),
        }
    }

    /// Threaded and Green: number of workers (default: available parallelism). Values below 1
    /// are treated as 1. On Green the calling thread is worker 0.
    pub fn worker_threads(mut self, n: usize) -> Builder {
        self.threaded.workers = n.max(1);
        self.green.workers = n.max(1);
        self
    }

    /// Green: the usable size of each fiber's stack, rounded up to whole pages (a guard page
    /// comes on top).
    ///
    /// The default depends on the build: **256 KiB** in release builds and **512 KiB** with
    /// `debug_assertions`, whose unoptimised frames are several times larger. Either leaves
    /// room for ordinary recursive crates: `serde_json` parsing JSON nested to its limit of 128
    /// levels needs about 80 KiB in release and 240 KiB in debug.
    ///
    /// The size is address space, not memory: stacks are reserved with `MAP_NORESERVE` and a
    /// fiber costs the pages it touches (one 4 KiB page for a task parked in a plain wait),
    /// and a worker gives the pages of stacks it no longer uses back to the system when it is
    /// idle. So a bigger stack costs nothing until used, except page tables (about 0.5 KiB per
    /// live fiber at 256 KiB). A fiber that runs past its stack hits the guard page and the
    /// process aborts with a message naming the task's spawn location.
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// let depth = Builder::new(Model::Green)
    ///     .stack_size(4 << 20) // deep recursion ahead
    ///     .run(|io| io.spawn(|_| count_down(10_000)).join().unwrap());
    /// assert_eq!(depth, 10_000);
    ///
    /// fn count_down(n: u32) -> u32 {
    ///     if n == 0 { 0 } else { 1 + count_down(std::hint::black_box(n - 1)) }
    /// }
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.green.stack_size = bytes;
        self
    }

    /// Green, tests only: which guard pages the stack pools may install (e.g. none of
    /// `MADV_GUARD_INSTALL` and a tiny mprotect budget, as on an old kernel at its limit).
    #[cfg(test)]
    pub(crate) fn guard_policy(mut self, policy: crate::fiber_stack::GuardPolicy) -> Builder {
        self.green.guard_policy = Some(policy);
        self
    }

    /// Green: the I/O engine (default [`Backend::Auto`]: io_uring where available, else epoll;
    /// the `ZSYNC_BACKEND` environment variable overrides `Auto`).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.green.backend = backend;
        self
    }

    /// Threaded: most threads that run [`Io::concurrent`] tasks at once (default 1024); beyond it
    /// `concurrent` reports [`ConcurrencyUnavailable`]. The same number bounds, separately, the
    /// extra threads that run spawned tasks while every worker is blocked (see
    /// [`Io::spawn`]).
    pub fn max_concurrent_threads(mut self, n: usize) -> Builder {
        self.threaded.max_concurrent = n;
        self
    }

    /// Threaded: how long an idle thread for concurrent tasks waits for more work before it exits
    /// (default 5 s).
    pub fn concurrent_keep_alive(mut self, d: Duration) -> Builder {
        self.threaded.keep_alive = d;
        self
    }

    /// Runs `f` as the root task on the calling thread and returns its value.
    ///
    /// When `f` returns, tasks still running (detached ones) are canceled and waited for, every
    /// thread the model started has exited, and then a panic of `f` or of a detached task is
    /// re-raised here.
    pub fn run<T>(self, f: impl FnOnce(&Io) -> T) -> T {
        // Worker threads that own a live-task shard (see `RunState`).
        let workers = match &self.model {
            Model::Threaded => self.threaded.workers.max(1),
            Model::Green => self.green.workers.max(1),
            Model::Blocking | Model::Custom(_) => 0,
        };
        let model = match self.model {
            Model::Blocking => ModelImpl::Blocking,
            Model::Threaded => ModelImpl::Threaded(threaded::Pool::new(self.threaded)),
            Model::Green => ModelImpl::Green(
                green::Green::new(self.green)
                    .unwrap_or_else(|e| panic!("zsync: cannot create the Green runtime: {e}")),
            ),
            Model::Custom(rt) => ModelImpl::Custom(rt),
        };
        let io = Io {
            inner: Arc::new(IoInner {
                model,
                state: Arc::new(RunState::new(workers)),
                root: NodeRef::root(),
            }),
        };
        if let ModelImpl::Threaded(pool) = &io.inner.model {
            pool.start(&io);
        }
        let result = if let ModelImpl::Green(green) = &io.inner.model {
            // Worker 0 runs the root as a fiber until every task has finished.
            let result = green.run_root(&io, f);
            green.shutdown();
            result
        } else {
            let ctx = TaskContext::new(&io, &io.inner.root);
            ctx.cancel.set_waker(crate::park::current_waker);
            let result = {
                let _entered = context::enter(&ctx);
                crate::contain::catch(|| f(&io))
            };
            io.inner.root.cancel();
            io.inner.state.wait_all_done();
            match &io.inner.model {
                ModelImpl::Blocking | ModelImpl::Green(_) => {}
                ModelImpl::Threaded(pool) => pool.shutdown(),
                ModelImpl::Custom(rt) => rt.shutdown(),
            }
            result
        };
        let detached_panic = io
            .inner
            .state
            .panic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (result, detached_panic) {
            (Ok(v), None) => v,
            (Ok(_), Some(payload)) => panic::resume_unwind(payload),
            (Err(payload), detached) => {
                // Dropped before unwinding: a payload's `Drop` panicking during the unwind
                // would abort.
                if let Some(detached) = detached {
                    crate::contain::drop_payload(detached);
                }
                panic::resume_unwind(payload)
            }
        }
    }
}

/// Runs `f` on a fresh runtime of the given model and returns its value.
///
/// ```
/// use zsync::{Io, Model};
///
/// fn work(io: &Io) -> u32 {
///     let a = io.spawn(|_| 1);
///     let b = io.spawn(|_| 2);
///     a.join().unwrap() + b.join().unwrap()
/// }
/// for model in [Model::Blocking, Model::Threaded] {
///     assert_eq!(zsync::run(model, work), 3);
/// }
/// ```
pub fn run<T>(model: Model, f: impl FnOnce(&Io) -> T) -> T {
    Builder::new(model).run(f)
}

impl Io {
    /// The `Io` of the task running on this thread, if any.
    pub fn current() -> Option<Io> {
        context::with(|c| c.map(|c| c.io.clone()))
    }

    /// The name of the model behind this handle.
    pub fn model_name(&self) -> &'static str {
        match &self.inner.model {
            ModelImpl::Blocking => "Blocking",
            ModelImpl::Threaded(_) => "Threaded",
            ModelImpl::Green(_) => "Green",
            ModelImpl::Custom(rt) => rt.name(),
        }
    }

    /// The I/O engine behind this handle: `"io_uring"` or `"epoll"` on Green, `"syscalls"` (direct
    /// blocking-style syscalls on the task's thread) elsewhere.
    pub fn backend_name(&self) -> &'static str {
        match &self.inner.model {
            ModelImpl::Green(g) => g.backend_name(),
            _ => "syscalls",
        }
    }

    /// Lets other tasks run: on Green the fiber goes behind the other ready fibers of its
    /// worker; on the thread models the OS thread yields its time slice. Not a cancellation
    /// point.
    pub fn yield_now(&self) {
        crate::model::green::fiber::yield_now();
    }

    /// Whether [`concurrent`](Io::concurrent) can succeed on this model at all.
    pub fn supports_concurrency(&self) -> bool {
        !matches!(self.inner.model, ModelImpl::Blocking)
    }

    /// Starts `f` as a task that may run inline, now or when joined. Zig: `io.async(f)`.
    ///
    /// On Blocking, `f` runs to completion before `spawn` returns; on Threaded it is queued on
    /// the pool (a joiner runs it inline if no worker has started it). Use
    /// [`concurrent`](Io::concurrent) when the caller needs `f` to make progress meanwhile.
    ///
    /// On Threaded, a queued task can wait as long as every worker is busy. When every worker
    /// has been blocked in a wait for a few milliseconds while tasks are queued (N tasks waiting
    /// for an (N+1)th, or a task per connection blocked in a handshake), the pool prints a
    /// one-time diagnostic to stderr naming those tasks' spawn sites and starts extra threads
    /// so that the queued tasks run: a late start rather than a silent hang. A task that others
    /// wait for belongs on `concurrent`.
    #[track_caller]
    pub fn spawn<T, F>(&self, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        if let ModelImpl::Blocking = self.inner.model {
            // Inline in the caller's own context: no scope to look up, nothing to allocate.
            return Task::ready(crate::contain::catch(|| f(self)));
        }
        // Borrow the spawner's node instead of cloning it: the child takes the one reference
        // it keeps. The closure breaks `#[track_caller]`, so the location is taken here.
        let location = Location::caller();
        context::with_cancel(|parent| {
            self.spawn_at(parent.unwrap_or(&self.inner.root), location, f)
        })
    }

    /// Starts `f` as a task guaranteed to make progress concurrently with the caller.
    /// Zig: `io.concurrent(f)`.
    ///
    /// Fails with [`ConcurrencyUnavailable`] on Blocking, and on Threaded when the limit of
    /// concurrent threads is reached.
    #[track_caller]
    pub fn concurrent<T, F>(&self, f: F) -> Result<Task<T>, ConcurrencyUnavailable>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        let parent = self.current_scope();
        self.concurrent_in(&parent, f)
    }

    fn current_scope(&self) -> NodeRef {
        context::current_cancel().unwrap_or_else(|| self.inner.root.clone())
    }

    #[track_caller]
    pub(crate) fn spawn_in<T, F>(&self, parent: &NodeRef, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_at(parent, Location::caller(), f)
    }

    fn spawn_at<T, F>(
        &self,
        parent: &dyn NodeSource,
        location: &'static Location<'static>,
        f: F,
    ) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        match &self.inner.model {
            ModelImpl::Blocking => Task::ready(blocking::run_inline(self, parent, f)),
            ModelImpl::Threaded(pool) if pool.is_open() => {
                let (task, runnable) = self.new_task(parent, location, f);
                pool.spawn(runnable);
                task
            }
            ModelImpl::Threaded(_) => Task::ready(blocking::run_inline(self, parent, f)),
            ModelImpl::Green(green) if green.is_open() => {
                let (task, runnable) = self.new_task(parent, location, f);
                // `spawn` may run the task inline, so telling an idle worker about it can wait
                // (see `Green::spawn`): a spawn that is joined at once then wakes nobody.
                green.spawn(runnable, false);
                task
            }
            ModelImpl::Green(_) => Task::ready(blocking::run_inline(self, parent, f)),
            ModelImpl::Custom(rt) => {
                let (task, runnable) = self.new_task(parent, location, f);
                rt.spawn(runnable);
                task
            }
        }
    }

    #[track_caller]
    pub(crate) fn concurrent_in<T, F>(
        &self,
        parent: &NodeRef,
        f: F,
    ) -> Result<Task<T>, ConcurrencyUnavailable>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        let location = Location::caller();
        let refuse = ConcurrencyUnavailable {
            model: self.model_name(),
        };
        let submitted = match &self.inner.model {
            ModelImpl::Blocking => return Err(refuse),
            ModelImpl::Threaded(pool) => {
                let (task, runnable) = self.new_task(parent, location, f);
                (task, pool.concurrent(runnable).map_err(|_| refuse))
            }
            // A fiber runs concurrently with its spawner: a blocking wait parks the fiber and
            // frees the worker, and the task is queued where an idle worker can steal it, so
            // it progresses even while its spawner computes without blocking.
            ModelImpl::Green(green) if green.is_open() => {
                let (task, runnable) = self.new_task(parent, location, f);
                green.spawn(runnable, true);
                (task, Ok(()))
            }
            ModelImpl::Green(_) => return Err(refuse),
            ModelImpl::Custom(rt) => {
                let (task, runnable) = self.new_task(parent, location, f);
                (task, rt.concurrent(runnable))
            }
        };
        match submitted {
            (task, Ok(())) => Ok(task),
            (task, Err(e)) => {
                task.abandon();
                Err(e)
            }
        }
    }

    fn new_task<T, F>(
        &self,
        parent: &dyn NodeSource,
        location: &'static Location<'static>,
        f: F,
    ) -> (Task<T>, Runnable)
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        let cell = TaskCell::new(self.clone(), parent.node_ref(), location, f);
        self.inner.state.task_started();
        (Task::shared(cell.clone()), Runnable(cell))
    }

    /// Takes the unstarted task whose cell is at `task` out of the calling worker's queue if
    /// it was queued there last (see `Green::unqueue`), before its joiner runs it inline.
    pub(crate) fn unqueue(&self, task: *const ()) {
        match &self.inner.model {
            ModelImpl::Green(green) => green.unqueue(task),
            ModelImpl::Threaded(pool) => pool.unqueue(task),
            ModelImpl::Blocking | ModelImpl::Custom(_) => {}
        }
    }

    /// Sends the wake-up for an idle worker that the calling worker deferred when it queued
    /// its last task (see `Green::spawn`), for a task that will not be joined.
    pub(crate) fn announce_spawned(&self) {
        if let ModelImpl::Green(green) = &self.inner.model {
            green.announce_spawned();
        }
    }

    /// Runs `f`, a call that would block its thread (a C library, `std::fs` or `std::net` used
    /// directly, a CPU-heavy computation), where it does not stall other tasks: on a helper
    /// thread on Green and Threaded, as a `concurrent` task on custom models, inline on Blocking.
    /// Tokio calls this `spawn_blocking`.
    ///
    /// Cancellation point: if the caller is canceled while `f` runs, `blocking` returns
    /// `Canceled` at once and `f` finishes unobserved on its thread (it cannot be interrupted);
    /// the runtime still waits for it at shutdown. A panic in `f` resumes on the caller.
    ///
    /// ```
    /// zsync::run(zsync::Model::Green, |io| {
    ///     let n = io.blocking(|| std::fs::read_dir(".").map(|d| d.count())).unwrap().unwrap();
    ///     assert!(n > 0);
    /// });
    /// ```
    #[track_caller]
    pub fn blocking<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        context::check()?;
        let body = move |_: &Io| f();
        let submitted = match &self.inner.model {
            ModelImpl::Green(green) if green.is_open() => {
                let (task, runnable) =
                    self.new_task(&self.current_scope(), Location::caller(), body);
                (task, green.blocking(runnable).map_err(|_| ()))
            }
            ModelImpl::Threaded(pool) if pool.is_open() => {
                let (task, runnable) =
                    self.new_task(&self.current_scope(), Location::caller(), body);
                (task, pool.blocking(runnable).map_err(|_| ()))
            }
            ModelImpl::Custom(rt) => {
                let (task, runnable) =
                    self.new_task(&self.current_scope(), Location::caller(), body);
                (task, rt.concurrent(runnable).map_err(|_| ()))
            }
            _ => return Ok(body(self)),
        };
        match submitted {
            (task, Ok(())) => task.join_or_detach(),
            (task, Err(())) => {
                task.abandon();
                Err(ConcurrencyUnavailable {
                    model: self.model_name(),
                }
                .into())
            }
        }
    }

    /// A cancellation point without I/O: `Err(Canceled)` if the running task was canceled (and
    /// is not shielded), `Err(TimedOut)` if its deadline passed. Zig: `io.checkCancel()`.
    pub fn check_canceled(&self) -> io::Result<()> {
        context::check()
    }

    /// Whether cancellation of the running task was requested, shielded or not.
    pub fn is_cancel_requested(&self) -> bool {
        context::with(|c| c.is_some_and(|c| c.cancel.is_canceled()))
    }

    /// Runs `f` with cancellation of the running task held back: blocking operations inside `f`
    /// do not report `Canceled`; a cancel requested meanwhile is delivered by the first
    /// cancellation point after `f` returns. Zig: `io.swapCancelProtection`.
    pub fn shielded<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Unshield(Option<NodeRef>);
        impl Drop for Unshield {
            fn drop(&mut self) {
                if let Some(node) = &self.0 {
                    node.shield_exit();
                }
            }
        }
        let node = context::current_cancel();
        if let Some(node) = &node {
            node.shield_enter();
        }
        let _unshield = Unshield(node);
        f()
    }

    /// Current time of the monotonic clock.
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Current wall-clock time (may jump; use [`now`](Io::now) to measure durations).
    pub fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Sleeps for `duration`. Cancellation point. Zig: `io.sleep`.
    pub fn sleep(&self, duration: Duration) -> io::Result<()> {
        if duration.is_zero() {
            return context::check();
        }
        context::check()?;
        // One clock reading to arm, none to find the deadline already passed (it is ahead).
        let Some(deadline) = Instant::now().checked_add(duration) else {
            loop {
                crate::park::park(context::effective_deadline(None));
                context::check()?;
            }
        };
        loop {
            crate::park::park(context::effective_deadline(Some(deadline)));
            context::check()?;
            if crate::park::deadline_passed(deadline) {
                return Ok(());
            }
        }
    }

    /// Sleeps until the monotonic clock reaches `deadline`. Cancellation point.
    ///
    /// Returns `Err(TimedOut)` early if the running task's own deadline (see
    /// [`with_deadline`](Io::with_deadline)) comes first.
    pub fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
        context::check()?;
        if crate::park::deadline_passed(deadline) {
            return Ok(());
        }
        // The task's waker (registered when it started) unparks this thread on cancel.
        loop {
            crate::park::park(context::effective_deadline(Some(deadline)));
            context::check()?;
            if crate::park::deadline_passed(deadline) {
                return Ok(());
            }
        }
    }

    /// An [`Interval`](crate::time::Interval) ticking every `period`, the first tick at once. Tokio:
    /// `tokio::time::interval`.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let mut every_ms = io.interval(Duration::from_millis(1));
    ///     for _ in 0..3 {
    ///         every_ms.tick().unwrap();
    ///     }
    /// });
    /// ```
    pub fn interval(&self, period: Duration) -> crate::time::Interval {
        crate::time::Interval::new(self, period)
    }

    /// An [`Interval`](crate::time::Interval) whose first tick is at `start`, then every `period`. Tokio:
    /// `tokio::time::interval_at`.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn interval_at(&self, start: Instant, period: Duration) -> crate::time::Interval {
        crate::time::Interval::new_at(self, start, period)
    }

    /// Runs `f` with a deadline for the running task: every blocking operation inside `f` that
    /// would wait past `deadline` stops there with an error of kind
    /// [`TimedOut`](io::ErrorKind::TimedOut). Deadlines nest; the earlier one wins.
    pub fn with_deadline<R>(&self, deadline: Instant, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(Option<&'a TaskContext<'a>>, Option<Instant>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(c) = self.0 {
                    c.deadline.set(self.1);
                }
            }
        }
        context::with(|c| {
            let prev = c.and_then(|c| c.deadline.get());
            if let Some(c) = c {
                c.deadline
                    .set(Some(prev.map_or(deadline, |p| p.min(deadline))));
            }
            let _restore = Restore(c, prev);
            f()
        })
    }

    /// Blocks the running task until `event` completes and returns its output. Cancellation
    /// point (`Canceled`); `TimedOut` if the task's deadline passes first.
    pub fn wait<E: crate::Event>(&self, event: E) -> io::Result<E::Output> {
        crate::event::wait(event, None)
    }

    /// Like [`wait`](Io::wait), giving up with `TimedOut` at `deadline`.
    pub fn wait_until<E: crate::Event>(
        &self,
        event: E,
        deadline: Instant,
    ) -> io::Result<E::Output> {
        // `event::wait` re-polls at the event's `wake_at` (a sleep, a tick) before `deadline`.
        crate::event::wait(event, Some(deadline))
    }

    /// Blocks until `word` no longer holds `expected`, a [`futex_wake`](Io::futex_wake) on it, or
    /// `deadline`. May return spuriously: callers loop on their own condition. Cancellation point.
    /// Zig: `io.futexWait`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let flag = Arc::new(AtomicU32::new(0));
    ///     let f = flag.clone();
    ///     let setter = io.concurrent(move |io| {
    ///         f.store(1, Ordering::SeqCst);
    ///         io.futex_wake(&f, usize::MAX);
    ///     }).unwrap();
    ///     while flag.load(Ordering::SeqCst) == 0 {
    ///         io.futex_wait(&flag, 0, None).unwrap();
    ///     }
    ///     setter.join().unwrap();
    /// });
    /// ```
    pub fn futex_wait(
        &self,
        word: &std::sync::atomic::AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        crate::wait::futex_wait(word, expected, deadline)
    }

    /// Wakes up to `n` tasks blocked in [`futex_wait`](Io::futex_wait) on `word`; returns how
    /// many. Zig: `io.futexWake`.
    pub fn futex_wake(&self, word: &std::sync::atomic::AtomicU32, n: usize) -> usize {
        crate::wait::futex_wake(word, n)
    }

    /// Requests cancellation of the running task and everything it started, as if its handle's
    /// owner had called [`Task::request_cancel`]. Its next cancellation point reports `Canceled`.
    pub fn cancel_current(&self) {
        if let Some(node) = context::current_cancel() {
            node.cancel();
        }
    }
}

/// Records a panic of a detached inline task for `run` to re-raise (or re-raises it now outside
/// any runtime).
pub(crate) fn record_detached_panic(payload: Box<dyn Any + Send>) {
    let state = context::with(|c| c.map(|c| c.io.inner.state.clone()));
    match state {
        Some(state) => state.record_panic(payload),
        None => panic::resume_unwind(payload),
    }
}

/// `Err(Canceled)`: for models that check cancellation outside the usual helpers.
#[allow(dead_code)]
pub(crate) fn canceled_err<T>() -> io::Result<T> {
    Err(canceled())
}
