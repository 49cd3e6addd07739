//! [`Runtime`]: a long-lived runtime that outlives any one call, beside the scoped
//! [`run`](crate::run); [`Handle`] reaches it from other threads.
//!
//! # Design
//!
//! A runtime is hosted by what `run` already is: a thread of its own (the *host*) calls
//! [`Builder::run`](crate::Builder::run) with a root task that hands its `Io` out and parks until
//! shutdown cancels it. Every model then starts, runs and stops exactly as under `run`, with no
//! second code path: on Green the host is worker 0 (named `zsync-green-0`) and runs tasks like
//! every other worker, the parked root being one idle fiber; on the thread models and custom
//! models the host only holds the root (one parked thread, `zsync-runtime`).
//!
//! - **`block_on(f)` runs `f` on the calling thread**, as Tokio's does, so `f` need not be `Send`
//!   or `'static` and may borrow the caller's locals. From a thread that is not one of the
//!   runtime's tasks, `f` runs as a task of its own: a child of the root (shutdown cancels it),
//!   counted as live (shutdown waits for it), its waits parking the calling thread; the tasks it
//!   spawns go to the model (on Green: injected and run by a worker, and a join from this thread
//!   waits for the worker rather than running the task here; see
//!   `ModelImpl::runs_joined_inline_here`).
//!   Called from a task of the same runtime, `block_on(f)` is `f(io)`, a plain call in the
//!   calling task: `f`'s waits are the model's own (a fiber parks, a worker does not block), so
//!   nothing deadlocks, where Tokio's `block_on`, which would block a worker thread, panics.
//! - **Shutdown** cancels the root, which cancels every task started from outside a task and
//!   every `block_on` in progress, then waits for the host: `run` waits for every task, joins
//!   every thread of the model and re-raises a detached task's panic, which the host catches
//!   and hands back as [`ShutdownStatus::Panicked`].
//! - **Drop** is [`shutdown`](Runtime::shutdown) with the panic printed instead of raised: a
//!   destructor must not panic (it may run during an unwind, where a panic aborts).

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::cancel::CancelNode;
use crate::context::{self, TaskContext};
use crate::error::ConcurrencyUnavailable;
use crate::{Builder, Io, Model, Task};

/// A panic payload, as `std::thread::Result` carries it.
type Payload = Box<dyn Any + Send>;

/// A long-lived runtime: start it once, then run work on it from any thread with
/// [`block_on`](Runtime::block_on) and [`spawn`](Runtime::spawn), until it is shut down or
/// dropped. Tokio: `tokio::runtime::Runtime`. The scoped [`run`](crate::run) is the short form
/// for a program whose whole life is one call.
///
/// Dropping the runtime shuts it down cleanly: tasks still running are canceled and waited for,
/// every thread the model started is joined, and only then does `drop` return. A panic of a
/// detached task found then is printed to stderr, not raised (see
/// [`shutdown`](Runtime::shutdown) to receive it).
///
/// `Send + Sync`: share it by reference (or in an `Arc`), or hand out [`Handle`]s.
///
/// ```
/// use zsync::{Model, Runtime};
///
/// let rt = Runtime::new(Model::Threaded)?;
/// // From several threads at once: each call runs its closure on its own thread, as a task of
/// // the runtime; the tasks it spawns run on the runtime's workers.
/// std::thread::scope(|s| {
///     for i in 0..4u64 {
///         let rt = &rt;
///         s.spawn(move || {
///             let sum = rt.block_on(|io| {
///                 let t = io.spawn(move |_| i * 10);
///                 t.join().unwrap() + 1
///             });
///             assert_eq!(sum, i * 10 + 1);
///         });
///     }
/// });
/// let background = rt.spawn(|io| io.sleep(std::time::Duration::from_secs(3600)));
/// background.detach(); // canceled and waited for by the shutdown below
/// assert!(rt.shutdown().is_complete());
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a Runtime shuts it down at once"]
pub struct Runtime {
    handle: Handle,
    /// The thread running `Builder::run`; `None` once shut down.
    host: Option<Host>,
}

