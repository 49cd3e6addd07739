//! The `Io` handle: what colorblind code receives. Every `impl Io` is here; each method hands
//! its work to the model through the one seam in [`crate::model`] (scheduling) and
//! [`crate::op`] (operations).

use std::fmt;
use std::io;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::cancel::{NodeRef, NodeSource};
use crate::context::{self, TaskContext};
use crate::error::ConcurrencyUnavailable;
use crate::model::run_state::RunState;
use crate::model::{blocking, ModelImpl};
use crate::task::id::Meta;
use crate::task::{Body, Runnable, Task, TaskBuilder, TaskCell};

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
impl Io {
    /// The `Io` of the task running on this thread, if any.
    pub fn current() -> Option<Io> {
        context::with(|c| c.map(|c| c.io.clone()))
    }

    /// Which kind of model runs this handle's tasks: compare this, not
    /// [`model_name`](Io::model_name).
    ///
    /// ```
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     assert_eq!(io.model(), zsync::ModelKind::Blocking);
    ///     assert!(!io.supports_concurrency());
    /// });
    /// ```
    pub fn model(&self) -> crate::ModelKind {
        self.inner.model.kind()
    }

    /// The name of the model behind this handle, for display: `"Blocking"`, `"Threaded"`,
    /// `"Green"`, or a custom model's [`name`](crate::CustomModel::name).
    pub fn model_name(&self) -> &'static str {
        self.inner.model.name()
    }

    /// A dump of every live task of this runtime: id, name, spawn location, parent, worker,
    /// state, what it waits on (operation, descriptor or object, the line of your code that
    /// called it, for how long) and, for Green fibers and the calling task, its stack. See
    /// [`zsync::dump`](crate::dump) for what it finds and how; `Display` prints it like Go's
    /// goroutine dump.
    ///
    /// Costs nothing until called. Safe to call from any task or thread while the runtime
    /// runs: on Green, each worker answers at a safe point of its loop; one stuck in a call
    /// outside zsync is given up on after a second, with a note.
    ///
    /// ```
    /// zsync::Builder::new(zsync::Model::Threaded).run(|io| {
    ///     let dump = io.dump();
    ///     let me = dump.tasks().iter().find(|t| t.is_current()).unwrap();
    ///     assert_eq!(me.state(), zsync::dump::TaskState::Running);
    ///     println!("{dump}");
    /// });
    /// ```
    pub fn dump(&self) -> crate::dump::Dump {
        crate::diag::dump::collect(self)
    }

    /// The I/O engine behind this handle: `"io_uring"` or `"epoll"` on Green, `"syscalls"` (direct
    /// blocking-style syscalls on the task's thread) elsewhere.
    pub fn backend_name(&self) -> &'static str {
        self.inner.model.backend_name()
    }

    /// Lets other tasks run: on Green the fiber goes behind the other ready fibers of its
    /// worker; on the thread models the OS thread yields its time slice. Not a cancellation
    /// point.
    pub fn yield_now(&self) {
        crate::model::green::fiber::yield_now();
    }

    /// Whether [`concurrent`](Io::concurrent) can succeed on this model at all.
    pub fn supports_concurrency(&self) -> bool {
        self.inner.model.supports_concurrency()
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
        self.spawn_meta(Meta::new(Location::caller()), f)
    }

    /// [`spawn`](Io::spawn) of a task whose identity is made already (see [`TaskBuilder`]).
    pub(crate) fn spawn_meta<T, F>(&self, meta: Meta, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        if let ModelImpl::Blocking = self.inner.model {
            // Inline, in the caller's cancellation scope: no node to look up, nothing to
            // allocate.
            let result = blocking::run_inline(self, None, &meta, f);
            return Task::ready(meta.id, meta.name, result);
        }
        // Borrow the spawner's node instead of cloning it: the child takes the one reference
        // it keeps.
        context::with_cancel(|parent| self.spawn_at(parent.unwrap_or(&self.inner.root), meta, f))
    }

    /// Starts `f` as a task guaranteed to make progress concurrently with the caller.
    /// Zig: `io.concurrent(f)`.
    ///
    /// Fails with [`ConcurrencyUnavailable`] on Blocking, and on Threaded when the limit of
    /// concurrent threads is reached. The error gives `f` back, unrun
    /// ([`ConcurrencyUnavailable::into_inner`]), so the caller can run it another way: Zig's
    /// `io.concurrent(f) catch io.async(f)` is
    ///
    /// ```
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let task = io.concurrent(|_| 42).unwrap_or_else(|refused| io.spawn(refused.into_inner()));
    ///     assert_eq!(task.join().unwrap(), 42);
    /// });
    /// ```
    #[track_caller]
    pub fn concurrent<T, F>(&self, f: F) -> Result<Task<T>, ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.concurrent_in(&self.current_scope(), Meta::new(Location::caller()), f)
    }

    /// Starts building a task with a name: `io.task().name("conn").spawn(f)`. See
    /// [`TaskBuilder`].
    pub fn task(&self) -> TaskBuilder<'_> {
        TaskBuilder::new(self)
    }

    pub(crate) fn current_scope(&self) -> NodeRef {
        context::current_cancel().unwrap_or_else(|| self.inner.root.clone())
    }

    pub(crate) fn spawn_at<T, F>(&self, parent: &dyn NodeSource, meta: Meta, f: F) -> Task<T>
    where
        F: Body<T>,
        T: Send + 'static,
    {
        if !self.inner.model.queues_spawns() {
            let result = blocking::run_inline(self, Some(parent), &meta, move |io: &Io| f.call(io));
            return Task::ready(meta.id, meta.name, result);
        }
        let (cell, runnable) = self.new_task(parent, meta, f);
        self.inner.model.spawn(runnable);
        Task::shared(cell)
    }

    /// Hands a new task to the model's `concurrent`; a refusal gives `f` back (see
    /// [`TaskCell::take_back`]).
    pub(crate) fn concurrent_in<T, F>(
        &self,
        parent: &NodeRef,
        meta: Meta,
        f: F,
    ) -> Result<Task<T>, ConcurrencyUnavailable<F>>
    where
        F: Body<T>,
        T: Send + 'static,
    {
        if self.inner.model.refuses_concurrency() {
            return Err(ConcurrencyUnavailable::new(self.model_name()).with_closure(f));
        }
        let (cell, runnable) = self.new_task(parent, meta, f);
        match self.inner.model.concurrent(runnable) {
            Ok(()) => Ok(Task::shared(cell)),
            Err(refused) => match cell.take_back() {
                Some(f) => Err(refused.with_closure(f)),
                // A custom model refused a task it had started anyway: it runs, so it counts
                // as accepted.
                None => Ok(Task::shared(cell)),
            },
        }
    }

    /// Runs `f` to completion on the calling thread as a task of its own, a child of `parent`:
    /// a [`Runtime`](crate::Runtime)'s spawn from outside its tasks when the model runs spawns
    /// inline (Blocking, or shut down), so the task's panic, if it is detached, reaches the
    /// runtime's shutdown like any detached task's.
    #[track_caller]
    pub(crate) fn spawn_here<T, F>(&self, parent: &NodeRef, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (cell, runnable) = self.new_task(parent, Meta::new(Location::caller()), f);
        runnable.run();
        Task::shared(cell)
    }

    fn new_task<T, F>(
        &self,
        parent: &dyn NodeSource,
        meta: Meta,
        f: F,
    ) -> (Arc<TaskCell<F, T>>, Runnable)
    where
        F: Body<T>,
        T: Send + 'static,
    {
        let cell = TaskCell::new(self.clone(), parent.node_ref(), meta, f);
        self.inner.state.task_started();
        (cell.clone(), Runnable::from_arc(cell))
    }

    /// Takes the unstarted task whose cell is at `task` out of the calling worker's queue if
    /// it was queued there last (see `Green::unqueue`), before its joiner runs it inline.
    pub(crate) fn unqueue(&self, task: *const ()) {
        self.inner.model.unqueue(task)
    }

    /// Whether a joiner on the calling thread may run an unstarted task of this runtime inline
    /// (see `ModelImpl::runs_joined_inline_here`).
    pub(crate) fn runs_joined_inline_here(&self) -> bool {
        self.inner.model.runs_joined_inline_here()
    }

    /// Sends the wake-up for an idle worker that the calling worker deferred when it queued
    /// its last task (see `Green::spawn`), for a task that will not be joined.
    pub(crate) fn announce_spawned(&self) {
        self.inner.model.announce_spawned()
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
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Blocking,
            crate::diag::wait_point::Object::None,
        );
        context::check()?;
        if let Some(world) = self.inner.model.sim() {
            return Err(world.refuse("io.blocking"));
        }
        let body = move |_: &Io| f();
        if !self.inner.model.offloads_blocking() {
            return Ok(body(self));
        }
        let meta = Meta::new(Location::caller());
        let (cell, runnable) = self.new_task(&self.current_scope(), meta, body);
        if self.inner.model.blocking(runnable).is_ok() {
            return Task::shared(cell).join_or_detach();
        }
        match cell.take_back() {
            // Dropped here: a panic in the `Drop` of its captures resumes on the caller.
            Some(body) => {
                drop(body);
                Err(ConcurrencyUnavailable::new(self.model_name()).into())
            }
            // Started after all: it runs, so wait for it.
            None => Task::shared(cell).join_or_detach(),
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
    ///
    /// On a custom model this is [`Operation::Now`](crate::Operation::Now), so a model may run
    /// its own clock. A clock read cannot fail: a model that fails it panics the task.
    #[inline]
    pub fn now(&self) -> Instant {
        match crate::op::custom(self) {
            None => crate::clock::now(),
            Some(model) => model_clock(model),
        }
    }

    /// Current wall-clock time (may jump; use [`now`](Io::now) to measure durations).
    ///
    /// On a custom model this is [`Operation::WallClock`](crate::Operation::WallClock).
    pub fn wall_clock(&self) -> SystemTime {
        match crate::op::custom(self) {
            None => SystemTime::now(),
            Some(model) => model
                .operate(crate::Operation::WallClock)
                .and_then(|c| c.into_system_time("wall_clock"))
                .unwrap_or_else(|e| {
                    panic!("zsync: the {} model failed a clock read: {e}", model.name())
                }),
        }
    }

    /// Sleeps for `duration`. Cancellation point. Zig: `io.sleep`.
    #[track_caller]
    pub fn sleep(&self, duration: Duration) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Sleep,
            crate::diag::wait_point::Object::None,
        );
        if duration.is_zero() {
            return context::check();
        }
        context::check()?;
        if let Some(model) = crate::op::custom(self) {
            return match self.now().checked_add(duration) {
                Some(deadline) => self.sleep_on(model, deadline),
                None => self.sleep_on(model, far_future(self.now())),
            };
        }
        // One clock reading to arm, none to find the deadline already passed (it is ahead).
        let Some(deadline) = crate::clock::now().checked_add(duration) else {
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
    /// [`timeout_until`](Io::timeout_until)) comes first.
    #[track_caller]
    pub fn sleep_until(&self, deadline: Instant) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Sleep,
            crate::diag::wait_point::Object::None,
        );
        context::check()?;
        if let Some(model) = crate::op::custom(self) {
            return self.sleep_on(model, deadline);
        }
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

    /// A sleep until `deadline` on a custom model, as [`Operation::Sleep`](crate::Operation)s
    /// until the model's clock reaches it.
    fn sleep_on(&self, model: &dyn crate::CustomModel, deadline: Instant) -> io::Result<()> {
        loop {
            if self.now() >= deadline {
                return Ok(());
            }
            model
                .operate(crate::Operation::Sleep { deadline })?
                .into_done("sleep")?;
            context::check()?;
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
    /// [`TimedOut`](io::ErrorKind::TimedOut). Deadlines nest; the earlier one wins. The
    /// deadline form of [`timeout`](Io::timeout) (Tokio: `timeout_at`).
    ///
    /// ```
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let deadline = io.now() + Duration::from_millis(10);
    ///     let r = io.timeout_until(deadline, |io| io.sleep(Duration::from_secs(5)));
    ///     assert!(zsync::is_timed_out(&r.unwrap_err()));
    /// });
    /// ```
    pub fn timeout_until<R>(&self, deadline: Instant, f: impl FnOnce(&Io) -> R) -> R {
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
            f(self)
        })
    }

    /// Runs `f` with a deadline `duration` from now: every blocking operation inside `f` that
    /// would wait past it fails with a `TimedOut` error ([`is_timed_out`](crate::is_timed_out)),
    /// which `f` propagates. Works on every model, Blocking included. Takes the same closure as
    /// [`timeout_until`](Io::timeout_until).
    ///
    /// ```
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Blocking, |io| {
    ///     let r = io.timeout(Duration::from_millis(10), |io| io.sleep(Duration::from_secs(5)));
    ///     assert!(zsync::is_timed_out(&r.unwrap_err()));
    /// });
    /// ```
    pub fn timeout<R>(&self, duration: Duration, f: impl FnOnce(&Io) -> R) -> R {
        match crate::clock::now().checked_add(duration) {
            Some(deadline) => self.timeout_until(deadline, f),
            None => f(self), // further away than the clock can count: no deadline
        }
    }

    /// Runs each closure as a task and returns the first result to arrive; the other tasks are
    /// canceled and waited for. Tasks run concurrently where the model allows (else they run
    /// inline in order, and the first one wins).
    ///
    /// Cancellation point. Panics if `fs` is empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// zsync::run(zsync::Model::Threaded, |io| {
    ///     let fast = io.race(vec![
    ///         Box::new(|io: &zsync::Io| { io.sleep(Duration::from_secs(5)).ok(); "slow" })
    ///             as Box<dyn FnOnce(&zsync::Io) -> &'static str + Send>,
    ///         Box::new(|_: &zsync::Io| "fast"),
    ///     ]).unwrap();
    ///     assert_eq!(fast, "fast");
    /// });
    /// ```
    #[track_caller]
    pub fn race<T, F>(&self, fs: impl IntoIterator<Item = F>) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        crate::select::race(self, fs)
    }

    /// Runs each closure as a task and returns all results in order. Cancellation point.
    #[track_caller]
    pub fn all<T, F>(&self, fs: impl IntoIterator<Item = F>) -> io::Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Io) -> T + Send + 'static,
    {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Join,
            crate::diag::wait_point::Object::None,
        );
        let mut group = crate::Group::new(self);
        for f in fs {
            group.spawn(f);
        }
        group.join_all()
    }

    /// Runs each fallible closure as a task; returns all values, or the first error, in which
    /// case the other tasks are canceled as soon as it happens.
    #[track_caller]
    pub fn try_all<T, E, F>(&self, fs: impl IntoIterator<Item = F>) -> Result<Vec<T>, E>
    where
        T: Send + 'static,
        E: Send + From<io::Error> + 'static,
        F: FnOnce(&Io) -> Result<T, E> + Send + 'static,
    {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Join,
            crate::diag::wait_point::Object::None,
        );
        let mut group = crate::Group::fail_fast(self);
        for f in fs {
            group.spawn(f);
        }
        group.try_join_all()
    }

    /// Blocks the running task until `event` completes and returns its output. Cancellation
    /// point (`Canceled`); `TimedOut` if the task's deadline passes first.
    #[track_caller]
    pub fn wait<E: crate::Event>(&self, event: E) -> io::Result<E::Output> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Event,
            crate::diag::wait_point::Object::None,
        );
        crate::event::wait(event, None)
    }

    /// Like [`wait`](Io::wait), giving up with `TimedOut` at `deadline`.
    #[track_caller]
    pub fn wait_until<E: crate::Event>(
        &self,
        event: E,
        deadline: Instant,
    ) -> io::Result<E::Output> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Event,
            crate::diag::wait_point::Object::None,
        );
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
    #[track_caller]
    pub fn futex_wait(
        &self,
        word: &std::sync::atomic::AtomicU32,
        expected: u32,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let _wait = crate::diag::wait_point::note(
            crate::diag::wait_point::WaitOp::Futex,
            crate::diag::wait_point::Object::of(word),
        );
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
pub(crate) fn record_detached_panic(payload: Box<dyn std::any::Any + Send>) {
    let state = context::with(|c| c.map(|c| c.io.inner.state.clone()));
    match state {
        Some(state) => state.record_panic(payload),
        None => std::panic::resume_unwind(payload),
    }
}

/// [`Io::now`] on a custom model. Out of line, so that `now` stays a clock read on the others.
#[cold]
#[inline(never)]
fn model_clock(model: &dyn crate::CustomModel) -> Instant {
    model
        .operate(crate::Operation::Now)
        .and_then(|c| c.into_instant("now"))
        .unwrap_or_else(|e| panic!("zsync: the {} model failed a clock read: {e}", model.name()))
}

/// A deadline further away than any run lasts, for a sleep whose end the clock cannot count
/// to (about 30 years: `Instant` arithmetic overflows far later).
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(1 << 30)
}