/// The thread hosting a runtime's `run`, and where it reports how the run ended.
struct Host {
    thread: JoinHandle<()>,
    /// The panic of a detached task that `run` re-raised, if any, sent when `run` has returned.
    /// (In a mutex only to make `Runtime` `Sync`: it is read through `&mut self`, unlocked.)
    outcome: Mutex<mpsc::Receiver<Option<Payload>>>,
}

/// A cloneable, `Send + Sync` reference to a [`Runtime`], for other threads: spawn tasks on it
/// and run closures with [`block_on`](Handle::block_on). Tokio: `tokio::runtime::Handle`.
///
/// A handle does not keep the runtime running: once the runtime is shut down, `block_on` and
/// `spawn` still run their closure (inline, on the calling thread) but as a canceled task, whose
/// every blocking operation fails with [`Canceled`](crate::Canceled). It keeps the runtime's
/// memory (on Green, one eventfd per worker) until the last handle and `Io` clone is dropped.
///
/// ```
/// use zsync::{Model, Runtime};
///
/// let rt = Runtime::new(Model::Green)?;
/// let handle = rt.handle();
/// let n = std::thread::spawn(move || {
///     // Spawned from a foreign thread: a worker runs it; `join` waits for it here.
///     handle.spawn(|io| io.spawn(|_| 2).join().unwrap() * 21).join().unwrap()
/// })
/// .join()
/// .unwrap();
/// assert_eq!(n, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a Handle does nothing unless used"]
pub struct Handle {
    io: Io,
}

/// How a runtime's [`shutdown`](Runtime::shutdown) ended.
#[must_use = "a panic of a detached task is reported here, not raised"]
pub enum ShutdownStatus {
    /// Every task finished, every thread the model started was joined.
    Complete,
    /// As `Complete`, and a detached task panicked (or another piece of user code the runtime
    /// ran after its task ended: a detached value's `Drop`): the first such panic's payload,
    /// which [`run`](crate::run) would have re-raised. [`resume`](ShutdownStatus::resume)
    /// re-raises it.
    Panicked(Box<dyn Any + Send>),
    /// Tasks were still running when shutdown stopped waiting: the deadline of
    /// [`shutdown_timeout`](Runtime::shutdown_timeout) passed, or the shutdown was called from
    /// one of the runtime's own tasks, which it cannot wait for. They are canceled; the
    /// runtime's threads finish the shutdown in the background once they end (a panic found
    /// then is printed to stderr).
    Incomplete,
}

impl ShutdownStatus {
    /// Whether every task finished and every thread was joined (`Complete` or `Panicked`).
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// assert!(rt.shutdown().is_complete());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        match self {
            ShutdownStatus::Complete | ShutdownStatus::Panicked(_) => true,
            ShutdownStatus::Incomplete => false,
        }
    }

    /// Re-raises a detached task's panic, as [`run`](crate::run) does; returns whether the
    /// shutdown was complete otherwise.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// rt.spawn(|_| ()).detach();
    /// assert!(rt.shutdown().resume());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn resume(self) -> bool {
        match self {
            ShutdownStatus::Complete => true,
            ShutdownStatus::Panicked(payload) => panic::resume_unwind(payload),
            ShutdownStatus::Incomplete => false,
        }
    }
}

impl fmt::Debug for ShutdownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownStatus::Complete => f.write_str("Complete"),
            ShutdownStatus::Panicked(payload) => f
                .debug_tuple("Panicked")
                .field(&panic_message(&**payload))
                .finish(),
            ShutdownStatus::Incomplete => f.write_str("Incomplete"),
        }
    }
}

impl Runtime {
    /// Starts a runtime of `model` with default settings ([`Builder::build`] for others).
    ///
    /// `Err` if the model cannot start (Green: io_uring forced but refused, no descriptors or
    /// threads for the workers), or no thread can be started to host it.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Blocking)?;
    /// assert_eq!(rt.block_on(|io| io.spawn(|_| 1).join().unwrap()), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(model: Model) -> io::Result<Runtime> {
        Builder::new(model).build()
    }

    /// Starts the host thread and waits until the root task has handed its `Io` out.
    pub(crate) fn start(builder: Builder) -> io::Result<Runtime> {
        let name = match builder.model() {
            Model::Green => "zsync-green-0",
            Model::Blocking | Model::Threaded | Model::Custom(_) => "zsync-runtime",
        };
        let (ready_tx, ready_rx) = mpsc::sync_channel::<io::Result<Io>>(1);
        let (done_tx, done_rx) = mpsc::sync_channel::<Option<Payload>>(1);
        let thread = thread::Builder::new()
            .name(name.to_string())
            .spawn(move || host(builder, ready_tx, done_tx))?;
        match ready_rx.recv() {
            Ok(Ok(io)) => Ok(Runtime {
                handle: Handle { io },
                host: Some(Host {
                    thread,
                    outcome: Mutex::new(done_rx),
                }),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The host reports every outcome; a closed channel means it died some other way.
            Err(_) => {
                let why = match thread.join() {
                    Err(payload) => panic_message(&*payload),
                    Ok(()) => "its thread ended".to_string(),
                };
                Err(io::Error::other(format!(
                    "zsync: the runtime could not start: {why}"
                )))
            }
        }
    }

    /// The runtime's `Io`: everything colorblind code needs, usable from any thread.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// assert_eq!(rt.io().model_name(), "Green");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn io(&self) -> &Io {
        &self.handle.io
    }

    /// A handle to this runtime for other threads.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// let handle = rt.handle();
    /// let v = std::thread::spawn(move || handle.block_on(|_| 7)).join().unwrap();
    /// assert_eq!(v, 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `f` with the runtime's `Io` on the calling thread and returns its value; see
    /// [`Handle::block_on`].
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// let v = rt.block_on(|io| io.spawn(|_| 40).join().unwrap() + 2);
    /// assert_eq!(v, 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<T>(&self, f: impl FnOnce(&Io) -> T) -> T {
        self.handle.block_on(f)
    }

    /// Starts `f` as a task of the runtime; see [`Handle::spawn`].
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// assert_eq!(rt.spawn(|_| 42).join().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// Starts `f` as a task of the runtime that runs concurrently with the caller; see
    /// [`Io::concurrent`].
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Blocking)?;
    /// assert!(rt.concurrent(|_| ()).is_err()); // Blocking has no concurrency
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn concurrent<T, F>(&self, f: F) -> Result<Task<T>, ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.io.concurrent(f)
    }

    /// Shuts the runtime down and waits until it is: every task still running (detached ones,
    /// those started from other threads, `block_on` calls in progress elsewhere) is canceled
    /// and waited for, and every thread the model started is joined. Returns
    /// [`ShutdownStatus::Panicked`] with the first panic of a detached task, which
    /// [`run`](crate::run) would have re-raised.
    ///
    /// Blocks the calling thread. Called from one of the runtime's own tasks, which it cannot
    /// wait for, it cancels everything and returns [`ShutdownStatus::Incomplete`] at once.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// rt.spawn(|_| panic!("lost")).detach();
    /// match rt.shutdown() {
    ///     zsync::ShutdownStatus::Panicked(p) => assert_eq!(p.downcast_ref(), Some(&"lost")),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(mut self) -> ShutdownStatus {
        self.stop(None)
    }

    /// [`shutdown`](Runtime::shutdown), waiting at most `d`: [`ShutdownStatus::Incomplete`]
    /// if tasks are still running then (computing without reaching a cancellation point, or
    /// in a call that cannot be interrupted). They stay canceled and the runtime's threads
    /// exit when they end; a panic found then is printed to stderr. Tokio:
    /// `Runtime::shutdown_timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// rt.spawn(|io| io.sleep(Duration::from_secs(3600))).detach(); // canceled at once
    /// assert!(rt.shutdown_timeout(Duration::from_secs(60)).is_complete());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_timeout(self, d: Duration) -> ShutdownStatus {
        match Instant::now().checked_add(d) {
            Some(deadline) => self.shutdown_until(deadline),
            None => self.shutdown(),
        }
    }

    /// [`shutdown_timeout`](Runtime::shutdown_timeout) with a deadline.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// let status = rt.shutdown_until(Instant::now() + Duration::from_secs(60));
    /// assert!(status.is_complete());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown_until(mut self, deadline: Instant) -> ShutdownStatus {
        self.stop(Some(deadline))
    }

    /// Cancels the root and waits for the host until `deadline`. Idempotent.
    fn stop(&mut self, deadline: Option<Instant>) -> ShutdownStatus {
        let Some(host) = self.host.take() else {
            return ShutdownStatus::Complete;
        };
        let io = &self.handle.io;
        io.inner.root.cancel();
        if in_task_of(io) {
            // This task is one of those the shutdown waits for: the host finishes once it ends.
            return ShutdownStatus::Incomplete;
        }
        let outcome = host.outcome.into_inner().unwrap_or_else(|p| p.into_inner());
        let received = match deadline {
            None => outcome.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(deadline) => {
                outcome.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
        };
        match received {
            Ok(panic) => {
                // `run` has returned: the host is about to exit.
                let _ = host.thread.join();
                match panic {
                    None => ShutdownStatus::Complete,
                    Some(payload) => ShutdownStatus::Panicked(payload),
                }
            }
            // Detached: the host exits on its own when the last task ends.
            Err(RecvTimeoutError::Timeout) => ShutdownStatus::Incomplete,
            // Not reached: the host reports every outcome. If it died, it is gone.
            Err(RecvTimeoutError::Disconnected) => match host.thread.join() {
                Ok(()) => ShutdownStatus::Complete,
                Err(payload) => ShutdownStatus::Panicked(payload),
            },
        }
    }
}

impl Drop for Runtime {
    /// Shuts the runtime down ([`Runtime::shutdown`]); a panic of a detached task is printed
    /// to stderr, never raised.
    fn drop(&mut self) {
        if let ShutdownStatus::Panicked(payload) = self.stop(None) {
            eprintln!(
                "zsync: a detached task panicked ({}); found when its Runtime was dropped",
                panic_message(&*payload)
            );
            crate::contain::drop_payload(payload);
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("model", &self.handle.io.model_name())
            .field("backend", &self.handle.io.backend_name())
            .field("running", &self.host.is_some())
            .finish()
    }
}

impl Handle {
    /// A handle to the runtime whose task runs on this thread, if any (a `run` counts too).
    /// Tokio: `Handle::try_current`.
    ///
    /// ```
    /// assert!(zsync::Handle::current().is_none());
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// let h = rt.spawn(|_| zsync::Handle::current()).join().unwrap().unwrap();
    /// assert_eq!(h.block_on(|io| io.model_name()), "Threaded");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn current() -> Option<Handle> {
        Io::current().map(|io| Handle { io })
    }

    /// The runtime's `Io`.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Blocking)?;
    /// let handle = rt.handle();
    /// assert_eq!(handle.io().model_name(), "Blocking");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// A dump of every live task of the runtime, from any thread: see [`Io::dump`]. What a
    /// server's admin endpoint or a watchdog thread calls when the program seems stuck.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// let (tx, rx) = zsync::channel::bounded::<()>(1);
    /// let task = rt.handle().io().task().name("stuck").spawn(move |_| rx.recv());
    /// // From this thread (not one of the runtime's), while the task waits:
    /// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    /// loop {
    ///     let dump = rt.handle().dump();
    ///     let parked = dump
    ///         .task_named("stuck")
    ///         .is_some_and(|t| t.state() == zsync::dump::TaskState::Parked);
    ///     if parked || std::time::Instant::now() > deadline {
    ///         break;
    ///     }
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    /// }
    /// drop(tx);
    /// let _ = task.join();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn dump(&self) -> crate::dump::Dump {
        self.io.dump()
    }

    /// Runs `f` with the runtime's `Io` on the calling thread and returns its value: how a
    /// thread that is not one of the runtime's tasks (`main`, a thread of another library)
    /// runs colorblind code on it. Tokio: `Runtime::block_on`.
    ///
    /// `f` runs as a task of the runtime: [`Io::current`] returns the runtime's `Io`, tasks it
    /// spawns are its children, and shutting the runtime down cancels it and waits for it.
    /// Its waits park the calling thread (on Green too: `f` is not a fiber, its spawned tasks
    /// are). A panic in `f` resumes here.
    ///
    /// Called from a task of this same runtime it is a plain call, `f(io)` in that task (its
    /// cancellation and deadline apply): the task's waits are the model's (a Green fiber parks,
    /// its worker runs on), so this cannot deadlock. Tokio's `block_on` panics there instead,
    /// since it would block a worker thread. After shutdown, `f` still runs, canceled from its
    /// first blocking operation.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// let name = String::from("borrowed, not moved");
    /// let len = rt.block_on(|io| {
    ///     io.sleep(std::time::Duration::from_millis(1)).unwrap();
    ///     // Nested: a plain call inside the task.
    ///     rt.block_on(|_| name.len())
    /// });
    /// assert_eq!(len, name.len());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<T>(&self, f: impl FnOnce(&Io) -> T) -> T {
        let io = &self.io;
        if in_task_of(io) {
            return f(io);
        }
        let node = CancelNode::child(&io.inner.root);
        node.settle();
        let ctx = TaskContext::new(io, &node, context::TaskRef::root());
        io.inner.state.task_started();
        let result = {
            // Replaces (and then restores) the context of a task of another runtime, if the
            // calling thread runs one.
            let _entered = context::enter(&ctx);
            crate::contain::catch(|| f(io))
        };
        node.detach_from_parent();
        io.inner.state.task_finished();
        match result {
            Ok(v) => v,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Starts `f` as a task of the runtime, from any thread: [`Io::spawn`]. From a thread that
    /// is not one of the runtime's, the task is queued for the model's workers (Blocking: it
    /// runs inline, at once). On Green, joining it from such a thread waits for a worker to run
    /// it; the thread models may run it inline on the joiner if no worker started it yet.
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Green)?;
    /// let handle = rt.handle();
    /// let t = std::thread::spawn(move || handle.spawn(|_| 42).join().unwrap());
    /// assert_eq!(t.join().unwrap(), 42);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn spawn<T, F>(&self, f: F) -> Task<T>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        let io = &self.io;
        if !io.inner.model.queues_spawns() && !in_task_of(io) {
            // Runs inline (Blocking, or shut down): as a task of this runtime, not in whatever
            // context the calling thread has.
            return io.spawn_here(&io.inner.root, f);
        }
        io.spawn(f)
    }

    /// Starts `f` as a task guaranteed to progress concurrently with the caller:
    /// [`Io::concurrent`].
    ///
    /// ```
    /// let rt = zsync::Runtime::new(zsync::Model::Threaded)?;
    /// let t = rt.handle().concurrent(|_| "concurrently").unwrap();
    /// assert_eq!(t.join().unwrap(), "concurrently");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn concurrent<T, F>(&self, f: F) -> Result<Task<T>, ConcurrencyUnavailable<F>>
    where
        F: FnOnce(&Io) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.io.concurrent(f)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("model", &self.io.model_name())
            .finish()
    }
}

/// Whether the calling thread runs a task of `io`'s runtime.
fn in_task_of(io: &Io) -> bool {
    context::with(|c| c.is_some_and(|c| Arc::ptr_eq(&c.io.inner, &io.inner)))
}

/// The host thread: runs the runtime with a root that hands its `Io` out and parks until the
/// root is canceled, then reports the panic `run` re-raised, if any.
fn host(
    builder: Builder,
    ready: mpsc::SyncSender<io::Result<Io>>,
    done: mpsc::SyncSender<Option<Payload>>,
) {
    let started = std::cell::Cell::new(false);
    let root = |io: &Io| {
        started.set(true);
        if ready.send(Ok(io.clone())).is_err() {
            return;
        }
        // Until shutdown cancels the root (a wait's `Canceled`).
        while !io.is_cancel_requested() {
            let _ = io.sleep(Duration::MAX);
        }
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| builder.try_run(root)));
    let panic = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
        Err(payload) if !started.get() => {
            // A model that panics while starting (a thread it could not start).
            let why = panic_message(&*payload);
            crate::contain::drop_payload(payload);
            let _ = ready.send(Err(io::Error::other(format!(
                "zsync: the runtime could not start: {why}"
            ))));
            return;
        }
        Err(payload) => Some(payload),
    };
    if let Err(mpsc::SendError(Some(payload))) = done.send(panic) {
        // Nobody waits any more (`shutdown_timeout` gave up): say it, as a dropped runtime would.
        eprintln!(
            "zsync: a detached task panicked ({}); found when its Runtime finished shutting \
             down, after shutdown_timeout gave up",
            panic_message(&*payload)
        );
        crate::contain::drop_payload(payload);
    }
}

/// A panic payload's message, for a report: the `&str` or `String` it usually is.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic payload that is not a string".to_string()
    }
}
